"""The traffic simulator routes like a mesh: weights, header cohorts, selectors, readiness."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.exporter import TrafficCollector
from simulator.flows import Flow, Snapshot, behaviour, flows

NS = "shop"


def deployment(name: str, app: str, ready: int = 1, **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": NS, "name": name},
        "spec": {
            "template": {
                "metadata": {
                    "labels": {"app": app},
                    "annotations": {
                        f"simulator.dabba.io/{k.replace('_', '-')}": v
                        for k, v in annotations.items()
                    },
                }
            }
        },
        "status": {"readyReplicas": ready},
    }


def service(name: str, app: str, port: int = 9898) -> dict[str, Any]:
    return {
        "metadata": {"namespace": NS, "name": name},
        "spec": {"selector": {"app": app}, "ports": [{"port": port}]},
    }


def virtualservice(primary: int, canary: int, *, cohort: bool = False) -> dict[str, Any]:
    http: list[dict[str, Any]] = []
    if cohort:
        http.append(
            {
                "match": [{"headers": {"x-canary": {"exact": "1"}}}],
                "route": [{"destination": {"host": "web-canary"}}],
            }
        )
    http.append(
        {
            "route": [
                {"destination": {"host": "web-primary"}, "weight": primary},
                {"destination": {"host": f"web-canary.{NS}.svc.cluster.local"}, "weight": canary},
            ]
        }
    )
    return {"metadata": {"namespace": NS, "name": "web"}, "spec": {"http": http}}


def httproute(primary: int, canary: int) -> dict[str, Any]:
    return {
        "metadata": {"namespace": NS, "name": "web"},
        "spec": {
            "rules": [
                {
                    "backendRefs": [
                        {"name": "web-primary", "port": 9898, "weight": primary},
                        {"name": "web-canary", "port": 9898, "weight": canary},
                    ]
                }
            ]
        },
    }


def canary_setup(**canary_annotations: str) -> dict[str, Any]:
    return {
        "deployments": [
            deployment("web-primary", "web-primary"),
            deployment("web", "web", **canary_annotations),
        ],
        "services": [
            service("web", "web-primary"),
            service("web-primary", "web-primary"),
            service("web-canary", "web"),
        ],
    }


def by_deployment(fs: list[Flow]) -> dict[str, float]:
    out: dict[str, float] = {}
    for f in fs:
        out[f.deployment] = out.get(f.deployment, 0) + f.rps
    return out


@pytest.mark.parametrize("router", ["istio", "gatewayapi"])
@pytest.mark.parametrize(("primary", "canary"), [(100, 0), (90, 10), (50, 50), (0, 100)])
def test_weights_split_the_service_rate(router: str, primary: int, canary: int) -> None:
    route = virtualservice(primary, canary) if router == "istio" else httproute(primary, canary)
    key = "virtualservices" if router == "istio" else "httproutes"
    fs = flows(Snapshot(**canary_setup(), **{key: [route]}))
    got = by_deployment(fs)
    assert got.get("web-primary", 0) == pytest.approx(50 * primary / 100)
    assert got.get("web", 0) == pytest.approx(50 * canary / 100)
    assert {f.service for f in fs} <= {"web"}


def test_header_cohort_always_reaches_the_canary() -> None:
    fs = flows(
        Snapshot(
            **canary_setup(header_rps="7"), virtualservices=[virtualservice(100, 0, cohort=True)]
        )
    )
    assert by_deployment(fs) == {"web-primary": 50, "web": 7}


def test_unready_version_receives_nothing() -> None:
    setup = canary_setup()
    setup["deployments"][1]["status"]["readyReplicas"] = 0
    fs = flows(Snapshot(**setup, virtualservices=[virtualservice(50, 50)]))
    assert by_deployment(fs) == {"web-primary": 25}


def test_plain_service_sends_everything_to_its_selector_and_skips_backend_services() -> None:
    fs = flows(Snapshot(**canary_setup()))  # no routing object: the kubernetes router
    assert by_deployment(fs) == {"web-primary": 50}
    assert {f.backend for f in fs} == {"web"}


def test_selector_matching_two_deployments_splits_by_ready_replicas() -> None:
    snap = Snapshot(
        deployments=[deployment("a", "x", ready=3), deployment("b", "x", ready=1)],
        services=[service("x", "x")],
    )
    assert by_deployment(flows(snap)) == {"a": 37.5, "b": 12.5}


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        pytest.param(
            {}, {"error-rate": 0, "latency-ms": 20, "rps": 50, "header-rps": 5}, id="defaults"
        ),
        pytest.param(
            {"error_rate": "0.1", "latency_ms": "100", "rps": "0"},
            {"error-rate": 0.1, "latency-ms": 100, "rps": 0, "header-rps": 5},
            id="declared behaviour",
        ),
        pytest.param(
            {"error_rate": "7"},
            {"error-rate": 1, "latency-ms": 20, "rps": 50, "header-rps": 5},
            id="error rate capped at 1",
        ),
        pytest.param(
            {"rps": "lots", "latency_ms": "-5"},
            {"error-rate": 0, "latency-ms": 20, "rps": 50, "header-rps": 5},
            id="garbage ignored",
        ),
    ],
)
def test_behaviour_annotations(annotations: dict[str, str], expected: dict[str, float]) -> None:
    assert behaviour(deployment("d", "d", **annotations)) == expected


def test_collector_counts_errors_and_a_p99_histogram() -> None:
    c = TrafficCollector()
    c.advance([Flow(NS, "web", "web-canary", 9898, "web", 10, 0.1, 99.0)], 10)
    families = {m.name: m for m in c.collect()}
    istio = {
        s.labels["response_code"]: s.value
        for s in families["istio_requests"].samples
        if s.name.endswith("_total")
    }
    assert istio == {"200": pytest.approx(90), "503": pytest.approx(10)}
    buckets = {
        s.labels["le"]: s.value
        for s in families["istio_request_duration_milliseconds"].samples
        if s.name.endswith("_bucket")
    }
    # Uniform on [0, 100]: 99 % of requests at or below 99 ms, all below 250.
    assert buckets["100"] == pytest.approx(100)
    assert buckets["50"] == pytest.approx(50)
    assert buckets["+Inf"] == pytest.approx(100)
    linkerd = {
        s.labels["classification"]: s.value
        for s in families["response"].samples
        if s.name.endswith("_total")
    }
    assert linkerd == {"success": pytest.approx(90), "failure": pytest.approx(10)}
    envoy = {s.labels["envoy_cluster_name"] for s in families["envoy_cluster_upstream_rq"].samples}
    assert envoy == {f"{NS}_web-canary_9898"}
