"""``dabba canary get`` data: the document, the weight bar, advisory refusals, the views."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from dabba.cli import canary_view
from dabba.cli.output import plain_sections
from dabba.k8s import meta

CANARY: dict[str, Any] = {
    "apiVersion": "dabba.io/v1alpha1",
    "kind": "Canary",
    "metadata": {
        "name": "podinfo",
        "namespace": "shop",
        "uid": "u-1",
        "creationTimestamp": "2026-03-01T10:00:00Z",
        "annotations": {
            meta.CANARY_PROMOTE_ANNOTATION: "2026-03-01T11:59:00Z",
            meta.CANARY_ABORT_ANNOTATION: "2026-03-01T11:00:00Z",
        },
    },
    "spec": {
        "targetRef": {"name": "podinfo"},
        "service": {"port": 9898},
        "analysis": {"stepWeights": [5, 10, 25, 50], "threshold": 3},
    },
    "status": {
        "phase": "Progressing",
        "canaryWeight": 25,
        "stepIndex": 2,
        "failedChecks": 1,
        "inconclusiveChecks": 0,
        "revision": "7c9f0a1b2c3d4e5f",
        "lastPromotedRevision": "1a2b3c4d5e6f",
        "lastTransitionTime": "2026-03-01T11:58:00Z",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Ready",
                "message": "canary at 25 %",
                "lastTransitionTime": "2026-03-01T11:50:00Z",
            }
        ],
        "lastAnalysis": [
            {
                "metric": "request-success-rate",
                "query": "sum(rate(...))",
                "value": 99.52,
                "threshold": ">= 99",
                "result": "Successful",
                "message": "",
                "time": "2026-03-01T11:59:40Z",
            },
            {
                "metric": "request-duration",
                "query": "histogram_quantile(...)",
                "value": 612.3,
                "threshold": "<= 500",
                "result": "Failed",
                "message": "p99 above 500 ms",
                "time": "2026-03-01T11:59:40Z",
            },
        ],
        "handledRequests": {"abort": "2026-03-01T11:00:00Z"},
        "history": [
            {
                "revision": "1a2b3c4d5e6f",
                "result": "Succeeded",
                "started": "2026-02-28T10:00:00Z",
                "finished": "2026-02-28T10:12:30Z",
                "reason": "promoted",
            }
        ],
    },
}


def _event(i: int) -> dict[str, Any]:
    return {
        "type": "Warning" if i % 2 else "Normal",
        "reason": f"Reason{i}",
        "message": f"message {i}",
        "count": 1,
        "lastTimestamp": f"2026-03-01T11:{i:02d}:00Z",
        "involvedObject": {"kind": "Canary", "name": "podinfo", "uid": "u-1"},
    }


def _doc(**status: Any) -> dict[str, Any]:
    obj = copy.deepcopy(CANARY)
    obj["status"].update(status)
    return canary_view.canary_document(obj, [])


@pytest.mark.parametrize(
    ("weight", "bar"),
    [
        (0, "...................."),
        (1, "#..................."),
        (25, "#####..............."),
        (50, "##########.........."),
        (99, "###################."),
        (100, "####################"),
        (150, "####################"),
        (-5, "...................."),
    ],
)
def test_weight_bar(weight: int, bar: str) -> None:
    assert canary_view.weight_bar(weight, fill="#", empty=".") == bar


def test_weight_bar_width() -> None:
    assert canary_view.weight_bar(50, 10) == "█████░░░░░"


@pytest.mark.parametrize(
    ("spec", "steps"),
    [
        ({"analysis": {"stepWeights": [1, 2, 10, 80]}}, (1, 2, 10, 80)),
        ({"analysis": {"stepWeight": 20, "maxWeight": 50}}, (20, 40, 50)),
        ({"analysis": {"stepWeight": 10}}, (10, 20, 30, 40, 50)),
        ({"analysis": {}}, (5, 10, 25, 50)),
        ({}, (5, 10, 25, 50)),
        ({"router": "kubernetes", "analysis": {}}, (100,)),
    ],
)
def test_schedule_matches_the_operator(spec: dict[str, Any], steps: tuple[int, ...]) -> None:
    assert canary_view.schedule(spec) == steps


def test_document_carries_status_requests_and_newest_events() -> None:
    events = [_event(i) for i in range(15)]
    doc = canary_view.canary_document(CANARY, events)
    assert doc["namespace"] == "shop"
    assert doc["name"] == "podinfo"
    assert doc["phase"] == "Progressing"
    assert (doc["weight"], doc["stepIndex"], doc["steps"]) == (25, 2, [5, 10, 25, 50])
    assert (doc["failedChecks"], doc["threshold"], doc["maxInconclusive"]) == (1, 3, 10)
    assert doc["message"] == "canary at 25 %"
    assert [a["metric"] for a in doc["analysis"]] == ["request-success-rate", "request-duration"]
    assert doc["analysis"][1]["value"] == 612.3
    assert doc["requests"] == {
        "promote": {"id": "2026-03-01T11:59:00Z", "handled": False},
        "abort": {"id": "2026-03-01T11:00:00Z", "handled": True},
        "retry": None,
    }
    assert [e["reason"] for e in doc["events"]] == [f"Reason{i}" for i in range(5, 15)]
    assert doc["history"][0]["result"] == "Succeeded"
    assert doc["paused"] is False


def test_document_of_a_canary_without_status() -> None:
    obj = {k: v for k, v in CANARY.items() if k != "status"}
    doc = canary_view.canary_document(obj, [])
    assert doc["phase"] is None
    assert doc["weight"] == 0
    assert doc["analysis"] == []
    assert doc["history"] == []
    assert canary_view.state_text(doc) == "Pending"


def test_paused_annotation_is_reported() -> None:
    obj = copy.deepcopy(CANARY)
    obj["metadata"]["annotations"][meta.CANARY_PAUSE_ANNOTATION] = "2026-03-01T11:30:00Z"
    doc = canary_view.canary_document(obj, [])
    assert doc["paused"] is True
    assert doc["pausedSince"] == "2026-03-01T11:30:00Z"
    assert canary_view.state_text(doc) == "Progressing (paused)"


@pytest.mark.parametrize(
    ("action", "phase", "refused_with"),
    [
        ("promote", "Progressing", None),
        ("promote", "WaitingPromotion", None),
        ("promote", "Waiting", None),
        ("promote", "Succeeded", "already promoted"),
        ("promote", "Failed", "dabba canary retry podinfo"),
        ("promote", "Promoting", "already under way"),
        ("promote", "Initialized", "no run is in progress"),
        ("promote", None, "no status yet"),
        ("abort", "Progressing", None),
        ("abort", "Succeeded", "no run is in progress"),
        ("abort", "Finalising", "already under way"),
        ("abort", "Terminating", "being deleted"),
        ("retry", "Failed", None),
        ("retry", "Progressing", "not Failed"),
        ("retry", "Succeeded", "not Failed"),
        ("pause", "Succeeded", None),
        ("resume", None, None),
    ],
)
def test_refusal(action: str, phase: str | None, refused_with: str | None) -> None:
    why = canary_view.refusal(action, _doc(phase=phase))
    if refused_with is None:
        assert why is None
    else:
        assert why is not None
        assert refused_with in why


def test_plain_view_shows_bar_metrics_events_history(now: dt.datetime) -> None:
    doc = canary_view.canary_document(CANARY, [_event(3)])
    text = plain_sections(canary_view.canary_sections(doc, now, terminal=False))
    assert "Canary shop/podinfo:" in text
    assert "Phase:          Progressing  for 2m" in text
    assert "[#####...............] 25%   step 3/4: 5 → 10 → 25 → 50" in text
    assert "1/3 failed" in text
    assert (
        "Requests:       promote requested 1m ago (pending); abort requested 1h ago (handled)"
        in (text)
    )
    lines = text.splitlines()
    duration = next(line for line in lines if "request-duration" in line)
    assert duration.split()[:4] == ["request-duration", "612.3", "<=", "500"]
    assert "Failed" in duration
    assert "p99 above 500 ms" in duration
    assert "Analysis (last tick 20s ago):" in text
    assert any("Warning" in line and "Reason3" in line for line in lines)
    history = next(line for line in lines if line.startswith("  1a2b3c4d5e"))
    assert history.split() == ["1a2b3c4d5e", "Succeeded", "1d2h", "ago", "12m", "promoted"]


def test_terminal_weight_cell_is_styled() -> None:
    cell = canary_view.weight_cell(_doc(), terminal=True)
    assert not isinstance(cell, str)
    assert "25%" in cell.plain
    assert "█" in cell.plain


def test_watch_line_changes_only_with_the_status() -> None:
    line = canary_view.watch_line(_doc())
    assert line == (
        "phase=Progressing weight=25% failed=1/3 revision=7c9f0a1b2c "
        "request-success-rate=99.52:Successful request-duration=612.3:Failed"
    )
    assert canary_view.watch_line(_doc()) == line
    assert canary_view.watch_line(_doc(canaryWeight=50)) != line
