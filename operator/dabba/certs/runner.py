"""One scheduler for every MeshCertificate: a heap of due times and a bounded set of reconciles.

Watch events (``dabba.certs.handlers``) say what changed; the runner decides when each
certificate is reconciled next — at once for news, otherwise at the time the last reconcile
asked for (renewal, overdue, expiry, backoff, budget, a rollover's propagation delay) — and
runs at most :data:`CONCURRENCY` reconciles at a time in the worker threads. One certificate
is never reconciled twice at once: news about a running one runs it again right after.

This replaced one kopf daemon per certificate (footprint and issuance benchmarks, issue 8):
a daemon cost ~50 KiB, a finalizer write on create and another on delete; an entry here costs
about one KiB. What kopf did for the daemons, the runner does itself:

- Leader election: kopf pauses its daemons on a standby replica; the runner asks
  ``dabba.leadership`` before every batch and waits while another replica leads.
- The live body: a reconcile starts from the body of the watch event that scheduled it when
  nothing newer is known (no GET); otherwise — a timer, or a status we wrote since — it reads
  the object fresh. Bodies are kept only until their reconcile starts.
- Deletion: the DELETED event drops the certificate; one that vanished while the watch was
  paused is dropped when its reconcile finds it gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from dabba import telemetry
from dabba.certs import bundles, reconcile
from dabba.certs.gather import IssuerCache
from dabba.certs.issuing import Recorder
from dabba.certs.model import ANNOTATION_RENEW_REQUESTED_AT
from dabba.deps import Deps
from dabba.k8s.cache import resource_version
from dabba.leadership import Leadership
from dabba.scheduling import Schedule
from dabba.wakeups import Dependencies

log = structlog.get_logger("dabba.certs")

Key = tuple[str, str]  # namespace, name
Body = Mapping[str, Any]
#: Posts an Event about the object whose body it is given (kopf.event in the handlers).
Events = Callable[[Body, str, str, str], None]

#: Reconciles at once. Fewer than the worker threads (``dabba.deps.WORKERS``): the Canary
#: controller shares them, and a thousand new certificates must not queue its ticks.
CONCURRENCY = 24
#: After a reconcile, news about the same certificate waits at least this long (a burst of
#: events is one reconcile).
MIN_INTERVAL = 0.2
#: After an unexpected error, look again after this long.
ERROR_RETRY = 10.0
#: A CA in a rollover is poked by every leaf write; reconcile it at most this often.
ROLLING_MIN_INTERVAL = 1.0
#: A standby replica asks again this often whether it leads now.
STANDBY_POLL = 1.0
#: Event bodies kept for reconciles that have not started yet, at most (a body is ~15 KiB in
#: memory; an operator starting with 10,000 certificates must not hold them all at once —
#: beyond this, a reconcile reads its object instead).
MAX_BODIES = 1000


def seen(body: Body) -> tuple[object, ...]:
    """What, in an event, is news: the generation and the renew request (not our status)."""
    md = body.get("metadata") or {}
    return (md.get("generation"), (md.get("annotations") or {}).get(ANNOTATION_RENEW_REQUESTED_AT))


@dataclasses.dataclass(slots=True)
class _Known:
    """What the runner keeps per certificate between reconciles (kept small: 10,000 of them)."""

    seen: tuple[object, ...]
    #: resourceVersion of the Secret this certificate wrote last (its echo is not news).
    written_secret: str | None = None
    #: resourceVersion of our last status write: an event body older than it is stale.
    written_status: int | None = None
    #: A body from a watch event, waiting for the reconcile it scheduled, and the
    #: leadership epoch it arrived in (a body from before a pause is never trusted).
    body: Body | None = None
    body_epoch: int = 0
    #: Not before this monotonic time (a rolling CA's pace).
    rest_until: float = 0.0
    #: Seen created and not reconciled yet (its Secret need not be read: it has none).
    new: bool = False


class Runner:
    def __init__(
        self,
        deps: Deps,
        leadership: Leadership,
        events: Events,
        *,
        concurrency: int = CONCURRENCY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.deps = deps
        self.leadership = leadership
        self.events = events
        self.concurrency = concurrency
        self.monotonic = monotonic
        self.budgets = reconcile.Budgets()
        self.bundles = bundles.Cache()
        self.issuers = IssuerCache(deps.config.clusterwide, deps.config.namespaces)
        self.schedule: Schedule[Key] = Schedule()
        self.known: dict[Key, _Known] = {}
        self.dependencies = Dependencies()
        #: CA MeshCertificates with a rollover running / that publish a trust bundle.
        self.rolling: set[Key] = set()
        self.publishers: set[Key] = set()
        self._running: set[Key] = set()
        self._again: set[Key] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._epoch = 0
        self._bodies = 0  # how many _Known.body are set
        self._leading: bool | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    # ---- what the watch handlers call (on kopf's event loop) ------------------------------

    def observed(self, namespace: str, name: str, body: Body) -> None:
        """A MeshCertificate event (ADDED or MODIFIED)."""
        key = (namespace, name)
        self.issuers.note_certificate(namespace, name, body)
        news = seen(body)
        known = self.known.get(key)
        if known is None:
            known = self.known[key] = _Known(news, new=not body.get("status"))
            self._keep_body(known, body)
            self._due_now(key)
            return
        pending = key in self.schedule or key in self._again
        if known.seen != news:
            known.seen = news
            self._keep_body(known, body)
            self.poke(key)
        elif pending and known.body is not None:
            self._keep_body(known, body)  # the newest for that reconcile

    def _keep_body(self, known: _Known, body: Body) -> None:
        if known.body is None:
            if self._bodies >= MAX_BODIES:
                return
            self._bodies += 1
        known.body, known.body_epoch = body, self._epoch

    def _take_body(self, known: _Known) -> Body | None:
        body, known.body = known.body, None
        if body is None:
            return None
        self._bodies -= 1
        return body if known.body_epoch == self._epoch else None

    def deleted(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self.issuers.note_certificate(namespace, name, None)
        self._forget(key)

    def secret_changed(
        self, namespace: str, name: str, owner: str | None, rv: str | None, deleted: bool
    ) -> None:
        """A Secret with dabba's label changed: wake its certificate unless it is the echo of
        our own write, every certificate it signs for, and the CAs in a rollover."""
        self.issuers.forget_secret(namespace, name, rv)
        if owner:
            known = self.known.get((namespace, owner))
            if known is not None and (deleted or rv != known.written_secret):
                self.poke((namespace, owner))
        for key in list(self.dependencies.dependents((namespace, name))):
            self.poke(key)
        for ca in list(self.rolling):
            if ca != (namespace, owner):
                self.poke(ca)

    def namespace_changed(self) -> None:
        for ca in list(self.publishers):
            self.poke(ca)

    def poke(self, key: Key) -> None:
        """Reconcile ``key`` soon (at once, unless it rests or is running)."""
        known = self.known.get(key)
        if known is None:
            return
        if key in self._running:
            self._again.add(key)
            return
        self.schedule.no_later_than(key, max(self.monotonic(), known.rest_until))
        self._wake.set()

    # ---- the loop ------------------------------------------------------------------------

    def ensure_started(self) -> None:
        """Start the loop from a kopf event handler: the task inherits the handler's context,
        where kopf keeps the event queue that ``kopf.event`` posts to (a startup handler's
        context has none)."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._loop(), name="dabba certificate runner")

    async def stop(self) -> None:
        """Stop dispatching; reconciles already in a worker thread finish there."""
        self._stopping = True
        self._wake.set()
        tasks = [t for t in (self._loop_task, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _due_now(self, key: Key) -> None:
        self.schedule.no_later_than(key, self.monotonic())
        self._wake.set()

    def _forget(self, key: Key) -> None:
        known = self.known.pop(key, None)
        if known is not None:
            self._take_body(known)
        self.schedule.discard(key)
        self._again.discard(key)
        self.dependencies.depend(key)
        self.rolling.discard(key)
        self.publishers.discard(key)
        telemetry.forget_certificate(*key)

    async def _leads(self) -> bool:
        leading = self.leadership.cached()
        if leading is None:  # a read of the peering object: off the event loop
            leading = await self.deps.run(self.leadership.active)
        if leading and self._leading is False:
            # Bodies and CAs seen before the pause may be stale: events were not delivered.
            self._epoch += 1
            self.issuers.clear()
        self._leading = leading
        return leading

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            now = self.monotonic()
            next_at = self.schedule.next_at()
            free = self.concurrency - len(self._tasks)
            timeout: float | None = None if next_at is None else max(next_at - now, 0.0)
            if next_at is not None and next_at <= now and free > 0:
                if await self._leads():
                    for key in self.schedule.pop_due(self.monotonic(), free):
                        self._dispatch(key)
                    continue
                timeout = STANDBY_POLL
            elif free <= 0:
                timeout = None  # a finishing reconcile wakes the loop
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
            # that arrives as the wake-up completes, and stop() then waited for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def _dispatch(self, key: Key) -> None:
        known = self.known.get(key)
        if known is None:
            return
        body = self._take_body(known)
        new = known.new and body is not None
        known.new = False
        if body is not None and known.written_status is not None:
            rv = resource_version(body)
            if rv is None or rv < known.written_status:
                body = None  # older than our own last status write: read it fresh
        self._running.add(key)
        task = asyncio.create_task(
            self._reconcile(key, body, new), name=f"certificate {key[0]}/{key[1]}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reconcile(self, key: Key, body: Body | None, new: bool) -> None:
        namespace, name = key
        deps = self.deps
        known = self.known.get(key)
        if known is None:  # deleted between dispatch and start
            self._finish(key, 0.0)
            return
        try:
            outcome = await deps.run(
                reconcile.reconcile,
                deps.clients,
                namespace,
                name,
                self.budgets,
                functools.partial(_recorder, self.events),
                deps.clock.now,
                # Set from the worker thread right after the write, before the watch event
                # of that write can arrive: the echo must not wake us again.
                functools.partial(setattr, known, "written_secret"),
                scope=None if deps.config.clusterwide else deps.config.namespaces,
                cache=self.bundles,
                body=body,
                issuers=self.issuers,
                created=new,
            )
        except Exception:  # one bad object must not stop the others (CancelledError is not one)
            telemetry.reconcile_errors.labels("MeshCertificate").inc()
            log.exception(
                "reconcile failed", kind="MeshCertificate", namespace=namespace, name=name
            )
            self._finish(key, self.monotonic() + ERROR_RETRY)
            return
        if outcome.gone:
            self._forget(key)
            self._finish(key, 0.0)  # forgotten: nothing is scheduled
            return
        if outcome.status_resource_version is not None:
            known.written_status = outcome.status_resource_version
        self.dependencies.depend(key, *([outcome.issuer_secret] if outcome.issuer_secret else []))
        _mark(self.rolling, key, outcome.rolling)
        _mark(self.publishers, key, outcome.publishes)
        now = self.monotonic()
        delay = (
            (outcome.next_wake - deps.clock.now()).total_seconds()
            if outcome.next_wake
            else reconcile.RESYNC.total_seconds()
        )
        known.rest_until = now + (ROLLING_MIN_INTERVAL if outcome.rolling else MIN_INTERVAL)
        self._finish(key, max(now + delay, known.rest_until))

    def _finish(self, key: Key, due: float) -> None:
        # Leave the task set before waking the loop: a done-callback would run only after the
        # loop had counted this task as busy, and with every slot taken nothing wakes it again.
        task = asyncio.current_task()
        if task is not None:
            self._tasks.discard(task)
        self._running.discard(key)
        known = self.known.get(key)
        if known is not None:
            if key in self._again:
                self._again.discard(key)
                due = min(due, max(self.monotonic(), known.rest_until))
            self.schedule.at(key, due)
        self._wake.set()


def _recorder(events: Events, body: Body) -> Recorder:
    def record(type_: str, reason: str, message: str) -> None:
        events(body, type_, reason, message)

    return record


def _mark(keys: set[Key], key: Key, present: bool) -> None:
    if present:
        keys.add(key)
    else:
        keys.discard(key)
