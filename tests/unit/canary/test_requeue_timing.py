"""The daemon's sleep after an evaluation: ticks start when due, not a second and an
evaluation's duration later (found by the canary-scale benchmark, issue 8)."""

from __future__ import annotations

import datetime as dt

import pytest

from dabba.canary.model import CanaryStatus
from dabba.canary.reconcile import DUE_MARGIN, MAX_SLEEP, _sleep
from tests.unit.canary.sim import make_spec

TICK = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)  # lastTickTime: whole seconds
DECIDED = TICK + dt.timedelta(milliseconds=700)  # the tick's sub-second `now`


def test_after_a_tick_the_daemon_wakes_when_the_next_tick_is_due() -> None:
    spec = make_spec()  # interval 10 s
    old, new = CanaryStatus(), CanaryStatus(last_tick_time=TICK)
    done = DECIDED + dt.timedelta(milliseconds=300)  # actions and status write took 0.3 s
    sleep = _sleep(spec, old, new, 10.0, DECIDED, done)
    assert sleep == pytest.approx(9.0 + DUE_MARGIN)


def test_other_requeues_count_from_the_decision() -> None:
    spec = make_spec()
    status = CanaryStatus(last_tick_time=TICK)  # no tick in this evaluation
    done = DECIDED + dt.timedelta(seconds=2)
    assert _sleep(spec, status, status, 5.0, DECIDED, done) == pytest.approx(3.0)
    assert _sleep(spec, status, status, 1.0, DECIDED, done) == 0.0
    assert _sleep(spec, status, status, None, DECIDED, done) == MAX_SLEEP
