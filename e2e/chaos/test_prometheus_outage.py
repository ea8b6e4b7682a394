"""Prometheus goes away during runs: never a promotion while it is down; a short outage is
ridden out and the run resumes cleanly, a long one fails the run after the error limit.

Each Canary reads Prometheus through its own loopback proxy (``spec.metricsServer``) that the
test switches off and on: while off, every request is answered by closing the connection.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kubernetes import client

from chaos.kit import GROUP, MARKS, VERSION, canary
from chaos.kit import SafeWatcher as Watcher
from e2ekit import Operator, custom, events_for
from localcluster import cluster as lc

pytestmark = [
    *MARKS,
    pytest.mark.local_operator("the operator must reach the test's loopback Prometheus proxies"),
]


class Switch:
    """A proxy to Prometheus with an off switch."""

    def __init__(self, upstream: str) -> None:
        switch = self
        self.up = True

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not switch.up:
                    self.close_connection = True
                    return  # no answer at all: the connection just closes
                with urllib.request.urlopen(upstream + self.path, timeout=10) as resp:  # noqa: S310
                    body = resp.read()
                    self.send_response(resp.status)
                    self.send_header("Content-Type", resp.headers["Content-Type"])
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def switches(cluster: lc.Cluster) -> Iterator[dict[str, Switch]]:
    made = {name: Switch(cluster.prometheus_url) for name in ("brief", "long")}
    yield made
    for s in made.values():
        s.close()


def _errors(api: client.ApiClient, namespace: str, name: str) -> int:
    return sum(
        1
        for a in canary.status(api, namespace, name).get("lastAnalysis") or []
        if a["result"] == "Error"
    )


def test_prometheus_outage_never_promotes_short_outages_resume_long_ones_fail(
    k8s_api: client.ApiClient, namespace: str, operator: Operator, switches: dict[str, Switch]
) -> None:
    ns = namespace
    for name, switch in switches.items():
        client.AppsV1Api(k8s_api).create_namespaced_deployment(ns, canary.deployment(name))
        body = canary.canary_body(name, "istio", stepWeights=[10, 20, 30, 40, 50])
        body["spec"]["metricsServer"] = switch.url
        custom(k8s_api).create_namespaced_custom_object(GROUP, VERSION, ns, "canaries", body)
    for name in switches:
        canary.wait_phase(k8s_api, ns, name, "Initialized", timeout=60)
    watches = {name: Watcher(k8s_api, "istio", ns, name) for name in switches}
    for name in switches:
        canary.release(k8s_api, ns, name, f"{name}:2")
    for name in switches:
        lc.wait_for(
            f"{name}: a first passing tick",
            lambda n=name: canary.status(k8s_api, ns, n).get("canaryWeight", 0) >= 20,
            60,
        )

    # Both go dark. From each one's first Error tick on, its weight must not move up.
    for switch in switches.values():
        switch.up = False
    held: dict[str, int] = {}
    since: dict[str, float] = {}

    def first_errors() -> bool:
        for name in switches:
            if name not in held and _errors(k8s_api, ns, name) >= 1:
                held[name] = canary.status(k8s_api, ns, name).get("canaryWeight", 0)
                since[name] = time.time()
                if name == "brief":
                    # The brief outage ends at its first Error tick (under the 3-in-a-row
                    # limit); the long one lasts until its run fails.
                    switches["brief"].up = True
        return len(held) == len(switches)

    lc.wait_for("an Error tick on both", first_errors, 30)
    brief_back_at = since["brief"]

    long_final = canary.wait_phase(k8s_api, ns, "long", "Failed", "Succeeded", timeout=120)
    brief_final = canary.wait_phase(k8s_api, ns, "brief", "Succeeded", "Failed", timeout=180)
    timelines = {name: w.stop() for name, w in watches.items()}

    # ---- long outage: Failed after Error results, rolled back, never promoted
    assert long_final["phase"] == "Failed", long_final
    assert any(a["result"] == "Error" for a in long_final["lastAnalysis"]), long_final
    assert long_final.get("lastPromotedRevision") != long_final["revision"]
    assert canary.live_weights(k8s_api, "istio", ns, "long") == (100, 0)
    assert canary.primary_image(k8s_api, ns, "long").endswith("podinfo:1")
    long_while_down = [w for t, w in timelines["long"] if t >= since["long"] and w is not None]
    assert all(c <= held["long"] for _, c in long_while_down), (
        f"long advanced while Prometheus was down: {held['long']} then {long_while_down}"
    )
    assert any(e["type"] == "Warning" for e in events_for(k8s_api, ns, "long"))

    # ---- brief outage: no step while down, then the run resumed and promoted
    assert brief_back_at > 0
    assert brief_final["phase"] == "Succeeded", brief_final
    assert canary.primary_image(k8s_api, ns, "brief").endswith("brief:2")
    assert canary.live_weights(k8s_api, "istio", ns, "brief") == (100, 0)
    steps = [c for _, w in timelines["brief"] if w is not None for c in [w[1]] if c > 0]
    assert steps == sorted(set(steps)), f"brief repeated a step: {timelines['brief']}"
    print(
        f"[chaos] Prometheus outage: brief held {held['brief']}% and promoted; "
        f"long held {held['long']}% and failed with Error results"
    )
