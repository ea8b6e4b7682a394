"""``dabba cert`` data: list rows, the expiring filter, plan order, and Secret inspection."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dabba.cli import cert_view
from dabba.cli.humanize import format_time
from dabba.cli.output import plain_sections, plain_table

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


def _cond(type_: str, status: str, message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": "R", "message": message}


def _cert(
    name: str,
    *,
    namespace: str = "shop",
    not_after: dt.datetime | None = None,
    renewal: dt.datetime | None = None,
    conditions: list[dict[str, Any]] | None = None,
    is_ca: bool = False,
    issuer: dict[str, Any] | None = None,
    **status: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"secretName": f"{name}-tls"}
    if is_ca:
        spec["isCA"] = True
    if issuer is not None:
        spec["issuerRef"] = issuer
    body: dict[str, Any] = {}
    if not_after is not None:
        body["notBefore"] = format_time(not_after - 24 * H)
        body["notAfter"] = format_time(not_after)
    if renewal is not None:
        body["renewalTime"] = format_time(renewal)
    if conditions is not None:
        body["conditions"] = conditions
    body.update(status)
    return {
        "apiVersion": "dabba.io/v1alpha1",
        "kind": "MeshCertificate",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": "2026-03-01T00:00:00Z",
        },
        "spec": spec,
        "status": body,
    }


READY = [_cond("Ready", "True", "certificate is valid")]
ROOT = {"kind": "MeshCertificate", "name": "mesh-root", "namespace": "dabba-system"}


@pytest.mark.parametrize(
    ("obj", "state", "ready"),
    [
        (_cert("a"), "Pending", None),
        (_cert("a", not_after=NOW + 5 * H, conditions=READY), "Ready", True),
        # The operator is behind: Ready still True, but the certificate has expired.
        (_cert("a", not_after=NOW - H, conditions=READY), "Expired", False),
        (
            _cert(
                "a",
                not_after=NOW + H,
                conditions=[_cond("Ready", "False"), _cond("Issuing", "True")],
            ),
            "Issuing",
            False,
        ),
        (_cert("a", conditions=[_cond("Ready", "False")]), "NotReady", False),
        (_cert("a", conditions=[_cond("Ready", "Unknown")]), "NotReady", None),
    ],
)
def test_state_and_ready(obj: dict[str, Any], state: str, ready: bool | None) -> None:
    summary = cert_view.cert_summary(obj, NOW)
    assert (summary["state"], summary["ready"]) == (state, ready)


def test_summary_row() -> None:
    obj = _cert(
        "payments",
        not_after=NOW + 20 * H,
        renewal=NOW + 12 * H,
        conditions=READY,
        issuer={"name": "mesh-root"},
        serialNumber="abc123",
        revision=4,
    )
    summary = cert_view.cert_summary(obj, NOW)
    assert summary == {
        "kind": "MeshCertificate",
        "namespace": "shop",
        "name": "payments",
        "state": "Ready",
        "ready": True,
        "secretName": "payments-tls",
        "isCA": False,
        # issuerRef.namespace defaults to the certificate's own namespace.
        "issuer": "MeshCertificate shop/mesh-root",
        "notBefore": "2026-03-01T08:00:00Z",
        "notAfter": "2026-03-02T08:00:00Z",
        "renewalTime": "2026-03-02T00:00:00Z",
        "secondsLeft": 20 * 3600,
        "serialNumber": "abc123",
        "revision": 4,
        "created": "2026-03-01T00:00:00Z",
        "message": "certificate is valid",
    }


def test_message_puts_problems_first() -> None:
    failing = _cert(
        "a",
        not_after=NOW + H,
        conditions=READY,
        failedIssuanceAttempts=3,
        lastFailureReason="issuer Secret not found",
    )
    assert cert_view.cert_summary(failing, NOW)["message"] == (
        "issuance failed 3x: issuer Secret not found"
    )
    stale = _cert("a", not_after=NOW - H, conditions=READY)
    assert "is the dabba operator running?" in cert_view.cert_summary(stale, NOW)["message"]


def test_expiring_within_includes_expired_and_skips_never_issued() -> None:
    items = [
        cert_view.cert_summary(o, NOW)
        for o in (
            _cert("soon", not_after=NOW + 2 * H),
            _cert("dead", not_after=NOW - 2 * H),
            _cert("later", not_after=NOW + 72 * H),
            _cert("edge", not_after=NOW + 24 * H),
            _cert("never"),
        )
    ]
    names = [i["name"] for i in cert_view.expiring_within(items, dt.timedelta(hours=24))]
    assert names == ["soon", "dead", "edge"]
    assert [i["name"] for i in cert_view.expiring_within(items, dt.timedelta(minutes=90))] == [
        "dead"
    ]


def test_list_table_rows() -> None:
    items = [
        cert_view.cert_summary(
            _cert("ok", not_after=NOW + 20 * H, renewal=NOW + 12 * H, conditions=READY), NOW
        ),
        cert_view.cert_summary(_cert("dead", not_after=NOW - 2 * H, conditions=READY), NOW),
    ]
    lines = plain_table(cert_view.list_table(items, NOW, all_namespaces=True, wide=False))
    assert lines[0].split() == [
        "NAMESPACE", "NAME", "READY", "SECRET", "NOT", "AFTER", "TIME", "LEFT", "RENEWS", "ISSUER",
    ]  # fmt: skip
    assert lines[1].split() == [
        "shop", "ok", "True", "ok-tls", "2026-03-02T08:00:00Z", "20h", "in", "12h", "self-signed",
    ]  # fmt: skip
    assert "expired 2h ago" in lines[2]
    assert "False" in lines[2]
    wide = plain_table(cert_view.list_table(items, NOW, all_namespaces=False, wide=True))
    assert wide[0].split()[-3:] == ["SERIAL", "REVISION", "MESSAGE"]
    assert not wide[0].startswith("NAMESPACE")


def test_plan_orders_late_first_then_pending_then_by_time() -> None:
    objs = [
        _cert("later", not_after=NOW + 48 * H, renewal=NOW + 30 * H, issuer=ROOT),
        _cert("soon", not_after=NOW + 10 * H, renewal=NOW + 2 * H, issuer=ROOT),
        _cert("overdue", not_after=NOW + 3 * H, renewal=NOW - H, issuer=ROOT),
        _cert("new", issuer=ROOT),
        _cert("dead", not_after=NOW - 5 * H, renewal=NOW - 10 * H, issuer=ROOT),
        _cert("dead2", not_after=NOW - H, issuer=ROOT),
    ]
    doc = cert_view.plan_document(objs, NOW)
    assert [(e["name"], e["action"]) for e in doc["items"]] == [
        ("dead", "expired"),
        ("dead2", "expired"),
        ("overdue", "overdue"),
        ("new", "issue"),
        ("soon", "renew"),
        ("later", "renew"),
    ]
    assert doc["items"][4]["when"] == format_time(NOW + 2 * H)
    assert doc["items"][3]["when"] is None


def test_plan_ca_timeline_counts_leaves_and_marks_missing_issuers() -> None:
    root = _cert(
        "mesh-root",
        namespace="dabba-system",
        is_ca=True,
        not_after=NOW + 900 * H,
        renewal=NOW + 600 * H,
        rolloverPhase="WaitForBundles",
        trustedRoots=[
            {
                "fingerprintSHA256": "aa" * 32,
                "notAfter": "2026-05-01T00:00:00Z",
                "reason": "current",
            },
            {
                "fingerprintSHA256": "bb" * 32,
                "notAfter": "2026-03-05T00:00:00Z",
                "reason": "previous",
            },
        ],
    )
    other = _cert("edge-ca", is_ca=True, not_after=NOW + 100 * H, renewal=NOW + 60 * H)
    leaves = [
        _cert("a", not_after=NOW + 20 * H, renewal=NOW + 10 * H, issuer=ROOT),
        _cert("b", not_after=NOW + 20 * H, renewal=NOW + 11 * H, issuer=ROOT),
        _cert("c", not_after=NOW + 20 * H, renewal=NOW + 11 * H, issuer={"name": "gone"}),
    ]
    doc = cert_view.plan_document(
        [other, *leaves],
        NOW,
        issuers=[root],
        missing_issuers=[cert_view.IssuerRef("MeshCertificate", "shop", "gone")],
    )
    cas = {(c["namespace"], c["name"]): c for c in doc["cas"]}
    assert [c["name"] for c in doc["cas"]] == ["edge-ca", "mesh-root", "gone"]  # by notAfter
    assert cas["dabba-system", "mesh-root"]["leaves"] == 2
    assert cas["dabba-system", "mesh-root"]["rolloverPhase"] == "WaitForBundles"
    assert [r["reason"] for r in cas["dabba-system", "mesh-root"]["trustedRoots"]] == [
        "current",
        "previous",
    ]
    assert cas["shop", "gone"]["found"] is False
    assert cas["shop", "gone"]["leaves"] == 1
    text = plain_sections(cert_view.plan_sections(doc, NOW, all_namespaces=False))
    assert "CA timeline:" in text
    assert "not found" in text
    assert "sha256:aaaaaaaaaaaa… until 2026-05-01T00:00:00Z (current)" in text


def test_plan_says_leaves_follow_a_ca() -> None:
    ca = _cert("mesh-root", is_ca=True, not_after=NOW + 90 * H, renewal=NOW + 60 * H)
    leaf = _cert("a", not_after=NOW + 20 * H, renewal=NOW + 10 * H, issuer={"name": "mesh-root"})
    doc = cert_view.plan_document([ca, leaf], NOW)
    ca_entry = next(e for e in doc["items"] if e["name"] == "mesh-root")
    assert ca_entry["dependents"] == 1
    assert "then its leaf certificate re-issues with the new CA" in ca_entry["reason"]
