"""Canary end to end: real API server, real Prometheus, the traffic simulator as data plane.

Every release is a real change of the target's pod template; how the new version behaves is
declared on it (``simulator.dabba.io/*``), the simulator turns the live routing weights into
request series, Prometheus scrapes them every second, and dabba judges them. Intervals are
5 s (the minimum) so a run takes tens of seconds.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

from e2ekit import Operator, custom, events_for
from localcluster import cluster as lc
from localcluster import external

pytestmark = pytest.mark.e2e

GROUP, VERSION, PLURAL = "dabba.io", "v1alpha1", "canaries"
INTERVAL = 5
BUILTINS = [
    {"name": "request-success-rate", "thresholdRange": {"min": 99}},
    {"name": "request-duration", "thresholdRange": {"max": 500}},
]


# --------------------------------------------------------------------------------------------
# helpers


def deployment(
    name: str, *, replicas: int = 2, image: str = "podinfo:1", **behaviour: str
) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels, annotations=_annotations(behaviour)),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="app", image=f"registry.invalid/{image}")]
                ),
            ),
        ),
    )


def _annotations(behaviour: dict[str, str]) -> dict[str, str]:
    return {f"simulator.dabba.io/{k.replace('_', '-')}": v for k, v in behaviour.items()}


def canary_body(name: str, router: str, **analysis: Any) -> dict[str, Any]:
    spec_analysis: dict[str, Any] = {
        "interval": f"{INTERVAL}s",
        "threshold": 1,
        "metrics": BUILTINS,
    }
    if router != "kubernetes":
        spec_analysis["stepWeights"] = [20, 50]
    spec_analysis.update(analysis)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Canary",
        "metadata": {"name": name},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "router": router,
            "service": {"port": 9898},
            "progressDeadlineSeconds": 60,
            "analysis": spec_analysis,
        },
    }


def get(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = custom(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return obj


def status(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return dict(get(api, namespace, name).get("status") or {})


def wait_phase(
    api: client.ApiClient, namespace: str, name: str, *phases: str, timeout: float = 120
) -> dict[str, Any]:
    lc.wait_for(
        f"Canary {name} in {'/'.join(phases)}",
        lambda: status(api, namespace, name).get("phase") in phases,
        timeout,
        on_fail=lambda: json.dumps(status(api, namespace, name), indent=1)[-3000:],
    )
    return status(api, namespace, name)


def release(api: client.ApiClient, namespace: str, name: str, image: str, **behaviour: str) -> None:
    """A new revision: a new image, and how the simulator should make it behave.

    Returns once the Canary has picked the revision up, so a following wait for a final
    phase cannot see the previous run's.
    """
    before = status(api, namespace, name).get("revision")
    annotations = _annotations({"error_rate": "0", "latency_ms": "20", "rps": "50", **behaviour})
    template = {
        "metadata": {"annotations": annotations},
        "spec": {"containers": [{"name": "app", "image": f"registry.invalid/{image}"}]},
    }
    client.AppsV1Api(api).patch_namespaced_deployment(
        name, namespace, {"spec": {"template": template}}
    )
    lc.wait_for(
        f"Canary {name} to pick up {image}",
        lambda: status(api, namespace, name).get("revision") not in (None, before),
        30,
    )


def live_weights(
    api: client.ApiClient, router: str, namespace: str, svc: str
) -> tuple[int, int] | None:
    """(primary, canary) as the routing object says now."""
    c = custom(api)
    try:
        if router == "istio":
            vs = c.get_namespaced_custom_object(
                "networking.istio.io", "v1", namespace, "virtualservices", svc
            )
            route = next(r for r in vs["spec"]["http"] if not r.get("match"))["route"]
            by_host = {d["destination"]["host"].split(".")[0]: d.get("weight", 0) for d in route}
            return by_host.get(f"{svc}-primary", 0), by_host.get(f"{svc}-canary", 0)
        if router == "gatewayapi":
            rt = c.get_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", namespace, "httproutes", svc
            )
            rule = [
                r
                for r in rt["spec"]["rules"]
                if not r.get("matches") or not any(m.get("headers") for m in r["matches"])
            ][-1]
            by_name = {b["name"]: b.get("weight", 1) for b in rule["backendRefs"]}
            return by_name.get(f"{svc}-primary", 0), by_name.get(f"{svc}-canary", 0)
        sel = client.CoreV1Api(api).read_namespaced_service(svc, namespace).spec.selector
        return (100, 0) if sel.get("app") == f"{svc}-primary" else (0, 100)
    except client.exceptions.ApiException:
        return None


def primary_image(api: client.ApiClient, namespace: str, name: str) -> str:
    dep = client.AppsV1Api(api).read_namespaced_deployment(f"{name}-primary", namespace)
    return str(dep.spec.template.spec.containers[0].image)


def replicas(api: client.ApiClient, namespace: str, name: str) -> int:
    return int(client.AppsV1Api(api).read_namespaced_deployment(name, namespace).spec.replicas)


def start(api: client.ApiClient, namespace: str, name: str, router: str, **analysis: Any) -> None:
    """Target + Canary, then wait until the primary serves and the canary is idle."""
    client.AppsV1Api(api).create_namespaced_deployment(namespace, deployment(name))
    custom(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, canary_body(name, router, **analysis)
    )
    wait_phase(api, namespace, name, "Initialized", timeout=60)


class Watcher:
    """Polls the live weights in the background: what the data plane saw, in order."""

    def __init__(self, api: client.ApiClient, router: str, namespace: str, svc: str) -> None:
        self.seen: list[tuple[float, tuple[int, int] | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(api, router, namespace, svc), daemon=True
        )
        self._thread.start()

    def _run(self, api: client.ApiClient, router: str, namespace: str, svc: str) -> None:
        while not self._stop.wait(0.25):
            w = live_weights(api, router, namespace, svc)
            if not self.seen or self.seen[-1][1] != w:
                self.seen.append((time.time(), w))

    def stop(self) -> list[tuple[float, tuple[int, int] | None]]:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.seen


# --------------------------------------------------------------------------------------------
# good and bad releases on each router


@pytest.mark.parametrize("router", ["istio", "gatewayapi", "kubernetes"])
def test_good_release_promotes_and_bad_release_rolls_back(
    k8s_api: client.ApiClient, namespace: str, operator: Operator, router: str
) -> None:
    name = "podinfo"
    start(k8s_api, namespace, name, router)
    assert live_weights(k8s_api, router, namespace, name) == (100, 0)
    assert replicas(k8s_api, namespace, name) == 0, "the target idles at 0 replicas"

    # Good release.
    watch = Watcher(k8s_api, router, namespace, name)
    release(k8s_api, namespace, name, "podinfo:2")
    final = wait_phase(k8s_api, namespace, name, "Succeeded", "Failed")
    seen = [w for _, w in watch.stop() if w is not None]
    assert final["phase"] == "Succeeded", json.dumps(final.get("lastAnalysis"), indent=1)
    assert primary_image(k8s_api, namespace, name).endswith("podinfo:2")
    assert live_weights(k8s_api, router, namespace, name) == (100, 0)
    lc.wait_for("the target scaled to 0", lambda: replicas(k8s_api, namespace, name) == 0, 30)
    expected = [(80, 20), (50, 50)] if router != "kubernetes" else [(0, 100)]
    for split in expected:
        assert split in seen, f"{split} never served: {seen}"
    assert final["lastPromotedRevision"] == final["revision"]

    # Bad release: 10 % errors.
    watch = Watcher(k8s_api, router, namespace, name)
    release(k8s_api, namespace, name, "podinfo:3", error_rate="0.1")
    final = wait_phase(k8s_api, namespace, name, "Failed", "Succeeded")
    timeline = watch.stop()
    assert final["phase"] == "Failed"
    assert primary_image(k8s_api, namespace, name).endswith("podinfo:2"), "primary untouched"
    assert live_weights(k8s_api, router, namespace, name) == (100, 0)
    failed = [a for a in final["lastAnalysis"] if a["result"] == "Failed"]
    assert any(a["metric"] == "request-success-rate" for a in failed), final["lastAnalysis"]
    value = next(a["value"] for a in failed if a["metric"] == "request-success-rate")
    assert 80 < value < 97, value  # about 90 % success
    # Rollback within one interval + 2 s of the failing tick.
    tick = max(lc_time(a["time"]) for a in failed)
    back = next((t for t, w in timeline if w == (100, 0) and t >= tick - 1), None)
    assert back is not None, timeline
    assert back - tick <= INTERVAL + 2, (back - tick, timeline)
    reasons = [e["reason"] for e in events_for(k8s_api, namespace, name)]
    assert any("Roll" in r or "Fail" in r for r in reasons), reasons
    assert any(
        "request-success-rate" in e["message"] for e in events_for(k8s_api, namespace, name)
    ), "an Event names the metric"


def lc_time(value: str) -> float:
    import datetime as dt  # noqa: PLC0415

    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# --------------------------------------------------------------------------------------------
# analysis


def test_latency_regression_fails_and_a_slightly_noisier_canary_is_kept(
    k8s_api: client.ApiClient, namespace: str, operator: Operator
) -> None:
    name = "api"
    start(
        k8s_api,
        namespace,
        name,
        "istio",
        metrics=[
            {"name": "latency-vs-primary", "maxRatio": 1.5},
            {"name": "error-rate-vs-primary", "confidence": 0.95, "tolerance": 1.0},
        ],
    )
    release(k8s_api, namespace, name, "api:2", latency_ms="100")  # 5x the primary's 20 ms
    final = wait_phase(k8s_api, namespace, name, "Failed", "Succeeded")
    assert final["phase"] == "Failed"
    failed = {a["metric"] for a in final["lastAnalysis"] if a["result"] == "Failed"}
    assert failed == {"latency-vs-primary"}, final["lastAnalysis"]

    # 0.5 % errors where the primary has none: worse, but within the 1-point tolerance.
    release(k8s_api, namespace, name, "api:3", error_rate="0.005")
    final = wait_phase(k8s_api, namespace, name, "Succeeded", "Failed")
    assert final["phase"] == "Succeeded", final["lastAnalysis"]


def test_zero_traffic_is_inconclusive_holds_and_then_fails(
    k8s_api: client.ApiClient, namespace: str, operator: Operator
) -> None:
    name = "quiet"
    start(k8s_api, namespace, name, "istio", maxInconclusive=3)
    watch = Watcher(k8s_api, "istio", namespace, name)
    release(k8s_api, namespace, name, "quiet:2", rps="0")
    final = wait_phase(k8s_api, namespace, name, "Failed", "Succeeded")
    seen = [w for _, w in watch.stop() if w is not None]
    assert final["phase"] == "Failed"
    assert (50, 50) not in seen, "inconclusive ticks must never advance the weight"
    assert final.get("lastPromotedRevision") != final["revision"]
    assert {a["result"] for a in final["lastAnalysis"]} == {"Inconclusive"}


class _Proxy:
    """An HTTP proxy to Prometheus that the test can pull the plug on (loopback locally)."""

    def __init__(self, upstream: str) -> None:
        up = upstream

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with urllib.request.urlopen(up + self.path, timeout=10) as resp:  # noqa: S310
                    body = resp.read()
                    self.send_response(resp.status)
                    self.send_header("Content-Type", resp.headers["Content-Type"])
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer((external.bind_address(), 0), Handler)
        self.url = f"http://{external.host_address()}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(cluster: lc.Cluster) -> Iterator[_Proxy]:
    p = _Proxy(cluster.prometheus_url)
    yield p
    p.stop()


def test_prometheus_outage_never_promotes_and_rolls_back(
    k8s_api: client.ApiClient, namespace: str, operator: Operator, proxy: _Proxy
) -> None:
    name = "outage"
    client.AppsV1Api(k8s_api).create_namespaced_deployment(namespace, deployment(name))
    body = canary_body(name, "istio", stepWeights=[10, 20, 30, 40, 50])
    body["spec"]["metricsServer"] = proxy.url
    custom(k8s_api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    wait_phase(k8s_api, namespace, name, "Initialized", timeout=60)
    release(k8s_api, namespace, name, "outage:2")
    lc.wait_for(
        "a first passing tick",
        lambda: status(k8s_api, namespace, name).get("canaryWeight", 0) >= 20,
        60,
    )
    proxy.stop()  # Prometheus becomes unreachable mid-run
    final = wait_phase(k8s_api, namespace, name, "Failed", "Succeeded", timeout=90)
    assert final["phase"] == "Failed"
    assert any(a["result"] == "Error" for a in final["lastAnalysis"]), final["lastAnalysis"]
    assert final.get("lastPromotedRevision") != final["revision"]
    assert live_weights(k8s_api, "istio", namespace, name) == (100, 0)


# --------------------------------------------------------------------------------------------
# restarts, new revisions, deadlines


def test_operator_killed_mid_run_resumes_at_the_same_step(
    k8s_api: client.ApiClient, namespace: str, operator: Operator
) -> None:
    name = "steady"
    start(k8s_api, namespace, name, "istio", stepWeights=[10, 20, 30, 40, 50])
    watch = Watcher(k8s_api, "istio", namespace, name)
    release(k8s_api, namespace, name, "steady:2")
    lc.wait_for("weight 30", lambda: status(k8s_api, namespace, name).get("canaryWeight") == 30, 90)
    operator.kill()
    before = status(k8s_api, namespace, name)
    assert before["phase"] == "Progressing"
    operator.start()
    lc.wait_for("the operator back", operator.healthy, 60)
    final = wait_phase(k8s_api, namespace, name, "Succeeded", "Failed")
    seen = [w[1] for _, w in watch.stop() if w is not None]
    assert final["phase"] == "Succeeded"
    # The canary weight only ever went up during the run, each step served once.
    run = seen[seen.index(10) :] if 10 in seen else seen
    steps = [w for w in run if w > 0]
    assert steps == sorted(steps), seen
    assert steps == sorted(set(steps)), f"a step repeated: {seen}"
    promoted = [
        e
        for e in events_for(k8s_api, namespace, name)
        if "promot" in e["message"].lower() and e["reason"] != "Progressing"
    ]
    assert promoted, "a promotion event"
    assert primary_image(k8s_api, namespace, name).endswith("steady:2")


def test_new_revision_mid_run_restarts_the_analysis(
    k8s_api: client.ApiClient, namespace: str, operator: Operator
) -> None:
    name = "hasty"
    start(k8s_api, namespace, name, "istio", stepWeights=[10, 20, 30, 40, 50])
    release(k8s_api, namespace, name, "hasty:2")
    lc.wait_for("weight 30", lambda: status(k8s_api, namespace, name).get("canaryWeight") == 30, 90)
    first = status(k8s_api, namespace, name)["revision"]
    release(k8s_api, namespace, name, "hasty:3")
    lc.wait_for(
        "analysis restarted at the first step",
        lambda: (
            (s := status(k8s_api, namespace, name))["revision"] != first
            and s.get("canaryWeight") in (0, 10)
        ),
        30,
    )
    final = wait_phase(k8s_api, namespace, name, "Succeeded", "Failed")
    assert final["phase"] == "Succeeded"
    assert final["revision"] != first
    assert primary_image(k8s_api, namespace, name).endswith("hasty:3")


def test_canary_that_never_becomes_ready_fails_at_the_deadline(
    k8s_api: client.ApiClient, namespace: str, operator: Operator
) -> None:
    name = "stuck"
    client.AppsV1Api(k8s_api).create_namespaced_deployment(namespace, deployment(name))
    body = canary_body(name, "istio")
    body["spec"]["progressDeadlineSeconds"] = 15
    custom(k8s_api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    wait_phase(k8s_api, namespace, name, "Initialized", timeout=60)
    # A node selector no node has: the new pods stay Pending, never Ready.
    client.AppsV1Api(k8s_api).patch_namespaced_deployment(
        name,
        namespace,
        {"spec": {"template": {"spec": {"nodeSelector": {"dabba.io/no-such-node": "true"}}}}},
    )
    started = time.time()
    final = wait_phase(k8s_api, namespace, name, "Failed", "Succeeded", timeout=90)
    assert final["phase"] == "Failed"
    assert time.time() - started >= 15 - 2
    assert live_weights(k8s_api, "istio", namespace, name) == (100, 0)
    messages = " ".join(e["message"] for e in events_for(k8s_api, namespace, name))
    assert "ready" in messages.lower(), messages


# --------------------------------------------------------------------------------------------
# gates and manual control


class _Gate:
    def __init__(self) -> None:
        self.open = False
        self.calls = 0
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                gate.calls += 1
                length = int(self.headers.get("Content-Length", 0))
                self.rfile.read(length)
                self.send_response(200 if gate.open else 403)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer((external.bind_address(), 0), Handler)
        self.url = f"http://{external.host_address()}:{self.server.server_address[1]}/gate"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_confirm_promotion_gate_holds_until_it_answers_2xx(
    k8s_api: client.ApiClient, namespace: str, operator: Operator
) -> None:
    gate = _Gate()
    try:
        name = "gated"
        start(
            k8s_api,
            namespace,
            name,
            "istio",
            webhooks=[
                {"name": "approve", "type": "confirm-promotion", "url": gate.url, "timeout": "2s"}
            ],
        )
        release(k8s_api, namespace, name, "gated:2")
        wait_phase(k8s_api, namespace, name, "WaitingPromotion")
        calls = gate.calls
        lc.wait_for("the gate asked again", lambda: gate.calls > calls, 30)
        assert status(k8s_api, namespace, name)["phase"] == "WaitingPromotion"
        assert primary_image(k8s_api, namespace, name).endswith("podinfo:1")
        gate.open = True
        final = wait_phase(k8s_api, namespace, name, "Succeeded", "Failed")
        assert final["phase"] == "Succeeded"
        assert primary_image(k8s_api, namespace, name).endswith("gated:2")
    finally:
        gate.server.shutdown()
        gate.server.server_close()


def test_abort_rolls_back_at_once(
    k8s_api: client.ApiClient, namespace: str, operator: Operator
) -> None:
    name = "aborted"
    start(k8s_api, namespace, name, "istio", stepWeights=[10, 20, 30, 40, 50])
    release(k8s_api, namespace, name, "aborted:2")
    lc.wait_for(
        "weight 20", lambda: status(k8s_api, namespace, name).get("canaryWeight", 0) >= 20, 90
    )
    asked = time.time()
    custom(k8s_api).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        name,
        {"metadata": {"annotations": {"dabba.io/abort": "2026-01-01T00:00:00Z"}}},
    )
    final = wait_phase(k8s_api, namespace, name, "Failed", timeout=15)
    assert time.time() - asked < 10
    assert live_weights(k8s_api, "istio", namespace, name) == (100, 0)
    assert primary_image(k8s_api, namespace, name).endswith("podinfo:1")
    assert final.get("lastFailedRevision") == final["revision"]


# --------------------------------------------------------------------------------------------
# HPA, adoption and deletion


def test_hpa_is_mirrored_for_the_primary(
    k8s_api: client.ApiClient, namespace: str, operator: Operator
) -> None:
    name = "scaled"
    client.AppsV1Api(k8s_api).create_namespaced_deployment(namespace, deployment(name))
    client.AutoscalingV2Api(k8s_api).create_namespaced_horizontal_pod_autoscaler(
        namespace,
        client.V2HorizontalPodAutoscaler(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V2HorizontalPodAutoscalerSpec(
                scale_target_ref=client.V2CrossVersionObjectReference(
                    api_version="apps/v1", kind="Deployment", name=name
                ),
                min_replicas=2,
                max_replicas=5,
            ),
        ),
    )
    custom(k8s_api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, canary_body(name, "istio")
    )
    wait_phase(k8s_api, namespace, name, "Initialized", timeout=60)
    hpa = client.AutoscalingV2Api(k8s_api).read_namespaced_horizontal_pod_autoscaler(
        f"{name}-primary", namespace
    )
    assert hpa.spec.scale_target_ref.name == f"{name}-primary"
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (2, 5)


def test_deleting_with_revert_restores_the_users_routing_and_scale(
    k8s_api: client.ApiClient, namespace: str, operator: Operator
) -> None:
    name = "adopted"
    original = {
        "hosts": [name],
        "http": [{"timeout": "3s", "route": [{"destination": {"host": name}}]}],
    }
    custom(k8s_api).create_namespaced_custom_object(
        "networking.istio.io",
        "v1",
        namespace,
        "virtualservices",
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": name},
            "spec": original,
        },
    )
    client.AppsV1Api(k8s_api).create_namespaced_deployment(namespace, deployment(name))
    client.CoreV1Api(k8s_api).create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1ServiceSpec(
                selector={"app": name}, ports=[client.V1ServicePort(port=9898)]
            ),
        ),
    )
    body = canary_body(name, "istio")
    body["spec"]["revertOnDeletion"] = True
    custom(k8s_api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    wait_phase(k8s_api, namespace, name, "Initialized", timeout=60)
    assert replicas(k8s_api, namespace, name) == 0
    assert live_weights(k8s_api, "istio", namespace, name) == (100, 0)

    custom(k8s_api).delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def gone() -> bool:
        try:
            get(k8s_api, namespace, name)
        except client.exceptions.ApiException as exc:
            return exc.status == 404
        return False

    lc.wait_for("the Canary to be gone", gone, 30)
    vs = custom(k8s_api).get_namespaced_custom_object(
        "networking.istio.io", "v1", namespace, "virtualservices", name
    )
    assert vs["spec"] == original, "the adopted VirtualService is given back as it was"
    assert replicas(k8s_api, namespace, name) == 2, "the target serves again"
    selector = client.CoreV1Api(k8s_api).read_namespaced_service(name, namespace).spec.selector
    assert selector == {"app": name}, "the apex Service selects the user's pods again"
