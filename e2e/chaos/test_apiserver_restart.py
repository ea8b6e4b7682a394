"""kube-apiserver stopped and started again (etcd keeps running) in the middle of a canary run
and of certificate rotations: the operator recovers by itself within 30 s, without a restart
of its own, and every run and rotation continues.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from typing import Any

import pytest
from kubernetes import client

from chaos.kit import CERTS, FULL, GROUP, MARKS, VERSION, canary, pick
from chaos.kit import SafeWatcher as Watcher
from e2ekit import Operator, custom, events_for
from localcluster import cluster as lc

pytestmark = [
    *MARKS,
    pytest.mark.local_only("stops and starts the local control plane's kube-apiserver"),
    pytest.mark.local_operator("checks that the local operator process was not restarted"),
]

RECOVERY = 30


def _cert(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MeshCertificate",
        "metadata": {"name": name},
        "spec": {"secretName": f"{name}-tls", **spec},
    }


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _ready(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    obj: dict[str, Any] = custom(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, CERTS, name
    )
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == "Ready" and c["status"] == "True":
            return obj
    return None


def test_apiserver_restart_recovers_within_30s_without_an_operator_restart(  # noqa: PLR0915
    k8s_api: client.ApiClient,
    namespace: str,
    operator: Operator,
    cluster: lc.Cluster,
    rng: random.Random,
) -> None:
    ns = namespace
    pid = operator.proc.pid
    custom(k8s_api).create_namespaced_custom_object(
        GROUP, VERSION, ns, CERTS, _cert("root", isCA=True, duration="2h")
    )
    leaf = {"issuerRef": {"kind": "MeshCertificate", "name": "root"}, "duration": "60s"}
    for i in range(3):
        custom(k8s_api).create_namespaced_custom_object(
            GROUP, VERSION, ns, CERTS, _cert(f"leaf-{i}", serviceAccountName=f"sa-{i}", **leaf)
        )
    client.AppsV1Api(k8s_api).create_namespaced_deployment(ns, canary.deployment("steady"))
    steps = list(range(10, 100, 5)) if FULL else [10, 20, 30, 40]
    body = canary.canary_body("steady", "istio", stepWeights=steps, maxInconclusive=0)
    # The controller-manager's informers (Deployments, ReplicaSets) also reconnect after each
    # restart, with their own backoff: the deadline must not measure them.
    body["spec"]["progressDeadlineSeconds"] = 300
    custom(k8s_api).create_namespaced_custom_object(GROUP, VERSION, ns, "canaries", body)
    canary.wait_phase(k8s_api, ns, "steady", "Initialized", timeout=60)
    for i in range(3):
        lc.wait_for(f"leaf-{i} Ready", lambda n=f"leaf-{i}": _ready(k8s_api, ns, n) is not None, 60)
    serials = {
        f"leaf-{i}": (_ready(k8s_api, ns, f"leaf-{i}") or {})["status"]["serialNumber"]
        for i in range(3)
    }
    watch = Watcher(k8s_api, "istio", ns, "steady")
    canary.release(k8s_api, ns, "steady", "steady:2")
    lc.wait_for(
        "weight 20", lambda: canary.status(k8s_api, ns, "steady").get("canaryWeight", 0) >= 20, 60
    )

    rounds = pick(1, 3)
    recoveries = []
    for r in range(rounds):
        outage = rng.uniform(3.0, 10.0)
        with lc.component_stopped(cluster, "kube-apiserver"):
            # The outage length is the fault injected, not a synchronisation.
            print(f"[chaos] kube-apiserver down for {outage:.1f}s (round {r + 1})")
            threading.Event().wait(outage)
        back = time.monotonic()
        # The run must move on from where it is now that the apiserver is back.
        before = canary.status(k8s_api, ns, "steady").get("canaryWeight", 0)

        # Recovery: a new object is served, a renewal request is honoured, the run moves on.
        name = f"after-{r}"
        custom(k8s_api).create_namespaced_custom_object(
            GROUP, VERSION, ns, CERTS, _cert(name, serviceAccountName=name, **leaf)
        )
        renew = f"leaf-{r % 3}"
        requested = dt.datetime.now(dt.UTC).replace(microsecond=0)
        custom(k8s_api).patch_namespaced_custom_object(
            GROUP,
            VERSION,
            ns,
            CERTS,
            renew,
            {
                "metadata": {
                    "annotations": {
                        "dabba.io/renew-requested-at": requested.strftime("%Y-%m-%dT%H:%M:%SZ")
                    }
                }
            },
        )

        marks: dict[str, float] = {}

        def recovered(
            n: str = name,
            rn: str = renew,
            asked: dt.datetime = requested,
            b: int = before,
            marks: dict[str, float] = marks,
            back: float = back,
        ) -> bool:
            renewed = _ready(k8s_api, ns, rn)
            st = canary.status(k8s_api, ns, "steady")
            checks = {
                "new certificate Ready": _ready(k8s_api, ns, n) is not None,
                # Served by a certificate issued at or after the request (whole seconds, as
                # the operator compares them; a renewal due anyway in that second serves it).
                "renewal honoured": renewed is not None
                and _time(renewed["status"]["notBefore"]) >= asked,
                "canary moved on": st.get("canaryWeight", 0) > b or st.get("phase") == "Succeeded",
            }
            for what, ok in checks.items():
                if ok:
                    marks.setdefault(what, round(time.monotonic() - back, 1))
            return all(checks.values())

        lc.wait_for("the operator to recover after the apiserver restart", recovered, 90)
        took = time.monotonic() - back
        recoveries.append(took)
        print(f"[chaos] recovered {took:.1f}s after kube-apiserver was ready again: {marks}")
        assert took <= RECOVERY, f"recovery took {took:.1f}s (> {RECOVERY}s)"

    final = canary.wait_phase(k8s_api, ns, "steady", "Succeeded", "Failed", timeout=180)
    seen = [w for _, w in watch.stop() if w is not None]
    assert final["phase"] == "Succeeded", (
        final,
        [(e["reason"], e["message"]) for e in events_for(k8s_api, ns, "steady")][-15:],
    )
    assert canary.primary_image(k8s_api, ns, "steady").endswith("steady:2")
    assert canary.live_weights(k8s_api, "istio", ns, "steady") == (100, 0)
    steps = [c for _, c in seen if c > 0]
    assert steps == sorted(set(steps)), f"a step repeated: {seen}"
    # Every certificate kept rotating by itself (60 s certificates renew every ~40 s): each
    # leaf has a new serial since the start. (The short form relies on the renewals above.)
    for n, serial in serials.items() if FULL else ():
        lc.wait_for(
            f"{n} rotated",
            lambda n=n, s=serial: (
                (o := _ready(k8s_api, ns, n)) is not None and o["status"]["serialNumber"] != s
            ),
            90,
        )
    assert operator.proc.pid == pid, "the operator was not restarted"
    assert operator.proc.poll() is None
    assert operator.healthy()
    print(f"[chaos] {rounds} apiserver restarts, recoveries {[round(t, 1) for t in recoveries]}s")
