"""The operator's own Prometheus series (SPEC §3), served on ``/metrics``.

Names are ``dabba_*``; label values are object coordinates and closed vocabularies (phase,
result, reason), never free text, so cardinality stays bounded by the number of objects.
Series of a deleted object are removed by ``forget_*``.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from dabba.k8s import client as k8s_client

REGISTRY = CollectorRegistry(auto_describe=True)

# -- certificates --------------------------------------------------------------------------
CERT_LABELS = ("namespace", "name")
cert_not_after = Gauge(
    "dabba_certificate_expiration_timestamp_seconds",
    "notAfter of the certificate in the Secret (unix time).",
    CERT_LABELS,
    registry=REGISTRY,
)
cert_not_before = Gauge(
    "dabba_certificate_not_before_timestamp_seconds",
    "notBefore of the certificate in the Secret (unix time).",
    CERT_LABELS,
    registry=REGISTRY,
)
cert_renewal = Gauge(
    "dabba_certificate_renewal_timestamp_seconds",
    "When dabba will renew the certificate (unix time).",
    CERT_LABELS,
    registry=REGISTRY,
)
cert_ready = Gauge(
    "dabba_certificate_ready_status",
    "1 when the certificate's Ready condition is True, else 0.",
    CERT_LABELS,
    registry=REGISTRY,
)
cert_issuances = Counter(
    "dabba_certificate_issuances",
    "Certificates issued, by the trigger that caused the issuance.",
    ("namespace", "name", "reason"),
    registry=REGISTRY,
)
cert_failures = Counter(
    "dabba_certificate_issuance_failures",
    "Failed issuance attempts, by reason.",
    ("namespace", "name", "reason"),
    registry=REGISTRY,
)
issuance_seconds = Histogram(
    "dabba_certificate_issuance_duration_seconds",
    "Time to generate a key, sign and store one certificate.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)

# -- canaries ------------------------------------------------------------------------------
CANARY_LABELS = ("namespace", "name")
canary_weight = Gauge(
    "dabba_canary_weight",
    "Traffic weight of the canary in percent.",
    CANARY_LABELS,
    registry=REGISTRY,
)
canary_phase = Gauge(
    "dabba_canary_phase",
    "1 for the canary's current phase, 0 for the others.",
    ("namespace", "name", "phase"),
    registry=REGISTRY,
)
canary_analysis = Counter(
    "dabba_canary_analysis_results",
    "Metric evaluations, by metric and result (Successful, Failed, Inconclusive, Error).",
    ("namespace", "name", "metric", "result"),
    registry=REGISTRY,
)
canary_metric_value = Gauge(
    "dabba_canary_metric_value",
    "Last measured value of each analysis metric.",
    ("namespace", "name", "metric"),
    registry=REGISTRY,
)
canary_run_seconds = Histogram(
    "dabba_canary_run_duration_seconds",
    "Duration of finished canary runs, by result.",
    ("result",),
    buckets=(30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
    registry=REGISTRY,
)
canary_tick_lateness = Histogram(
    "dabba_canary_tick_lateness_seconds",
    "Actual tick time minus the time it was due.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
    registry=REGISTRY,
)

# -- the operator --------------------------------------------------------------------------
reconcile_errors = Counter(
    "dabba_reconcile_errors",
    "Unexpected errors while reconciling, by kind.",
    ("kind",),
    registry=REGISTRY,
)


api_requests = Counter(
    "dabba_api_requests",
    "Kubernetes API requests made by dabba's own client, by verb and resource (RBAC names). "
    "kopf's requests (watches, finalizers, its progress annotations, Events) are not included.",
    ("verb", "resource"),
    registry=REGISTRY,
)


def count_api_request(verb: str, resource: str) -> None:
    """One API request through ``dabba.k8s.client`` (registered as its request observer)."""
    api_requests.labels(verb, resource).inc()


k8s_client.observe_requests(count_api_request)


def forget_certificate(namespace: str, name: str) -> None:
    """Drop the series of a deleted MeshCertificate."""
    for gauge in (cert_not_after, cert_not_before, cert_renewal, cert_ready):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)


def forget_canary(namespace: str, name: str) -> None:
    """Drop the series of a deleted Canary."""
    with contextlib.suppress(KeyError):
        canary_weight.remove(namespace, name)
    for phase in list(canary_phase._metrics):
        if phase[:2] == (namespace, name):
            with contextlib.suppress(KeyError):
                canary_phase.remove(*phase)
