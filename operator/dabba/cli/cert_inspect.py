"""What ``dabba cert inspect`` shows: a MeshCertificate's Secret decoded and verified. Pure.

Certificates are read with :mod:`dabba.certs.pki` and the Secret with
:func:`dabba.certs.policies.parse_secret`, the code the operator decides with, so
``cert inspect`` and the operator can never disagree on what a Secret holds.

Key material never leaves this module: :func:`inspect_document` looks at the private key only
through :class:`dabba.certs.pki.PrivateKey` (algorithm, size, whether it matches) and copies
no Secret value into the document, only key *names*.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from rich.text import Text

from dabba.certs import pki
from dabba.certs.model import (
    EXTENDED_KEY_USAGE_OIDS,
    KEY_USAGE_FIELDS,
    OutputFormat,
    PrivateKeySpec,
)
from dabba.certs.policies import parse_secret
from dabba.cli.cert_view import STATE_STYLES, cert_summary
from dabba.cli.humanize import NONE, format_time, human_duration, parse_time, relative
from dabba.cli.output import Cell, Column, Fields, Section, Table, styled
from dabba.errors import SpecError


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _usage_names() -> dict[str, str]:
    # cert-manager spellings for display; "digital signature" rather than its alias "signing".
    names: dict[str, str] = {}
    for name, field in KEY_USAGE_FIELDS.items():
        if name.replace(" ", "_") == field or field not in names:
            names[field] = name
    return names


_KEY_USAGE_NAMES: Final = _usage_names()
_EKU_NAMES: Final = {oid: name for name, oid in reversed(list(EXTENDED_KEY_USAGE_OIDS.items()))}


def certificate_document(facts: pki.CertificateFacts, now: dt.datetime) -> dict[str, Any]:
    """One decoded certificate (public data only)."""
    if now < facts.not_before:
        validity = "not yet valid"
    elif now > facts.not_after:
        validity = "expired"
    else:
        validity = "valid"
    return {
        "subject": facts.subject,
        "issuer": facts.issuer,
        "serialNumber": facts.serial_number,
        "notBefore": format_time(facts.not_before),
        "notAfter": format_time(facts.not_after),
        "validity": validity,
        "secondsLeft": int((facts.not_after - now).total_seconds()),
        "isCA": facts.is_ca,
        "pathLength": facts.path_length,
        "selfSigned": facts.self_signed,
        "dnsNames": list(facts.dns_names),
        "ipAddresses": [str(ip) for ip in facts.ip_addresses],
        "uris": list(facts.uris),
        "publicKey": facts.describe_key(),
        "keyUsages": sorted(_KEY_USAGE_NAMES.get(u, u) for u in facts.key_usage or ()),
        "extendedKeyUsages": sorted(_EKU_NAMES.get(o, o) for o in facts.extended_key_usage),
        "fingerprints": {
            "sha256": facts.fingerprint_sha256,
            # why: `openssl x509 -fingerprint` and many dashboards still show SHA-1; display only.
            "sha1": facts.certificate.fingerprint(hashes.SHA1()).hex(),  # noqa: S303
        },
    }


def _decode(data: Mapping[str, Any]) -> dict[str, bytes]:
    decoded: dict[str, bytes] = {}
    for key, value in data.items():
        try:
            decoded[key] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            decoded[key] = b""
    return decoded


def _output_format(spec: Mapping[str, Any]) -> OutputFormat:
    try:
        return OutputFormat(spec.get("outputFormat") or "tls")
    except ValueError:
        return OutputFormat.TLS


def _expected_key(spec: Mapping[str, Any]) -> str | None:
    try:
        return PrivateKeySpec.from_k8s(_map(spec.get("privateKey")) or None).describe()
    except SpecError:
        return None


def inspect_document(
    obj: Mapping[str, Any], secret: Mapping[str, Any] | None, now: dt.datetime
) -> dict[str, Any]:
    """``cert inspect``: status, the Secret's decoded chain, the key check, verification.

    Never contains key material: only the key's algorithm/size and whether it matches.

    Args:
        obj: the MeshCertificate.
        secret: its Secret as the API returns it, or None when it does not exist.
        now: the validation time.
    """
    summary = cert_summary(obj, now)
    spec = _map(obj.get("spec"))
    doc: dict[str, Any] = {
        "kind": "MeshCertificate",
        "namespace": summary["namespace"],
        "name": summary["name"],
        "status": {
            k: summary[k]
            for k in (
                "state",
                "ready",
                "notAfter",
                "renewalTime",
                "serialNumber",
                "revision",
                "message",
            )
        },
        "issuer": summary["issuer"],
        "isCA": summary["isCA"],
        "secret": {"name": summary["secretName"], "found": secret is not None},
        "chain": [],
        "trustRoots": [],
        "privateKey": {
            "present": False,
            "algorithm": None,
            "expected": _expected_key(spec),
            "matchesCertificate": None,
            "error": None,
        },
        "verification": {
            "verified": False,
            "against": "ca.crt",
            "roots": 0,
            "problem": "the Secret does not exist",
        },
        "statusMatchesSecret": None,
    }
    if secret is None:
        return doc
    data = _decode(_map(secret.get("data")))
    annotations = {
        str(k): str(v) for k, v in _map(_map(secret.get("metadata")).get("annotations")).items()
    }
    contents = parse_secret(data, annotations, output_format=_output_format(spec))
    doc["secret"] = {
        "name": summary["secretName"],
        "found": True,
        "type": secret.get("type"),
        # Key names only: the values are certificates and, for tls.key/ca-key.pem, secrets.
        "keys": sorted(data),
        "missingKeys": list(contents.missing_keys),
        "inconsistentKeys": list(contents.inconsistent_keys),
        "certificateError": contents.certificate_error,
    }
    doc["chain"] = [certificate_document(f, now) for f in contents.chain]
    doc["trustRoots"] = [
        {
            "subject": f.subject,
            "notAfter": format_time(f.not_after),
            "fingerprintSHA256": f.fingerprint_sha256,
        }
        for f in contents.ca_certificates
    ]
    key = contents.private_key
    leaf = contents.leaf
    doc["privateKey"] = {
        "present": key is not None,
        "algorithm": None if key is None else key.describe(),
        "expected": _expected_key(spec),
        "matchesCertificate": None
        if key is None or leaf is None
        else key.matches(leaf.certificate),
        "error": contents.private_key_error,
    }
    problem: str | None
    if leaf is None:
        problem = contents.certificate_error or "the Secret has no certificate (tls.crt)"
    elif not contents.ca_certificates:
        problem = "the Secret has no trust roots (ca.crt) to verify against"
    else:
        problem = pki.verify_chain(
            leaf.certificate,
            [f.certificate for f in contents.chain[1:]],
            [f.certificate for f in contents.ca_certificates],
            now,
        )
    doc["verification"] = {
        "verified": problem is None,
        "against": "ca.crt",
        "roots": len(contents.ca_certificates),
        "problem": problem,
    }
    if leaf is not None and summary["serialNumber"] is not None:
        doc["statusMatchesSecret"] = leaf.serial_number == summary["serialNumber"]
    return doc


def _key_text(key: Mapping[str, Any]) -> Cell:
    if key["error"]:
        return styled(f"unusable: {key['error']}", "bold red")
    if not key["present"]:
        return styled("missing (tls.key)", "bold red")
    text = str(key["algorithm"])
    if key["expected"] and key["expected"] != key["algorithm"]:
        text += f" (spec asks for {key['expected']})"
    if key["matchesCertificate"] is True:
        return styled(f"{text}, matches the certificate", "green")
    if key["matchesCertificate"] is False:
        return styled(f"{text}, DOES NOT match the certificate", "bold red")
    return text


def _verification_text(v: Mapping[str, Any]) -> Cell:
    if v["verified"]:
        roots = f"{v['roots']} root{'s' if v['roots'] != 1 else ''}"
        return styled(f"OK: the certificate chains to {v['against']} ({roots})", "bold green")
    return styled(f"FAILED: {v['problem']}", "bold red")


def _list_text(values: Sequence[str]) -> str:
    return ", ".join(values) if values else NONE


def _certificate_fields(
    cert: Mapping[str, Any], index: int, total: int, now: dt.datetime
) -> Fields:
    role = "leaf" if index == 0 else ("root" if cert["selfSigned"] else "intermediate")
    if index == 0 and cert["isCA"]:
        role = "CA"
    not_after = parse_time(cert["notAfter"])
    validity = styled(
        f"{cert['notBefore']} to {cert['notAfter']} ({cert['validity']}, "
        + (
            f"{human_duration(not_after - now)} left)"
            if not_after and not_after > now
            else "ended)"
        ),
        "green" if cert["validity"] == "valid" else "bold red",
    )
    ca = "no"
    if cert["isCA"]:
        ca = "yes" + ("" if cert["pathLength"] is None else f", path length {cert['pathLength']}")
    items: list[tuple[str, Cell]] = [
        ("Subject", cert["subject"] or "<empty>"),
        ("Issuer", cert["issuer"] or "<empty>"),
        ("Serial", cert["serialNumber"]),
        ("Validity", validity),
        ("DNS names", _list_text(cert["dnsNames"])),
        ("IP addresses", _list_text(cert["ipAddresses"])),
        ("URIs", _list_text(cert["uris"])),
        ("Public key", cert["publicKey"]),
        ("CA", ca),
        ("Key usages", _list_text(cert["keyUsages"])),
        ("Extended usages", _list_text(cert["extendedKeyUsages"])),
        ("SHA-256", cert["fingerprints"]["sha256"]),
        ("SHA-1", cert["fingerprints"]["sha1"]),
    ]
    return Fields(items, title=f"Certificate {index + 1}/{total} ({role})")


def inspect_sections(doc: Mapping[str, Any], now: dt.datetime) -> list[Section]:
    """The ``cert inspect`` view."""
    status, secret = doc["status"], doc["secret"]
    state = Text()
    state.append(status["state"], style=STATE_STYLES.get(status["state"], "bold"))
    if status["message"]:
        state.append(f"  {status['message']}")
    if not secret["found"]:
        secret_text: Cell = styled(f"{secret['name']} (not found)", "bold red")
    else:
        secret_text = (
            f"{secret['name']} ({secret['type']}; keys {', '.join(secret['keys']) or NONE})"
        )
        if secret["missingKeys"]:
            secret_text += f"; missing {', '.join(secret['missingKeys'])}"
        if secret["inconsistentKeys"]:
            secret_text += f"; inconsistent {', '.join(secret['inconsistentKeys'])}"
    not_after = parse_time(status["notAfter"])
    items: list[tuple[str, Cell]] = [
        ("State", state),
        ("Secret", secret_text),
        ("Issuer", doc["issuer"]),
        ("Not after", f"{status['notAfter']} ({relative(not_after, now)})" if not_after else NONE),
        ("Renews", relative(parse_time(status["renewalTime"]), now)),
        ("Revision", NONE if status["revision"] is None else str(status["revision"])),
    ]
    if doc["statusMatchesSecret"] is False:
        items.append(
            (
                "Serial",
                styled(
                    f"status says {status['serialNumber']}, the Secret holds another certificate",
                    "yellow",
                ),
            )
        )
    if secret["found"]:
        items.append(("Private key", _key_text(doc["privateKey"])))
    items.append(("Verification", _verification_text(doc["verification"])))
    sections: list[Section] = [
        Fields(items, title=f"MeshCertificate {doc['namespace']}/{doc['name']}")
    ]
    chain = doc["chain"]
    sections.extend(_certificate_fields(c, i, len(chain), now) for i, c in enumerate(chain))
    if secret["found"]:
        sections.append(
            Table(
                [Column("Subject"), Column("Not after"), Column("SHA-256")],
                [
                    (r["subject"] or "<empty>", r["notAfter"], r["fingerprintSHA256"])
                    for r in doc["trustRoots"]
                ],
                title="Trust roots (ca.crt)",
                empty="none",
            )
        )
    return sections
