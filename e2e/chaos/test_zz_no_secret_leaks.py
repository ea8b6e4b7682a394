"""Secrets never leak: the last scenario of the suite scans everything the others produced.

Haystacks: every operator log of the session (the session operator — JSON, and console after
the kill scenario's alternate restarts — and the failover replicas), exception tracebacks in
them, the Events and dabba objects (status included) of every scenario's namespace captured
before it was deleted, and the Events and objects alive now in every namespace.
Needles: the PEM marker ``PRIVATE KEY``, every base64 line of every private key the operator
wrote (harvested from labelled Secrets every second, so rotated-away keys count too) or the
tests planted in issuer Secrets, and each key's private number in decimal and hex.
"""

from __future__ import annotations

import json
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from kubernetes import client

from chaos.kit import Evidence
from e2ekit import Operator, custom

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

MARKER = b"PRIVATE KEY"


def needles_of(pem: bytes) -> list[bytes]:
    """What would show that ``pem`` leaked; empty when it is not a private key at all."""
    try:
        key = serialization.load_pem_private_key(pem, None)
    except (ValueError, TypeError):
        return []
    out = [
        line.strip()
        for line in pem.splitlines()
        if len(line.strip()) >= 32 and not line.startswith(b"-----")
    ]
    number: int | None = None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        number = key.private_numbers().private_value
    elif isinstance(key, rsa.RSAPrivateKey):
        number = key.private_numbers().d
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        out.append(raw.hex().encode())
    if number is not None:
        out += [str(number).encode(), format(number, "x").encode()]
    return out


def tracebacks(text: bytes) -> list[bytes]:
    """Traceback blocks in JSON (escaped) and console logs."""
    found = re.findall(rb'"exception": "(Traceback.*?)"[,}]', text)
    found += re.findall(rb"(Traceback \(most recent call last\).*?)(?:\n\S|\Z)", text, re.S)
    found += re.findall(rb"(\xe2\x94\x82.*?Traceback.*?\xe2\x95\xb0[^\n]*)", text, re.S)
    return found


def scan(haystacks: dict[str, bytes], needles: list[bytes]) -> list[str]:
    leaks = []
    for where, text in haystacks.items():
        if MARKER in text:
            leaks.append(f"{where}: contains {MARKER.decode()!r}")
        for needle in needles:
            if needle in text:
                leaks.append(f"{where}: contains key material {needle[:12]!r}…")
    return leaks


def test_the_scanner_finds_a_planted_key() -> None:
    """The scanner itself: a key written into a log line, JSON-escaped or as a number, is found."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    needles = needles_of(pem)
    body = pem.split(b"\n", 1)[1].replace(b"-----END", b"").replace(b"-----", b"")
    escaped = json.dumps({"event": "oops", "data": body.decode()}).encode()
    as_number = f"private_value={key.private_numbers().private_value}".encode()
    assert scan({"json": escaped}, needles)
    assert scan({"number": as_number}, needles)
    assert scan({"pem": pem}, needles)
    assert not scan({"clean": b'{"event": "issued", "serial": "abc"}'}, needles)
    assert needles_of(b"garbage") == []


def test_no_private_key_material_in_logs_events_status_or_tracebacks(
    k8s_api: client.ApiClient, operator: Operator, evidence: Evidence
) -> None:
    evidence.add_log(operator.log)  # (the chart's operator: fetches its pods' logs now)
    needles = sorted({n for pem in list(evidence.keys) for n in needles_of(pem)})
    assert needles, "the session should have seen private keys (the harvester reads them)"
    haystacks: dict[str, bytes] = {}
    json_lines = console_lines = 0
    for path in evidence.logs:
        if not path.exists():
            continue
        text = path.read_bytes()
        haystacks[f"log {path}"] = text
        for line in text.splitlines():
            if line.startswith(b"{"):
                json_lines += 1
            elif line.strip():
                console_lines += 1
        for i, tb in enumerate(tracebacks(text)):
            haystacks[f"traceback {i} in {path.name}"] = tb
    haystacks.update({f"captured {k}": v for k, v in evidence.documents.items()})
    core = client.CoreV1Api(k8s_api)
    haystacks["live events"] = core.list_event_for_all_namespaces(_preload_content=False).data
    for plural in ("canaries", "meshcertificates"):
        haystacks[f"live {plural}"] = (
            custom(k8s_api)
            .list_cluster_custom_object("dabba.io", "v1alpha1", plural, _preload_content=False)
            .data
        )
    leaks = scan(haystacks, needles)
    n_tracebacks = sum(1 for k in haystacks if k.startswith("traceback"))
    print(
        f"[chaos] leak scan: {len(evidence.keys)} keys ({len(needles)} needles) over "
        f"{len(haystacks)} haystacks, {sum(len(v) for v in haystacks.values()) >> 10} KiB: "
        f"{json_lines} JSON and {console_lines} console log lines, {n_tracebacks} tracebacks, "
        f"{len(evidence.documents)} captured namespaces' documents"
    )
    assert not leaks, "\n".join(leaks[:50])
    assert json_lines > 0
    if evidence.console_restarts:
        assert console_lines > 0, "the console-format restarts wrote nothing?"
