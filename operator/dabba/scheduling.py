"""When each of many objects is due next: one heap instead of one sleeping task per object.

Why: the certificate controller used to run one kopf daemon per MeshCertificate, each asleep
until its renewal. A daemon costs ~50 KiB (its task, kopf's bookkeeping and the live body kopf
keeps for it) and a finalizer write on every object; at 10,000 certificates that was ~700 MiB
(footprint benchmark, issue 8). A schedule entry costs a heap slot and a dictionary item.

Pure and synchronous: times are plain floats from whatever clock the caller uses.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Schedule(Generic[K]):
    """Each key's next due time. Re-scheduling a key replaces its time (stale heap entries are
    skipped when they surface, and the heap is rebuilt when they outnumber the live ones)."""

    def __init__(self) -> None:
        self._due: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._seq = itertools.count()  # ties pop in insertion order; keys are never compared

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: object) -> bool:
        return key in self._due

    def __iter__(self) -> Iterator[K]:
        return iter(self._due)

    def due_at(self, key: K) -> float | None:
        return self._due.get(key)

    def at(self, key: K, when: float) -> None:
        """Due at ``when`` (replacing any earlier or later time)."""
        if self._due.get(key) == when:
            return
        self._due[key] = when
        heapq.heappush(self._heap, (when, next(self._seq), key))
        if len(self._heap) > 2 * len(self._due) + 64:
            self._heap = [(t, next(self._seq), k) for k, t in self._due.items()]
            heapq.heapify(self._heap)

    def no_later_than(self, key: K, when: float) -> None:
        """Due at ``when`` unless already due earlier."""
        current = self._due.get(key)
        if current is None or when < current:
            self.at(key, when)

    def discard(self, key: K) -> None:
        self._due.pop(key, None)

    def _prune(self) -> None:
        while self._heap:
            when, _, key = self._heap[0]
            if self._due.get(key) == when:
                return
            heapq.heappop(self._heap)

    def next_at(self) -> float | None:
        """The earliest due time, or None when nothing is scheduled."""
        self._prune()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float, limit: int) -> list[K]:
        """Up to ``limit`` keys due at or before ``now``, earliest first; they leave the
        schedule (the caller re-schedules each when it is done with it)."""
        out: list[K] = []
        while len(out) < limit:
            self._prune()
            if not self._heap or self._heap[0][0] > now:
                break
            _, _, key = heapq.heappop(self._heap)
            del self._due[key]
            out.append(key)
        return out
