"""Secrets never leak: the last scenario of the suite scans everything the others produced.

Haystacks: every operator log of the session (the session operator — JSON, and console after
the kill scenario's alternate restarts — and the failover replicas), exception tracebacks in
them, the Events and dabba objects (status included) of every scenario's namespace captured
before it was deleted, and the Events and objects alive now in every namespace.
Needles: the PEM marker ``PRIVATE KEY``, every base64 line (and 40-byte piece of the body) of
every private key the operator wrote (harvested from labelled Secrets every second, so
rotated-away keys count too) or the tests planted in issuer Secrets, and each key's private
number in decimal and hex. The scanner is ``e2ekit.scan_for_private_keys``, which the
MeshCertificate and CA-rollover modules also run over their own keys.
"""

from __future__ import annotations

import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes import client

from chaos.kit import MARKS, Evidence
from e2ekit import Operator, find_leaks, key_needles, scan_for_private_keys

pytestmark = [*MARKS]


def test_the_scanner_finds_a_planted_key() -> None:
    """The scanner itself: a key written into a log line, JSON-escaped or as a number, is found."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    needles = key_needles(pem)
    body = pem.split(b"\n", 1)[1].replace(b"-----END", b"").replace(b"-----", b"")
    escaped = json.dumps({"event": "oops", "data": body.decode()}).encode()
    as_number = f"private_value={key.private_numbers().private_value}".encode()
    assert find_leaks({"json": escaped}, needles)
    assert find_leaks({"number": as_number}, needles)
    assert find_leaks({"pem": pem}, needles)
    assert not find_leaks({"clean": b'{"event": "issued", "serial": "abc"}'}, needles)
    assert key_needles(b"garbage") == []


def test_no_private_key_material_in_logs_events_status_or_tracebacks(
    k8s_api: client.ApiClient, operator: Operator, evidence: Evidence
) -> None:
    evidence.add_log(operator.log)  # (the chart's operator: fetches its pods' logs now)
    found = scan_for_private_keys(
        k8s_api,
        list(evidence.keys),
        [path for path in evidence.logs if path.exists()],
        {f"captured {k}": v for k, v in evidence.documents.items()},
    )
    assert found.needles, "the session should have seen private keys (the harvester reads them)"
    print(
        f"[chaos] leak scan: {found.keys} keys ({found.needles} needles) over "
        f"{len(found.haystacks)} haystacks, "
        f"{sum(len(v) for v in found.haystacks.values()) >> 10} KiB: "
        f"{found.json_lines} JSON and {found.console_lines} console log lines, "
        f"{found.tracebacks} tracebacks, "
        f"{len(evidence.documents)} captured namespaces' documents"
    )
    assert not found.leaks, "\n".join(found.leaks[:50])
    assert found.json_lines > 0
    if evidence.console_restarts:
        assert found.console_lines > 0, "the console-format restarts wrote nothing?"
