"""Deployment readiness and how a wait on it reads in Events (workloads.readiness)."""

from __future__ import annotations

from typing import Any

import pytest

from dabba.canary.workloads import readiness


def deployment(
    *, want: int = 2, generation: int = 2, observed: int = 2, **status: int
) -> dict[str, Any]:
    """A Deployment wanting ``want`` replicas, with ``status`` fields (``replicas``: all)."""
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": want},
        "status": {"observedGeneration": observed, **status},
    }


@pytest.mark.parametrize(
    ("status", "ready", "described"),
    [
        pytest.param(
            deployment(want=2, updatedReplicas=2, availableReplicas=2, readyReplicas=2, replicas=2),
            True,
            "2/2 replicas ready",
            id="rolled out",
        ),
        pytest.param(
            deployment(updatedReplicas=0, availableReplicas=0, readyReplicas=0, replicas=0),
            False,
            "0/2 replicas ready",
            id="nothing ready yet",
        ),
        pytest.param(
            deployment(
                observed=1, updatedReplicas=2, availableReplicas=2, readyReplicas=2, replicas=2
            ),
            False,
            "2/2 replicas ready, the new template not yet picked up by the Deployment controller",
            id="new spec not observed",
        ),
        pytest.param(
            deployment(updatedReplicas=1, availableReplicas=2, readyReplicas=2, replicas=3),
            False,
            "2/2 replicas ready, 1/2 on the new template",
            id="rolling",
        ),
        pytest.param(
            deployment(updatedReplicas=2, availableReplicas=2, readyReplicas=2, replicas=3),
            False,
            "2/2 replicas ready, 1 old still running",
            id="old replica terminating",
        ),
        pytest.param(
            deployment(updatedReplicas=2, availableReplicas=1, readyReplicas=2, replicas=2),
            False,
            "2/2 replicas ready, not all available yet",
            id="ready but not yet available (minReadySeconds)",
        ),
    ],
)
def test_readiness_and_its_description(status: dict[str, Any], ready: bool, described: str) -> None:
    r = readiness(status, None)
    assert r.ready is ready
    assert r.describe() == described


def test_a_missing_deployment_is_not_ready() -> None:
    r = readiness(None, None)
    assert not r.ready
    assert r.describe() == "0/0 replicas ready"
