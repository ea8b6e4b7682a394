"""kopf adapters for MeshCertificates: watch events in, the certificate runner decides when.

Every certificate is reconciled by one scheduler (``dabba.certs.runner``): at once when its
spec or renew annotation changes, its Secret is edited or deleted, its issuer's Secret
changes, any of dabba's Secrets changes while it is a CA in a rollover (a leaf took the new
root or was re-issued), or a Namespace changes while it publishes a trust bundle; otherwise
at the time its last reconcile asked for. Secrets are watched only with dabba's label
(SPEC §3: no watch on every Secret in the cluster); Namespaces are watched whole (names and
labels only, cheap).
"""

from __future__ import annotations

from typing import Any, cast

import kopf
import structlog

from dabba.certs import bundles, store
from dabba.certs.model import MeshCertificateSpec
from dabba.certs.runner import Body, Runner
from dabba.deps import Deps
from dabba.errors import SpecError
from dabba.k8s import meta
from dabba.leadership import Leadership

log = structlog.get_logger("dabba.certs")


@kopf.on.startup()
def certs_startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Server-side filter: only Secrets dabba wrote are streamed to us.
    settings.watching.label_selectors["", "v1", "secrets"] = store.SECRET_LABEL


def start(memo: kopf.Memo) -> None:
    """Create the runner (from ``dabba.main``'s startup, once ``memo.deps`` exists; kopf
    starts the watches only after every startup handler has returned). Its loop starts with
    the first watch event (``Runner.ensure_started``)."""
    deps: Deps = memo.deps
    runner = Runner(deps, Leadership(deps.clients, deps.config, deps.clock.now), _post_event)
    memo.certs = runner


async def stop(memo: kopf.Memo) -> None:
    runner: Runner | None = memo.get("certs")
    if runner is not None:
        await runner.stop()


def _post_event(body: Body, type_: str, reason: str, message: str) -> None:
    # A plain dict serves: kopf reads apiVersion, kind and metadata from it. Never raises:
    # an Event is news, and a reconcile must not stop between its Secret and status writes.
    try:
        kopf.event(cast("kopf.Body", body), type=type_, reason=reason, message=message)
    except Exception:
        log.exception("posting an Event failed", reason=reason)


def _runner(memo: kopf.Memo) -> Runner:
    runner: Runner = memo.certs
    runner.ensure_started()
    return runner


@kopf.on.event(meta.GROUP, meta.VERSION, meta.MESHCERT_PLURAL)
async def certificate_changed(
    body: kopf.Body, name: str, namespace: str | None, type: str, memo: kopf.Memo, **_: Any
) -> None:
    """Tell the runner; it reconciles on news (not on the echo of our own status writes)."""
    if namespace is None:  # the CRD is namespaced; kopf's signature allows cluster scope
        return
    runner = _runner(memo)
    if type == "DELETED":
        runner.deleted(namespace, name)
        await _withdraw_bundle(body, namespace, name, memo)
        return
    runner.observed(namespace, name, dict(body))


@kopf.on.event("", "v1", "secrets", labels={store.SECRET_LABEL: kopf.PRESENT})
async def secret_changed(
    body: kopf.Body, name: str, namespace: str | None, type: str, memo: kopf.Memo, **_: Any
) -> None:
    """A Secret dabba wrote changed: its certificate (unless it is our own write's echo),
    every certificate that this Secret signs for and every rolling CA look again."""
    if namespace is None:
        return
    md = body.get("metadata", {})
    _runner(memo).secret_changed(
        namespace,
        name,
        (md.get("labels") or {}).get(store.SECRET_LABEL),
        md.get("resourceVersion"),
        deleted=type == "DELETED",
    )


@kopf.on.event("", "v1", "namespaces")
async def namespace_changed(memo: kopf.Memo, **_: Any) -> None:
    """A Namespace appeared, changed labels or is going away: trust bundles may need it."""
    _runner(memo).namespace_changed()


async def _withdraw_bundle(body: kopf.Body, namespace: str, name: str, memo: kopf.Memo) -> None:
    """A deleted CA takes its trust-bundle ConfigMaps with it (they cannot be owned across
    namespaces, so garbage collection does not)."""
    try:
        spec = MeshCertificateSpec.from_k8s(dict(body.get("spec") or {}), namespace=namespace)
    except SpecError:
        return
    runner = _runner(memo)
    if spec.trust_bundle is None:
        return
    deps: Deps = memo.deps
    try:
        await deps.run(
            bundles.withdraw,
            deps.clients,
            runner.bundles,
            (namespace, name),
            spec.trust_bundle.config_map_name,
            None if deps.config.clusterwide else deps.config.namespaces,
        )
    except Exception:  # best effort: the ConfigMaps carry a label to find them by hand
        log.exception("removing the trust bundle failed", namespace=namespace, name=name)
