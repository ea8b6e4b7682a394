"""kopf registration and startup settings; imported by ``dabba run``.

Handlers register themselves on import (``dabba.canary.handlers``, ``dabba.certs.handlers``
arrive with their controllers). Settings are explicit rather than kopf's defaults, so an upgrade
of kopf cannot silently move where dabba keeps its bookkeeping.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from dabba.k8s import meta


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
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
    # Reconnect watches regularly: a silently dead TCP stream must not stall the operator.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
