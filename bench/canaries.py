"""Canary scenarios: many Canaries progressing at once, and rollback latency."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bench.certs import Context, operated_namespace
from bench.common import (
    GOAL_CANARY_PEAK_RSS,
    GOAL_REQUESTS_PER_TICK,
    GOAL_ROLLBACK_SLACK,
    GOAL_TICK_LATENESS_P99,
    GROUP,
    VERSION,
    Figure,
    Kube,
    Snapshot,
    Watch,
    breakdown,
    custom_objects,
    delta,
    percentile,
    prom_scalar,
    prometheus_query_requests,
    raw,
    run_parallel,
    say,
    writes,
)

PLURAL = "canaries"
NODE_LABEL = "dabba.io/bench-node"
TAINT = "dabba.io/bench"
METRICS = [
    {"name": "request-success-rate", "thresholdRange": {"min": 99}},
    {"name": "request-duration", "thresholdRange": {"max": 500}},
]


# --------------------------------------------------------------------------------------------
# objects


def _annotations(**behaviour: str) -> dict[str, str]:
    return {f"simulator.dabba.io/{k.replace('_', '-')}": v for k, v in behaviour.items()}


def _deployment(name: str, image: str, **behaviour: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": _annotations(**behaviour)},
                "spec": {
                    "containers": [{"name": "app", "image": f"registry.invalid/{image}"}],
                    # The bench's own fake nodes: the shared nodes' 330 pods are not enough.
                    "nodeSelector": {NODE_LABEL: "true"},
                    "tolerations": [{"key": TAINT, "operator": "Exists", "effect": "NoSchedule"}],
                },
            },
        },
    }


def _canary(name: str, interval: int, steps: list[int], threshold: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Canary",
        "metadata": {"name": name},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "router": "istio",
            "service": {"port": 9898},
            "progressDeadlineSeconds": 900,
            "analysis": {
                "interval": f"{interval}s",
                "threshold": threshold,
                "stepWeights": steps,
                "metrics": METRICS,
            },
        },
    }


def _node(name: str, pods: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
            "labels": {
                "type": "kwok",
                NODE_LABEL: "true",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
        "spec": {"taints": [{"key": TAINT, "value": "true", "effect": "NoSchedule"}]},
        "status": {
            "allocatable": {"cpu": "1000", "memory": "4Ti", "pods": str(pods)},
            "capacity": {"cpu": "1000", "memory": "4Ti", "pods": str(pods)},
        },
    }


@contextlib.contextmanager
def bench_node(kube: Kube, pods: int) -> Iterator[str]:
    """A tainted kwok node only the bench's pods go to; deleted afterwards."""
    name = f"dabba-bench-node-{int(time.time()) % 100000}"
    kube.core.create_node(client.V1Node.model_validate(_node(name, pods)))
    try:

        def ready() -> bool:
            node = raw(kube.core.read_node(name, _preload_content=False))
            return any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in node.get("status", {}).get("conditions") or []
            )

        _wait("the bench node to be Ready", ready, 90)
        yield name
    finally:
        with contextlib.suppress(ApiException):
            kube.core.delete_node(name)


def _wait(what: str, check: Any, timeout: float, interval: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _statuses(kube: Kube, namespace: str) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"]: o.get("status") or {}
        for o in custom_objects(kube, namespace, PLURAL)
    }


def _count_phase(kube: Kube, namespace: str, *phases: str, weighted: bool = False) -> int:
    return sum(
        1
        for s in _statuses(kube, namespace).values()
        if s.get("phase") in phases and (not weighted or (s.get("canaryWeight") or 0) > 0)
    )


def _setup(
    kube: Kube,
    namespace: str,
    names: list[str],
    interval: int,
    steps: list[int],
    threshold: int,
    threads: int,
) -> None:
    deployments = {
        name: client.V1Deployment.model_validate(
            _deployment(name, "app:1", rps="200", error_rate="0", latency_ms="20")
        )
        for name in names
    }

    def create(name: str) -> None:
        kube.apps.create_namespaced_deployment(namespace, deployments[name], _preload_content=False)
        kube.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            _canary(name, interval, steps, threshold),
            _preload_content=False,
        )

    run_parallel(threads, names, create)
    _wait(
        f"{len(names)} Canaries Initialized",
        lambda: _count_phase(kube, namespace, "Initialized") == len(names),
        900,
        2.0,
    )


