"""Watch-fed copies of the objects the Canary controller reads on every evaluation (pure).

Why: an evaluation used to GET the target and primary Deployments, the three Services and
every routing object (twice, once to read the weights and once to ensure it): 11 reads per
tick for objects that almost never change (canary-scale benchmark, issue 8). kopf already
watches them (Deployments unfiltered, for new revisions; Services and routing objects with the
label selector ``dabba.io/canary``), so the watch events keep a copy here and a read is a
dictionary lookup. What a read gets is the API server's state as the watch last delivered it,
the same a GET issued a few milliseconds earlier would have returned.

Rules that keep the copy honest:

- Only objects a running watch can see are kept (``serve`` names the resource and the test its
  label selector applies): a Service without our label is never cached, because nothing would
  tell the cache when it changes.
- Newer wins: every update carries the object's ``resourceVersion``, and an update older than
  what is kept (a watch event delayed behind our own write) is dropped. Resource versions are
  compared as integers, which Kubernetes guarantees since 1.35 (comparable resource versions);
  one that is not an integer is taken as newer, i.e. arrival order.
- Writes go through: the object a create, replace or patch returned replaces the copy at once,
  so the next evaluation sees its own write (no phantom drift). A write whose answer is not
  the object (a scale, a delete) or that lost a race (409) ``forget``s it: the next read GETs.
- Absence is never cached: a miss is answered by a GET (``or_none``), whose answer is kept.
- Copies expire after ``max_age`` (5 minutes): then the next read GETs again. This bounds what
  a lost event could cost — kopf re-lists after a watch expires without reporting objects
  deleted in the gap — the way informers' periodic resync does.

Thread-safe: watch events arrive on kopf's event loop, reads come from worker threads.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
Selects = Callable[[Mapping[str, Any]], bool]
Slims = Callable[[Obj], None]

#: How long a copy is trusted without being confirmed by a watch event, a read or a write.
DEFAULT_MAX_AGE = 300.0
#: Tombstones (deleted or forgotten objects) are pruned every this many updates.
_PRUNE_EVERY = 1000


def resource_version(obj: Mapping[str, Any]) -> int | None:
    """``metadata.resourceVersion`` as an integer, or ``None`` when it is not one."""
    return parse_resource_version((obj.get("metadata") or {}).get("resourceVersion"))


def parse_resource_version(value: object) -> int | None:
    """A resourceVersion as an integer, or ``None`` when it is not one."""
    try:
        return int(value) if isinstance(value, str | int) else None
    except ValueError:
        return None


def _not_older(new: int | None, old: int | None) -> bool:
    return new is None or old is None or new >= old


@dataclass(slots=True)
class _Entry:
    obj: Obj | None  # None: a tombstone (deleted, or forgotten after a write)
    rv: int | None
    at: float


@dataclass(frozen=True, slots=True)
class _Served:
    selects: Selects
    slim: Slims | None


class ObjectCache:
    """The latest known state of watched objects, by (resource, namespace, name)."""

    def __init__(
        self, max_age: float = DEFAULT_MAX_AGE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_age, self._clock = max_age, clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str, str], _Entry] = {}
        self._served: dict[str, _Served] = {}
        self._updates = 0

    def serve(
        self, resource: str, selects: Selects | None = None, slim: Slims | None = None
    ) -> None:
        """A watch feeds ``resource``; it sees the objects ``selects`` accepts (all by default).

        ``slim`` trims a copy before it is kept (fields no reader needs, to save memory).
        """
        self._served[resource] = _Served(selects or (lambda _: True), slim)

    def serves(self, resource: str) -> bool:
        return resource in self._served

    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        """A private copy of the object, or ``None`` when it is not known (read the API)."""
        with self._lock:
            entry = self._entries.get((resource, namespace, name))
            if entry is None or entry.obj is None or self._clock() - entry.at > self._max_age:
                return None
            obj = entry.obj
        return copy.deepcopy(obj)

    def put(self, resource: str, obj: Mapping[str, Any]) -> bool:
        """Keep ``obj`` (from a watch event, a read or a write) unless what is kept is newer.

        Returns True when the copy changed (False for an older or the same version, or an
        object this resource's watch does not see).
        """
        served = self._served.get(resource)
        if served is None:
            return False
        key = _key(resource, obj)
        if key is None:
            return False
        if not served.selects(obj):
            # The watch no longer sees it (our label was removed): forget what we had.
            self.forget(resource, key[1], key[2])
            return False
        rv = resource_version(obj)
        kept = copy.deepcopy(dict(obj))
        if served.slim is not None:
            served.slim(kept)
        with self._lock:
            old = self._entries.get(key)
            if old is not None and not _not_older(rv, old.rv):
                return False
            same = old is not None and old.obj is not None and rv is not None and rv == old.rv
            self._entries[key] = _Entry(kept, rv, self._clock())
            self._tick()
        return not same

    def deleted(self, resource: str, obj: Mapping[str, Any]) -> None:
        """A watch reported the object deleted (or no longer selected)."""
        key = _key(resource, obj)
        if key is None:
            return
        rv = resource_version(obj)
        with self._lock:
            old = self._entries.get(key)
            if old is not None and not _not_older(rv, old.rv):
                return  # a deletion older than what we wrote since (a re-created object)
            self._entries[key] = _Entry(None, rv, self._clock())
            self._tick()

    def forget(self, resource: str, namespace: str, name: str, rv: str | None = None) -> None:
        """Stop trusting the copy (the next read GETs); with ``rv``, the version a write just
        produced: watch events older than it are dropped."""
        floor = resource_version({"metadata": {"resourceVersion": rv}})
        with self._lock:
            key = (resource, namespace, name)
            old = self._entries.get(key)
            keep = old.rv if old is not None and floor is None else floor
            self._entries[key] = _Entry(None, keep, self._clock())
            self._tick()

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for e in self._entries.values() if e.obj is not None)

    def _tick(self) -> None:
        # Called with the lock held.
        self._updates += 1
        if self._updates % _PRUNE_EVERY:
            return
        limit = self._clock() - self._max_age
        for key in [k for k, e in self._entries.items() if e.obj is None and e.at < limit]:
            del self._entries[key]


def _key(resource: str, obj: Mapping[str, Any]) -> tuple[str, str, str] | None:
    md = obj.get("metadata") or {}
    namespace, name = md.get("namespace"), md.get("name")
    if not isinstance(namespace, str) or not isinstance(name, str):
        return None
    return resource, namespace, name


def has_label(label: str) -> Selects:
    """The test a ``label`` (present) selector applies."""

    def selects(obj: Mapping[str, Any]) -> bool:
        return label in ((obj.get("metadata") or {}).get("labels") or {})

    return selects


def without_managed_fields(obj: Obj) -> None:
    """Drop ``managedFields`` and kubectl's last-applied copy: most of a Deployment's bytes."""
    md = obj.get("metadata") or {}
    md.pop("managedFields", None)
    annotations = md.get("annotations")
    if annotations:
        annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
