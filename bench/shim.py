"""``python -m bench.shim run ...``: ``dabba run`` with the bench's extra instruments.

The operator counts its own client's requests (``dabba_api_requests_total``); three things
only a benchmark wants are added here, from the outside, before ``dabba run`` starts:

- ``dabba_bench_kopf_requests_total{verb,resource}``: every request kopf makes itself
  (watch streams, finalizers, its annotations, Events). kopf sends all of them through one
  function, ``kopf._cogs.clients.api.request``; it is wrapped, nothing else changes.
- ``dabba_bench_prometheus_queries_total``: instant queries sent by the Prometheus adapter
  (exact, whoever else queries the shared Prometheus).
- The raw tick lateness: each value the operator observes into
  ``dabba_canary_tick_lateness_seconds`` is also appended to ``$DABBA_BENCH_TRACE`` as
  ``<unix time> <seconds>``, because the histogram's buckets (0.5, 1, 2 s) are too coarse
  for a p99 against a 1 s goal.

Each wrapper adds one counter increment (or one short file write) to the call it wraps.
Footprint figures (idle RSS, start-to-ready) use the plain ``dabba`` console script instead.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Counter

TRACE_ENV = "DABBA_BENCH_TRACE"
#: Comma-separated experiments (evidence for proposed operator changes; off by default):
#: ``ensure-on-drift``, ``workers=N``, ``quiet-initial-conditions``; see
#: :func:`_experiments`.
EXPERIMENT_ENV = "DABBA_BENCH_EXPERIMENT"
#: With a path: SIGUSR2 starts tracing allocations, SIGUSR1 writes the largest live sites
#: there (what was allocated in between and is still alive: the per-object cost).
TRACEMALLOC_ENV = "DABBA_BENCH_TRACEMALLOC"


def install() -> None:
    """Wrap kopf's request function, the Prometheus adapter and the lateness histogram."""
    import kopf._cogs.clients.api as kopf_api  # noqa: PLC0415 - after the env is read

    from dabba import telemetry  # noqa: PLC0415
    from dabba.k8s.client import request_labels  # noqa: PLC0415
    from dabba.metrics import prometheus  # noqa: PLC0415

    kopf_requests = Counter(
        "dabba_bench_kopf_requests",
        "Requests kopf made itself (bench instrument), by verb and resource.",
        ("verb", "resource"),
        registry=telemetry.REGISTRY,
    )
    queries = Counter(
        "dabba_bench_prometheus_queries",
        "Instant queries sent to Prometheus by the operator (bench instrument).",
        registry=telemetry.REGISTRY,
    )
    health_checks = Counter(
        "dabba_bench_prometheus_health_checks",
        "Prometheus reachability checks (is_online) by the operator (bench instrument).",
        registry=telemetry.REGISTRY,
    )

    original: Callable[..., Awaitable[Any]] = kopf_api.request

    async def counted_request(method: str, url: str, **kwargs: Any) -> Any:
        kopf_requests.labels(*request_labels(method, url)).inc()
        return await original(method, url, **kwargs)

    kopf_api.request = counted_request

    query = prometheus.PrometheusProvider.query

    def counted_query(self: prometheus.PrometheusProvider, promql: str) -> Any:
        queries.inc()
        return query(self, promql)

    prometheus.PrometheusProvider.query = counted_query  # type: ignore[method-assign]

    is_online = prometheus.PrometheusProvider.is_online

    def counted_is_online(self: prometheus.PrometheusProvider) -> bool:
        health_checks.inc()
        return is_online(self)

    prometheus.PrometheusProvider.is_online = counted_is_online  # type: ignore[method-assign]

    path = os.environ.get(TRACE_ENV)
    if path:
        lock = threading.Lock()
        trace = open(path, "a", buffering=1)  # noqa: SIM115 - open for the process's life
        histogram = telemetry.canary_tick_lateness
        observe = histogram.observe

        def traced(amount: float, exemplar: dict[str, str] | None = None) -> None:
            observe(amount, exemplar)
            with lock:
                trace.write(f"{time.time():.3f} {amount:.6f}\n")

        histogram.observe = traced  # type: ignore[method-assign]