def _release(kube: Kube, namespace: str, names: list[str], threads: int, **behaviour: str) -> None:
    annotations = _annotations(**{"rps": "200", "error_rate": "0", "latency_ms": "20", **behaviour})
    template = {
        "metadata": {"annotations": annotations},
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:2"}]},
    }

    def patch(name: str) -> None:
        kube.apps.patch_namespaced_deployment(
            name, namespace, {"spec": {"template": template}}, _preload_content=False
        )

    run_parallel(threads, names, patch)


def _steps(interval: int, window: int) -> list[int]:
    """Enough strictly increasing weights (5..95) to keep progressing past the window."""
    k = max(2, min(91, math.ceil((window + 120) / interval)))
    return sorted({round(5 + i * 90 / (k - 1)) for i in range(k)})


def _hist_quantile(buckets: dict[float, float], q: float) -> float:
    """histogram_quantile over cumulative bucket counts {le: count}."""
    items = sorted(buckets.items())
    count = items[-1][1] if items else 0.0
    if count <= 0:
        return math.nan
    rank = q * count
    prev_le, prev_c = 0.0, 0.0
    for le, c in items:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-9)
        prev_le, prev_c = le, c
    return prev_le


# --------------------------------------------------------------------------------------------
# 3. scale


@dataclasses.dataclass
class ScaleRun:
    m: int
    interval: int
    before: Snapshot
    after: Snapshot
    prom_before: float
    prom_after: float
    lateness: list[float]
    progressing_min: int
    failed: int
    rss: list[tuple[float, int]]


def _measure_scale(ctx: Context, m: int, interval: int, window: int) -> ScaleRun:
    kube = ctx.kube
    steps = _steps(interval, window)
    ctx.results.sizes["canary_steps"] = len(steps)
    say(f"canary-scale: {m} Canaries, interval {interval}s, {len(steps)} steps, window {window}s")
    names = [f"app-{i}" for i in range(m)]
    with bench_node(kube, 2 * m + 50), operated_namespace(ctx, "canaries") as (ns, op):
        op.sample_rss(2.0)
        t_setup = time.monotonic()
        _setup(kube, ns, names, interval, steps, 5, ctx.threads)
        say(f"canary-scale: all Initialized after {time.monotonic() - t_setup:.0f}s; releasing")
        _release(kube, ns, names, ctx.threads)
        _wait(
            f"{m} Canaries progressing",
            lambda: _count_phase(kube, ns, "Progressing", weighted=True) == m,
            900,
            2.0,
        )
        say(f"canary-scale: all progressing; measuring for {window}s")
        prom_before = prometheus_query_requests(ctx.cluster.prometheus_url)
        before = op.snapshot()
        progressing_min = m
        with op.profiled(ctx.profile("canary-scale")):
            while time.time() - before.at < window:
                time.sleep(5)
                progressing_min = min(progressing_min, _count_phase(kube, ns, "Progressing"))
        after = op.snapshot()
        prom_after = prometheus_query_requests(ctx.cluster.prometheus_url)
        lateness = [v for t, v in op.lateness_trace() if before.at <= t <= after.at]
        failed = _count_phase(kube, ns, "Failed")
        rss = list(op.rss_samples)
    return ScaleRun(
        m, interval, before, after, prom_before, prom_after, lateness, progressing_min, failed, rss
    )


