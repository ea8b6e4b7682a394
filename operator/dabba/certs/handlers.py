"""kopf adapters for MeshCertificates: one daemon per certificate, woken by what concerns it.

The daemon reconciles (in a worker thread), then sleeps until the next due time — renewal,
overdue, expiry, backoff, budget — or until poked: the MeshCertificate's spec or renew
annotation changed, its Secret was edited or deleted, or its issuer's Secret changed. Secrets
are watched only with dabba's label (SPEC §3: no watch on every Secret in the cluster).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import kopf
import structlog

from dabba import telemetry
from dabba.certs import reconcile, store
from dabba.certs.model import ANNOTATION_RENEW_REQUESTED_AT
from dabba.deps import Deps, Stopping
from dabba.k8s import meta
from dabba.wakeups import Wakeups

log = structlog.get_logger("dabba.certs")

#: Shortest sleep between two reconciles of one certificate (a burst of pokes is one wake).
MIN_SLEEP = 0.2
#: After an unexpected error, look again after this long.
ERROR_RETRY = 10.0


class CertState:
    """Process-wide state of the certificate controller (in ``memo.certs``)."""

    def __init__(self) -> None:
        self.wakeups = Wakeups()
        self.budgets = reconcile.Budgets()


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
            delay = (
                (outcome.next_wake - deps.clock.now()).total_seconds()
                if outcome.next_wake
                else reconcile.RESYNC.total_seconds()
            )
            await waker.sleep(max(delay, MIN_SLEEP), stop)
    finally:
        stop.cancel()
        state.wakeups.unregister(key)


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
