"""Counters and histograms per flow, exposed in the Istio, Linkerd and Envoy formats.

Counts are floats advanced by ``rps * dt`` each step, so ``increase(x[30s])`` is exactly the
declared rate. Latency is uniform on ``[0, p99 / 0.99]``, which makes the true p99 the declared
one; ``histogram_quantile`` then interpolates within Istio's default buckets.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from simulator.flows import Flow

# Istio's default request-duration buckets (milliseconds), as the sidecar exports them.
BUCKETS_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
OK_CODE, ERROR_CODE = "200", "503"


@dataclass
class _Series:
    ok: float = 0.0
    errors: float = 0.0
    buckets: list[float] = field(default_factory=lambda: [0.0] * len(BUCKETS_MS))
    count: float = 0.0
    sum_ms: float = 0.0


Key = tuple[str, str, int, str]  # namespace, backend Service, port, deployment


class TrafficCollector(Collector):
    """Accumulates flows over time; a prometheus_client collector for all three meshes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[Key, _Series] = {}

    def advance(self, flows: Iterable[Flow], dt: float) -> None:
        """Account ``dt`` seconds of every flow."""
        with self._lock:
            for f in flows:
                key = (f.namespace, f.backend, f.port, f.deployment)
                s = self._series.setdefault(key, _Series())
                n = f.rps * dt
                s.errors += n * f.error_rate
                s.ok += n * (1.0 - f.error_rate)
                top = max(f.latency_ms, 0.001) / 0.99
                for i, le in enumerate(BUCKETS_MS):
                    s.buckets[i] += n * min(le, top) / top
                s.count += n
                s.sum_ms += n * top / 2

    def forget(self, keep: set[tuple[str, str]]) -> None:
        """Drop series of namespaces/deployments that no longer exist (they go stale)."""
        with self._lock:
            for key in [k for k in self._series if (k[0], k[3]) not in keep]:
                del self._series[key]

    def _snapshot(self) -> list[tuple[Key, _Series]]:
        with self._lock:
            return [
                (k, _Series(v.ok, v.errors, list(v.buckets), v.count, v.sum_ms))
                for k, v in self._series.items()
            ]

    def collect(self) -> Iterator[Metric]:
        series = self._snapshot()
        istio = CounterMetricFamily(
            "istio_requests",
            "Requests (Istio format)",
            labels=[
                "reporter",
                "destination_workload_namespace",
                "destination_workload",
                "destination_service",
                "destination_service_name",
                "response_code",
            ],
        )
        istio_h = HistogramMetricFamily(
            "istio_request_duration_milliseconds",
            "Latency (Istio format)",
            labels=[
                "reporter",
                "destination_workload_namespace",
                "destination_workload",
                "destination_service",
                "destination_service_name",
            ],
        )
        linkerd = CounterMetricFamily(
            "response",
            "Responses (Linkerd format)",
            labels=["namespace", "deployment", "direction", "classification", "status_code"],
        )
        linkerd_h = HistogramMetricFamily(
            "response_latency_ms",
            "Latency (Linkerd format)",
            labels=["namespace", "deployment", "direction"],
        )
        # Envoy names this counter without the "_total" suffix prometheus_client would add.
        envoy = Metric("envoy_cluster_upstream_rq", "Requests (Envoy format)", "counter")
        envoy_h = HistogramMetricFamily(
            "envoy_cluster_upstream_rq_time", "Latency (Envoy)", labels=["envoy_cluster_name"]
        )
        for (ns, backend, port, deployment), s in series:
            fqdn = f"{backend}.{ns}.svc.cluster.local"
            buckets = [(str(le), c) for le, c in zip(BUCKETS_MS, s.buckets, strict=True)]
            buckets.append(("+Inf", s.count))
            cluster = f"{ns}_{backend}_{port}"
            for code, value in ((OK_CODE, s.ok), (ERROR_CODE, s.errors)):
                istio.add_metric(["destination", ns, deployment, fqdn, backend, code], value)
                linkerd.add_metric(
                    [
                        ns,
                        deployment,
                        "inbound",
                        "failure" if code == ERROR_CODE else "success",
                        code,
                    ],
                    value,
                )
                envoy.add_sample(
                    "envoy_cluster_upstream_rq",
                    {"envoy_cluster_name": cluster, "envoy_response_code": code},
                    value,
                )
            istio_h.add_metric(["destination", ns, deployment, fqdn, backend], buckets, s.sum_ms)
            linkerd_h.add_metric([ns, deployment, "inbound"], buckets, s.sum_ms)
            envoy_h.add_metric([cluster], buckets, s.sum_ms)
        yield from (istio, istio_h, linkerd, linkerd_h, envoy, envoy_h)
