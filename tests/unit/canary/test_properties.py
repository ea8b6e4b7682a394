"""Properties of the state machine over random runs: random specs, random readiness, router
drift, new revisions, manual requests, webhook answers and metric results, on a random clock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dabba.canary import weights
from dabba.canary.analysis import QueryResult
from dabba.canary.model import CanarySpec, CanaryStatus, MetricResult, Phase, Weights, truncate
from dabba.canary.state_machine import (
    ALLOWED_TRANSITIONS,
    Controls,
    CopyTemplateToPrimary,
    Decision,
    Observation,
    Plan,
    SetWeights,
    WebhookResult,
    decide,
    plan,
)
from tests.unit.canary.sim import T0, World, make_spec

PRECEDENCE = (
    MetricResult.FAILED,
    MetricResult.ERROR,
    MetricResult.INCONCLUSIVE,
    MetricResult.SUCCESSFUL,
)
HOOK_TYPES = ("confirm-rollout", "pre-rollout", "rollout", "confirm-promotion", "rollback")


@st.composite
def specs(draw: st.DrawFn) -> CanarySpec:
    analysis: dict[str, Any] = {
        "interval": f"{draw(st.integers(5, 30))}s",
        "checksPerStep": draw(st.integers(1, 3)),
        "threshold": draw(st.integers(1, 4)),
        "maxInconclusive": draw(st.integers(0, 4)),
        "minRequests": 10,
    }
    if draw(st.booleans()):
        analysis["stepWeights"] = sorted(draw(st.sets(st.integers(1, 100), min_size=1, max_size=4)))
    elif draw(st.booleans()):
        step = draw(st.integers(1, 60))
        analysis["stepWeight"] = step
        if draw(st.booleans()):
            analysis["maxWeight"] = draw(st.integers(step, 100))
    hooks = draw(st.sets(st.sampled_from(HOOK_TYPES), max_size=3))
    if draw(st.booleans()):
        hooks.add("confirm-promotion")
    analysis["webhooks"] = [{"name": t, "type": t, "url": "http://hook"} for t in sorted(hooks)]
    return make_spec(
        router=draw(st.sampled_from(["istio", "gatewayapi", "kubernetes"])),
        analysis=analysis,
        skipAnalysis=draw(st.sampled_from([False] * 9 + [True])),
        progressDeadlineSeconds=draw(st.integers(20, 120)),
    )


GOOD = {"canary_requests": 100.0, "canary_errors": 0.0, "canary_p99": 20.0}


def metric_answer(kind: str, queries: dict[str, str]) -> dict[str, QueryResult]:
    if kind == "error":
        return dict.fromkeys(queries, QueryResult.failed("connection refused"))
    values = dict(GOOD)
    if kind == "bad":
        values["canary_errors"] = 50.0
    if kind == "quiet":
        values["canary_requests"] = 2.0
    return {role: QueryResult.ok(values.get(role, 1.0)) for role in queries}


@dataclass
class Tracker:
    """What the properties need to remember across evaluations of one random run."""

    window: list[MetricResult] = field(default_factory=list)
    weight: int = 0
    run_start: dt.datetime | None = None


def judged(before: CanaryStatus, after: CanaryStatus, now: dt.datetime) -> MetricResult | None:
    """The result of the tick judged in this evaluation, if one was."""
    records = after.last_analysis
    if not records or records[0].time != truncate(now) or records == before.last_analysis:
        return None
    present = {r.result for r in records}
    return next(r for r in PRECEDENCE if r in present)


def check_decision(
    spec: CanarySpec,
    before: CanaryStatus,
    obs: Observation,
    now: dt.datetime,
    d: Decision,
    track: Tracker,
) -> None:
    after = d.status
    top = weights.max_weight(spec)
    sets = [a for a in d.actions if isinstance(a, SetWeights)]
    # Weights never exceed maxWeight (the last step of the schedule).
    assert all(a.canary <= top for a in sets), (sets, top)
    assert after.canary_weight in (0, *weights.schedule(spec))
    # Phase changes only along allowed edges, each with an Event.
    if after.phase != before.phase:
        assert after.phase in ALLOWED_TRANSITIONS[before.phase], (before.phase, after.phase)
        assert after.phase is not None
        assert after.phase.value in [e.reason for e in d.events]
    # The status survives the API server.
    assert CanaryStatus.from_k8s(after.to_k8s()) == after
    result = judged(before, after, now)
    manual = after.handled.promote != before.handled.promote
    if after.run_start_time != track.run_start:
        track.window, track.run_start = [], after.run_start_time
    if result is not None:
        track.window.append(result)
        if result is not MetricResult.SUCCESSFUL:
            # Weights never go up after a failed, errored or inconclusive tick.
            assert all(a.canary <= before.canary_weight for a in sets), (result, sets)
            assert after.canary_weight <= before.canary_weight
            assert not (
                after.phase is Phase.PROMOTING
                and before.phase is not Phase.PROMOTING
                and not manual
            )
    promoted = after.phase is Phase.PROMOTING and before.phase is not Phase.PROMOTING
    if promoted and not manual and not spec.skip_analysis:
        # Never promoted with a failed or errored tick in its last window.
        needed = spec.analysis.checks_per_step
        assert track.window[-needed:] == [MetricResult.SUCCESSFUL] * needed, track.window
    if after.phase is Phase.FAILED:
        assert all(a.canary == 0 for a in sets)
    if after.canary_weight != track.weight:
        track.window, track.weight = [], after.canary_weight


def answers(
    data: st.DataObject, need: Plan
) -> tuple[dict[str, dict[str, QueryResult]] | None, dict[str, WebhookResult]]:
    # Gates open (and rollback hooks stay quiet) more often than not.
    hooks = {
        h.name: WebhookResult(
            (h.type.value != "rollback") != (data.draw(st.integers(0, 3), label=h.name) == 3)
        )
        for h in need.webhooks
    }
    if not need.metrics or data.draw(st.integers(0, 19), label="queries skipped") == 19:
        return None, hooks
    kinds = st.sampled_from(["good"] * 8 + ["bad", "quiet", "error"])  # "good" is the simplest
    return {
        m.metric.name: metric_answer(data.draw(kinds, label=m.metric.name), dict(m.queries))
        for m in need.metrics
    }, hooks


def passing(
    spec: CanarySpec, status: CanaryStatus, obs: Observation, now: dt.datetime
) -> Observation:
    """``obs`` answered with every metric good, every gate open and no rollback asked."""
    need = plan(spec, status, obs, now)
    metrics = {m.metric.name: metric_answer("good", dict(m.queries)) for m in need.metrics}
    hooks = {h.name: WebhookResult(h.type.value != "rollback") for h in need.webhooks}
    return obs.with_results(metrics or None, hooks)


def perturb(data: st.DataObject, world: World, now: dt.datetime, revision: int) -> int:
    """Random things users and the cluster do between evaluations (rarely, so runs finish).

    Small draws mean "nothing happens": hypothesis favours them, and shrinks towards them.
    """
    roll = 399 - data.draw(st.integers(0, 399), label="event")
    paused = world.controls.paused
    if roll < 10:
        revision += 1
        world.deploy(f"rev-{revision}", now)
    elif roll < 18:
        world.weights = Weights.for_canary(data.draw(st.integers(0, 100), label="drift"))
    elif roll < 22:
        world.controls = Controls(abort=f"a{now.timestamp()}", paused=paused)
    elif roll < 26:
        world.controls = Controls(promote=f"p{now.timestamp()}", paused=paused)
    elif roll < 34:
        world.controls = Controls(retry=f"r{now.timestamp()}", paused=paused)
    elif roll < 38:
        world.controls = Controls(paused=not paused)
    elif roll == 38:
        world.deleting = True
    world.target_can_be_ready = data.draw(st.integers(0, 19), label="canary sick") < 19
    world.primary_can_be_ready = data.draw(st.integers(0, 39), label="primary sick") < 39
    world.router_accepts = data.draw(st.integers(0, 19), label="router lags") < 19
    return revision


@settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), data=st.data())
def test_random_runs_keep_every_invariant(spec: CanarySpec, data: st.DataObject) -> None:
    world = World(target_revision="rev-0")
    world.snapshot(T0)
    status, now, revision, track = CanaryStatus(), T0, 0, Tracker()
    for _ in range(60):
        revision = perturb(data, world, now, revision)
        bare = world.observe(now)
        need = plan(spec, status, bare, now)
        assert need == plan(spec, status, bare, now)
        metrics, hooks = answers(data, need)
        obs = bare.with_results(metrics, hooks)
        d = decide(spec, status, obs, now)
        # Deterministic: the same inputs give the same decision.
        assert d == decide(spec, status, obs, now)
        check_decision(spec, status, obs, now, d, track)
        world.apply(d, now)
        # Idempotent: deciding again at the same instant, after the actions ran and with every
        # check passing, repeats no step, counts no check twice and promotes nothing twice.
        again = decide(spec, d.status, passing(spec, d.status, world.observe(now), now), now)
        if d.status.last_tick_time == truncate(now):  # this instant's tick was judged
            assert again.status.step_index <= d.status.step_index
            assert again.status.last_analysis == d.status.last_analysis
        assert again.status.failed_checks <= d.status.failed_checks
        copies = [a for a in again.actions if isinstance(a, CopyTemplateToPrimary)]
        assert all(a.revision != world.primary_revision for a in copies)
        status = CanaryStatus.from_k8s(d.status.to_k8s())
        now += dt.timedelta(seconds=5 + data.draw(st.integers(0, 25), label="seconds later"))


@settings(max_examples=40, deadline=None)
@given(spec=specs(), data=st.data())
def test_inconclusive_ticks_never_advance(spec: CanarySpec, data: st.DataObject) -> None:
    steps = weights.schedule(spec)
    index = data.draw(st.integers(0, len(steps) - 1))
    before = CanaryStatus(
        phase=data.draw(st.sampled_from([Phase.PROGRESSING, Phase.WAITING_PROMOTION])),
        canary_weight=steps[index],
        step_index=index,
        checks_at_weight=data.draw(st.integers(0, 5)),
        revision="rev-b",
        last_promoted_revision="rev-a",
        last_transition_time=T0,
        last_tick_time=T0,
    )
    now = T0 + spec.analysis.interval
    obs = Observation(
        revision="rev-b",
        target=World().target_readiness(now),
        primary=World(primary_revision="rev-a").primary_readiness(now),
        weights=Weights.for_canary(before.canary_weight),
        primary_revision="rev-a",
    )
    need = plan(spec, before, obs, now)
    quiet = {m.metric.name: metric_answer("quiet", dict(m.queries)) for m in need.metrics}
    hooks = {h.name: WebhookResult(h.type.value != "rollback") for h in need.webhooks}
    d = decide(spec, before, obs.with_results(quiet, hooks), now)
    if spec.skip_analysis or not spec.analysis.metrics:
        return
    assert d.status.canary_weight <= before.canary_weight
    assert d.status.phase in (before.phase, Phase.FAILED)
    assert not any(isinstance(a, SetWeights) and a.canary > before.canary_weight for a in d.actions)
