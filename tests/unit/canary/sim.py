"""Builders and a simulated cluster for driving the Canary state machine in unit tests.

``World`` plays Kubernetes, the router and Prometheus just well enough: it applies the actions a
``Decision`` carries, reports readiness and live weights, and answers a ``Plan``'s queries from
the declared behaviour of each revision (error rate, p99, requests per second), in proportion
to the weights, the way the e2e traffic simulator does. ``Driver`` loops plan → answer → decide
→ apply → persist on a ``FrozenClock``, round-tripping the status through its Kubernetes form
so that every evaluation starts from what a restarted operator would read.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dabba.canary.analysis import QueryResult, Role
from dabba.canary.model import CanarySpec, CanaryStatus, Phase, Weights
from dabba.canary.state_machine import (
    Controls,
    CopyTemplateToPrimary,
    Decision,
    EmitEvent,
    EnsurePrimary,
    Observation,
    Plan,
    Readiness,
    ScaleTarget,
    SetWeights,
    WebhookResult,
    decide,
    plan,
)
from dabba.clock import FrozenClock

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
SECOND = dt.timedelta(seconds=1)


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``extra`` into a copy of ``base`` (``None`` deletes a key)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


BASE_SPEC: dict[str, Any] = {
    "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
    "router": "istio",
    "service": {"port": 9898},
    "analysis": {
        "interval": "10s",
        "threshold": 3,
        "metrics": [
            {"name": "request-success-rate", "thresholdRange": {"min": 99}},
            {"name": "request-duration", "thresholdRange": {"max": 500}},
        ],
    },
    "progressDeadlineSeconds": 60,
}


def spec_dict(**extra: Any) -> dict[str, Any]:
    """The base spec dict with ``extra`` deep-merged in."""
    return merge(BASE_SPEC, extra)


def make_spec(**extra: Any) -> CanarySpec:
    """A ``CanarySpec`` for ``podinfo`` in ``test`` with ``extra`` deep-merged in."""
    return CanarySpec.from_k8s(spec_dict(**extra), name="podinfo", namespace="test")


@dataclass
class Behaviour:
    """How a revision behaves under traffic (the simulator's pod annotations)."""

    error_rate: float = 0.0
    latency_ms: float = 20.0


@dataclass(frozen=True)
class Snapshot:
    """What serves traffic from ``since`` on."""

    since: dt.datetime
    weights: Weights
    target_replicas: int
    scaled_at: dt.datetime
    target_revision: str
    primary_revision: str | None


@dataclass
class World:
    """A fake cluster: target, primary, router and Prometheus.

    Queries are answered by integrating, second by second over the query's window, the
    traffic that each side served given the weights and readiness at that second, as
    ``increase()`` over scraped counters would.
    """

    target_revision: str = "rev-a"
    primary_revision: str | None = None
    target_replicas: int = 2
    canary_replicas: int = 2
    weights: Weights | None = None
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    rps: float = 50.0
    ready_delay: dt.timedelta = dt.timedelta(seconds=3)
    primary_ready_delay: dt.timedelta = dt.timedelta(seconds=3)
    target_can_be_ready: bool = True
    primary_can_be_ready: bool = True
    prometheus_up: bool = True
    hooks: dict[str, bool] = field(default_factory=dict)
    controls: Controls = field(default_factory=Controls)
    deleting: bool = False
    router_accepts: bool = True
    scaled_at: dt.datetime = T0 - dt.timedelta(hours=1)
    primary_changed_at: dt.datetime = T0 - dt.timedelta(hours=1)
    copies: list[str] = field(default_factory=list)
    weight_history: list[Weights] = field(default_factory=list)
    timeline: list[Snapshot] = field(default_factory=list)

    def deploy(self, revision: str, now: dt.datetime, **behaviour: float) -> None:
        """The user changes the target's pod template."""
        self.behaviours[revision] = Behaviour(**behaviour)
        self.target_revision = revision
        if self.target_replicas > 0:
            self.scaled_at = now  # the Deployment rolls its pods
        self.snapshot(now)

    def snapshot(self, now: dt.datetime) -> None:
        self.timeline.append(
            Snapshot(
                since=now,
                weights=self.weights or Weights(100, 0),
                target_replicas=self.target_replicas,
                scaled_at=self.scaled_at,
                target_revision=self.target_revision,
                primary_revision=self.primary_revision,
            )
        )

    def behaviour(self, revision: str | None) -> Behaviour:
        return self.behaviours.get(revision or "", Behaviour())

    def target_readiness(self, now: dt.datetime) -> Readiness:
        return self._target_readiness(self.target_replicas, self.scaled_at, now)

    def _target_readiness(
        self, replicas: int, scaled_at: dt.datetime, now: dt.datetime
    ) -> Readiness:
        ready = replicas > 0 and self.target_can_be_ready and now >= scaled_at + self.ready_delay
        return Readiness(
            ready=ready,
            ready_replicas=replicas if ready else 0,
            desired_replicas=replicas,
            not_ready_since=None if ready else scaled_at,
        )

    def primary_readiness(self, now: dt.datetime) -> Readiness:
        exists = self.primary_revision is not None
        ready = (
            exists
            and self.primary_can_be_ready
            and now >= self.primary_changed_at + self.primary_ready_delay
        )
        return Readiness(
            ready=ready,
            ready_replicas=2 if ready else 0,
            desired_replicas=2,
            not_ready_since=None if ready else self.primary_changed_at,
        )

    def observe(self, now: dt.datetime) -> Observation:
        return Observation(
            revision=self.target_revision,
            target=self.target_readiness(now),
            primary=self.primary_readiness(now),
            weights=self.weights if self.router_accepts else None,
            primary_revision=self.primary_revision,
            canary_replicas=self.canary_replicas,
            controls=self.controls,
            metrics_online=self.prometheus_up,
            deleting=self.deleting,
        )

    def answer(
        self, need: Plan, now: dt.datetime
    ) -> tuple[dict[str, dict[str, QueryResult]] | None, dict[str, WebhookResult]]:
        hooks = {
            h.name: WebhookResult(ok=self.hooks.get(h.name, True), message="simulated")
            for h in need.webhooks
        }
        if not need.metrics:
            return None, hooks
        if not self.prometheus_up:
            down = QueryResult.failed("connection refused")
            return {m.metric.name: dict.fromkeys(m.queries, down) for m in need.metrics}, hooks
        results = {}
        for planned in need.metrics:
            window = planned.metric.interval or dt.timedelta(seconds=10)
            totals = self._integrate(now - window, now)
            results[planned.metric.name] = {
                role: self._result(role, totals) for role in planned.queries
            }
        return results, hooks

    def _state_at(self, when: dt.datetime) -> Snapshot | None:
        current = None
        for snap in self.timeline:
            if snap.since <= when:
                current = snap
        return current

    def _integrate(self, start: dt.datetime, end: dt.datetime) -> dict[str, float]:
        totals = dict.fromkeys(("cn", "ce", "pn", "pe", "cl", "pl"), 0.0)
        t = start
        while t < end:
            snap = self._state_at(t)
            t += SECOND
            if snap is None:
                continue
            ready = self._target_readiness(snap.target_replicas, snap.scaled_at, t).ready
            share = snap.weights.canary / 100 if ready else 0.0
            canary, primary = (
                self.behaviour(snap.target_revision),
                self.behaviour(snap.primary_revision),
            )
            cn, pn = self.rps * share, self.rps * (1 - share)
            totals["cn"] += cn
            totals["ce"] += cn * canary.error_rate
            totals["pn"] += pn
            totals["pe"] += pn * primary.error_rate
            totals["cl"] = canary.latency_ms if cn else totals["cl"]
            totals["pl"] = primary.latency_ms if pn else totals["pl"]
        return totals

    @staticmethod
    def _result(role: str, totals: dict[str, float]) -> QueryResult:
        value = {
            Role.CANARY_REQUESTS: totals["cn"],
            Role.CANARY_ERRORS: totals["ce"] if totals["ce"] else None,
            Role.PRIMARY_REQUESTS: totals["pn"],
            Role.PRIMARY_ERRORS: totals["pe"] if totals["pe"] else None,
            Role.CANARY_P99: totals["cl"] if totals["cn"] else float("nan"),
            Role.PRIMARY_P99: totals["pl"] if totals["pn"] else float("nan"),
            Role.VALUE: 1.0,
        }[Role(role)]
        return QueryResult.no_data() if value is None else QueryResult.ok(value)

    def apply(self, decision: Decision, now: dt.datetime) -> None:
        for action in decision.actions:
            if isinstance(action, SetWeights):
                self.weights = Weights(action.primary, action.canary)
                self.weight_history.append(self.weights)
            elif isinstance(action, ScaleTarget):
                if action.replicas != self.target_replicas:
                    self.scaled_at = now
                self.target_replicas = action.replicas
            elif isinstance(action, EnsurePrimary):
                if self.primary_revision is None:
                    self.primary_revision = self.target_revision
                    self.primary_changed_at = now
            elif (
                isinstance(action, CopyTemplateToPrimary)
                and action.revision == self.target_revision
            ):
                # As the executor must: copy only if the target still has that revision.
                if self.primary_revision != action.revision:
                    self.primary_changed_at = now
                self.primary_revision = action.revision
                self.copies.append(action.revision)
        self.snapshot(now)


@dataclass
class Evaluation:
    """One loop iteration, kept for assertions."""

    time: dt.datetime
    before: CanaryStatus
    observation: Observation
    plan: Plan
    decision: Decision
    persisted: bool


@dataclass
class Driver:
    """Runs the handler loop against a ``World`` on a frozen clock."""

    spec: CanarySpec
    world: World
    clock: FrozenClock = field(default_factory=lambda: FrozenClock(T0))
    status: CanaryStatus = field(default_factory=CanaryStatus)
    log: list[Evaluation] = field(default_factory=list)
    crash_at: set[int] = field(default_factory=set)

    def step(self) -> Evaluation:
        now = self.clock.now()
        before = self.status
        bare = self.world.observe(now)
        need = plan(self.spec, self.status, bare, now)
        metrics, hooks = self.world.answer(need, now)
        obs = bare.with_results(metrics, hooks)
        decision = decide(self.spec, self.status, obs, now)
        self.world.apply(decision, now)
        index = len(self.log)
        persisted = index not in self.crash_at
        if persisted:
            # Through the Kubernetes form, as a restarted operator would read it back.
            self.status = CanaryStatus.from_k8s(decision.status.to_k8s())
        evaluation = Evaluation(now, before, obs, need, decision, persisted)
        self.log.append(evaluation)
        wait = decision.requeue_after or 5.0
        self.clock.advance(dt.timedelta(seconds=wait))
        return evaluation

    def run_until(
        self, done: Callable[[CanaryStatus], bool], *, max_steps: int = 500
    ) -> CanaryStatus:
        for _ in range(max_steps):
            self.step()
            if done(self.status):
                return self.status
        raise AssertionError(f"not done after {max_steps} evaluations: {self.status}")

    def run_to(self, *phases: Phase, max_steps: int = 500) -> CanaryStatus:
        return self.run_until(lambda s: s.phase in phases, max_steps=max_steps)

    def settle(self) -> CanaryStatus:
        """From a new Canary to Initialized."""
        return self.run_to(Phase.INITIALIZED)

    @property
    def events(self) -> list[EmitEvent]:
        return [e for ev in self.log for e in ev.decision.events]

    def phases(self) -> list[Phase | None]:
        seen: list[Phase | None] = []
        for ev in self.log:
            phase = ev.decision.status.phase
            if not seen or seen[-1] != phase:
                seen.append(phase)
        return seen
