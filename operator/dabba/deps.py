"""What every handler gets through ``memo.deps``: configuration, API clients, the clock."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from dabba.clock import Clock
from dabba.config import OperatorConfig
from dabba.k8s.client import Clients

#: Reconcile threads. Why 32: evaluations mostly wait on the API server and Prometheus, and
#: Canaries released together fall due in the same second; with 8 threads 100 such Canaries
#: queued for up to 2 s behind each other (canary-scale benchmark, issue 8). 32 matches the
#: client's connection pool (``dabba.k8s.client``).
WORKERS = 32


def _executor() -> ThreadPoolExecutor:
    executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="dabba")
    _EXECUTORS.append(executor)
    return executor


def drain(timeout: float) -> int:
    """Cancel queued work and wait up to ``timeout`` s for running work; how many still run.

    Python joins pool threads at exit without a limit; a reconcile blocked on an unreachable
    webhook or Prometheus would hold SIGTERM hostage. Whatever still runs after the grace is
    cut off: every write is one API call and status is written last, so the next operator
    converges from wherever it stopped (the same as a crash, which the design allows).
    """
    deadline = time.monotonic() + timeout
    running = 0
    for executor in _EXECUTORS:
        executor.shutdown(wait=False, cancel_futures=True)
        for thread in list(getattr(executor, "_threads", ())):
            thread.join(max(deadline - time.monotonic(), 0))
            running += thread.is_alive()
    return running


def _in_context(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> Callable[[], R]:
    # As asyncio.to_thread does: the worker sees the caller's contextvars (kopf.event needs
    # its settings and event queue from them).
    ctx = contextvars.copy_context()
    return functools.partial(ctx.run, fn, *args, **kwargs)


class Stopping(Exception):  # noqa: N818 - a signal, not an error
    """The operator (or this object's daemon) is stopping."""


#: Every executor Deps created, so `dabba run` can bound the wait for their threads at exit.
_EXECUTORS: list[ThreadPoolExecutor] = []

P = ParamSpec("P")
R = TypeVar("R")


@dataclasses.dataclass(frozen=True)
class Deps:
    config: OperatorConfig
    clients: Clients
    clock: Clock
    #: Worker threads for reconciles (the kubernetes client and key generation block). Ours,
    #: not asyncio's default pool, so shutdown can drop queued work instead of running it all.
    executor: ThreadPoolExecutor = dataclasses.field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="dabba")
    )

    async def run(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn`` in a worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, _in_context(fn, *args, **kwargs))

    async def run_until(
        self, stop: asyncio.Future[None], fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Like :meth:`run`, but give up waiting when ``stop`` completes (raises Stopping).

        A reconcile already running in its thread finishes there (it is idempotent and ends
        with a complete write); one still queued is cancelled and never starts.
        """
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self.executor, _in_context(fn, *args, **kwargs))
        waiting: set[asyncio.Future[Any]] = {work, stop}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            work.cancel()
            raise Stopping
        return work.result()

    def shutdown(self) -> None:
        """Let running reconciles finish (each is bounded by API timeouts), drop queued ones."""
        self.executor.shutdown(wait=False, cancel_futures=True)
