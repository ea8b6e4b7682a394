"""kopf adapters for MeshCertificates: one daemon per certificate, woken by what concerns it.

The daemon reconciles (in a worker thread), then sleeps until the next due time — renewal,
overdue, expiry, backoff, budget, a rollover's propagation delay — or until poked: the
MeshCertificate's spec or renew annotation changed, its Secret was edited or deleted, its
issuer's Secret changed, any of dabba's Secrets changed while it is a CA in a rollover (a leaf
took the new root or was re-issued), or a Namespace changed while it publishes a trust bundle.
Secrets are watched only with dabba's label (SPEC §3: no watch on every Secret in the
cluster); Namespaces are watched whole (names and labels only, cheap).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import kopf
import structlog

from dabba import telemetry
from dabba.certs import bundles, reconcile, store
from dabba.certs.model import ANNOTATION_RENEW_REQUESTED_AT, MeshCertificateSpec
from dabba.deps import Deps, Stopping
from dabba.errors import SpecError
from dabba.k8s import meta
from dabba.wakeups import Wakeups

log = structlog.get_logger("dabba.certs")

#: Shortest sleep between two reconciles of one certificate (a burst of pokes is one wake).
MIN_SLEEP = 0.2
#: After an unexpected error, look again after this long.
ERROR_RETRY = 10.0
#: A CA in a rollover is poked by every leaf write; reconcile it at most this often.
ROLLING_MIN_INTERVAL = 1.0


class CertState:
    """Process-wide state of the certificate controller (in ``memo.certs``)."""

    def __init__(self) -> None:
        self.wakeups = Wakeups()
        self.budgets = reconcile.Budgets()
        self.bundles = bundles.Cache()
        #: CA MeshCertificates with a rollover running.
        self.rolling: set[tuple[str, str]] = set()
        #: CA MeshCertificates that publish a trust bundle.
        self.publishers: set[tuple[str, str]] = set()


@kopf.on.startup()
def certs_startup(memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> None:
    memo.certs = CertState()
    # Server-side filter: only Secrets dabba wrote are streamed to us.
    settings.watching.label_selectors["", "v1", "secrets"] = store.SECRET_LABEL


def _state(memo: kopf.Memo) -> CertState:
    state: CertState = memo.certs
    return state


@kopf.daemon(meta.GROUP, meta.VERSION, meta.MESHCERT_PLURAL, cancellation_timeout=5.0)
async def certificate(
    body: kopf.Body,
    name: str,
    namespace: str | None,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    **_: Any,
) -> None:
    """Keep one certificate issued, renewed and reported, for as long as it exists."""
    if namespace is None:  # the CRD is namespaced; kopf's signature allows cluster scope
        return
    deps: Deps = memo.deps
    state = _state(memo)
    key = (namespace, name)
    waker = state.wakeups.register(key)

    def record(type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=message)

    # kopf raises the stopped flag first and cancels only later: leaving on the flag means
    # a clean exit on shutdown and deletion, never in the middle of a write.
    stop: asyncio.Future[None] = asyncio.ensure_future(_until(stopped))
    try:
        while not stopped:
            waker.seen = _seen(dict(body))
            try:
                outcome = await deps.run_until(
                    stop,
                    reconcile.reconcile,
                    deps.clients,
                    namespace,
                    name,
                    state.budgets,
                    record,
                    deps.clock.now,
                    # Set from the worker thread right after the write, before the watch
                    # event of that write can arrive: the echo must not wake us again.
                    functools.partial(setattr, waker, "written_resource_version"),
                    scope=None if deps.config.clusterwide else deps.config.namespaces,
                    cache=state.bundles,
                )
            except Stopping:
                return
            except Exception:  # one bad object must not kill its daemon
                telemetry.reconcile_errors.labels("MeshCertificate").inc()
                log.exception(
                    "reconcile failed", kind="MeshCertificate", namespace=namespace, name=name
                )
                await waker.sleep(ERROR_RETRY, stop)
                continue
            state.wakeups.depend(key, *([outcome.issuer_secret] if outcome.issuer_secret else []))
            _mark(state.rolling, key, outcome.rolling)
            _mark(state.publishers, key, outcome.publishes)
            delay = (
                (outcome.next_wake - deps.clock.now()).total_seconds()
                if outcome.next_wake
                else reconcile.RESYNC.total_seconds()
            )
            if outcome.rolling:
                # Pokes that arrive meanwhile stay set: the sleep below returns at once.
                await asyncio.sleep(ROLLING_MIN_INTERVAL)
                delay -= ROLLING_MIN_INTERVAL
            await waker.sleep(max(delay, MIN_SLEEP), stop)
    finally:
        stop.cancel()
        state.wakeups.unregister(key)
        state.rolling.discard(key)
        state.publishers.discard(key)


def _mark(keys: set[tuple[str, str]], key: tuple[str, str], present: bool) -> None:
    if present:
        keys.add(key)
    else:
        keys.discard(key)


async def _until(stopped: kopf.DaemonStopped) -> None:
    await stopped.wait()


def _seen(body: dict[str, Any]) -> tuple[object, ...]:
    md = body.get("metadata", {})
    return (md.get("generation"), (md.get("annotations") or {}).get(ANNOTATION_RENEW_REQUESTED_AT))


@kopf.on.event(meta.GROUP, meta.VERSION, meta.MESHCERT_PLURAL)
async def certificate_changed(
    body: kopf.Body, name: str, namespace: str | None, type: str, memo: kopf.Memo, **_: Any
) -> None:
    """Wake the daemon on spec or renew-annotation changes (not on our own status writes)."""
    if namespace is None:
        return
    if type == "DELETED":
        telemetry.forget_certificate(namespace, name)
        await _withdraw_bundle(body, namespace, name, memo)
        return
    waker = _state(memo).wakeups.get((namespace, name))
    if waker is not None and waker.seen != _seen(dict(body)):
        waker.event.set()


@kopf.on.event("", "v1", "secrets", labels={store.SECRET_LABEL: kopf.PRESENT})
async def secret_changed(
    body: kopf.Body, name: str, namespace: str | None, type: str, memo: kopf.Memo, **_: Any
) -> None:
    """A Secret dabba wrote changed: wake its certificate (unless it is our own write's
    echo) and every certificate that this Secret signs for."""
    if namespace is None:
        return
    state = _state(memo)
    owner = body.get("metadata", {}).get("labels", {}).get(store.SECRET_LABEL)
    rv = body.get("metadata", {}).get("resourceVersion")
    waker = state.wakeups.get((namespace, owner)) if owner else None
    if waker is not None and (type == "DELETED" or rv != waker.written_resource_version):
        waker.event.set()
    state.wakeups.poke_dependents((namespace, name))
    for ca in list(state.rolling):
        if ca != (namespace, owner):  # its own Secret is handled above (echo or not)
            state.wakeups.poke(ca)


@kopf.on.event("", "v1", "namespaces")
async def namespace_changed(memo: kopf.Memo, **_: Any) -> None:
    """A Namespace appeared, changed labels or is going away: trust bundles may need it."""
    state = _state(memo)
    for ca in list(state.publishers):
        state.wakeups.poke(ca)


async def _withdraw_bundle(body: kopf.Body, namespace: str, name: str, memo: kopf.Memo) -> None:
    """A deleted CA takes its trust-bundle ConfigMaps with it (they cannot be owned across
    namespaces, so garbage collection does not)."""
    try:
        spec = MeshCertificateSpec.from_k8s(dict(body.get("spec") or {}), namespace=namespace)
    except SpecError:
        return
    state = _state(memo)
    state.publishers.discard((namespace, name))
    state.rolling.discard((namespace, name))
    if spec.trust_bundle is None:
        return
    deps: Deps = memo.deps
    try:
        await deps.run(
            bundles.withdraw,
            deps.clients,
            state.bundles,
            (namespace, name),
            spec.trust_bundle.config_map_name,
            None if deps.config.clusterwide else deps.config.namespaces,
        )
    except Exception:  # best effort: the ConfigMaps carry a label to find them by hand
        log.exception("removing the trust bundle failed", namespace=namespace, name=name)
