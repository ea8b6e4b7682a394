"""Two `dabba run` replicas: one acts, the other stands by and takes over when it dies.

The session's standalone operator is stopped for this test (it would act beside the pair)
and started again afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from e2ekit import Operator, canary_decisions, logged, replica_pair
from localcluster import cluster as lc
from test_canary import live_weights, release, start, status, wait_phase
from test_meshcertificate import apply, root, wait_ready

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.local_operator("runs two local replicas; on kind the chart has its own two"),
]


@pytest.fixture
def replicas(cluster: lc.Cluster, operator: Operator, tmp_path: Path) -> Iterator[list[Operator]]:
    with replica_pair(cluster, operator, tmp_path, "e2e") as pair:
        yield pair


def test_only_the_leader_acts_and_the_standby_takes_over_within_30s(
    k8s_api: client.ApiClient, namespace: str, replicas: list[Operator]
) -> None:
    leader, standby = replicas[1], replicas[0]  # priority 101 beats 100
    name = "ha"
    start(k8s_api, namespace, name, "istio", stepWeights=[10, 20, 30, 40, 50])
    release(k8s_api, namespace, name, "ha:2")
    lc.wait_for("weight 30", lambda: status(k8s_api, namespace, name).get("canaryWeight") == 30, 90)
    assert canary_decisions(leader, namespace), "the leader drives the run"
    assert canary_decisions(standby, namespace) == [], (
        "the standby must not act while the leader lives"
    )

    leader.kill()
    killed = time.monotonic()
    lc.wait_for("the standby to take over", lambda: bool(canary_decisions(standby, namespace)), 45)
    takeover = time.monotonic() - killed
    assert takeover <= 30, f"takeover took {takeover:.1f}s"

    final = wait_phase(k8s_api, namespace, name, "Succeeded", "Failed", timeout=120)
    assert final["phase"] == "Succeeded"
    weights = [d["weight"] for d in canary_decisions(standby, namespace)]
    assert min(w for w in weights if w) >= 30, f"a step was repeated after takeover: {weights}"
    assert live_weights(k8s_api, "istio", namespace, name) == (100, 0)
    print(f"takeover after {takeover:.1f}s; standby continued at {weights}")


def test_only_the_leader_issues_certificates_and_the_standby_takes_over(
    k8s_api: client.ApiClient, namespace: str, replicas: list[Operator]
) -> None:
    """Certificates are scheduled by dabba's own runner, not by kopf daemons, so kopf's pause
    does not stop them: the runner must follow the same peering rule (dabba.leadership)."""
    leader, standby = replicas[1], replicas[0]
    leaf = {"issuerRef": {"kind": "MeshCertificate", "name": "root"}, "duration": "1h"}
    root(k8s_api, namespace)
    apply(
        k8s_api,
        namespace,
        "before",
        {**leaf, "secretName": "before-tls", "serviceAccountName": "a"},
    )
    wait_ready(k8s_api, namespace, "before")

    def issued(op: Operator) -> set[str]:
        events = [*logged(op, "issued", namespace), *logged(op, "new signing CA", namespace)]
        return {d["name"] for d in events}

    assert issued(leader) == {"root", "before"}, "the leader issues"
    assert issued(standby) == set(), "the standby must not issue while the leader lives"

    leader.kill()
    killed = time.monotonic()
    apply(
        k8s_api, namespace, "after", {**leaf, "secretName": "after-tls", "serviceAccountName": "b"}
    )
    wait_ready(k8s_api, namespace, "after", timeout=60)
    takeover = time.monotonic() - killed
    assert issued(standby) == {"after"}, "the standby issued the new one, and only that"
    print(f"certificate issued by the standby {takeover:.1f}s after the leader died")