def scale(ctx: Context, m: int, interval: int, window: int) -> None:
    run = _measure_scale(ctx, m, interval, window)
    r, s = ctx.results, "canary-scale"
    b, a = run.before, run.after
    count = "dabba_canary_tick_lateness_seconds_count"
    ticks = a.counter(count) - b.counter(count)
    per = max(ticks, 1)
    mine = delta(a.dabba_requests, b.dabba_requests)
    kopf = delta(a.kopf_requests, b.kopf_requests)
    queries = "dabba_bench_prometheus_queries_total"
    checks = "dabba_bench_prometheus_health_checks_total"
    seconds, cpu = a.at - b.at, a.cpu - b.cpu
    per_tick = (sum(mine.values()) + sum(kopf.values())) / per
    p50, p99 = percentile(run.lateness, 50), percentile(run.lateness, 99)
    hist = delta(
        a.buckets("dabba_canary_tick_lateness_seconds_bucket"),
        b.buckets("dabba_canary_tick_lateness_seconds_bucket"),
    )
    expected = m * seconds / run.interval
    for figure in (
        Figure(s, "canary_ticks_in_window", ticks, "ticks", note=f"{m} Canaries, {seconds:.0f}s"),
        Figure(
            s,
            "canary_ticks_vs_expected",
            ticks / expected,
            "x",
            note="ticks seen / (Canaries x window / interval)",
        ),
        Figure(s, "canary_tick_lateness_p50", p50, "s"),
        Figure(s, "canary_tick_lateness_p99", p99, "s", "<= 1 s", p99 <= GOAL_TICK_LATENESS_P99),
        Figure(
            s,
            "canary_tick_lateness_p99_from_histogram",
            _hist_quantile(hist, 0.99),
            "s",
            note="the operator's histogram buckets, interpolated",
        ),
        Figure(
            s,
            "canary_api_requests_per_tick",
            per_tick,
            "requests",
            f"<= {GOAL_REQUESTS_PER_TICK:.0f}",
            per_tick <= GOAL_REQUESTS_PER_TICK,
        ),
        Figure(s, "canary_api_requests_per_tick_dabba", sum(mine.values()) / per, "requests"),
        Figure(s, "canary_api_requests_per_tick_kopf", sum(kopf.values()) / per, "requests"),
        Figure(s, "canary_api_writes_per_tick", (writes(mine) + writes(kopf)) / per, "requests"),
        Figure(
            s,
            "canary_prometheus_queries_per_tick",
            (a.counter(queries) - b.counter(queries)) / per,
            "queries",
        ),
        Figure(
            s,
            "canary_prometheus_health_checks_per_tick",
            (a.counter(checks) - b.counter(checks)) / per,
            "requests",
            note="GET / before the queries (is_online)",
        ),
        Figure(
            s,
            "canary_prometheus_queries_per_tick_prometheus_side",
            (run.prom_after - run.prom_before) / per,
            "queries",
            note="Prometheus's own counter, every client's queries",
        ),
        Figure(s, "canary_operator_cpu", cpu / seconds * 100, "% of one core"),
        Figure(s, "canary_operator_cpu_per_tick", cpu / per * 1000, "ms"),
        Figure(
            s,
            "canary_operator_peak_rss",
            a.peak_rss / 2**20,
            "MiB",
            "<= 300 MB (286 MiB)",
            a.peak_rss <= GOAL_CANARY_PEAK_RSS,
        ),
        Figure(
            s,
            "canary_min_progressing_in_window",
            run.progressing_min,
            "Canaries",
            f"= {m}",
            run.progressing_min == m,
        ),
        Figure(s, "canary_failed", run.failed, "Canaries", "0", run.failed == 0),
    ):
        r.add(figure)
    r.note(s, f"dabba's requests per tick: {breakdown(mine, per)}")
    r.note(s, f"kopf's requests per tick: {breakdown(kopf, per)}")
    t0 = run.rss[0][0] if run.rss else 0.0
    r.series["canary_scale"] = {
        "lateness": run.lateness,
        "m": m,
        "interval": run.interval,
        "rss": [(t - t0, v / 2**20) for t, v in run.rss],
    }


# --------------------------------------------------------------------------------------------
# 4. rollback latency


def _weights(vs: dict[str, Any]) -> tuple[int, int] | None:
    svc = vs["metadata"]["name"]
    for route in vs.get("spec", {}).get("http") or []:
        if route.get("match"):
            continue
        by_host = {
            d["destination"]["host"].split(".")[0]: int(d.get("weight", 0))
            for d in route.get("route") or []
        }
        return by_host.get(f"{svc}-primary", 0), by_host.get(f"{svc}-canary", 0)
    return None


def _success_rate_queries(ns: str, name: str, interval: int) -> tuple[str, str]:
    sel = (
        f'reporter="destination",destination_workload_namespace="{ns}",'
        f'destination_workload="{name}"'
    )
    requests = f"sum(increase(istio_requests_total{{{sel}}}[{interval}s]))"
    errors = f'sum(increase(istio_requests_total{{{sel},response_code=~"5.."}}[{interval}s]))'
    return requests, errors


