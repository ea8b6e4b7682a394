"""The model and the CRD (the single source of the schema) agree.

Why: the API server prunes status fields the schema does not declare, silently. A field the
state machine relies on after a restart (``lastTickTime``) would then vanish on every write.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from dabba.canary.model import (
    AnalysisRecord,
    CanaryStatus,
    HandledRequests,
    MetricResult,
    Phase,
    Router,
    RunRecord,
    RunResult,
    WebhookType,
)

CRD = Path(__file__).parents[3] / "crds" / "canaries.dabba.io.yaml"
T = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    version = crd["spec"]["versions"][0]
    return dict(version["schema"]["openAPIV3Schema"]["properties"])


def status_properties() -> dict[str, Any]:
    return dict(schema()["status"]["properties"])


def test_phases_match_the_crd_enum() -> None:
    assert status_properties()["phase"]["enum"] == [p.value for p in Phase]


def test_routers_and_webhook_types_match_the_crd_enums() -> None:
    spec = schema()["spec"]["properties"]
    assert spec["router"]["enum"] == [r.value for r in Router]
    hook_type = spec["analysis"]["properties"]["webhooks"]["items"]["properties"]["type"]
    assert hook_type["enum"] == [t.value for t in WebhookType]


def test_last_analysis_and_history_items_match_the_crd() -> None:
    props = status_properties()
    record = AnalysisRecord("m", "q", 1.0, ">= 1", MetricResult.FAILED, "x", T).to_k8s()
    run = RunRecord("r", RunResult.FAILED, T, T, "x").to_k8s()
    assert set(record) == set(props["lastAnalysis"]["items"]["properties"])
    assert set(run) == set(props["history"]["items"]["properties"])


def test_every_status_field_written_is_declared() -> None:
    written = CanaryStatus(handled=HandledRequests("p", "a", "r")).to_k8s()
    assert set(written) <= set(status_properties())


def test_the_mesh_field_is_declared() -> None:
    analysis = schema()["spec"]["properties"]["analysis"]["properties"]
    assert analysis["mesh"]["enum"] == ["istio", "linkerd", "envoy"]
