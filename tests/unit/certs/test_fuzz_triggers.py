"""Fuzzing the certificate trigger chain's inputs with arbitrary bytes (issue 9).

``test_policies.py`` already proves the chains never raise on hostile Secret data. These add
what the chaos suite's leak scanner cares about and what an issuer Secret can hold:

- an issuer Secret of arbitrary bytes (either layout) is refused with ``IssuerError`` only —
  never another exception that would escape as a traceback — and the message, which goes into
  status and Events, never carries private key material;
- whatever hostile bytes sit in a workload's Secret, no violation message (status, Events)
  quotes the private key that was planted there.
"""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dabba.certs import issuer, pki, policies
from dabba.certs.issuer import IssuerError
from dabba.certs.model import IssuerSecretFormat, OutputFormat

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TLS_KEYS = ("tls.crt", "tls.key", "ca.crt", "next.crt", "next.key")
ISTIO_KEYS = ("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem")


def _pem(body: bytes, label: bytes = b"CERTIFICATE") -> bytes:
    return (
        b"-----BEGIN "
        + label
        + b"-----\n"
        + base64.encodebytes(body)
        + b"-----END "
        + label
        + b"-----\n"
    )


def _key_lines(pem: bytes) -> list[str]:
    return [
        line.decode(errors="replace")
        for line in pem.splitlines()
        if len(line) >= 32 and not line.startswith(b"-----")
    ]


@pytest.fixture(scope="module")
def material(make):
    root = make.root()
    leaf = make.leaf()
    return {
        "root_crt": pki.to_pem((root.certificate,)),
        "root_key": root.key.to_pkcs8_pem(),
        "leaf_crt": pki.to_pem((leaf.certificate,)),
        "leaf_key": leaf.key.to_pkcs8_pem(),
    }


@st.composite
def hostile(draw, material: dict[str, bytes]) -> bytes:  # noqa: PLR0911 - one per kind
    kind = draw(
        st.sampled_from(["raw", "pem", "valid", "flipped", "truncated", "concat", "swap-key"])
    )
    if kind == "raw":
        return draw(st.binary(max_size=200))
    if kind == "pem":
        label = draw(st.sampled_from([b"CERTIFICATE", b"PRIVATE KEY", b"EC PRIVATE KEY"]))
        return _pem(draw(st.binary(max_size=200)), label)
    if kind == "valid":
        return material[draw(st.sampled_from(sorted(material)))]
    base = material[draw(st.sampled_from(sorted(material)))]
    if kind == "flipped":
        i = draw(st.integers(0, len(base) - 1))
        flipped = bytearray(base)
        flipped[i] ^= draw(st.integers(1, 255))
        return bytes(flipped)
    if kind == "truncated":
        return base[: draw(st.integers(0, len(base)))]
    if kind == "concat":
        return base + material[draw(st.sampled_from(sorted(material)))]
    return material["leaf_key"] + base  # a key where a certificate belongs


SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(data=st.data(), layout=st.sampled_from(list(IssuerSecretFormat)))
def test_an_issuer_secret_of_arbitrary_bytes_is_refused_cleanly_without_quoting_keys(
    material, data, layout
) -> None:
    names = ISTIO_KEYS if layout is IssuerSecretFormat.ISTIO else TLS_KEYS
    secret = data.draw(st.dictionaries(st.sampled_from(names), hostile(material), max_size=5))
    try:
        authority = issuer.load_issuer(secret, layout, T0)
    except IssuerError as exc:
        message = str(exc)
        for pem in (material["root_key"], material["leaf_key"]):
            for line in _key_lines(pem):
                assert line not in message, f"key material in: {message}"
        assert "PRIVATE KEY" not in message
    else:
        # Only a genuine CA with its own key is ever accepted.
        assert authority.certificate.extensions  # a parsed certificate
        assert pki.CertificateFacts.from_certificate(authority.certificate).is_ca
    roots = tuple(pki.load_certificates(material["root_crt"]))
    issuer.load_next(secret, roots, T0)  # never raises: a broken next CA is just None


@SETTINGS
@given(data=st.data())
def test_no_violation_message_quotes_a_planted_private_key(make, material, data) -> None:
    secret_data = data.draw(
        st.dictionaries(st.sampled_from(TLS_KEYS[:3]), hostile(material), min_size=1, max_size=3)
    )
    secret = policies.parse_secret(secret_data, {}, output_format=OutputFormat.TLS)
    inp = make.input(secret=secret, now=data.draw(st.datetimes(timezones=st.just(dt.UTC))))
    assessment = policies.assess(inp)
    messages = [c.message for c in assessment.conditions]
    for violation in (assessment.trigger, assessment.readiness, assessment.issuer):
        if violation is not None:
            messages.append(violation.message)
    text = "\n".join(messages)
    assert "PRIVATE KEY" not in text
    for pem in (material["leaf_key"], material["root_key"]):
        for line in _key_lines(pem):
            assert line not in text