class _Rollbacks:
    """The live weights of each VirtualService (a watch) and when each Canary's failing
    samples became visible in Prometheus (polled with the operator's own queries)."""

    def __init__(self, ctx: Context, ns: str, names: list[str], interval: int) -> None:
        self.ctx, self.ns, self.names = ctx, ns, names
        self.timelines: dict[str, list[tuple[float, tuple[int, int] | None]]] = {
            x: [] for x in names
        }
        self.visible: dict[str, float] = {}
        self.queries = {x: _success_rate_queries(ns, x, interval) for x in names}
        self._lock = threading.Lock()
        self._watch = Watch(
            ctx.kube.custom.list_namespaced_custom_object,
            ["networking.istio.io", "v1", ns, "virtualservices"],
            self._on_event,
        )
        self._watch.ready.wait(30)

    def _on_event(self, type_: str, obj: dict[str, Any], now: float) -> None:
        name = obj["metadata"]["name"]
        if type_ != "DELETED" and name in self.timelines:
            with self._lock:
                self.timelines[name].append((now, _weights(obj)))

    def poll(self) -> None:
        url = self.ctx.cluster.prometheus_url
        for x in self.names:
            if x in self.visible:
                continue
            requests_q, errors_q = self.queries[x]
            requests = prom_scalar(url, requests_q) or 0.0
            errors = prom_scalar(url, errors_q) or 0.0
            # The operator's verdict on these numbers: Failed (>= minRequests, < 99 %).
            if requests >= MIN_REQUESTS and 100 * (1 - errors / requests) < SUCCESS_MIN:
                self.visible[x] = time.time()

    def back_at(self, name: str) -> float | None:
        """First time the weights were 100/0 after the failure became visible."""
        seen = self.visible.get(name)
        if seen is None:
            return None
        with self._lock:
            timeline = list(self.timelines[name])
        return next((t for t, w in timeline if t >= seen and w == (100, 0)), None)

    def stop(self) -> None:
        self._watch.stop()


MIN_REQUESTS, SUCCESS_MIN = 20, 99.0


def _measure_rollbacks(
    ctx: Context, n: int, interval: int
) -> tuple[_Rollbacks, dict[str, dict[str, Any]]]:
    kube = ctx.kube
    names = [f"bad-{i}" for i in range(n)]
    with bench_node(kube, 4 * n + 10), operated_namespace(ctx, "rollback") as (ns, _):
        _setup(kube, ns, names, interval, [20, 50], 1, ctx.threads)
        tracker = _Rollbacks(ctx, ns, names, interval)
        try:
            _release(kube, ns, names, ctx.threads, error_rate="0.2")
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                tracker.poll()
                statuses = _statuses(kube, ns)
                if len(tracker.visible) == n and all(
                    statuses.get(x, {}).get("phase") in ("Failed", "Succeeded") for x in names
                ):
                    break
                time.sleep(0.2)
            time.sleep(1)
            statuses = _statuses(kube, ns)
        finally:
            tracker.stop()
    return tracker, statuses


def rollback(ctx: Context, n: int, interval: int) -> None:
    r, s = ctx.results, "rollback"
    say(f"rollback: {n} Canaries (interval {interval}s) given a release with 20 % errors")
    tracker, statuses = _measure_rollbacks(ctx, n, interval)
    latencies, to_tick = [], []
    for x in tracker.names:
        back = tracker.back_at(x)
        if back is None:
            r.note(s, f"{x}: no failure seen, or the weights never returned to 100/0")
            continue
        seen = tracker.visible[x]
        latencies.append(back - seen)
        failed = [
            a
            for a in statuses.get(x, {}).get("lastAnalysis") or []
            if a.get("result") == "Failed" and a.get("time")
        ]
        if failed:
            tick = dt.datetime.fromisoformat(failed[0]["time"].replace("Z", "+00:00"))
            to_tick.append(tick.timestamp() - seen)
    goal = interval + GOAL_ROLLBACK_SLACK
    worst = max(latencies) if latencies else math.nan
    failed_count = sum(1 for x in tracker.names if statuses.get(x, {}).get("phase") == "Failed")
    for figure in (
        Figure(
            s,
            "rollback_latency_max",
            worst,
            "s",
            f"<= interval + 2 s = {goal:.0f} s",
            bool(latencies) and worst <= goal,
            note=f"{len(latencies)} of {n} Canaries",
        ),
        Figure(s, "rollback_latency_median", percentile(latencies, 50), "s"),
        Figure(s, "rollback_latency_vs_interval", worst / interval, "intervals"),
        Figure(
            s, "rollback_failed_canaries", failed_count, "Canaries", f"= {n}", failed_count == n
        ),
    ):
        r.add(figure)
    if to_tick:
        r.note(
            s,
            "visible -> failing tick (status lastAnalysis, whole seconds): "
            + ", ".join(f"{v:.1f}s" for v in to_tick),
        )
    r.series["rollback"] = {"latencies": latencies, "interval": interval}
