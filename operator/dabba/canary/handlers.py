"""kopf adapters for Canaries: one daemon per Canary, woken by what concerns it.

The daemon evaluates (in a worker thread) and sleeps until the state machine's requeue time
— the next tick, a readiness poll — or until poked: the Canary's spec or control annotations
changed, or its target or primary Deployment changed (a new revision starts at once, not at
the next poll). Status holds everything a run needs, so a restarted operator resumes it.

The watches on Deployments, on the Services and on the routing objects also keep the copies
an evaluation reads (``dabba.k8s.cache``): Deployments all (targets carry no label of ours),
the others only with the label ``dabba.io/canary``, selected by the API server.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import structlog

from dabba import telemetry
from dabba.canary import reconcile
from dabba.canary.naming import CANARY_LABEL
from dabba.canary.workloads import DEPLOYMENTS, SERVICES
from dabba.config import OperatorConfig
from dabba.deps import Deps, Stopping
from dabba.k8s import meta
from dabba.k8s.cache import ObjectCache, has_label, without_managed_fields
from dabba.metrics.prometheus import PrometheusProvider
from dabba.wakeups import Wakeups

log = structlog.get_logger("dabba.canary")

#: Shortest sleep between two evaluations of one Canary (a burst of pokes is one wake).
MIN_SLEEP = 0.2
#: After an unexpected error, look again after this long.
ERROR_RETRY = 5.0
#: The routing objects the routers write, (group, version, plural); their cache name is
#: ``plural.group`` (``routers._shared.CustomKind.resource``).
ROUTING_KINDS = (
    ("networking.istio.io", "v1", "virtualservices"),
    ("networking.istio.io", "v1", "destinationrules"),
    ("gateway.networking.k8s.io", "v1", "httproutes"),
)


def object_cache(settings: kopf.OperatorSettings) -> ObjectCache:
    """The cache the Canary controller reads through, and the watches that feed it.

    Called once at startup (``dabba.main``), before any watch starts. Services and routing
    objects are watched with the label selector ``dabba.io/canary`` (server-side: the
    operator never receives anyone else's); Deployments without one, as before.
    """
    cache = ObjectCache()
    cache.serve(DEPLOYMENTS, slim=without_managed_fields)
    settings.watching.label_selectors["", "v1", "services"] = CANARY_LABEL
    cache.serve(SERVICES, has_label(CANARY_LABEL))
    for group, _, plural in ROUTING_KINDS:
        settings.watching.label_selectors[group, plural] = CANARY_LABEL
        cache.serve(f"{plural}.{group}", has_label(CANARY_LABEL))
    return cache


def _feed(memo: kopf.Memo, resource: str, type_: str | None, body: kopf.Body) -> None:
    deps: Deps | None = memo.get("deps")
    cache = deps.clients.cache if deps is not None else None
    if cache is None:
        return
    if type_ == "DELETED":
        cache.deleted(resource, body)
    else:
        cache.put(resource, body)


class CanaryState:
    """Process-wide state of the Canary controller (in ``memo.canaries``)."""

    def __init__(self, config: OperatorConfig) -> None:
        self.wakeups = Wakeups()
        self.providers = reconcile.Providers(config.prometheus_url, PrometheusProvider)


@kopf.on.startup()
def canaries_startup(memo: kopf.Memo, **_: Any) -> None:
    # Created at startup, in the global memo: kopf hands each object a shallow copy of it,
    # so state created later inside one object's handler would be invisible to the others.
    memo.canaries = CanaryState(memo.config)


def _state(memo: kopf.Memo) -> CanaryState:
    state: CanaryState = memo.canaries
    return state


def _seen(body: kopf.Body) -> tuple[object, ...]:
    md = body.get("metadata", {})
    annotations = md.get("annotations") or {}
    controls = tuple(
        annotations.get(a)
        for a in (
            meta.CANARY_PROMOTE_ANNOTATION,
            meta.CANARY_ABORT_ANNOTATION,
            meta.CANARY_RETRY_ANNOTATION,
            meta.CANARY_PAUSE_ANNOTATION,
        )
    )
    return (md.get("generation"), *controls)


async def _until(stopped: kopf.DaemonStopped) -> None:
    await stopped.wait()


@kopf.daemon(meta.GROUP, meta.VERSION, meta.CANARY_PLURAL, cancellation_timeout=10.0)
async def canary(
    body: kopf.Body,
    name: str,
    namespace: str | None,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    **_: Any,
) -> None:
    """Drive one Canary for as long as it exists."""
    if namespace is None:
        return
    deps: Deps = memo.deps
    state = _state(memo)
    key = (namespace, name)
    waker = state.wakeups.register(key)

    def record(type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=message)

    stop: asyncio.Future[None] = asyncio.ensure_future(_until(stopped))
    try:
        while not stopped:
            waker.seen = _seen(body)
            try:
                outcome = await deps.run_until(
                    stop,
                    reconcile.evaluate,
                    deps.clients,
                    namespace,
                    name,
                    state.providers,
                    deps.clock.now,
                    record,
                )
            except Stopping:
                return
            except Exception:  # one bad Canary must not kill its daemon
                telemetry.reconcile_errors.labels("Canary").inc()
                log.exception("evaluation failed", kind="Canary", namespace=namespace, name=name)
                await waker.sleep(ERROR_RETRY, stop)
                continue
            if outcome.target:
                state.wakeups.depend(
                    key, (namespace, outcome.target), (namespace, f"{outcome.target}-primary")
                )
            delay = outcome.requeue_after if outcome.requeue_after is not None else 60.0
            await waker.sleep(max(delay, MIN_SLEEP), stop)
    finally:
        stop.cancel()
        state.wakeups.unregister(key)


@kopf.on.event(meta.GROUP, meta.VERSION, meta.CANARY_PLURAL)
async def canary_changed(
    body: kopf.Body, namespace: str | None, name: str, type: str, memo: kopf.Memo, **_: Any
) -> None:
    """Wake the daemon on spec or control-annotation changes (not on our status writes)."""
    if namespace is None or type == "DELETED":
        return
    waker = _state(memo).wakeups.get((namespace, name))
    if waker is not None and waker.seen != _seen(body):
        waker.event.set()


@kopf.on.event("apps", "v1", "deployments")
async def deployment_changed(
    namespace: str | None, name: str, type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """A target or primary Deployment changed: keep its copy, wake the Canaries that use it."""
    _feed(memo, DEPLOYMENTS, type, body)
    if namespace is not None:
        _state(memo).wakeups.poke_dependents((namespace, name))


# No client-side label filter on these: an object whose label was removed arrives as DELETED
# (the server-side selector no longer matches) still without the label, and must be dropped.
@kopf.on.event("", "v1", "services")
async def service_changed(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Keep the copy of a Service dabba manages (label-selected watch)."""
    _feed(memo, SERVICES, type, body)


@kopf.on.event(*ROUTING_KINDS[0])
async def virtual_service_changed(
    type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """Keep the copy of a VirtualService dabba manages (label-selected watch)."""
    _feed(memo, "virtualservices.networking.istio.io", type, body)


@kopf.on.event(*ROUTING_KINDS[1])
async def destination_rule_changed(
    type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """Keep the copy of a DestinationRule dabba manages (label-selected watch)."""
    _feed(memo, "destinationrules.networking.istio.io", type, body)


@kopf.on.event(*ROUTING_KINDS[2])
async def http_route_changed(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Keep the copy of an HTTPRoute dabba manages (label-selected watch)."""
    _feed(memo, "httproutes.gateway.networking.k8s.io", type, body)


# Not optional: the finalizer lets revertOnDeletion run before the object disappears.
@kopf.on.delete(meta.GROUP, meta.VERSION, meta.CANARY_PLURAL)
async def canary_deleted(
    namespace: str | None, name: str, memo: kopf.Memo, body: kopf.Body, **_: Any
) -> None:
    """Terminating: with ``revertOnDeletion`` give back the routing and the target's scale."""
    if namespace is None:
        return
    if not body.get("spec", {}).get("revertOnDeletion"):
        telemetry.forget_canary(namespace, name)
        return
    deps: Deps = memo.deps

    def record(type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=message)

    await deps.run(
        reconcile.evaluate,
        deps.clients,
        namespace,
        name,
        _state(memo).providers,
        deps.clock.now,
        record,
    )
    telemetry.forget_canary(namespace, name)
