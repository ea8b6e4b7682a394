"""Canary specs for the router tests (shared by the unit and integration suites)."""

from __future__ import annotations

from typing import Any

from dabba.canary.model import CanarySpec

#: One cohort of each kind the CRD allows, in the order ``CanarySpec`` sorts them (by name).
COHORTS: list[dict[str, Any]] = [
    {"headers": {"Canary-User": {"exact": "true"}}},
    {"headers": {"x-build": {"prefix": "v2."}, "x-region": {"regex": "eu-.*"}}},
]


def canary_spec(
    namespace: str = "test",
    *,
    name: str = "podinfo",
    service: dict[str, Any] | None = None,
    match: list[dict[str, Any]] | None = None,
    router: str = "istio",
) -> CanarySpec:
    """A Canary for the Deployment ``podinfo`` on port 9898, with ``service`` fields merged."""
    return CanarySpec.from_k8s(
        {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "router": router,
            "service": {"port": 9898, **(service or {})},
            "analysis": {"match": match or []},
        },
        name=name,
        namespace=namespace,
    )
