"""Fixtures of the reliability and security suite (issue 9); see ``chaos.kit``."""

from __future__ import annotations

import contextlib
import random
import zlib
from collections.abc import Iterator

import pytest
from kubernetes import client

from chaos.kit import EVIDENCE, FULL, SCALE, SEED, Evidence, Harvester
from e2ekit import Operator


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """A per-scenario random source derived from the session seed (printed for replay)."""
    seed = SEED ^ zlib.crc32(request.node.name.encode())
    print(f"\n[chaos] scale={SCALE} DABBA_CHAOS_SEED={SEED} ({request.node.name}: rng {seed})")
    return random.Random(seed)  # noqa: S311 - fault injection, not cryptography


@pytest.fixture(scope="session")
def evidence(k8s_api: client.ApiClient, operator: Operator) -> Iterator[Evidence]:
    EVIDENCE.add_log(operator.log)
    harvester = Harvester(k8s_api, EVIDENCE)
    yield EVIDENCE
    harvester.stop()


@pytest.fixture(autouse=True)
def _capture_namespace(
    k8s_api: client.ApiClient, namespace: str, evidence: Evidence
) -> Iterator[None]:
    """After each scenario (before its namespace goes), keep its Events and objects."""
    yield
    with contextlib.suppress(client.exceptions.ApiException):
        evidence.capture(k8s_api, namespace)


def pytest_report_header() -> str:
    return f"dabba chaos: scale={SCALE} (full={FULL}) DABBA_CHAOS_SEED={SEED}"
