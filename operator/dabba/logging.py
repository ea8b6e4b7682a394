"""structlog for everything the process prints, kopf's and the kubernetes client's included.

JSON lines when stderr is not a terminal (in a cluster), colourful key=value on a terminal.
stdlib loggers (kopf, kubernetes, urllib3, aiohttp) go through the same processors, so every
line has the same shape whoever wrote it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from dabba.config import LogFormat


def _kopf_object(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """kopf's per-object lines carry the object in a ``k8s_ref`` extra: flatten it into the
    same kind/namespace/name keys dabba's own lines have."""
    ref = event.pop("k8s_ref", None)
    if isinstance(ref, dict):
        for key in ("kind", "namespace", "name"):
            if ref.get(key):
                event.setdefault(key, ref[key])
    event.pop("k8s_skip", None)
    return event


def configure(fmt: LogFormat = "auto", level: str = "info") -> None:
    """Configure structlog and route stdlib logging through it. Safe to call twice."""
    render_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if render_json
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(),
            # Never print frame locals: they can hold key material (SPEC §2.4).
            exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False),
        )
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if render_json:
        final.append(structlog.processors.format_exc_info)
    final.append(renderer)
    foreign = [*shared, structlog.stdlib.ExtraAdder(allow=("k8s_ref", "k8s_skip")), _kopf_object]
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=foreign, processors=final)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Client libraries are chatty at debug; keep them at warning unless we debug ourselves.
    # kopf.objects logs "Handler ... succeeded" for every watch event; dabba logs its own
    # decisions, so keep kopf's per-object lines for warnings unless debugging.
    for noisy in ("urllib3", "kubernetes", "asyncio", "aiohttp.access", "kopf.objects"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
