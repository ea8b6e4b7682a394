from __future__ import annotations

import datetime as dt

import pytest

from dabba.clock import FrozenClock, SystemClock

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_frozen_clock_moves_only_when_told() -> None:
    clock = FrozenClock(T0)
    assert clock.now() == T0
    assert clock.advance(dt.timedelta(seconds=5)) == T0 + dt.timedelta(seconds=5)
    assert clock.now() == T0 + dt.timedelta(seconds=5)


def test_frozen_clock_refuses_naive_times_and_going_back() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FrozenClock(dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="backwards"):
        FrozenClock(T0).advance(dt.timedelta(seconds=-1))


def test_system_clock_is_utc() -> None:
    assert SystemClock().now().tzinfo is dt.UTC
