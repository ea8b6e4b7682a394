"""``dabba cert inspect``: a real Secret decoded, verified, and the key never shown."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from dabba.cli import cert_inspect
from dabba.cli.humanize import format_time
from dabba.cli.output import plain_sections

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


def _leaf_obj() -> dict[str, Any]:
    return {
        "apiVersion": "dabba.io/v1alpha1",
        "kind": "MeshCertificate",
        "metadata": {"name": "payments", "namespace": "shop"},
        "spec": {"secretName": "payments-tls", "issuerRef": {"name": "mesh-root"}},
        "status": {
            "notAfter": format_time(NOW + 23 * H),
            "conditions": [{"type": "Ready", "status": "True", "reason": "UpToDate"}],
        },
    }


def test_inspect_decodes_verifies_and_hides_the_key(pki: Any) -> None:
    ca = pki.ca()
    leaf = pki.leaf(ca)
    obj = _leaf_obj()
    obj["status"]["serialNumber"] = format(leaf.cert.serial_number, "x")
    secret = pki.secret(leaf.cert_pem, leaf.key_pem, ca.cert_pem)
    doc = cert_inspect.inspect_document(obj, secret, NOW)
    cert = doc["chain"][0]
    assert cert["dnsNames"] == ["payments", "payments.shop.svc"]
    assert cert["ipAddresses"] == ["10.0.0.7"]
    assert cert["uris"] == ["spiffe://cluster.local/ns/shop/sa/payments"]
    assert cert["publicKey"] == "ECDSA-256"
    assert cert["keyUsages"] == ["digital signature", "key encipherment"]
    assert cert["extendedKeyUsages"] == ["client auth", "server auth"]
    assert cert["validity"] == "valid"
    assert cert["issuer"] == "CN=mesh root"
    assert len(cert["fingerprints"]["sha256"]) == 64
    assert len(cert["fingerprints"]["sha1"]) == 40
    assert doc["verification"] == {
        "verified": True,
        "against": "ca.crt",
        "roots": 1,
        "problem": None,
    }
    assert doc["privateKey"]["present"] is True
    assert doc["privateKey"]["algorithm"] == "ECDSA-256"
    assert doc["privateKey"]["matchesCertificate"] is True
    assert doc["statusMatchesSecret"] is True
    assert doc["secret"]["keys"] == ["ca.crt", "tls.crt", "tls.key"]
    assert doc["trustRoots"][0]["subject"] == "CN=mesh root"
    rendered = json.dumps(doc) + plain_sections(cert_inspect.inspect_sections(doc, NOW))
    assert "PRIVATE KEY" not in rendered
    assert leaf.key_pem.decode().splitlines()[1] not in rendered
    text = plain_sections(cert_inspect.inspect_sections(doc, NOW))
    assert "OK: the certificate chains to ca.crt (1 root)" in text
    assert "ECDSA-256, matches the certificate" in text
    assert "spiffe://cluster.local/ns/shop/sa/payments" in text


def test_inspect_reports_a_foreign_root_and_a_wrong_key(pki: Any) -> None:
    # Same name, another key: what a Secret looks like when its CA was rolled over.
    ca, other = pki.ca(), pki.ca()
    leaf, stranger = pki.leaf(ca), pki.leaf(ca)
    doc = cert_inspect.inspect_document(
        _leaf_obj(), pki.secret(leaf.cert_pem, stranger.key_pem, other.cert_pem), NOW
    )
    assert doc["verification"]["verified"] is False
    assert "does not verify" in doc["verification"]["problem"]
    assert doc["privateKey"]["matchesCertificate"] is False
    text = plain_sections(cert_inspect.inspect_sections(doc, NOW))
    assert "DOES NOT match the certificate" in text
    assert "FAILED:" in text


def test_inspect_survives_missing_and_garbage(pki: Any) -> None:
    missing = cert_inspect.inspect_document(_leaf_obj(), None, NOW)
    assert missing["secret"] == {"name": "payments-tls", "found": False}
    assert missing["verification"]["verified"] is False
    garbage = cert_inspect.inspect_document(_leaf_obj(), pki.secret(b"not a pem", None, None), NOW)
    assert garbage["chain"] == []
    assert garbage["secret"]["certificateError"] is not None
    assert garbage["secret"]["missingKeys"] == ["tls.key"]
    assert garbage["privateKey"]["present"] is False
    text = plain_sections(cert_inspect.inspect_sections(garbage, NOW))
    assert "missing (tls.key)" in text


def test_inspect_expired_leaf(pki: Any) -> None:
    ca = pki.ca()
    old = pki.leaf(ca, start=NOW - 30 * H, hours=24)
    doc = cert_inspect.inspect_document(
        _leaf_obj(), pki.secret(old.cert_pem, old.key_pem, ca.cert_pem), NOW
    )
    assert doc["chain"][0]["validity"] == "expired"
    assert doc["chain"][0]["secondsLeft"] < 0
    assert "expired" in doc["verification"]["problem"]
