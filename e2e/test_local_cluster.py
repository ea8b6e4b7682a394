"""The local control plane behaves like a real cluster: nodes, Deployments, CRDs, Prometheus."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localcluster import cluster as lc

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.local_only("checks the local control plane itself (kwok nodes, loopback scrape)"),
]


def test_nodes_are_ready(k8s_api: client.ApiClient) -> None:
    nodes = client.CoreV1Api(k8s_api).list_node().items
    ready = [
        n.metadata.name
        for n in nodes
        if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
    ]
    assert len(ready) >= lc.NODE_COUNT, ready


def test_deployment_of_three_replicas_becomes_available_within_60s(
    k8s_api: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(k8s_api)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(
                replicas=3,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        containers=[client.V1Container(name="web", image="registry.invalid/web:1")]
                    ),
                ),
            ),
        ),
    )
    start = time.monotonic()
    lc.wait_for(
        "3/3 available replicas",
        lambda: (
            (
                apps.read_namespaced_deployment_status("web", namespace).status.available_replicas
                or 0
            )
            == 3
        ),
        timeout=60,
    )
    pods = client.CoreV1Api(k8s_api).list_namespaced_pod(namespace).items
    assert len(pods) == 3
    assert all(p.status.phase == "Running" and p.spec.node_name for p in pods)
    print(f"deployment available after {time.monotonic() - start:.1f}s")


def test_istio_and_gateway_api_schemas_are_enforced(
    k8s_api: client.ApiClient, namespace: str
) -> None:
    custom = client.CustomObjectsApi(k8s_api)
    vs = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "podinfo"},
        "spec": {
            "hosts": ["podinfo"],
            "http": [
                {
                    "route": [
                        {"destination": {"host": "podinfo-primary"}, "weight": 90},
                        {"destination": {"host": "podinfo-canary"}, "weight": 10},
                    ]
                }
            ],
        },
    }
    custom.create_namespaced_custom_object(
        "networking.istio.io", "v1", namespace, "virtualservices", vs
    )
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "podinfo"},
        "spec": {
            "rules": [
                {
                    "backendRefs": [
                        {"name": "podinfo-primary", "port": 9898, "weight": 100},
                        {"name": "podinfo-canary", "port": 9898, "weight": 0},
                    ]
                }
            ]
        },
    }
    custom.create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes", route
    )
    bad = json.loads(json.dumps(route))
    bad["metadata"]["name"] = "bad"
    bad["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", namespace, "httproutes", bad
        )
    assert exc.value.status == 422
    assert "weight" in exc.value.body


class _Exporter(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def exporter(cluster: lc.Cluster) -> Iterator[str]:
    marker = uuid.uuid4().hex[:8]
    handler = type(
        "H", (_Exporter,), {"body": f'dabba_e2e_probe{{marker="{marker}"}} 42\n'.encode()}
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    name = f"probe-{marker}"
    cluster.register_scrape_target(name, f"127.0.0.1:{server.server_address[1]}")
    yield marker
    cluster.unregister_scrape_target(name)
    server.shutdown()
    server.server_close()


def _query(prometheus: str, promql: str) -> list[dict[str, object]]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback Prometheus
        doc = json.load(resp)
    assert doc["status"] == "success"
    result: list[dict[str, object]] = doc["data"]["result"]
    return result


def test_prometheus_scrapes_a_registered_target(cluster: lc.Cluster, exporter: str) -> None:
    promql = f'dabba_e2e_probe{{marker="{exporter}"}}'
    lc.wait_for(
        "Prometheus to scrape the probe",
        lambda: bool(_query(cluster.prometheus_url, promql)),
        timeout=30,
    )
    sample = _query(cluster.prometheus_url, promql)[0]
    assert sample["value"][1] == "42"  # type: ignore[index]
