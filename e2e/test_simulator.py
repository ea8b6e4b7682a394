"""The traffic simulator honours live routing weights, and real Prometheus sees the result."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import pytest
from kubernetes import client

from localcluster import cluster as lc

pytestmark = pytest.mark.e2e


def _value(prometheus: str, promql: str) -> float | None:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback Prometheus
        result = json.load(resp)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _deployment(name: str, app: str, **annotations: str) -> client.V1Deployment:
    labels = {"app": app}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(
                    labels=labels,
                    annotations={
                        f"simulator.dabba.io/{k.replace('_', '-')}": v
                        for k, v in annotations.items()
                    },
                ),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="app", image="registry.invalid/app:1")]
                ),
            ),
        ),
    )


def _service(name: str, app: str) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1ServiceSpec(selector={"app": app}, ports=[client.V1ServicePort(port=9898)]),
    )


def _vs(primary: int, canary: int) -> dict[str, object]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "web"},
        "spec": {
            "hosts": ["web"],
            "http": [
                {
                    "route": [
                        {"destination": {"host": "web-primary"}, "weight": primary},
                        {"destination": {"host": "web-canary"}, "weight": canary},
                    ]
                }
            ],
        },
    }


def test_canary_share_and_errors_follow_the_virtualservice(
    cluster: lc.Cluster, k8s_api: client.ApiClient, namespace: str
) -> None:
    apps, core = client.AppsV1Api(k8s_api), client.CoreV1Api(k8s_api)
    custom = client.CustomObjectsApi(k8s_api)
    apps.create_namespaced_deployment(
        namespace, _deployment("web-primary", "web-primary", rps="40")
    )
    apps.create_namespaced_deployment(
        namespace, _deployment("web", "web", rps="40", error_rate="0.25")
    )
    for name, app in (
        ("web", "web-primary"),
        ("web-primary", "web-primary"),
        ("web-canary", "web"),
    ):
        core.create_namespaced_service(namespace, _service(name, app))
    custom.create_namespaced_custom_object(
        "networking.istio.io", "v1", namespace, "virtualservices", _vs(75, 25)
    )

    def rate(workload: str, extra: str = "") -> float | None:
        return _value(
            cluster.prometheus_url,
            (
                f'sum(rate(istio_requests_total{{reporter="destination",'
                f'destination_workload_namespace="{namespace}",'
                f'destination_workload="{workload}"{extra}}}[5s]))'
            ),
        )

    def close(workload: str, expected: float, extra: str = "") -> bool:
        got = rate(workload, extra)
        return got is not None and abs(got - expected) <= 0.15 * expected

    lc.wait_for("canary at 25 % of 40 rps", lambda: close("web", 10), timeout=60)
    assert close("web-primary", 30)
    assert close("web", 2.5, ',response_code=~"5.."')

    custom.patch_namespaced_custom_object(
        "networking.istio.io", "v1", namespace, "virtualservices", "web", _vs(0, 100)
    )
    lc.wait_for("all traffic on the canary", lambda: close("web", 40), timeout=60)
    lc.wait_for("primary drained", lambda: (rate("web-primary") or 0) < 1, timeout=60)
