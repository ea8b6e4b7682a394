"""The `dabba` CLI against the live operator: what an SRE types, and what then happens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from e2ekit import Operator
from localcluster import cluster as lc
from test_canary import live_weights, primary_image, release, start, status, wait_phase
from test_meshcertificate import apply, get, root, wait_ready

pytestmark = pytest.mark.e2e

DABBA = Path(sys.executable).parent / "dabba"


def dabba(cluster: lc.Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DABBA), *args],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def doc(cluster: lc.Cluster, *args: str) -> dict[str, Any]:
    out = dabba(cluster, *args, "-o", "json")
    assert out.returncode == 0, out.stderr
    parsed: dict[str, Any] = json.loads(out.stdout)
    return parsed


def test_abort_then_retry_then_promote_through_the_cli(
    cluster: lc.Cluster, k8s_api: client.ApiClient, namespace: str, operator: Operator
) -> None:
    name = "cli"
    start(k8s_api, namespace, name, "istio", stepWeights=[10, 20, 30, 40, 50])
    release(k8s_api, namespace, name, "cli:2")
    lc.wait_for(
        "weight 20", lambda: status(k8s_api, namespace, name).get("canaryWeight", 0) >= 20, 90
    )

    got = doc(cluster, "canary", "get", name, "-n", namespace)
    live = status(k8s_api, namespace, name)
    assert (got["namespace"], got["name"], got["router"]) == (namespace, name, "istio")
    assert got["revision"] == live["revision"]
    assert got["steps"] == [10, 20, 30, 40, 50]
    assert got["weight"] >= 20

    out = dabba(cluster, "canary", "abort", name, "-n", namespace)
    assert out.returncode == 0, out.stderr
    final = wait_phase(k8s_api, namespace, name, "Failed", timeout=20)
    assert live_weights(k8s_api, "istio", namespace, name) == (100, 0)

    out = dabba(cluster, "canary", "retry", name, "-n", namespace)
    assert out.returncode == 0, out.stderr
    lc.wait_for(
        "the same revision running again",
        lambda: (
            (s := status(k8s_api, namespace, name))["phase"] == "Progressing"
            and s["revision"] == final["revision"]
        ),
        30,
    )

    out = dabba(cluster, "canary", "promote", name, "-n", namespace)
    assert out.returncode == 0, out.stderr
    done = wait_phase(k8s_api, namespace, name, "Succeeded", "Failed", timeout=60)
    assert done["phase"] == "Succeeded"
    assert done.get("canaryWeight", 0) == 0
    assert primary_image(k8s_api, namespace, name).endswith("cli:2")

    listing = doc(cluster, "status", "-n", namespace)
    mine = [i for i in listing["items"] if i["name"] == name and i["kind"] == "Canary"]
    assert len(mine) == 1
    assert mine[0]["phase"] == "Succeeded"


def test_cert_renew_list_and_plan_through_the_cli(
    cluster: lc.Cluster, k8s_api: client.ApiClient, namespace: str, operator: Operator
) -> None:
    root(k8s_api, namespace)
    apply(
        k8s_api,
        namespace,
        "svc",
        {
            "secretName": "svc-tls",
            "service": "svc",
            "issuerRef": {"kind": "MeshCertificate", "name": "root"},
        },
    )
    before = wait_ready(k8s_api, namespace, "svc")
    listed = {i["name"]: i for i in doc(cluster, "cert", "list", "-n", namespace)["items"]}
    assert set(listed) == {"root", "svc"}
    assert before["status"]["notAfter"] in json.dumps(listed["svc"])

    lc.wait_for(
        "a second past issuance",
        lambda: (
            dabba(cluster, "cert", "renew", "svc", "-n", namespace).returncode == 0
            and get(k8s_api, namespace, "svc")["metadata"]["annotations"][
                "dabba.io/renew-requested-at"
            ]
            > before["status"]["notBefore"]
        ),
        10,
    )
    after = wait_ready(k8s_api, namespace, "svc", serial_not=before["status"]["serialNumber"])
    assert after["status"]["revision"] > before["status"]["revision"]

    plan = doc(cluster, "cert", "plan", "-n", namespace)
    order = [(i["name"], i["when"]) for i in plan["items"]]
    assert sorted(n for n, _ in order) == ["root", "svc"], order
    assert [w for _, w in order] == sorted(w for _, w in order), "time order"
    status_of = {n: get(k8s_api, namespace, n)["status"]["renewalTime"] for n, _ in order}
    assert dict(order) == status_of, "each entry is the certificate's own renewal time"
    assert [c["name"] for c in plan["cas"]] == ["root"]
    assert plan["cas"][0]["leaves"] == 1
    missing = dabba(cluster, "cert", "inspect", "nope", "-n", namespace)
    assert missing.returncode == 1
    assert "nope" in missing.stderr
