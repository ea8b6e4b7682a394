"""One Canary evaluation: observe → plan → answer → decide → execute → status (last). I/O.

Runs in a worker thread. The decision is pure and derived from (spec, status, observation,
now) only, so a crash anywhere re-derives the same actions on the next evaluation; status
is written after every action succeeded, and only when it changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from dabba import telemetry
from dabba.canary import execute as execute_mod
from dabba.canary import observe as observe_mod
from dabba.canary.model import (
    CanarySpec,
    CanaryStatus,
    ConditionType,
    Phase,
    set_condition,
)
from dabba.canary.routers import router_for
from dabba.canary.state_machine import decide, is_due, plan
from dabba.errors import SpecError
from dabba.k8s import meta, objects
from dabba.k8s.client import Clients
from dabba.metrics import MetricsProvider

log = structlog.get_logger("dabba.canary")

#: How soon to look again at a Canary that cannot run (bad spec waits for an edit instead).
BLOCKED_RETRY = 30.0
#: Never sleep longer than this between evaluations (re-hashes referenced config, repairs).
MAX_SLEEP = 60.0
#: Wake this long after a tick is due: a timer that fires a hair early would find it not yet
#: due and wait the state machine's minimum requeue (a second) instead.
DUE_MARGIN = 0.02

Recorder = Callable[[str, str, str], None]


@dataclasses.dataclass(frozen=True)
class Outcome:
    requeue_after: float | None
    #: The target Deployment's name, so its changes can wake this Canary.
    target: str | None


class Providers:
    """One MetricsProvider per Prometheus URL (a Canary may override the default)."""

    def __init__(self, default_url: str | None, factory: Callable[[str], MetricsProvider]) -> None:
        self._default, self._factory = default_url, factory
        self._lock = threading.Lock()
        self._by_url: dict[str, MetricsProvider] = {}

    def for_spec(self, spec: CanarySpec) -> MetricsProvider | None:
        url = spec.metrics_server or self._default
        if not url:
            return None
        with self._lock:
            if url not in self._by_url:
                self._by_url[url] = self._factory(url)
            return self._by_url[url]


class _NoMetrics:
    """Stands in when no Prometheus is configured: every query is an Error saying so."""

    def query(self, promql: str) -> Any:
        from dabba.metrics import QueryResult  # noqa: PLC0415

        del promql
        return QueryResult.failed(
            "no Prometheus configured: set spec.metricsServer or run dabba with --prometheus-url"
        )

    def is_online(self) -> bool:
        return True


def _blocked(
    k: Clients,
    body: Mapping[str, Any],
    status: CanaryStatus,
    reason: str,
    message: str,
    now: dt.datetime,
    record: Recorder,
) -> None:
    md = body["metadata"]
    new = status.evolve(
        conditions=set_condition(
            status.conditions,
            type_=ConditionType.READY,
            status="False",
            reason=reason,
            message=message,
            now=now,
        ),
        observed_generation=md.get("generation"),
    )
    if new.to_k8s() != status.to_k8s():
        objects.patch_status(k, meta.CANARY_PLURAL, md["namespace"], md["name"], new.to_k8s())
        record("Warning", reason, message)
        log.warning(
            "canary blocked",
            kind="Canary",
            namespace=md["namespace"],
            name=md["name"],
            reason=reason,
            message=message,
        )


def evaluate(
    k: Clients,
    namespace: str,
    name: str,
    providers: Providers,
    clock: Callable[[], dt.datetime],
    record: Recorder,
) -> Outcome:
    """Evaluate one Canary now. Reads the object fresh (kopf's body may lag our writes)."""
    body = objects.get_custom(k, meta.CANARY_PLURAL, namespace, name)
    if body is None:
        return Outcome(None, None)
    status = CanaryStatus.from_k8s(body.get("status"))
    now = clock()
    try:
        spec = CanarySpec.from_k8s(body.get("spec") or {}, name=name, namespace=namespace)
    except SpecError as exc:
        _blocked(k, body, status, "InvalidSpec", str(exc), now, record)
        return Outcome(None, None)

    router = router_for(spec, k)
    try:
        world = observe_mod.observe(k, router, spec, body)
    except observe_mod.TargetMissingError as exc:
        _blocked(k, body, status, "TargetNotFound", str(exc), now, record)
        return Outcome(BLOCKED_RETRY, spec.target.name)
    except SpecError as exc:  # e.g. the routing object or primary belongs to another Canary
        _blocked(k, body, status, "InvalidSpec", str(exc), now, record)
        return Outcome(BLOCKED_RETRY, spec.target.name)

    due_at = status.last_tick_time + spec.analysis.interval if status.last_tick_time else None
    the_plan = plan(spec, status, world.observation, now)
    provider = providers.for_spec(spec) or _NoMetrics()
    obs = observe_mod.answer(the_plan, world.observation, spec, status, provider)
    if the_plan.analysis_due and due_at is not None:
        telemetry.canary_tick_lateness.observe(max((now - due_at).total_seconds(), 0.0))
    now = clock()
    decision = decide(spec, status, obs, now)

    execute_mod.execute(k, router, spec, decision, body, world.target, obs.revision, record)
    new = decision.status
    if new.to_k8s() != status.to_k8s():
        objects.patch_status(k, meta.CANARY_PLURAL, namespace, name, new.to_k8s())
    _observe(spec, status, new, decision.reason, obs.revision)
    requeue = decision.requeue_after
    if requeue is None and not is_due(spec, new, now):
        requeue = MAX_SLEEP
    return Outcome(_sleep(spec, status, new, requeue, now, clock()), spec.target.name)


def _sleep(
    spec: CanarySpec,
    old: CanaryStatus,
    new: CanaryStatus,
    requeue: float | None,
    decided: dt.datetime,
    done: dt.datetime,
) -> float:
    """How long the daemon sleeps: the decision's requeue counted from when it was decided.

    Why: the daemon starts sleeping only after the actions and the status write (tenths of a
    second, seconds on a loaded API server), and a tick stores ``lastTickTime`` truncated to
    the second; sleeping a full interval from the end of the evaluation made every tick start
    up to a second plus the evaluation's duration late. After a tick, wake when the next one
    is due (``lastTickTime + interval``, a little after, so ``is_due`` holds).
    """
    if requeue is None:
        return MAX_SLEEP
    sleep = min(requeue, MAX_SLEEP) - max((done - decided).total_seconds(), 0.0)
    if new.last_tick_time is not None and new.last_tick_time != old.last_tick_time:
        due = new.last_tick_time + spec.analysis.interval - done
        sleep = min(sleep, due.total_seconds() + DUE_MARGIN)
    return max(sleep, 0.0)


def _observe(
    spec: CanarySpec, old: CanaryStatus, new: CanaryStatus, reason: str, revision: str
) -> None:
    labels = (spec.namespace, spec.name)
    telemetry.canary_weight.labels(*labels).set(new.canary_weight)
    for phase in Phase:
        telemetry.canary_phase.labels(*labels, str(phase)).set(1 if new.phase is phase else 0)
    if new.last_analysis != old.last_analysis:
        for record in new.last_analysis:
            telemetry.canary_analysis.labels(*labels, record.metric, str(record.result)).inc()
            if record.value is not None:
                telemetry.canary_metric_value.labels(*labels, record.metric).set(record.value)
    if (
        new.phase != old.phase
        and new.phase in (Phase.SUCCEEDED, Phase.FAILED)
        and new.run_start_time is not None
        and new.last_transition_time is not None
    ):
        telemetry.canary_run_seconds.labels(str(new.phase)).observe(
            (new.last_transition_time - new.run_start_time).total_seconds()
        )
    if new.phase != old.phase or new.canary_weight != old.canary_weight:
        log.info(
            "canary progressed",
            kind="Canary",
            namespace=spec.namespace,
            name=spec.name,
            revision=revision,
            phase=str(new.phase),
            weight=new.canary_weight,
            decision=reason,
            failed_checks=new.failed_checks,
        )
