"""Two `dabba run` replicas: one acts, the other stands by and takes over when it dies.

The session's standalone operator is stopped for this test (it would act beside the pair)
and started again afterwards.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from e2ekit import Operator
from localcluster import cluster as lc
from test_canary import live_weights, release, start, status, wait_phase

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.local_operator("runs two local replicas; on kind the chart has its own two"),
]

DABBA = Path(sys.executable).parent / "dabba"


@pytest.fixture
def replicas(cluster: lc.Cluster, operator: Operator, tmp_path: Path) -> Iterator[list[Operator]]:
    operator.kill()  # the standalone session operator must not act beside the pair
    peering = f"e2e-{uuid.uuid4().hex[:8]}"
    pair = []
    for i in range(2):
        port = lc.free_port()
        argv = [
            str(DABBA),
            "run",
            "-A",
            f"--peering={peering}",
            "--listen-host=127.0.0.1",
            f"--metrics-port={port}",
            "--log-format=json",
            f"--priority={100 + i}",
        ]
        env = {**os.environ, **cluster.env(), "DABBA_PROMETHEUS_URL": cluster.prometheus_url}
        op = Operator(
            proc=None,
            log=tmp_path / f"replica-{i}.log",  # type: ignore[arg-type]
            url=f"http://127.0.0.1:{port}",
            argv=argv,
            env=env,
        )
        op.start()
        pair.append(op)
    try:
        for op in pair:
            lc.wait_for("a replica's /healthz", op.healthy, 60)
        yield pair
    finally:
        for op in pair:
            if op.proc.poll() is None:
                op.kill()
        cluster.kubectl("delete", "clusterkopfpeering", peering, check=False)
        operator.start()
        lc.wait_for("the session operator back", operator.healthy, 60)


def _acted(op: Operator, namespace: str) -> list[dict[str, object]]:
    """The canary decisions this replica logged for ``namespace``."""
    out = []
    for line in op.log.read_text(errors="replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("event") == "canary progressed" and doc.get("namespace") == namespace:
            out.append(doc)
    return out


def test_only_the_leader_acts_and_the_standby_takes_over_within_30s(
    k8s_api: client.ApiClient, namespace: str, replicas: list[Operator]
) -> None:
    leader, standby = replicas[1], replicas[0]  # priority 101 beats 100
    name = "ha"
    start(k8s_api, namespace, name, "istio", stepWeights=[10, 20, 30, 40, 50])
    release(k8s_api, namespace, name, "ha:2")
    lc.wait_for("weight 30", lambda: status(k8s_api, namespace, name).get("canaryWeight") == 30, 90)
    assert _acted(leader, namespace), "the leader drives the run"
    assert _acted(standby, namespace) == [], "the standby must not act while the leader lives"

    leader.kill()
    killed = time.monotonic()
    lc.wait_for("the standby to take over", lambda: bool(_acted(standby, namespace)), 45)
    takeover = time.monotonic() - killed
    assert takeover <= 30, f"takeover took {takeover:.1f}s"

    final = wait_phase(k8s_api, namespace, name, "Succeeded", "Failed", timeout=120)
    assert final["phase"] == "Succeeded"
    weights = [d["weight"] for d in _acted(standby, namespace)]
    assert min(w for w in weights if w) >= 30, f"a step was repeated after takeover: {weights}"
    assert live_weights(k8s_api, "istio", namespace, name) == (100, 0)
    print(f"takeover after {takeover:.1f}s; standby continued at {weights}")
