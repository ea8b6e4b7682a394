"""Per-object wake-up events, so a sleeping daemon reacts at once to what concerns it.

Daemons sleep until their next due time; watch-event handlers poke the objects a change
concerns (the certificate whose Secret was edited, every leaf of a CA that rotated). All
calls happen on kopf's event loop, so plain asyncio primitives suffice.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

Key = tuple[str, str]  # namespace, name


class Waker:
    """One object's wake-up event plus what the last reconcile left for the watchers."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        #: resourceVersion of the Secret this object wrote last (its echo is not news).
        self.written_resource_version: str | None = None
        #: (generation, renew-requested-at) seen last, to ignore status-only events.
        self.seen: tuple[object, ...] | None = None

    async def sleep(self, seconds: float, stop: asyncio.Future[Any] | None = None) -> bool:
        """Sleep up to ``seconds``, or until poked or ``stop`` is done; True if poked."""
        poked: asyncio.Future[Any] = asyncio.ensure_future(self.event.wait())
        waiting: set[asyncio.Future[Any]] = {poked}
        if stop is not None:
            waiting.add(stop)
        try:
            await asyncio.wait(
                waiting, timeout=max(seconds, 0.0), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            poked.cancel()
            self.event.clear()
        return poked.done() and not poked.cancelled()


class Dependencies:
    """Who must be woken when what changes (an object and the objects it depends on)."""

    def __init__(self) -> None:
        self._dependents: defaultdict[Key, set[Key]] = defaultdict(set)
        self._depends_on: dict[Key, set[Key]] = {}

    def depend(self, key: Key, *on: Key) -> None:
        """Record that ``key`` must be woken when any of ``on`` changes (none: nothing)."""
        wanted = set(on)
        if self._depends_on.get(key, set()) == wanted:
            return
        for previous in self._depends_on.pop(key, set()):
            self._dependents[previous].discard(key)
            if not self._dependents[previous]:
                del self._dependents[previous]
        if wanted:
            self._depends_on[key] = wanted
            for target in wanted:
                self._dependents[target].add(key)

    def dependents(self, on: Key) -> frozenset[Key]:
        return frozenset(self._dependents.get(on, ()))


class Wakeups:
    """The wakers of live objects and who depends on whom."""

    def __init__(self) -> None:
        self._wakers: dict[Key, Waker] = {}
        self._dependencies = Dependencies()

    def register(self, key: Key) -> Waker:
        return self._wakers.setdefault(key, Waker())

    def unregister(self, key: Key) -> None:
        self._wakers.pop(key, None)
        self.depend(key)

    def get(self, key: Key) -> Waker | None:
        return self._wakers.get(key)

    def poke(self, key: Key) -> bool:
        waker = self._wakers.get(key)
        if waker is None:
            return False
        waker.event.set()
        return True

    def depend(self, key: Key, *on: Key) -> None:
        """Record that ``key`` must be woken when any of ``on`` changes (none: nothing)."""
        self._dependencies.depend(key, *on)

    def poke_dependents(self, on: Key) -> int:
        return sum(self.poke(k) for k in self._dependencies.dependents(on))
