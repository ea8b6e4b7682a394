"""Repeated leader failover: two `dabba run` replicas; the leader is SIGKILLed again and again
in the middle of a canary run. Each time the standby takes over within 30 s, and no decision
is ever taken twice (each weight step acted on once, by one replica, one promotion).

The killed replica comes back with a lower priority than the new leader's, so it stands by
(kopf pauses every replica below the highest-priority live peer); the next round kills the
new leader. The session's standalone operator is stopped meanwhile and started again after.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from chaos.kit import EVIDENCE, MARKS, pick
from e2ekit import Operator, canary_decisions, custom, events_for, replica_pair
from localcluster import cluster as lc
from test_canary import live_weights, primary_image, release, start, status, wait_phase

pytestmark = [
    *MARKS,
    pytest.mark.local_operator("runs two local replicas; on kind the chart has its own two"),
]

TAKEOVER = 30


def _set_priority(op: Operator, priority: int) -> None:
    op.argv = [a if not a.startswith("--priority=") else f"--priority={priority}" for a in op.argv]


@pytest.fixture
def pair(cluster: lc.Cluster, operator: Operator, tmp_path: Path) -> Iterator[list[Operator]]:
    with replica_pair(
        cluster, operator, tmp_path, "chaos", on_start=lambda op: EVIDENCE.add_log(op.log)
    ) as ops:
        yield ops


def _ts(doc: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(str(doc["timestamp"]).replace("Z", "+00:00")).timestamp()


def test_repeated_leader_failover_takes_over_within_30s_and_never_acts_twice(
    k8s_api: client.ApiClient, namespace: str, pair: list[Operator]
) -> None:
    ns, name = namespace, "ha"
    rounds = pick(2, 5)
    steps = list(range(10, 100, 5))  # 18 steps: the run outlives every round
    start(k8s_api, ns, name, "istio", stepWeights=steps, maxInconclusive=0)
    release(k8s_api, ns, name, "ha:2", rps="200")
    leader, standby = 1, 0  # priority 101 beats 100
    priorities = [100, 101]
    takeovers: list[float] = []
    kills: list[tuple[int, float]] = []  # (replica, wall time of the kill)
    for r in range(rounds):
        acted_before = len(canary_decisions(pair[leader], ns))
        lc.wait_for(
            f"round {r + 1}: the leader (replica {leader}) acts",
            lambda ld=leader, n=acted_before, first=r == 0: (
                len(canary_decisions(pair[ld], ns)) > n or (first and n > 0)
            ),
            60,
        )
        standby_before = len(canary_decisions(pair[standby], ns))
        pair[leader].kill()
        killed = time.monotonic()
        kills.append((leader, time.time()))
        lc.wait_for(
            f"round {r + 1}: replica {standby} takes over",
            lambda sb=standby, n=standby_before: len(canary_decisions(pair[sb], ns)) > n,
            TAKEOVER + 30,
        )
        took = time.monotonic() - killed
        takeovers.append(took)
        print(f"[chaos] failover {r + 1}: replica {standby} took over after {took:.1f}s")
        assert took <= TAKEOVER, f"takeover took {took:.1f}s"
        # The killed replica comes back below the new leader and stands by.
        priorities[leader] = min(priorities) - 1
        _set_priority(pair[leader], priorities[leader])
        pair[leader].start()
        lc.wait_for("the killed replica back", pair[leader].healthy, 60)
        leader, standby = standby, leader

    # Finish: promote now (the rest of the schedule would take minutes).
    custom(k8s_api).patch_namespaced_custom_object(
        "dabba.io",
        "v1alpha1",
        ns,
        "canaries",
        name,
        {"metadata": {"annotations": {"dabba.io/promote": "chaos"}}},
    )
    final = wait_phase(k8s_api, ns, name, "Succeeded", "Failed", timeout=120)
    assert final["phase"] == "Succeeded", final
    assert primary_image(k8s_api, ns, name).endswith("ha:2")
    assert live_weights(k8s_api, "istio", ns, name) == (100, 0)

    # No double action: merged over both replicas, each weight was acted on once, in order,
    # and a killed replica never acted after its kill until it was started again.
    merged = sorted(
        ((_ts(d), i, d) for i, op in enumerate(pair) for d in canary_decisions(op, ns)),
        key=lambda t: t[0],
    )
    weights = [d["weight"] for _, _, d in merged if d.get("phase") == "Progressing"]
    rising = [w for w in weights if w]
    assert rising == sorted(set(rising)), f"a step was acted on twice: {weights}"
    promoted = [d for _, _, d in merged if d.get("phase") == "Promoting"]
    assert len(promoted) == 1, f"promotion decided {len(promoted)} times: {promoted}"
    succeeded = [d for _, _, d in merged if d.get("phase") == "Succeeded"]
    assert len(succeeded) == 1, succeeded
    for replica, at in kills:
        restarted = [d for t, i, d in merged if i == replica and t > at]
        # After a restart it stood by (lower priority) — it may only act after the next kill.
        next_kill = min((k for _, k in kills if k > at), default=float("inf"))
        assert all(_ts(d) > next_kill for d in restarted), (
            f"replica {replica} acted as a standby: {restarted}"
        )
    promotions = [e for e in events_for(k8s_api, ns, name) if e["reason"] == "Promoting"]
    assert sum(int(e.get("count") or 1) for e in promotions) == 1, promotions
    assert status(k8s_api, ns, name)["lastPromotedRevision"] == final["revision"]
    print(f"[chaos] {rounds} failovers, takeovers {[round(t, 1) for t in takeovers]}s")
