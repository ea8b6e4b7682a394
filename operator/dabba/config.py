"""Operator configuration from command-line flags and ``DABBA_*`` environment variables.

Flags win over the environment; the environment wins over defaults. Parsing is pure so it is
table-tested; ``dabba run`` turns a ``ConfigError`` into a one-line message and exit code 2.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlparse

from dabba.errors import ConfigError
from dabba.k8s.meta import PEERING_NAME

LogFormat = Literal["auto", "json", "console"]
LOG_FORMATS: tuple[LogFormat, ...] = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class OperatorConfig:
    """Everything ``dabba run`` needs to start."""

    clusterwide: bool
    namespaces: tuple[str, ...]
    prometheus_url: str | None
    listen_host: str
    metrics_port: int
    log_format: LogFormat
    log_level: str
    peering_name: str
    standalone: bool
    priority: int
    #: This replica's name among its peers (kopf's peering status is keyed by it).
    identity: str = field(default_factory=lambda: f"dabba-{secrets.token_hex(8)}", compare=False)


def _port(value: str, what: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise ConfigError(f"{what} must be a port number, got {value!r}") from None
    if not 0 <= port <= 65535:  # noqa: PLR2004 - the TCP port range
        raise ConfigError(f"{what} must be between 0 and 65535, got {port}")
    return port


def parse(
    *,
    all_namespaces: bool | None,
    namespaces: Sequence[str],
    prometheus_url: str | None,
    listen_host: str | None,
    metrics_port: str | None,
    log_format: str | None,
    log_level: str | None,
    peering_name: str | None,
    standalone: bool | None,
    priority: str | None,
    env: Mapping[str, str],
) -> OperatorConfig:
    """Merge flags (``None`` = not given) with ``env`` into a validated config."""
    ns = tuple(n for n in namespaces if n)
    if not ns and not all_namespaces:
        ns = tuple(n.strip() for n in env.get("DABBA_NAMESPACES", "").split(",") if n.strip())
    if all_namespaces and ns:
        raise ConfigError("use either -A/--all-namespaces or -n/--namespace, not both")
    clusterwide = not ns

    url = prometheus_url or env.get("DABBA_PROMETHEUS_URL") or None
    if url is not None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(f"the Prometheus URL must look like http://host:port, got {url!r}")

    fmt = (log_format or env.get("DABBA_LOG_FORMAT") or "auto").lower()
    if fmt not in LOG_FORMATS:
        raise ConfigError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    level = (log_level or env.get("DABBA_LOG_LEVEL") or "info").lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")

    std = (
        standalone
        if standalone is not None
        else env.get("DABBA_STANDALONE", "") in ("1", "true", "yes")
    )
    prio_raw = priority or env.get("DABBA_PRIORITY")
    if prio_raw is None:
        # kopf pauses *every* replica when two live peers share a priority, so replicas of
        # one Deployment must differ: a random one makes the highest live replica the leader.
        prio = 1 + secrets.randbelow(2**31 - 1)
    else:
        try:
            prio = int(prio_raw)
        except ValueError:
            raise ConfigError(f"priority must be an integer, got {prio_raw!r}") from None

    return OperatorConfig(
        clusterwide=clusterwide,
        namespaces=ns,
        prometheus_url=url,
        listen_host=listen_host or env.get("DABBA_LISTEN_HOST") or "0.0.0.0",  # noqa: S104 - in-pod probes
        metrics_port=_port(metrics_port or env.get("DABBA_METRICS_PORT") or "8080", "metrics port"),
        log_format=fmt,
        log_level=level,
        peering_name=peering_name or env.get("DABBA_PEERING_NAME") or PEERING_NAME,
        standalone=std,
        priority=prio,
    )
