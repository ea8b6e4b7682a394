"""``dabba status``: one row per Canary and MeshCertificate."""

from __future__ import annotations

import datetime as dt
from typing import Any

from dabba.cli.output import plain_table
from dabba.cli.status import status_items, status_table

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _obj(kind: str, name: str, namespace: str, status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "dabba.io/v1alpha1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": "2026-03-01T09:00:00Z",
        },
        "spec": {"secretName": f"{name}-tls"} if kind == "MeshCertificate" else {},
        "status": status,
    }


CANARIES = [
    _obj("Canary", "web", "shop", {}),
    _obj(
        "Canary",
        "api",
        "shop",
        {
            "phase": "Progressing",
            "canaryWeight": 10,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Ready", "message": "x" * 100}
            ],
        },
    ),
]
CERTS = [
    _obj(
        "MeshCertificate",
        "payments",
        "bank",
        {
            "notAfter": "2026-03-01T15:00:00Z",
            "renewalTime": "2026-03-01T13:00:00Z",
            "serialNumber": "0123456789abcdef0123",
            "conditions": [{"type": "Ready", "status": "True", "reason": "UpToDate"}],
        },
    )
]


def test_items_are_grouped_by_kind_and_sorted() -> None:
    items = status_items(CANARIES, CERTS, NOW)
    assert [(i["kind"], i["name"]) for i in items] == [
        ("Canary", "api"),
        ("Canary", "web"),
        ("MeshCertificate", "payments"),
    ]
    api, web, cert = items
    assert (api["state"], api["weight"], api["ready"]) == ("Progressing", 10, True)
    assert (web["state"], web["phase"], web["ready"]) == ("Pending", None, None)
    assert (cert["state"], cert["ready"], cert["secondsLeft"]) == ("Ready", True, 3 * 3600)
    assert cert["weight"] is None
    keys = set(api)
    assert all(set(i) == keys for i in items), "every item has the same keys"


def test_table_columns_follow_scope_and_width() -> None:
    items = status_items(CANARIES, CERTS, NOW)
    lines = plain_table(status_table(items, NOW, all_namespaces=False, wide=False))
    assert lines[0].split() == ["KIND", "NAME", "STATE", "WEIGHT/EXPIRES", "AGE", "MESSAGE"]
    assert lines[1].split()[:5] == ["Canary", "api", "Progressing", "10%", "3h"]
    assert lines[1].endswith("x" * 59 + "…")
    assert lines[3].split()[:5] == ["MeshCertificate", "payments", "Ready", "3h", "3h"]
    wide = plain_table(status_table(items, NOW, all_namespaces=True, wide=True))
    assert wide[0].split()[:2] == ["KIND", "NAMESPACE"]
    assert "RENEWS" in wide[0]
    assert "REVISION/SERIAL" in wide[0]
    assert wide[1].endswith("x" * 100)
    assert "in 1h" in wide[3]
    assert "0123456789abcdef" in wide[3]