def _allocation_sites(path: str) -> None:
    """SIGUSR2 starts tracemalloc; SIGUSR1 writes the 40 largest live sites to ``path``."""
    import signal  # noqa: PLC0415
    import tracemalloc  # noqa: PLC0415

    signal.signal(signal.SIGUSR2, lambda *_: tracemalloc.start(12))

    def dump(*_: object) -> None:
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(inclusive=False, filename_pattern=tracemalloc.__file__)]
        )
        with open(path, "w") as out:
            stats = snapshot.statistics("traceback")
            out.write(f"total {sum(s.size for s in stats) / 2**20:.1f} MiB traced\n\n")
            for stat in stats[:40]:
                out.write(f"{stat.size / 2**20:8.2f} MiB {stat.count:8d} blocks\n")
                for line in stat.traceback.format(limit=12, most_recent_first=True):
                    out.write(f"    {line}\n")
                out.write("\n")
            out.write("\nby line:\n")
            for stat in snapshot.statistics("lineno")[:40]:
                out.write(f"{stat.size / 2**20:8.2f} MiB {stat.count:8d}  {stat.traceback[0]}\n")

    signal.signal(signal.SIGUSR1, dump)


def _experiments(names: set[str]) -> None:
    """Operator changes proposed in the bench report, tried from the outside.

    (``tick-at-due``, tried here first, is now the operator's own behaviour:
    ``dabba.canary.reconcile._sleep``.)

    ``ensure-on-drift``: a Canary evaluation re-applies the Services and the routing objects
    (``EnsureServices``, ``EnsureRouting``: six reads and maybe writes) only when the router's
    weights could not be read (missing or not ours) instead of on every evaluation.

    ``workers=N``: N reconcile threads instead of ``dabba.deps.WORKERS`` (``Deps.executor``).

    ``quiet-initial-conditions``: no Normal Event for a condition that appears for the first
    time in its good state (``Expired=False``, ``RenewalOverdue=False`` on first issuance);
    a later change of either still gets its Event.
    """

    if "ensure-on-drift" in names:
        _decide_experiments()
    workers = next((int(n.split("=", 1)[1]) for n in names if n.startswith("workers=")), None)
    if workers:
        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

        import dabba.main  # noqa: PLC0415
        from dabba.deps import Deps  # noqa: PLC0415

        def deps(**kwargs: Any) -> Deps:
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dabba")
            return Deps(**kwargs, executor=pool)

        vars(dabba.main)["Deps"] = deps

    if "quiet-initial-conditions" in names:
        from dabba.certs import reconcile as cert_reconcile  # noqa: PLC0415
        from dabba.certs.model import ConditionType  # noqa: PLC0415

        condition_events = cert_reconcile._condition_events

        def quiet(old: Any, new: Any, record: Any) -> None:
            fresh = tuple(
                f"{t}=False"
                for t in (ConditionType.EXPIRED, ConditionType.RENEWAL_OVERDUE)
                if old.condition(t) is None
            )

            def filtered(type_: str, reason: str, message: str) -> None:
                if type_ == "Normal" and message.startswith(fresh):
                    return
                record(type_, reason, message)

            condition_events(old, new, filtered)

        cert_reconcile._condition_events = quiet


def _decide_experiments() -> None:
    """``ensure-on-drift``: post-processes the pure ``decide``."""
    import dataclasses  # noqa: PLC0415

    from dabba.canary import reconcile as canary_reconcile  # noqa: PLC0415
    from dabba.canary import state_machine  # noqa: PLC0415

    decide = state_machine.decide  # what reconcile imported

    def changed_decide(spec: Any, status: Any, obs: Any, now: Any) -> Any:
        decision = decide(spec, status, obs, now)
        if obs.weights is None or status.phase != decision.status.phase:
            return decision
        ensure = (state_machine.EnsureServices, state_machine.EnsureRouting)
        actions = tuple(a for a in decision.actions if not isinstance(a, ensure))
        return dataclasses.replace(decision, actions=actions)

    vars(canary_reconcile)["decide"] = changed_decide


def _trim_on_signal() -> None:
    """SIGUSR2: collect garbage and give free heap back to the OS (glibc ``malloc_trim``), so
    the RSS that remains is what the operator really holds."""
    import ctypes  # noqa: PLC0415
    import gc  # noqa: PLC0415
    import signal  # noqa: PLC0415

    libc = ctypes.CDLL("libc.so.6")

    def trim(*_: object) -> None:
        gc.collect()
        libc.malloc_trim(0)

    signal.signal(signal.SIGUSR2, trim)


def main() -> None:
    memory = os.environ.get(TRACEMALLOC_ENV)
    if memory:
        _allocation_sites(memory)
    else:
        _trim_on_signal()
    install()
    experiments = {e for e in os.environ.get(EXPERIMENT_ENV, "").split(",") if e}
    if experiments:
        _experiments(experiments)
    from dabba.cli.app import main as dabba_main  # noqa: PLC0415

    sys.argv = ["dabba", *sys.argv[1:]]
    dabba_main()


if __name__ == "__main__":
    main()
