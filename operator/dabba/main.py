"""kopf registration and startup settings; imported by ``dabba run``.

Importing this module registers every handler (``dabba.certs.handlers``, and the Canary
controller's when it lands). Settings are explicit rather than kopf's defaults, so an upgrade
of kopf cannot silently move where dabba keeps its bookkeeping.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

import dabba.canary.handlers
import dabba.certs.handlers  # registers the MeshCertificate handlers; starts its runner
from dabba.clock import SystemClock
from dabba.config import OperatorConfig
from dabba.deps import Deps
from dabba.k8s import meta, objects
from dabba.k8s.client import clients, with_cache
from dabba.server import HealthServer

#: Seconds a peering record stays valid without a keep-alive (kopf's default is 60).
PEERING_LIFETIME = 20


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Where kopf stores progress, which finalizer it uses, how it posts events and watches."""
    settings.persistence.finalizer = meta.FINALIZER
    # Annotations, not status: status belongs to dabba's own schema and is written last.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=meta.KOPF_ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=meta.KOPF_ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    # dabba posts its own Events for every decision; kopf's logger-to-Event bridge would
    # duplicate them at info level, so only warnings and errors go through it.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "dabba"
    # Events are best effort: two quick retries. kopf's default (8 retries, ~54 s) keeps
    # retrying Events into terminating namespaces (403) and holds up shutdown behind them.
    settings.posting.default_backoffs = (1, 2)
    # Reconnect watches regularly: a silently dead TCP stream must not stall the operator.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
    # A replica that dies without saying goodbye is considered gone after this long, and a
    # standby takes over: keep-alives every 10-15 s, so takeover happens within ~20 s.
    settings.peering.lifetime = PEERING_LIFETIME
    # Last resort if anything hangs at exit: kopf SIGKILLs itself well before a pod's 30 s
    # termination grace runs out (its default is 10 minutes).
    settings.process.ultimate_exiting_timeout = 25
    # Daemons and sync handlers share one pool; certificates reconcile in worker threads.
    settings.execution.max_workers = 16

    config: OperatorConfig = memo.config
    # The Canary controller reads what its watches keep (dabba.k8s.cache), not the API.
    cache = dabba.canary.handlers.object_cache(settings)
    memo.deps = Deps(config=config, clients=with_cache(clients(), cache), clock=SystemClock())
    if not config.standalone:
        await asyncio.to_thread(_ensure_peering, memo.deps, config)
    dabba.certs.handlers.start(memo)
    memo.ready = asyncio.Event()
    memo.server = HealthServer(config.listen_host, config.metrics_port, memo.ready)
    await memo.server.start()


def _ensure_peering(deps: Deps, config: OperatorConfig) -> None:
    """kopf does not create its peering object; without it replicas cannot see each other."""
    custom = deps.clients.custom
    body = {"metadata": {"name": config.peering_name}}
    try:
        if config.clusterwide:
            custom.create_cluster_custom_object(
                "kopf.dev",
                "v1",
                "clusterkopfpeerings",
                {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", **body},
            )
        else:
            for namespace in config.namespaces:
                custom.create_namespaced_custom_object(
                    "kopf.dev",
                    "v1",
                    namespace,
                    "kopfpeerings",
                    {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", **body},
                )
    except ApiException as exc:
        if exc.status != objects.CONFLICT:  # 409: it exists already, as it should
            raise


@kopf.on.startup()
async def ready(memo: kopf.Memo, **_: Any) -> None:
    """Registered last: every startup handler has run."""
    memo.ready.set()


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await dabba.certs.handlers.stop(memo)
    deps: Deps | None = memo.get("deps")
    if deps is not None:
        deps.shutdown()
    server: HealthServer | None = memo.get("server")
    if server is not None:
        await server.stop()
