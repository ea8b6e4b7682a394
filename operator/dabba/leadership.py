"""Is this replica the one that acts? kopf's peering rule, asked by code that kopf does not run.

kopf pauses a replica (its watches and its daemons) while a live peer with a higher priority,
or another with the same priority, is listed in the peering object. The certificate
scheduler (``dabba.certs.runner``) is one asyncio task of dabba's, not a kopf daemon, so kopf
cannot pause it; before it acts it asks :class:`Leadership`, which reads the same peering
object and applies the same rule (``kopf._core.engines.peering.process_peering_event``).

The two can disagree for about a second around a takeover. That is safe: every certificate
write carries a resourceVersion (a replica that lost the race gets 409 and re-decides), and
kopf itself stops daemons asynchronously, so the same window existed before.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog

from dabba.config import OperatorConfig
from dabba.k8s import objects
from dabba.k8s.client import Clients

log = structlog.get_logger("dabba.leadership")

#: How long one answer is reused: the scheduler asks before every batch of work.
TTL = 1.0
#: kopf's default for a peer that does not say (seconds).
_DEFAULT_LIFETIME = 60


def _parse(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def leads(
    peerings: Iterable[Mapping[str, Any] | None], identity: str, priority: int, now: dt.datetime
) -> bool:
    """kopf's rule over every peering object this replica takes part in: False while any live
    peer other than us has a priority >= ours. A peer is live until lastseen + lifetime."""
    for body in peerings:
        peers = (body or {}).get("status") or {}
        if not isinstance(peers, Mapping):
            continue
        for peer_id, info in peers.items():
            if peer_id == identity or not isinstance(info, Mapping):
                continue
            try:
                peer_priority = int(info.get("priority", 0))
                lifetime = int(info.get("lifetime", _DEFAULT_LIFETIME))
            except (TypeError, ValueError):
                continue
            lastseen = _parse(info.get("lastseen"))
            if lastseen is None:
                lastseen = now  # kopf reads a missing lastseen as "just now"
            if lastseen + dt.timedelta(seconds=lifetime) <= now:
                continue  # dead: kopf ignores it (and cleans it up)
            if peer_priority >= priority:
                return False
    return True


class Leadership:
    """The answer of :func:`leads` for this replica, re-read at most every :data:`TTL` s.

    Thread-safe. A standalone replica always leads. When the peering objects cannot be read
    the last answer stands (a replica does not stop or start acting on a network blip); before
    any answer, it leads: two replicas renewing at once cost a 409, none renewing costs an
    expired certificate.
    """

    def __init__(
        self,
        k: Clients,
        config: OperatorConfig,
        clock: Callable[[], dt.datetime],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._k = k
        self._config = config
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._answer = True
        self._at: float | None = None

    def _read(self) -> list[Any]:
        name, custom = self._config.peering_name, self._k.custom
        if self._config.clusterwide:
            return [
                objects.or_none(
                    lambda: custom.get_cluster_custom_object(
                        "kopf.dev", "v1", "clusterkopfpeerings", name
                    )
                )
            ]
        return [
            objects.or_none(
                lambda ns=namespace: custom.get_namespaced_custom_object(  # type: ignore[misc]
                    "kopf.dev", "v1", ns, "kopfpeerings", name
                )
            )
            for namespace in self._config.namespaces
        ]

    def cached(self) -> bool | None:
        """The answer without I/O when it is fresh (or standalone), else None."""
        if self._config.standalone:
            return True
        with self._lock:
            return self._fresh(self._monotonic())

    def _fresh(self, now: float) -> bool | None:
        return self._answer if self._at is not None and now - self._at < TTL else None

    def active(self) -> bool:
        if self._config.standalone:
            return True
        with self._lock:
            now = self._monotonic()
            if (fresh := self._fresh(now)) is not None:
                return fresh
            try:
                answer = leads(
                    self._read(), self._config.identity, self._config.priority, self._clock()
                )
            except Exception as exc:
                log.warning(
                    "cannot read the peering object; keeping the last answer", error=str(exc)
                )
                answer = self._answer
            if answer != self._answer:
                log.info(
                    "leading: certificates are this replica's to renew"
                    if answer
                    else "standing by: another replica leads",
                    identity=self._config.identity,
                    priority=self._config.priority,
                )
            self._answer, self._at = answer, now
            return answer
