"""Transition table of the Canary state machine: one evaluation per row, every phase."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from dabba.canary.analysis import QueryResult
from dabba.canary.model import (
    PRIMARY_ONLY,
    CanarySpec,
    CanaryStatus,
    ConditionType,
    HandledRequests,
    MetricResult,
    Phase,
    RunResult,
    WebhookType,
    Weights,
    get_condition,
)
from dabba.canary.state_machine import (
    ALLOWED_TRANSITIONS,
    Action,
    Controls,
    CopyTemplateToPrimary,
    Decision,
    EmitEvent,
    EnsurePrimary,
    EnsureRouting,
    EnsureServices,
    EventType,
    Observation,
    Readiness,
    Requeue,
    RestoreRouting,
    RunWebhook,
    ScaleTarget,
    SetWeights,
    WebhookResult,
    decide,
    is_due,
    plan,
)
from tests.unit.canary.sim import T0, make_spec

READY = Readiness(ready=True, ready_replicas=2, desired_replicas=2)
NOT_READY = Readiness(ready=False, ready_replicas=0, desired_replicas=2, not_ready_since=T0)
LATER = T0 + dt.timedelta(seconds=30)  # a tick (interval 10s) is due; deadline (60s) not reached
PAST_DEADLINE = T0 + dt.timedelta(seconds=61)

GOOD = {
    "request-success-rate": {
        "canary_requests": QueryResult.ok(100),
        "canary_errors": QueryResult.ok(0),
    },
    "request-duration": {"canary_requests": QueryResult.ok(100), "canary_p99": QueryResult.ok(20)},
}
BAD = {
    **GOOD,
    "request-success-rate": {
        "canary_requests": QueryResult.ok(100),
        "canary_errors": QueryResult.ok(9),
    },
}
QUIET = {
    "request-success-rate": {
        "canary_requests": QueryResult.ok(3),
        "canary_errors": QueryResult.ok(0),
    },
    "request-duration": {"canary_requests": QueryResult.ok(3), "canary_p99": QueryResult.ok(20)},
}
DOWN = {
    name: dict.fromkeys(roles, QueryResult.failed("connection refused"))
    for name, roles in GOOD.items()
}


def status(phase: Phase | None, **fields: Any) -> CanaryStatus:
    """A status of a run of rev-b over promoted rev-a, entered at T0."""
    base: dict[str, Any] = {
        "phase": phase,
        "revision": "rev-b",
        "last_promoted_revision": "rev-a",
        "last_transition_time": T0,
        "run_start_time": T0,
    }
    if phase is None:
        base = {}
    return CanaryStatus(**{**base, **fields})


def observation(weights: Weights | None = PRIMARY_ONLY, **fields: Any) -> Observation:
    base: dict[str, Any] = {
        "revision": "rev-b",
        "target": READY,
        "primary": READY,
        "weights": weights,
        "primary_revision": "rev-a",
        "canary_replicas": 2,
    }
    return Observation(**{**base, **fields})


@dataclass
class Case:
    """One evaluation: given spec/status/observation at ``now``, expect phase and actions."""

    status: CanaryStatus
    obs: Observation
    phase: Phase | None
    actions: list[Action] = field(default_factory=list)
    absent: list[type] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)
    now: dt.datetime = LATER
    ready_reason: str | None = None


def main_actions(decision: Decision) -> list[Action]:
    """The actions that change the world (no Events, Requeue or idempotent repairs)."""
    skip = (EmitEvent, Requeue, EnsureServices, EnsureRouting)
    return [a for a in decision.actions if not isinstance(a, skip)]


def in_order(expected: Sequence[Action], actual: Sequence[Action]) -> bool:
    """``expected`` appears in ``actual`` in this order (other actions may come between)."""
    rest = iter(actual)
    return all(any(a == b for b in rest) for a in expected)


def run_case(case: Case) -> Decision:
    spec: CanarySpec = make_spec(**case.spec)
    decision = decide(spec, case.status, case.obs, case.now)
    assert decision.status.phase == case.phase, [e.message for e in decision.events]
    done = [a for a in decision.actions if not isinstance(a, EmitEvent)]
    assert in_order(case.actions, done), done
    for kind in case.absent:
        assert not any(isinstance(a, kind) for a in decision.actions), decision.actions
    for name, value in case.fields.items():
        assert getattr(decision.status, name) == value, name
    reasons = [e.reason for e in decision.events]
    for reason in case.events:
        assert reason in reasons, reasons
    if case.ready_reason is not None:
        ready = get_condition(decision.status.conditions, ConditionType.READY)
        assert ready is not None
        assert ready.reason == case.ready_reason
    old = case.status.phase
    new = decision.status.phase
    assert new == old or new in ALLOWED_TRANSITIONS[old]
    if new != old:
        assert new is not None
        assert new.value in reasons, "every phase change has an Event"
    assert decision == decide(spec, case.status, case.obs, case.now), "deterministic"
    return decision


HOOK = {"name": "gate", "url": "http://gate"}


def hooks(*types: str) -> dict[str, Any]:
    return {"analysis": {"webhooks": [{**HOOK, "name": t, "type": t} for t in types]}}


def answered(obs: Observation, metrics: Any = None, **webhooks: bool) -> Observation:
    return obs.with_results(
        metrics, {name.replace("_", "-"): WebhookResult(ok) for name, ok in webhooks.items()}
    )


AT_5 = Weights(95, 5)
AT_50 = Weights(50, 50)

CASES = [
    # -- a new Canary --------------------------------------------------------------------------
    pytest.param(
        Case(
            status(None),
            observation(None, primary=Readiness(False), primary_revision=None),
            Phase.INITIALIZING,
            actions=[EnsurePrimary("rev-b"), EnsureServices()],
            events=["Initializing", "PrimaryNotReady"],
            ready_reason="PrimaryNotReady",
        ),
        id="new canary creates the primary and waits for it",
    ),
    pytest.param(
        Case(
            status(None),
            observation(None),
            Phase.INITIALIZED,
            actions=[
                EnsurePrimary("rev-b"),
                EnsureServices(),
                EnsureRouting(),
                SetWeights(100, 0),
                ScaleTarget(0),
            ],
            fields={"last_promoted_revision": "rev-a", "revision": "rev-a"},
        ),
        id="new canary over a ready primary is initialized at once",
    ),
    pytest.param(
        Case(
            status(Phase.INITIALIZING),
            observation(None, primary=NOT_READY),
            Phase.INITIALIZING,
            now=T0 + dt.timedelta(hours=2),
            ready_reason="PrimaryNotReady",
        ),
        id="initializing never fails: nothing is being released",
    ),
    pytest.param(
        Case(
            status(Phase.INITIALIZING),
            observation(None, primary_revision=None),
            Phase.INITIALIZED,
            actions=[
                EnsurePrimary("rev-b"),
                EnsureServices(),
                EnsureRouting(),
                SetWeights(100, 0),
                ScaleTarget(0),
            ],
            fields={"last_promoted_revision": "rev-b"},
        ),
        id="initializing ends when the primary is ready",
    ),
    # -- idle phases ---------------------------------------------------------------------------
    pytest.param(
        Case(
            status(Phase.INITIALIZED, revision="rev-a"),
            observation(revision="rev-a"),
            Phase.INITIALIZED,
            absent=[SetWeights, ScaleTarget],
        ),
        id="initialized and unchanged does nothing",
    ),
    pytest.param(
        Case(
            status(Phase.SUCCEEDED, revision="rev-a"),
            observation(Weights(80, 20), revision="rev-a"),
            Phase.SUCCEEDED,
            actions=[SetWeights(100, 0)],
            events=["WeightDrift"],
        ),
        id="idle corrects drifted weights",
    ),
    pytest.param(
        Case(
            status(Phase.INITIALIZED, revision="rev-a"),
            observation(),
            Phase.PROGRESSING,
            actions=[ScaleTarget(2)],
            events=["Progressing"],
            fields={
                "revision": "rev-b",
                "canary_weight": 0,
                "run_start_time": LATER,
                "last_transition_time": LATER,
            },
        ),
        id="a new revision starts a run by scaling the canary up",
    ),
    pytest.param(
        Case(
            status(Phase.SUCCEEDED, revision="rev-a"),
            answered(observation(), confirm_rollout=False),
            Phase.WAITING,
            actions=[ScaleTarget(0)],
            spec=hooks("confirm-rollout"),
            fields={"revision": "rev-b"},
        ),
        id="a shut confirm-rollout gate holds a new revision in Waiting",
    ),
    pytest.param(
        Case(
            status(Phase.SUCCEEDED, revision="rev-a"),
            answered(observation(), confirm_rollout=True),
            Phase.PROGRESSING,
            actions=[ScaleTarget(2)],
            spec=hooks("confirm-rollout"),
        ),
        id="an open confirm-rollout gate starts the run",
    ),
    pytest.param(
        Case(
            status(Phase.SUCCEEDED, revision="rev-a"),
            observation(),
            Phase.PROGRESSING,
            actions=[ScaleTarget(2)],
            spec={**hooks("confirm-rollout"), "skipAnalysis": True},
        ),
        id="skipAnalysis skips the confirm-rollout gate",
    ),
    pytest.param(
        Case(
            status(Phase.SUCCEEDED, revision="rev-a"),
            observation(),
            Phase.SUCCEEDED,
            absent=[ScaleTarget, SetWeights],
            spec={"suspend": True},
            ready_reason="Suspended",
            events=["Suspended"],
        ),
        id="suspend starts no new run",
    ),
    pytest.param(
        Case(
            status(Phase.SUCCEEDED, revision="rev-a"),
            observation(controls=Controls(paused=True)),
            Phase.SUCCEEDED,
            absent=[ScaleTarget],
            ready_reason="Paused",
        ),
        id="pause starts no new run",
    ),
    pytest.param(
        Case(
            status(Phase.FAILED, last_failed_revision="rev-b"),
            observation(),
            Phase.FAILED,
            absent=[ScaleTarget],
        ),
        id="a failed revision is not retried by itself",
    ),
    pytest.param(
        Case(
            status(Phase.FAILED, last_failed_revision="rev-b", failed_checks=3),
            observation(controls=Controls(retry="r1")),
            Phase.PROGRESSING,
            actions=[ScaleTarget(2)],
            fields={"failed_checks": 0, "handled": HandledRequests(retry="r1")},
        ),
        id="retry restarts the failed revision with fresh counters",
    ),
    pytest.param(
        Case(
            status(Phase.FAILED, last_failed_revision="rev-b"),
            observation(controls=Controls(retry="r1")),
            Phase.FAILED,
            spec={"suspend": True},
            fields={"handled": HandledRequests()},
        ),
        id="retry waits while suspended",
    ),
    pytest.param(
        Case(
            status(Phase.FAILED, last_failed_revision="rev-b", handled=HandledRequests(retry="r1")),
            observation(controls=Controls(retry="r1")),
            Phase.FAILED,
            absent=[ScaleTarget],
        ),
        id="a handled retry does not fire again",
    ),
    pytest.param(
        Case(
            status(Phase.SUCCEEDED, revision="rev-b", last_promoted_revision="rev-b"),
            observation(controls=Controls(retry="r1", promote="p1", abort="a1")),
            Phase.SUCCEEDED,
            events=["RetryIgnored", "PromoteIgnored", "AbortIgnored"],
            fields={"handled": HandledRequests("p1", "a1", "r1")},
        ),
        id="requests without a run are acknowledged and ignored",
    ),
    # -- Waiting -------------------------------------------------------------------------------
    pytest.param(
        Case(
            status(Phase.WAITING),
            answered(observation(), confirm_rollout=False),
            Phase.WAITING,
            absent=[ScaleTarget],
            spec=hooks("confirm-rollout"),
        ),
        id="waiting holds while the gate is shut",
    ),
    pytest.param(
        Case(
            status(Phase.WAITING),
            answered(observation(), confirm_rollout=True),
            Phase.PROGRESSING,
            actions=[ScaleTarget(2)],
            spec=hooks("confirm-rollout"),
        ),
        id="waiting moves on when the gate opens",
    ),
    pytest.param(
        Case(
            status(Phase.WAITING),
            answered(observation(), confirm_rollout=False, rollback=True),
            Phase.FAILED,
            actions=[SetWeights(100, 0), ScaleTarget(0)],
            spec=hooks("confirm-rollout", "rollback"),
            fields={"last_failed_revision": "rev-b"},
        ),
        id="a rollback webhook answering 2xx fails a waiting run",
    ),
    pytest.param(
        Case(
            status(Phase.WAITING),
            observation(controls=Controls(abort="a1")),
            Phase.FAILED,
            actions=[SetWeights(100, 0), ScaleTarget(0)],
            spec=hooks("confirm-rollout"),
            fields={"handled": HandledRequests(abort="a1")},
        ),
        id="abort fails a waiting run",
    ),
    pytest.param(
        Case(
            status(Phase.WAITING),
            observation(controls=Controls(promote="p1")),
            Phase.PROMOTING,
            actions=[CopyTemplateToPrimary("rev-b")],
            spec=hooks("confirm-rollout"),
        ),
        id="promote skips the gate and the analysis",
    ),
    pytest.param(
        Case(
            status(Phase.WAITING),
            observation(revision="rev-c"),
            Phase.WAITING,
            actions=[ScaleTarget(0)],
            events=["Restarted", "Waiting"],
            spec=hooks("confirm-rollout"),
            fields={"revision": "rev-c", "last_transition_time": LATER},
        ),
        id="a newer revision replaces the waiting one and needs its own approval",
    ),
    pytest.param(
        Case(
            status(Phase.WAITING),
            observation(revision="rev-a"),
            Phase.INITIALIZED,
            actions=[SetWeights(100, 0), ScaleTarget(0)],
            spec=hooks("confirm-rollout"),
            fields={"revision": "rev-a"},
        ),
        id="reverting to the promoted revision stops the run",
    ),
    # -- Progressing at weight 0 ---------------------------------------------------------------
    pytest.param(
        Case(
            status(Phase.PROGRESSING),
            observation(target=NOT_READY),
            Phase.PROGRESSING,
            absent=[SetWeights],
            ready_reason="CanaryNotReady",
            events=["CanaryNotReady"],
        ),
        id="the canary scaling up is waited for",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING),
            observation(target=NOT_READY),
            Phase.FAILED,
            now=PAST_DEADLINE,
            actions=[SetWeights(100, 0), ScaleTarget(0)],
            fields={"last_failed_revision": "rev-b"},
        ),
        id="a canary never ready fails at the progress deadline",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING),
            observation(primary=NOT_READY),
            Phase.PROGRESSING,
            absent=[SetWeights],
            ready_reason="PrimaryNotReady",
        ),
        id="an unready primary holds the run",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING),
            observation(),
            Phase.PROGRESSING,
            actions=[SetWeights(95, 5)],
            events=["WeightChanged"],
            fields={"canary_weight": 5, "step_index": 0, "last_tick_time": LATER},
        ),
        id="a ready canary gets the first weight",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING),
            answered(observation(), pre_rollout=False),
            Phase.PROGRESSING,
            absent=[SetWeights],
            spec=hooks("pre-rollout"),
            events=["CheckFailed"],
            fields={"failed_checks": 1, "canary_weight": 0, "last_tick_time": LATER},
        ),
        id="a failing pre-rollout webhook is a failed check",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, last_tick_time=LATER - dt.timedelta(seconds=5)),
            answered(observation(), pre_rollout=True),
            Phase.PROGRESSING,
            absent=[SetWeights],
            spec=hooks("pre-rollout"),
        ),
        id="pre-rollout is retried one interval after it failed",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING),
            answered(observation(), pre_rollout=True),
            Phase.PROGRESSING,
            actions=[SetWeights(95, 5)],
            spec=hooks("pre-rollout"),
        ),
        id="a passing pre-rollout webhook lets traffic move",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING),
            observation(),
            Phase.PROMOTING,
            actions=[CopyTemplateToPrimary("rev-b")],
            spec={"skipAnalysis": True},
        ),
        id="skipAnalysis promotes once the canary is ready",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING),
            observation(target=NOT_READY),
            Phase.FAILED,
            now=PAST_DEADLINE,
            spec={"skipAnalysis": True},
        ),
        id="skipAnalysis still fails on readiness",
    ),
    # -- Progressing with traffic --------------------------------------------------------------
    pytest.param(
        Case(
            status(
                Phase.PROGRESSING, canary_weight=5, last_tick_time=LATER - dt.timedelta(seconds=4)
            ),
            observation(AT_5),
            Phase.PROGRESSING,
            absent=[SetWeights],
            actions=[Requeue(6.0)],
        ),
        id="no tick before one interval at the weight",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=5, last_tick_time=T0),
            answered(observation(AT_5), GOOD),
            Phase.PROGRESSING,
            actions=[SetWeights(90, 10)],
            events=["WeightChanged"],
            fields={
                "canary_weight": 10,
                "step_index": 1,
                "checks_at_weight": 0,
                "last_tick_time": LATER,
            },
        ),
        id="a passing tick moves to the next weight",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=5, last_tick_time=T0),
            answered(observation(AT_5), GOOD),
            Phase.PROGRESSING,
            absent=[SetWeights],
            spec={"analysis": {"checksPerStep": 2}},
            fields={"checks_at_weight": 1, "canary_weight": 5},
        ),
        id="checksPerStep passing ticks are needed before the next step",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=5, last_tick_time=T0, checks_at_weight=1),
            answered(observation(AT_5), BAD),
            Phase.PROGRESSING,
            absent=[SetWeights],
            spec={"analysis": {"checksPerStep": 2}},
            events=["CheckFailed"],
            fields={"failed_checks": 1, "checks_at_weight": 0},
        ),
        id="a failed tick counts and resets the passing streak",
    ),
    pytest.param(
        Case(
            status(
                Phase.PROGRESSING,
                canary_weight=25,
                step_index=2,
                last_tick_time=T0,
                failed_checks=2,
            ),
            answered(observation(Weights(75, 25)), BAD),
            Phase.FAILED,
            actions=[SetWeights(100, 0), ScaleTarget(0)],
            events=["CheckFailed", "Failed", "WeightChanged"],
            fields={
                "failed_checks": 3,
                "canary_weight": 0,
                "last_failed_revision": "rev-b",
                "last_promoted_revision": "rev-a",
            },
        ),
        id="threshold failed ticks roll back in the same decision",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=5, last_tick_time=T0),
            answered(observation(AT_5), QUIET),
            Phase.PROGRESSING,
            absent=[SetWeights],
            events=["CheckInconclusive"],
            fields={"inconclusive_checks": 1, "failed_checks": 0},
        ),
        id="too few requests is inconclusive and holds",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=5, last_tick_time=T0, inconclusive_checks=9),
            answered(observation(AT_5), QUIET),
            Phase.FAILED,
            actions=[SetWeights(100, 0), ScaleTarget(0)],
        ),
        id="maxInconclusive in a row fails the run",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=5, last_tick_time=T0, inconclusive_checks=500),
            answered(observation(AT_5), QUIET),
            Phase.PROGRESSING,
            spec={"analysis": {"maxInconclusive": 0}},
            fields={"inconclusive_checks": 501},
        ),
        id="maxInconclusive 0 waits forever",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=5, last_tick_time=T0, inconclusive_checks=4),
            answered(observation(AT_5), GOOD),
            Phase.PROGRESSING,
            fields={"inconclusive_checks": 0},
        ),
        id="a passing tick ends an inconclusive streak",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=5, last_tick_time=T0),
            answered(observation(AT_5), DOWN),
            Phase.PROGRESSING,
            absent=[SetWeights],
            events=["CheckError"],
            fields={"consecutive_errors": 1, "failed_checks": 0},
        ),
        id="a first query error is not a failed check yet",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=5, last_tick_time=T0, consecutive_errors=2),
            answered(observation(AT_5), DOWN),
            Phase.PROGRESSING,
            events=["CheckFailed"],
            fields={"consecutive_errors": 3, "failed_checks": 1},
        ),
        id="the third error in a row is a failed check",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=5, last_tick_time=T0),
            observation(AT_5, metrics_online=False),
            Phase.PROGRESSING,
            fields={"consecutive_errors": 1},
        ),
        id="Prometheus known to be down judges the tick as Error without queries",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=5, last_tick_time=T0),
            observation(AT_5),
            Phase.PROGRESSING,
            absent=[SetWeights],
            fields={"last_tick_time": T0, "checks_at_weight": 0, "consecutive_errors": 0},
        ),
        id="queries not run judge nothing",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=5, last_tick_time=T0),
            answered(observation(AT_5), GOOD, rollout=False),
            Phase.PROGRESSING,
            absent=[SetWeights],
            spec=hooks("rollout"),
            fields={"failed_checks": 1},
        ),
        id="a failing rollout webhook fails the tick",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=5, last_tick_time=T0),
            answered(observation(None), GOOD),
            Phase.PROGRESSING,
            absent=[SetWeights],
            ready_reason="RouterNotReady",
            fields={"last_tick_time": LATER},
        ),
        id="weights not accepted by the router hold the run",
    ),
    pytest.param(
        Case(
            status(
                Phase.PROGRESSING,
                canary_weight=25,
                step_index=2,
                last_tick_time=LATER - dt.timedelta(seconds=3),
            ),
            observation(Weights(100, 0)),
            Phase.PROGRESSING,
            actions=[SetWeights(75, 25)],
            events=["WeightDrift"],
            fields={"last_tick_time": LATER, "step_index": 2},
        ),
        id="drifted weights are rewritten and the next interval starts afresh",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=25, step_index=2, last_tick_time=T0),
            answered(observation(AT_50), GOOD),
            Phase.PROGRESSING,
            actions=[SetWeights(50, 50)],
            fields={"canary_weight": 50, "step_index": 3},
        ),
        id="the router already at the next step (a crash before the status write) is not drift",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=25, step_index=2, last_tick_time=T0),
            answered(observation(AT_50), QUIET),
            Phase.PROGRESSING,
            actions=[SetWeights(75, 25)],
            events=["WeightDrift", "CheckInconclusive"],
            fields={"canary_weight": 25, "inconclusive_checks": 1},
        ),
        id="drift is corrected after an inconclusive tick",
    ),
    pytest.param(
        Case(
            status(
                Phase.PROGRESSING,
                canary_weight=25,
                step_index=2,
                last_tick_time=T0,
                failed_checks=2,
            ),
            answered(observation(Weights(75, 25), target=NOT_READY), BAD),
            Phase.FAILED,
            actions=[SetWeights(100, 0), ScaleTarget(0)],
        ),
        id="a due tick is judged even while the canary is not ready",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=25, step_index=2, last_tick_time=T0),
            answered(observation(Weights(75, 25), target=NOT_READY), GOOD),
            Phase.PROGRESSING,
            absent=[SetWeights],
            fields={"checks_at_weight": 1, "canary_weight": 25},
            ready_reason="CanaryNotReady",
        ),
        id="a passing tick does not step while the canary is not ready",
    ),
    pytest.param(
        Case(
            status(
                Phase.PROGRESSING,
                canary_weight=25,
                step_index=2,
                checks_at_weight=1,
                last_tick_time=LATER - dt.timedelta(seconds=2),
            ),
            observation(Weights(75, 25)),
            Phase.PROGRESSING,
            actions=[SetWeights(50, 50)],
            fields={"checks_at_weight": 0, "step_index": 3},
        ),
        id="an earned step is taken once the canary is ready again",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=50, step_index=3, last_tick_time=T0),
            answered(observation(AT_50), GOOD),
            Phase.PROMOTING,
            actions=[CopyTemplateToPrimary("rev-b")],
        ),
        id="passing the last step promotes",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=50, step_index=3, last_tick_time=T0),
            answered(observation(AT_50), GOOD, confirm_promotion=False),
            Phase.WAITING_PROMOTION,
            absent=[CopyTemplateToPrimary],
            spec=hooks("confirm-promotion"),
        ),
        id="a shut confirm-promotion gate waits after the last step",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=50, step_index=3, last_tick_time=T0),
            answered(observation(AT_50), GOOD, confirm_promotion=True),
            Phase.PROMOTING,
            actions=[CopyTemplateToPrimary("rev-b")],
            spec=hooks("confirm-promotion"),
        ),
        id="an open confirm-promotion gate promotes at once",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=10, step_index=1, last_tick_time=T0),
            answered(observation(Weights(90, 10)), rollback=True),
            Phase.FAILED,
            actions=[SetWeights(100, 0), ScaleTarget(0)],
            spec=hooks("rollback"),
        ),
        id="a rollback webhook answering 2xx rolls back now",
    ),
    pytest.param(
        Case(
            status(
                Phase.PROGRESSING,
                canary_weight=25,
                step_index=2,
                last_tick_time=T0,
                failed_checks=1,
            ),
            observation(Weights(75, 25), revision="rev-c"),
            Phase.PROGRESSING,
            actions=[SetWeights(100, 0), ScaleTarget(2)],
            events=["Restarted", "WeightChanged"],
            fields={
                "revision": "rev-c",
                "canary_weight": 0,
                "step_index": 0,
                "failed_checks": 0,
                "last_tick_time": None,
            },
        ),
        id="a new revision mid-run restarts from the first step",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=25, step_index=2, last_tick_time=T0),
            answered(observation(Weights(75, 25)), BAD),
            Phase.PROGRESSING,
            absent=[SetWeights, ScaleTarget],
            spec={"suspend": True},
            fields={"failed_checks": 0, "canary_weight": 25},
        ),
        id="suspend freezes a run at its weights",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=25, step_index=2, last_tick_time=T0),
            observation(Weights(75, 25), controls=Controls(paused=True)),
            Phase.PROGRESSING,
            absent=[SetWeights],
            ready_reason="Paused",
            events=["Paused"],
        ),
        id="pause holds a run",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=25, step_index=2, last_tick_time=T0),
            observation(Weights(75, 25), controls=Controls(abort="a1", paused=True)),
            Phase.FAILED,
            actions=[SetWeights(100, 0), ScaleTarget(0)],
            fields={"handled": HandledRequests(abort="a1")},
        ),
        id="abort works even while paused",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=25, step_index=2, last_tick_time=T0),
            observation(Weights(75, 25), controls=Controls(promote="p1")),
            Phase.PROMOTING,
            actions=[CopyTemplateToPrimary("rev-b")],
        ),
        id="promote skips the rest of the schedule",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=25, step_index=2, last_tick_time=T0),
            observation(Weights(75, 25), revision="rev-c", controls=Controls(promote="p1")),
            Phase.PROGRESSING,
            absent=[CopyTemplateToPrimary],
            events=["PromoteIgnored"],
            fields={"revision": "rev-c"},
        ),
        id="promote of a superseded revision is ignored",
    ),
    # -- WaitingPromotion ----------------------------------------------------------------------
    pytest.param(
        Case(
            status(
                Phase.WAITING_PROMOTION,
                canary_weight=50,
                step_index=3,
                last_tick_time=LATER - dt.timedelta(seconds=2),
            ),
            answered(observation(AT_50), confirm_promotion=False),
            Phase.WAITING_PROMOTION,
            absent=[CopyTemplateToPrimary, SetWeights],
            spec=hooks("confirm-promotion"),
        ),
        id="waiting for promotion holds the weights",
    ),
    pytest.param(
        Case(
            status(Phase.WAITING_PROMOTION, canary_weight=50, step_index=3, last_tick_time=T0),
            answered(observation(AT_50), GOOD, confirm_promotion=False),
            Phase.WAITING_PROMOTION,
            spec=hooks("confirm-promotion"),
            fields={"last_tick_time": LATER},
        ),
        id="analysis keeps running while waiting for promotion",
    ),
    pytest.param(
        Case(
            status(
                Phase.WAITING_PROMOTION,
                canary_weight=50,
                step_index=3,
                checks_at_weight=1,
                last_tick_time=LATER,
            ),
            answered(observation(AT_50), confirm_promotion=True),
            Phase.PROMOTING,
            actions=[CopyTemplateToPrimary("rev-b")],
            spec=hooks("confirm-promotion"),
        ),
        id="the gate opening promotes without waiting for a tick",
    ),
    pytest.param(
        Case(
            status(
                Phase.WAITING_PROMOTION,
                canary_weight=50,
                step_index=3,
                checks_at_weight=0,
                failed_checks=1,
                last_tick_time=LATER,
            ),
            answered(observation(AT_50), confirm_promotion=True),
            Phase.WAITING_PROMOTION,
            absent=[CopyTemplateToPrimary],
            spec=hooks("confirm-promotion"),
        ),
        id="an approval waits for a fresh passing window after a failed tick",
    ),
    pytest.param(
        Case(
            status(
                Phase.WAITING_PROMOTION,
                canary_weight=50,
                step_index=3,
                checks_at_weight=0,
                failed_checks=1,
                last_tick_time=T0,
            ),
            answered(observation(AT_50), GOOD, confirm_promotion=True),
            Phase.PROMOTING,
            actions=[CopyTemplateToPrimary("rev-b")],
            spec=hooks("confirm-promotion"),
        ),
        id="an approval promotes after the window passes again",
    ),
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=25, step_index=2, last_tick_time=LATER),
            observation(Weights(100, 0), target=Readiness(False)),
            Phase.FAILED,
            actions=[SetWeights(100, 0), ScaleTarget(0)],
        ),
        id="a target scaled to zero mid-run fails the run at once",
    ),
    pytest.param(
        Case(
            status(
                Phase.WAITING_PROMOTION,
                canary_weight=50,
                step_index=3,
                last_tick_time=T0,
                failed_checks=2,
            ),
            answered(observation(AT_50), BAD, confirm_promotion=True),
            Phase.FAILED,
            absent=[CopyTemplateToPrimary],
            spec=hooks("confirm-promotion"),
        ),
        id="a failing tick wins over an approval in the same evaluation",
    ),
    # -- Promoting and Finalising --------------------------------------------------------------
    pytest.param(
        Case(
            status(Phase.PROMOTING, canary_weight=50),
            observation(AT_50, primary=NOT_READY, primary_revision="rev-b"),
            Phase.PROMOTING,
            absent=[SetWeights, CopyTemplateToPrimary],
            ready_reason="PrimaryNotReady",
        ),
        id="promoting waits for the primary rollout",
    ),
    pytest.param(
        Case(
            status(Phase.PROMOTING, canary_weight=50),
            observation(AT_50, primary=NOT_READY, primary_revision="rev-b"),
            Phase.FAILED,
            now=PAST_DEADLINE,
            actions=[SetWeights(100, 0), ScaleTarget(0)],
        ),
        id="a primary not ready after promotion fails at the deadline",
    ),
    pytest.param(
        Case(
            status(Phase.PROMOTING, canary_weight=50),
            observation(AT_50, primary_revision="rev-b"),
            Phase.FINALISING,
            actions=[SetWeights(100, 0)],
            absent=[ScaleTarget],
            fields={"canary_weight": 0},
        ),
        id="a ready primary takes all traffic back",
    ),
    pytest.param(
        Case(
            status(Phase.PROMOTING, canary_weight=50),
            observation(AT_50, primary_revision="rev-a"),
            Phase.PROMOTING,
            actions=[CopyTemplateToPrimary("rev-b")],
            absent=[SetWeights],
        ),
        id="a primary without the promoted template gets it again",
    ),
    pytest.param(
        Case(
            status(Phase.PROMOTING, canary_weight=50),
            observation(AT_50, primary_revision="rev-a", revision="rev-c"),
            Phase.PROGRESSING,
            actions=[SetWeights(100, 0), ScaleTarget(2)],
            absent=[CopyTemplateToPrimary],
            fields={"revision": "rev-c"},
        ),
        id="a promotion that never landed yields to a newer revision",
    ),
    pytest.param(
        Case(
            status(Phase.PROMOTING, canary_weight=50),
            observation(AT_50, primary_revision="rev-b", revision="rev-c"),
            Phase.FINALISING,
            actions=[SetWeights(100, 0)],
            fields={"revision": "rev-b"},
        ),
        id="a landed promotion finishes before a newer revision runs",
    ),
    pytest.param(
        Case(
            status(Phase.FINALISING),
            observation(AT_50, primary_revision="rev-b"),
            Phase.FINALISING,
            actions=[SetWeights(100, 0)],
            absent=[ScaleTarget],
        ),
        id="finalising waits for the router to show 100/0",
    ),
    pytest.param(
        Case(
            status(Phase.FINALISING),
            observation(primary_revision="rev-b"),
            Phase.SUCCEEDED,
            actions=[ScaleTarget(0), RunWebhook(WebhookType.POST_ROLLOUT)],
            absent=[SetWeights],
            fields={"last_promoted_revision": "rev-b"},
            events=["Succeeded"],
        ),
        id="finalising scales the target to zero and succeeds",
    ),
    # -- deletion ------------------------------------------------------------------------------
    pytest.param(
        Case(
            status(Phase.PROGRESSING, canary_weight=25),
            observation(Weights(75, 25), deleting=True),
            Phase.TERMINATING,
            actions=[RestoreRouting(), ScaleTarget(2)],
            spec={"revertOnDeletion": True},
        ),
        id="deletion with revertOnDeletion restores routing and scale",
    ),
    pytest.param(
        Case(
            status(Phase.SUCCEEDED),
            observation(deleting=True),
            Phase.TERMINATING,
            absent=[RestoreRouting, ScaleTarget, Requeue],
        ),
        id="deletion without revertOnDeletion leaves things as they are",
    ),
    pytest.param(
        Case(
            status(Phase.TERMINATING),
            observation(deleting=True),
            Phase.TERMINATING,
            absent=[RestoreRouting, ScaleTarget, EmitEvent],
        ),
        id="terminating is terminal",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_transition(case: Case) -> None:
    run_case(case)


def test_every_phase_is_covered_by_the_table() -> None:
    starts = {c.values[0].status.phase for c in CASES}  # type: ignore[union-attr]
    ends = {c.values[0].phase for c in CASES}  # type: ignore[union-attr]
    assert starts >= set(Phase) | {None}
    assert ends >= set(Phase)


# -- details that do not fit a row ---------------------------------------------------------------


def test_rollback_message_names_the_metric_value_and_count() -> None:
    spec = make_spec()
    before = status(
        Phase.PROGRESSING, canary_weight=25, step_index=2, last_tick_time=T0, failed_checks=2
    )
    d = decide(spec, before, answered(observation(Weights(75, 25)), BAD), LATER)
    failed = next(e for e in d.events if e.reason == "Failed")
    assert failed.type is EventType.WARNING
    assert failed.message == "rolled back: request-success-rate 91 < 99 (3 failed checks)"
    assert d.actions[:2] == (SetWeights(100, 0), ScaleTarget(0))
    assert d.status.history[0].result is RunResult.FAILED
    assert d.status.history[0].reason == "request-success-rate 91 < 99 (3 failed checks)"
    record = d.status.last_analysis[0]
    assert (record.metric, record.value, record.threshold, record.result) == (
        "request-success-rate",
        91.0,
        ">= 99",
        MetricResult.FAILED,
    )
    promoted = get_condition(d.status.conditions, ConditionType.PROMOTED)
    assert promoted is not None
    assert (promoted.status, promoted.reason) == ("False", "Failed")


def test_weight_event_reads_like_a_sentence() -> None:
    spec = make_spec(analysis={"checksPerStep": 2})
    before = status(
        Phase.PROGRESSING, canary_weight=10, step_index=1, checks_at_weight=1, last_tick_time=T0
    )
    d = decide(spec, before, answered(observation(Weights(90, 10)), GOOD), LATER)
    assert (
        EmitEvent(EventType.NORMAL, "WeightChanged", "canary weight 10% → 25% (2/2 checks passed)")
        in d.events
    )


def test_requeue_follows_the_next_due_tick() -> None:
    spec = make_spec()
    before = status(Phase.PROGRESSING, canary_weight=5, last_tick_time=T0)
    assert (
        decide(spec, before, observation(AT_5), T0 + dt.timedelta(seconds=3)).requeue_after == 7.0
    )
    assert is_due(spec, before, T0 + dt.timedelta(seconds=10))
    assert not is_due(spec, before, T0 + dt.timedelta(seconds=9))


def test_ready_condition_events_fire_once_per_change() -> None:
    spec = make_spec()
    first = decide(spec, status(Phase.PROGRESSING), observation(target=NOT_READY), LATER)
    again = decide(
        spec, first.status, observation(target=NOT_READY), LATER + dt.timedelta(seconds=5)
    )
    assert [e.reason for e in first.events] == ["CanaryNotReady"]
    assert again.events == ()
    ready = decide(spec, again.status, observation(), LATER + dt.timedelta(seconds=10))
    assert "Ready" in [e.reason for e in ready.events]


# -- plan --------------------------------------------------------------------------------------


def test_plan_asks_for_nothing_between_ticks() -> None:
    spec = make_spec(**hooks("rollout"))
    before = status(Phase.PROGRESSING, canary_weight=5, last_tick_time=LATER)
    need = plan(spec, before, observation(AT_5), LATER)
    assert (need.webhooks, need.metrics, need.analysis_due) == ((), (), False)


def test_plan_of_a_due_tick_lists_rollout_hooks_and_every_metric() -> None:
    spec = make_spec(**hooks("rollout", "rollback"))
    before = status(Phase.PROGRESSING, canary_weight=5, last_tick_time=T0)
    need = plan(spec, before, observation(AT_5), LATER)
    assert [h.name for h in need.webhooks] == ["rollback", "rollout"]
    assert [m.metric.name for m in need.metrics] == ["request-success-rate", "request-duration"]
    assert need.analysis_due
    assert need.needs_analysis
    assert set(need.metrics[0].queries) == {"canary_requests", "canary_errors"}


def test_plan_at_the_last_step_also_asks_the_promotion_gate() -> None:
    spec = make_spec(**hooks("confirm-promotion"))
    before = status(Phase.PROGRESSING, canary_weight=50, step_index=3, last_tick_time=T0)
    need = plan(spec, before, observation(AT_50), LATER)
    assert [h.name for h in need.webhooks] == ["confirm-promotion"]
    assert need.needs_analysis


def test_plan_in_waiting_promotion_asks_gate_and_due_tick() -> None:
    spec = make_spec(**hooks("confirm-promotion"))
    before = status(Phase.WAITING_PROMOTION, canary_weight=50, step_index=3, last_tick_time=T0)
    need = plan(spec, before, observation(AT_50), LATER)
    assert [h.name for h in need.webhooks] == ["confirm-promotion"]
    assert need.needs_analysis


@pytest.mark.parametrize(
    ("before", "obs", "hook_types", "expected"),
    [
        pytest.param(
            status(Phase.SUCCEEDED, revision="rev-a"),
            observation(),
            ("confirm-rollout",),
            ["confirm-rollout"],
            id="new revision asks confirm-rollout",
        ),
        pytest.param(
            status(Phase.SUCCEEDED, revision="rev-a"),
            observation(revision="rev-a"),
            ("confirm-rollout",),
            [],
            id="no new revision asks nothing",
        ),
        pytest.param(
            status(Phase.WAITING),
            observation(),
            ("confirm-rollout", "rollback"),
            ["rollback", "confirm-rollout"],
            id="waiting asks rollback then the gate",
        ),
        pytest.param(
            status(Phase.PROGRESSING),
            observation(),
            ("pre-rollout", "rollout"),
            ["pre-rollout"],
            id="weight 0 asks pre-rollout only",
        ),
        pytest.param(
            status(Phase.PROGRESSING),
            observation(target=NOT_READY),
            ("pre-rollout",),
            [],
            id="unready canary asks nothing",
        ),
        pytest.param(
            status(Phase.PROGRESSING),
            observation(deleting=True),
            ("rollback",),
            [],
            id="deletion asks nothing",
        ),
        pytest.param(
            status(Phase.PROMOTING),
            observation(primary_revision="rev-b"),
            ("rollback", "confirm-promotion"),
            [],
            id="promoting asks nothing",
        ),
    ],
)
def test_plan_webhooks(
    before: CanaryStatus, obs: Observation, hook_types: tuple[str, ...], expected: list[str]
) -> None:
    need = plan(make_spec(**hooks(*hook_types)), before, obs, LATER)
    assert [h.name for h in need.webhooks] == expected
    assert not need.metrics


def test_a_webhook_result_that_was_not_fetched_never_opens_a_gate() -> None:
    spec = make_spec(**hooks("confirm-rollout"))
    d = decide(spec, status(Phase.WAITING), observation(), LATER)
    assert d.status.phase is Phase.WAITING


def test_observed_generation_is_recorded() -> None:
    d = decide(
        make_spec(), status(Phase.SUCCEEDED, revision="rev-b"), observation(generation=7), LATER
    )
    assert d.status.observed_generation == 7


def test_allowed_transitions_cover_every_phase() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(Phase) | {None}
    assert ALLOWED_TRANSITIONS[Phase.TERMINATING] == frozenset()
