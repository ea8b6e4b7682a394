from __future__ import annotations

import json
import logging

import pytest
import structlog

from dabba import logging as dabba_logging


def test_json_format_renders_stdlib_and_structlog_lines_alike(
    capsys: pytest.CaptureFixture[str],
) -> None:
    dabba_logging.configure("json", "info")
    try:
        structlog.get_logger("dabba.test").info("tick", kind="Canary", name="podinfo", weight=10)
        logging.getLogger("kopf.objects").warning(
            "from kopf",
            extra={
                "k8s_ref": {
                    "apiVersion": "dabba.io/v1alpha1",
                    "kind": "Canary",
                    "namespace": "shop",
                    "name": "podinfo",
                    "uid": "u",
                }
            },
        )
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        logging.getLogger().handlers.clear()
        structlog.reset_defaults()
    assert lines[0]["event"] == "tick"
    assert lines[0]["weight"] == 10
    assert lines[0]["level"] == "info"
    assert "timestamp" in lines[0]
    assert lines[1]["event"] == "from kopf"
    assert lines[1]["logger"] == "kopf.objects"
    assert lines[1]["level"] == "warning"
    assert (lines[1]["kind"], lines[1]["namespace"], lines[1]["name"]) == (
        "Canary",
        "shop",
        "podinfo",
    )
    assert "k8s_ref" not in lines[1]
