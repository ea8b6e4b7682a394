"""The trigger and readiness chains: one table per check, then the whole chain's order.

Every row starts from a consistent baseline (a leaf for spiffe://cluster.local/ns/shop/sa/
payments signed by mesh-root at T0, looked at one hour later) and changes one thing.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dabba.certs import issuer, pki, policies
from dabba.certs.model import (
    ANNOTATION_ISSUER_FINGERPRINT,
    ConditionStatus,
    ConditionType,
    KeyAlgorithm,
    OutputFormat,
    Reason,
    effective_usages,
)
from dabba.certs.policies import PolicyInput

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
S = dt.timedelta(seconds=1)


def reason_of(violation: policies.Violation | None) -> Reason | None:
    return None if violation is None else violation.reason


@pytest.fixture(scope="module")
def ca_spec(make):
    return make.spec(issuerRef=None, isCA=True, serviceAccountName=None, service=None)


@pytest.fixture(scope="module")
def istio_ca(make):
    spec = make.spec(
        issuerRef=None, isCA=True, serviceAccountName=None, service=None, outputFormat="istio"
    )
    return spec, make.leaf(spec, slot=30)


def test_the_baseline_triggers_nothing_and_is_ready(make) -> None:
    inp = make.input()
    assessment = policies.assess(inp)
    assert assessment.trigger is None
    assert assessment.readiness is None
    assert assessment.issuer is None
    assert not assessment.should_issue
    assert assessment.can_issue


# --------------------------------------------------------------------------------------------
# One table per check


def test_secret_missing(make) -> None:
    assert reason_of(policies.secret_missing(make.input(secret=None))) is Reason.DOES_NOT_EXIST
    assert policies.secret_missing(make.input()) is None


@pytest.mark.parametrize(
    ("fmt", "drop", "blank", "expected"),
    [
        pytest.param(
            OutputFormat.TLS,
            "tls.crt",
            None,
            Reason.MISSING_DATA,
            id="trigger when tls.crt is missing",
        ),
        pytest.param(
            OutputFormat.TLS,
            "tls.key",
            None,
            Reason.MISSING_DATA,
            id="trigger when tls.key is missing",
        ),
        pytest.param(
            OutputFormat.TLS,
            None,
            "tls.crt",
            Reason.MISSING_DATA,
            id="trigger when tls.crt is only whitespace",
        ),
        pytest.param(
            OutputFormat.TLS, "ca.crt", None, None, id="ca.crt is optional in the tls format"
        ),
        pytest.param(
            OutputFormat.LINKERD, "ca.crt", None, Reason.MISSING_DATA, id="linkerd needs ca.crt"
        ),
        pytest.param(
            OutputFormat.ISTIO, "ca-key.pem", None, Reason.MISSING_DATA, id="istio needs ca-key.pem"
        ),
        pytest.param(
            OutputFormat.ISTIO,
            "cert-chain.pem",
            None,
            Reason.MISSING_DATA,
            id="istio needs cert-chain.pem",
        ),
        pytest.param(OutputFormat.ISTIO, None, None, None, id="a complete istio Secret"),
    ],
)
def test_secret_missing_data(make, istio_ca, fmt, drop, blank, expected) -> None:
    spec, issued = istio_ca
    data = make.data(issued, OutputFormat.ISTIO)
    data.pop(drop, None)
    if blank:
        data[blank] = b"  \n"
    secret = make.contents(spec=spec, data=data, output_format=fmt)
    violation = policies.secret_missing_data(make.input(spec=spec, secret=secret))
    assert reason_of(violation) is expected
    if violation:
        assert (drop or blank) in violation.message


@pytest.mark.parametrize(
    ("key", "replacement", "expected"),
    [
        pytest.param(None, None, None, id="copies agree"),
        pytest.param(
            "ca-cert.pem",
            "other-cert",
            Reason.INCONSISTENT_DATA,
            id="trigger when ca-cert.pem is another certificate",
        ),
        pytest.param(
            "ca-cert.pem",
            "garbage",
            Reason.INCONSISTENT_DATA,
            id="trigger when ca-cert.pem is garbage",
        ),
        pytest.param(
            "ca-key.pem",
            "other-key",
            Reason.INCONSISTENT_DATA,
            id="trigger when ca-key.pem differs from tls.key",
        ),
        pytest.param(
            "root-cert.pem",
            "other-cert",
            Reason.INCONSISTENT_DATA,
            id="trigger when root-cert.pem differs from ca.crt",
        ),
    ],
)
def test_secret_inconsistent(make, istio_ca, key, replacement, expected) -> None:
    spec, issued = istio_ca
    data = make.data(issued, OutputFormat.ISTIO)
    other = make.root("someone-else", slot=31)
    replacements = {
        "other-cert": pki.to_pem((other.certificate,)),
        "garbage": b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "other-key": other.key.to_pkcs8_pem(),
    }
    if key:
        data[key] = replacements[replacement]
    secret = make.contents(spec=spec, data=data, output_format=OutputFormat.ISTIO)
    violation = policies.secret_inconsistent(make.input(spec=spec, secret=secret))
    assert reason_of(violation) is expected
    if violation:
        assert key in violation.message


def test_secret_inconsistent_ignores_the_tls_format(make) -> None:
    issued = make.leaf()
    data = make.data(issued)
    data["ca-cert.pem"] = b"unrelated"
    assert policies.secret_inconsistent(make.input(secret=make.contents(issued, data=data))) is None


_GARBAGE = {
    "random bytes": b"\x00\xff\x13garbage",
    "a PEM header with a junk body": (
        b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
    ),
    "a private key in tls.crt": None,  # filled in from the fixture
    "text": b"hello",
}


@pytest.mark.parametrize(
    "what",
    [pytest.param(k, id=f"trigger when tls.crt holds {k}") for k in _GARBAGE],
)
def test_certificate_invalid(make, what) -> None:
    issued = make.leaf()
    data = make.data(issued)
    data["tls.crt"] = _GARBAGE[what] or issued.key.to_pkcs8_pem()
    violation = policies.certificate_invalid(make.input(secret=make.contents(data=data)))
    assert reason_of(violation) is Reason.INVALID_CERTIFICATE
    assert violation is not None
    assert violation.message.startswith("tls.crt: ")
    assert policies.certificate_invalid(make.input()) is None


def _p521_key() -> bytes:
    return ec.generate_private_key(ec.SECP521R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            lambda key: b"junk", "not a PEM private key", id="trigger when tls.key is junk"
        ),
        pytest.param(
            lambda key: key.crypto_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"pw"),
            ),
            "encrypted",
            id="trigger when tls.key is encrypted",
        ),
        pytest.param(
            lambda key: ed448.Ed448PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            "unsupported private key",
            id="trigger when tls.key is an Ed448 key",
        ),
        pytest.param(
            lambda key: _p521_key(),
            "unsupported private key",
            id="trigger when tls.key is a P-521 key",
        ),
        pytest.param(
            lambda key: pki.to_pem(()) + b"-----BEGIN " + b"PRIVATE KEY-----\n",
            "not a PEM",
            id="trigger when tls.key is a truncated PEM",
        ),
    ],
)
def test_private_key_invalid(make, content, message) -> None:
    issued = make.leaf()
    data = make.data(issued)
    data["tls.key"] = content(issued.key)
    violation = policies.private_key_invalid(make.input(secret=make.contents(data=data)))
    assert reason_of(violation) is Reason.INVALID_PRIVATE_KEY
    assert violation is not None
    assert message in violation.message
    assert policies.private_key_invalid(make.input()) is None


def test_key_pair_mismatch(make) -> None:
    issued = make.leaf()
    data = make.data(issued)
    data["tls.key"] = make.key(slot=2).to_pkcs8_pem()
    violation = policies.key_pair_mismatch(make.input(secret=make.contents(data=data)))
    assert reason_of(violation) is Reason.INVALID_KEY_PAIR
    assert policies.key_pair_mismatch(make.input()) is None


@pytest.mark.parametrize(
    ("spec_overrides", "expected", "fragment"),
    [
        pytest.param({}, None, None, id="the same identity"),
        pytest.param(
            {"serviceAccountName": "orders"},
            Reason.IDENTITY_CHANGED,
            "URI SANs: missing spiffe://cluster.local/ns/shop/sa/orders",
            id="trigger when the ServiceAccount changes",
        ),
        pytest.param(
            {"trustDomain": "corp"},
            Reason.IDENTITY_CHANGED,
            "URI SANs",
            id="trigger when the trust domain changes",
        ),
        pytest.param(
            {"service": None},
            Reason.IDENTITY_CHANGED,
            "DNS names: unexpected payments",
            id="trigger when the Service is removed",
        ),
        pytest.param(
            {"service": "orders"},
            Reason.IDENTITY_CHANGED,
            "missing orders",
            id="trigger when the Service changes",
        ),
        pytest.param(
            {"dnsNames": ["api.example.com"]},
            Reason.IDENTITY_CHANGED,
            "DNS names: missing api.example.com",
            id="trigger when a DNS name is added",
        ),
        pytest.param(
            {"ipAddresses": ["10.1.2.3"]},
            Reason.IDENTITY_CHANGED,
            "IP addresses: missing 10.1.2.3",
            id="trigger when an IP is added",
        ),
        pytest.param(
            {"commonName": "payments"},
            Reason.IDENTITY_CHANGED,
            "common name: want 'payments', have None",
            id="trigger when a common name is set",
        ),
        pytest.param(
            {"dnsNames": ["payments.shop"]},
            None,
            None,
            id="a duplicate of a Service form changes nothing",
        ),
    ],
)
def test_identity_differs(make, spec_overrides, expected, fragment) -> None:
    issued = make.leaf()
    inp = make.input(spec=make.spec(**spec_overrides), secret=make.contents(issued))
    violation = policies.identity_differs(inp)
    assert reason_of(violation) is expected
    if fragment:
        assert violation is not None
        assert fragment in violation.message


def test_identity_differs_on_is_ca_and_ip_forms(make) -> None:
    with_ip = make.spec(ipAddresses=["2001:db8::1"])
    issued = make.leaf(with_ip)
    # The same address spelled differently is the same SAN.
    same = make.spec(ipAddresses=["2001:0db8:0:0::1"])
    assert (
        policies.identity_differs(make.input(spec=same, secret=make.contents(issued, spec=same)))
        is None
    )
    as_ca = make.spec(isCA=True, ipAddresses=["2001:db8::1"], commonName="x")
    violation = policies.identity_differs(
        make.input(spec=as_ca, secret=make.contents(issued, spec=as_ca))
    )
    assert violation is not None
    assert "isCA: want true, have false" in violation.message


@pytest.mark.parametrize(
    ("usages", "expected", "fragment"),
    [
        pytest.param(None, None, None, id="the default usages"),
        pytest.param(
            ["client auth", "server auth", "key encipherment", "digital signature"],
            None,
            None,
            id="order does not matter",
        ),
        pytest.param(
            ["digital signature", "key encipherment", "server auth"],
            Reason.USAGES_CHANGED,
            "extended key usages: unexpected client auth",
            id="trigger when client auth is dropped",
        ),
        pytest.param(
            ["digital signature", "server auth", "client auth"],
            Reason.USAGES_CHANGED,
            "key usages: unexpected key encipherment",
            id="trigger when key encipherment is dropped",
        ),
        pytest.param(
            [
                *["digital signature", "key encipherment", "server auth", "client auth"],
                "code signing",
            ],
            Reason.USAGES_CHANGED,
            "missing code signing",
            id="trigger when code signing is added",
        ),
        pytest.param(
            ["signing", "key encipherment", "server auth", "client auth"],
            None,
            None,
            id="'signing' is digital signature",
        ),
    ],
)
def test_usages_differ(make, usages, expected, fragment) -> None:
    issued = make.leaf()
    spec = make.spec(usages=usages)
    violation = policies.usages_differ(make.input(spec=spec, secret=make.contents(issued)))
    assert reason_of(violation) is expected
    if fragment:
        assert violation is not None
        assert fragment in violation.message


@pytest.mark.parametrize(
    ("private_key", "expected", "message"),
    [
        pytest.param(None, None, None, id="ECDSA-256 as asked"),
        pytest.param(
            {"algorithm": "ECDSA", "size": 384},
            Reason.KEY_SPEC_CHANGED,
            "key is ECDSA-256, spec asks for ECDSA-384",
            id="trigger when the curve changes",
        ),
        pytest.param(
            {"algorithm": "RSA"},
            Reason.KEY_SPEC_CHANGED,
            "spec asks for RSA-2048",
            id="trigger when the algorithm changes",
        ),
        pytest.param(
            {"algorithm": "Ed25519"},
            Reason.KEY_SPEC_CHANGED,
            "spec asks for Ed25519",
            id="trigger when Ed25519 is asked for",
        ),
        pytest.param(
            {"algorithm": "ECDSA", "rotationPolicy": "Never"},
            None,
            None,
            id="the rotation policy is not a key property",
        ),
    ],
)
def test_key_spec_differs(make, private_key, expected, message) -> None:
    issued = make.leaf()
    spec = make.spec(privateKey=private_key)
    violation = policies.key_spec_differs(make.input(spec=spec, secret=make.contents(issued)))
    assert reason_of(violation) is expected
    if message:
        assert violation is not None
        assert message in violation.message


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(T0, None, id="valid from now"),
        pytest.param(T0 - 4 * dt.timedelta(minutes=1), None, id="four minutes early is clock skew"),
        pytest.param(T0 - H, Reason.NOT_YET_VALID, id="trigger when notBefore is an hour ahead"),
    ],
)
def test_not_yet_valid(make, now, expected) -> None:
    assert reason_of(policies.not_yet_valid(make.input(now=now))) is expected


def test_issuer_changed(make) -> None:
    spec = make.spec()
    root = make.root()
    # Same name, different key: what a CA key rotation looks like to a leaf.
    rotated = make.root(slot=101)
    reissued_same_key = make.root(start=T0 - dt.timedelta(days=2))
    issued = make.leaf(spec, root)
    contents = make.contents(issued, spec=spec)

    def check(ca, secret=contents):
        return policies.issuer_changed(make.input(spec=spec, secret=secret, ca=ca))

    assert check(root) is None
    v = check(rotated)
    assert reason_of(v) is Reason.ISSUER_CHANGED
    assert v is not None
    assert "not signed by the current issuer CN=mesh-root" in v.message
    v = check(reissued_same_key)
    assert reason_of(v) is Reason.ISSUER_CHANGED
    assert v is not None
    assert "issuer certificate changed" in v.message
    unannotated = make.contents(issued, spec=spec, annotations={})
    assert check(reissued_same_key, unannotated) is None  # no record: the signature decides
    assert check(None) is None  # issuer unavailable: never re-issue blind


def test_issuer_changed_for_self_signed_roots(make, ca_spec) -> None:
    root = make.leaf(ca_spec, slot=40)
    assert policies.issuer_changed(make.input(spec=ca_spec, issued=root)) is None
    signed_by_someone = issuer.sign(
        issuer.CertificateTemplate.from_spec(ca_spec), make.key(slot=41), make.root(), T0
    )
    v = policies.issuer_changed(make.input(spec=ca_spec, issued=signed_by_someone))
    assert reason_of(v) is Reason.ISSUER_CHANGED
    assert v is not None
    assert "asks for a self-signed root" in v.message


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        pytest.param("24h", None, id="as issued"),
        pytest.param("48h", None, id="a longer duration waits for the next renewal"),
        pytest.param("1h", Reason.DURATION_CHANGED, id="trigger when the duration is shortened"),
    ],
)
def test_duration_shortened(make, duration, expected) -> None:
    issued = make.leaf()
    violation = policies.duration_shortened(
        make.input(spec=make.spec(duration=duration), secret=make.contents(issued))
    )
    assert reason_of(violation) is expected


def test_a_clamped_certificate_is_not_mistaken_for_a_shortened_duration(make) -> None:
    short_ca = make.intermediate(make.root(), duration=dt.timedelta(hours=5), slot=201)
    issued = make.leaf(ca=short_ca)
    assert issued.not_after < T0 + dt.timedelta(hours=24)
    assert policies.duration_shortened(make.input(secret=make.contents(issued))) is None


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        pytest.param(-S, None, id="one second before notAfter"),
        pytest.param(dt.timedelta(0), Reason.EXPIRED, id="trigger at notAfter"),
        pytest.param(dt.timedelta(days=30), Reason.EXPIRED, id="trigger long after"),
    ],
)
def test_expired(make, offset, expected) -> None:
    assert reason_of(policies.expired(make.input(now=T0 + 24 * H + offset))) is expected


def test_renewal_due(make) -> None:
    inp = make.input()
    assert inp.renewal_time is not None
    at = dataclasses.replace(inp, now=inp.renewal_time)
    assert reason_of(policies.renewal_due(at)) is Reason.RENEWING
    assert policies.renewal_due(dataclasses.replace(inp, now=inp.renewal_time - S)) is None
    assert policies.renewal_due(dataclasses.replace(at, renewal_time=None)) is None


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        pytest.param(None, None, id="no request"),
        pytest.param(T0 - H, None, id="a request served by the current certificate"),
        pytest.param(T0, None, id="a request in the second of issuance counts as served"),
        pytest.param(T0 + S, Reason.MANUAL_RENEWAL, id="trigger on a request after issuance"),
    ],
)
def test_manual_renewal(make, requested, expected) -> None:
    violation = policies.manual_renewal(make.input(renew_requested_at=requested))
    assert reason_of(violation) is expected


@pytest.mark.parametrize("check", policies.TRIGGER_CHAIN, ids=lambda c: c.__name__)
def test_every_check_tolerates_a_missing_secret(make, check) -> None:
    inp = make.input(secret=None)
    assert check is policies.secret_missing or check(inp) is None


# --------------------------------------------------------------------------------------------
# The whole chain: order


def test_the_chain_order_is_the_documented_one() -> None:
    assert [c.__name__ for c in policies.TRIGGER_CHAIN] == [
        "secret_missing",
        "secret_missing_data",
        "secret_inconsistent",
        "certificate_invalid",
        "private_key_invalid",
        "key_pair_mismatch",
        "identity_differs",
        "usages_differ",
        "key_spec_differs",
        "not_yet_valid",
        "issuer_changed",
        "duration_shortened",
        "expired",
        "renewal_due",
        "manual_renewal",
    ]
    assert (*policies.TRIGGER_CHAIN[:10], policies.expired) == policies.READINESS_CHAIN


def _scenario(make, name):  # noqa: PLR0911, PLR0912 - one branch per scenario row
    """Inputs that violate several checks at once; the earliest must win."""
    expired_now = T0 + 25 * H
    issued = make.leaf()
    data = make.data(issued)
    if name == "nothing to do":
        return make.input()
    if name == "missing Secret, also expired":
        return make.input(secret=None, now=expired_now)
    if name == "missing tls.key, also an invalid tls.crt":
        return make.input(secret=make.contents(data={"tls.crt": b"junk"}))
    if name == "invalid tls.crt, also an invalid tls.key":
        return make.input(secret=make.contents(data={"tls.crt": b"junk", "tls.key": b"junk"}))
    if name == "invalid tls.key, also expired":
        return make.input(secret=make.contents(data={**data, "tls.key": b"junk"}), now=expired_now)
    if name == "mismatched key, also wrong SANs and expired":
        data["tls.key"] = make.key(slot=2).to_pkcs8_pem()
        return make.input(
            spec=make.spec(service="orders"), secret=make.contents(data=data), now=expired_now
        )
    if name == "wrong SANs, also wrong usages and key":
        spec = make.spec(service="orders", usages=["server auth"], privateKey={"algorithm": "RSA"})
        return make.input(spec=spec, secret=make.contents(issued))
    if name == "wrong usages, also wrong key algorithm":
        spec = make.spec(usages=["server auth"], privateKey={"algorithm": "Ed25519"})
        return make.input(spec=spec, secret=make.contents(issued))
    if name == "wrong key algorithm, also a rotated issuer":
        spec = make.spec(privateKey={"algorithm": "Ed25519"})
        return make.input(spec=spec, secret=make.contents(issued), ca=make.root(slot=101))
    if name == "rotated issuer, also a shortened duration and expired":
        return make.input(
            spec=make.spec(duration="1h"),
            secret=make.contents(issued),
            ca=make.root(slot=101),
            now=expired_now,
        )
    if name == "shortened duration, also expired":
        return make.input(
            spec=make.spec(duration="1h"), secret=make.contents(issued), now=expired_now
        )
    if name == "expired, also past renewal and a renew request":
        return make.input(now=expired_now, renew_requested_at=T0 + H)
    if name == "renewal due, also a renew request":
        return make.input(now=T0 + 23 * H, renew_requested_at=T0 + H)
    if name == "only a renew request":
        return make.input(renew_requested_at=T0 + S)
    raise AssertionError(name)


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        pytest.param("nothing to do", None, id="nothing to do"),
        pytest.param(
            "missing Secret, also expired",
            Reason.DOES_NOT_EXIST,
            id="a missing Secret beats everything",
        ),
        pytest.param(
            "missing tls.key, also an invalid tls.crt",
            Reason.MISSING_DATA,
            id="missing data beats unparseable data",
        ),
        pytest.param(
            "invalid tls.crt, also an invalid tls.key",
            Reason.INVALID_CERTIFICATE,
            id="an invalid certificate beats an invalid key",
        ),
        pytest.param(
            "invalid tls.key, also expired",
            Reason.INVALID_PRIVATE_KEY,
            id="an invalid key beats expiry",
        ),
        pytest.param(
            "mismatched key, also wrong SANs and expired",
            Reason.INVALID_KEY_PAIR,
            id="a mismatched key beats an identity change",
        ),
        pytest.param(
            "wrong SANs, also wrong usages and key",
            Reason.IDENTITY_CHANGED,
            id="an identity change beats usages and key",
        ),
        pytest.param(
            "wrong usages, also wrong key algorithm",
            Reason.USAGES_CHANGED,
            id="a usage change beats a key change",
        ),
        pytest.param(
            "wrong key algorithm, also a rotated issuer",
            Reason.KEY_SPEC_CHANGED,
            id="a key change beats an issuer change",
        ),
        pytest.param(
            "rotated issuer, also a shortened duration and expired",
            Reason.ISSUER_CHANGED,
            id="an issuer change beats duration and expiry",
        ),
        pytest.param(
            "shortened duration, also expired",
            Reason.DURATION_CHANGED,
            id="a shortened duration beats expiry",
        ),
        pytest.param(
            "expired, also past renewal and a renew request",
            Reason.EXPIRED,
            id="expiry beats renewal and manual renewal",
        ),
        pytest.param(
            "renewal due, also a renew request", Reason.RENEWING, id="renewal beats manual renewal"
        ),
        pytest.param("only a renew request", Reason.MANUAL_RENEWAL, id="a manual renewal alone"),
    ],
)
def test_trigger_chain_order(make, scenario, expected) -> None:
    assert (
        reason_of(policies.evaluate(policies.TRIGGER_CHAIN, _scenario(make, scenario))) is expected
    )


# --------------------------------------------------------------------------------------------
# Readiness, issuer health and conditions


def conditions_of(inp: PolicyInput) -> dict[str, tuple[ConditionStatus, str]]:
    return {c.type: (c.status, c.reason) for c in policies.assess(inp).conditions}


T, F, U = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN


@pytest.mark.parametrize(
    ("scenario", "ready", "issuing"),
    [
        pytest.param(
            "nothing to do", (T, Reason.UP_TO_DATE), (F, Reason.UP_TO_DATE), id="ready and idle"
        ),
        pytest.param(
            "missing Secret, also expired",
            (F, Reason.DOES_NOT_EXIST),
            (T, Reason.DOES_NOT_EXIST),
            id="not ready without a Secret",
        ),
        pytest.param(
            "expired, also past renewal and a renew request",
            (F, Reason.EXPIRED),
            (T, Reason.EXPIRED),
            id="never ready once expired",
        ),
        pytest.param(
            "renewal due, also a renew request",
            (T, Reason.UP_TO_DATE),
            (T, Reason.RENEWING),
            id="still ready while renewing",
        ),
        pytest.param(
            "only a renew request",
            (T, Reason.UP_TO_DATE),
            (T, Reason.MANUAL_RENEWAL),
            id="still ready while a manual renewal runs",
        ),
        pytest.param(
            "shortened duration, also expired",
            (F, Reason.EXPIRED),
            (T, Reason.DURATION_CHANGED),
            id="ready reports expiry, issuing the first trigger",
        ),
        pytest.param(
            "wrong SANs, also wrong usages and key",
            (F, Reason.IDENTITY_CHANGED),
            (T, Reason.IDENTITY_CHANGED),
            id="not ready with the wrong identity",
        ),
    ],
)
def test_ready_and_issuing_conditions(make, scenario, ready, issuing) -> None:
    conditions = conditions_of(_scenario(make, scenario))
    assert conditions["Ready"] == ready
    assert conditions["Issuing"] == issuing


def test_a_rotated_issuer_leaves_the_certificate_ready_while_reissuing(make) -> None:
    conditions = conditions_of(
        make.input(secret=make.contents(make.leaf()), ca=make.root(slot=101))
    )
    assert conditions["Ready"] == (T, Reason.UP_TO_DATE)
    assert conditions["Issuing"] == (T, Reason.ISSUER_CHANGED)


@pytest.mark.parametrize(
    ("now", "expired", "overdue"),
    [
        pytest.param(T0 + H, (F, Reason.NOT_EXPIRED), (F, Reason.ON_SCHEDULE), id="early in life"),
        pytest.param(T0 + 24 * H, (T, Reason.EXPIRED), (T, Reason.RENEWAL_OVERDUE), id="at expiry"),
    ],
)
def test_expired_and_overdue_conditions(make, now, expired, overdue) -> None:
    conditions = conditions_of(make.input(now=now))
    assert conditions["Expired"] == expired
    assert conditions["RenewalOverdue"] == overdue


def test_renewal_overdue_gets_a_grace_period(make) -> None:
    inp = make.input()
    assert inp.renewal_time is not None
    at_renewal = dataclasses.replace(inp, now=inp.renewal_time)
    assert conditions_of(at_renewal)["RenewalOverdue"] == (F, Reason.ON_SCHEDULE)
    after_grace = dataclasses.replace(inp, now=inp.renewal_time + policies.RENEWAL_GRACE)
    assert conditions_of(after_grace)["RenewalOverdue"] == (T, Reason.RENEWAL_OVERDUE)


def test_short_certificates_get_a_proportionate_grace() -> None:
    renewal = T0 + 80 * S
    assert policies.renewal_overdue_at(renewal, T0 + 120 * S) == T0 + 100 * S
    assert policies.renewal_overdue_at(renewal, T0 + 24 * H) == renewal + 60 * S
    assert policies.renewal_overdue_at(renewal, renewal - S) == renewal


def test_without_a_certificate_expiry_and_overdue_are_unknown(make) -> None:
    conditions = conditions_of(make.input(secret=None))
    assert conditions["Expired"] == (U, Reason.DOES_NOT_EXIST)
    assert conditions["RenewalOverdue"] == (U, Reason.DOES_NOT_EXIST)
    garbage = make.contents(data={"tls.crt": b"x", "tls.key": b"y"})
    assert conditions_of(make.input(secret=garbage))["Expired"] == (U, Reason.INVALID_CERTIFICATE)


def test_issuer_not_ready(make, ca_spec) -> None:
    spec = make.spec()
    issued = make.leaf()
    secret = make.contents(issued, spec=spec)
    expired_root = make.root(
        start=T0 - dt.timedelta(days=10), duration=dt.timedelta(days=1), slot=102
    )
    zero_path = make.root(path_length=0, slot=103)

    def verdict(inp):
        assessment = policies.assess(inp)
        return conditions_of(inp)["IssuerNotReady"], assessment.can_issue

    assert verdict(make.input()) == ((F, Reason.ISSUER_READY), True)
    assert verdict(make.input(ca=None, secret=secret)) == ((T, Reason.ISSUER_UNAVAILABLE), False)
    with_error = make.input(
        ca=None, secret=secret, issuer_error="Secret dabba-system/mesh-root: no tls.key"
    )
    assert policies.issuer_problem(with_error) == policies.Violation(
        Reason.ISSUER_UNAVAILABLE, "Secret dabba-system/mesh-root: no tls.key"
    )
    assert (
        "MeshCertificate dabba-system/mesh-root not found"
        in policies.assess(make.input(ca=None, secret=secret)).conditions[-1].message
    )
    assert verdict(make.input(ca=expired_root, secret=secret)) == (
        (T, Reason.ISSUER_EXPIRED),
        False,
    )
    assert verdict(make.input(spec=ca_spec, issued=make.leaf(ca_spec, slot=40))) == (
        (F, Reason.SELF_SIGNED),
        True,
    )
    # A CA MeshCertificate whose issuer has path length 0 cannot be signed.
    sub_ca = make.spec(isCA=True, serviceAccountName=None, service=None)
    assert verdict(make.input(spec=sub_ca, ca=zero_path, secret=secret))[0] == (
        T,
        Reason.ISSUER_NOT_CA,
    )
    # A leaf certificate posing as the issuer.
    leaf_as_issuer = pki.CertificateFacts.from_certificate(issued.certificate)
    inp = dataclasses.replace(make.input(), issuer=leaf_as_issuer)
    assert conditions_of(inp)["IssuerNotReady"] == (T, Reason.ISSUER_NOT_CA)


def test_an_issuer_whose_key_usage_forbids_signing_is_not_ready(make) -> None:
    no_cert_sign = issuer.sign(
        issuer.CertificateTemplate(
            common_name="odd", is_ca=True, usages=effective_usages([], is_ca=False)
        ),
        make.key(slot=50),
        None,
        T0 - H,
    )
    facts = pki.CertificateFacts.from_certificate(no_cert_sign.certificate)
    assert facts.is_ca
    assert facts.key_usage is None
    inp = dataclasses.replace(make.input(), issuer=facts)
    assert policies.issuer_problem(inp) is None  # no KeyUsage extension: unrestricted
    restricted = issuer.sign(
        issuer.CertificateTemplate(
            common_name="odd",
            is_ca=True,
            usages=effective_usages(["digital signature"], is_ca=False),
        ),
        make.key(slot=50),
        None,
        T0 - H,
    )
    inp = dataclasses.replace(
        inp, issuer=pki.CertificateFacts.from_certificate(restricted.certificate)
    )
    assert reason_of(policies.issuer_problem(inp)) is Reason.ISSUER_NOT_CA


def test_conditions_carry_now_and_the_generation(make) -> None:
    inp = make.input(generation=7)
    conditions = policies.assess(inp).conditions
    # The five of SPEC §2.4; the CA-only ones (RollingOver, …) come from authority.py.
    ca_only = {
        ConditionType.ROLLING_OVER,
        ConditionType.ROLLOVER_REFUSED,
        ConditionType.TRUST_BUNDLE_READY,
    }
    assert [c.type for c in conditions] == [t.value for t in ConditionType if t not in ca_only]
    assert {c.last_transition_time for c in conditions} == {inp.now}
    assert {c.observed_generation for c in conditions} == {7}


# --------------------------------------------------------------------------------------------
# Key reuse


@pytest.mark.parametrize(
    ("private_key", "reuse"),
    [
        pytest.param({"rotationPolicy": "Always"}, False, id="Always: a new key"),
        pytest.param({"rotationPolicy": "Never"}, True, id="Never: keep a matching key"),
        pytest.param(
            {"algorithm": "ECDSA", "size": 384, "rotationPolicy": "Never"},
            False,
            id="Never, but the size changed",
        ),
        pytest.param(
            {"algorithm": "RSA", "rotationPolicy": "Never"},
            False,
            id="Never, but the algorithm changed",
        ),
    ],
)
def test_reusable_key(make, private_key, reuse) -> None:
    issued = make.leaf()
    spec = make.spec(privateKey=private_key)
    key = policies.reusable_key(spec, make.contents(issued))
    assert (key == issued.key) if reuse else (key is None)


def test_no_key_to_reuse_without_a_usable_secret(make) -> None:
    spec = make.spec(privateKey={"rotationPolicy": "Never"})
    assert policies.reusable_key(spec, None) is None
    assert policies.reusable_key(spec, make.contents(data={"tls.key": b"junk"})) is None


# --------------------------------------------------------------------------------------------
# Properties


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    offset=st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=3650)),
    renewal_shift=st.none()
    | st.timedeltas(min_value=-dt.timedelta(days=2), max_value=dt.timedelta(days=2)),
    requested=st.none() | st.datetimes(timezones=st.just(dt.UTC)),
)
def test_a_certificate_is_never_ready_once_expired(make, offset, renewal_shift, requested) -> None:
    base = make.input()
    assert base.leaf is not None
    inp = dataclasses.replace(
        base,
        now=base.leaf.not_after + offset,
        renewal_time=None if renewal_shift is None else base.leaf.not_after + renewal_shift,
        renew_requested_at=requested,
    )
    conditions = conditions_of(inp)
    assert conditions["Ready"][0] is F
    assert conditions["Expired"] == (T, Reason.EXPIRED)
    assert policies.assess(inp).should_issue


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


@st.composite
def hostile_values(draw, valid_der: bytes, valid_key: bytes) -> bytes:
    kind = draw(st.sampled_from(["raw", "pem", "flipped", "truncated", "key-pem", "valid+junk"]))
    if kind == "raw":
        return draw(st.binary(max_size=300))
    if kind == "pem":
        return _pem(
            draw(st.binary(max_size=300)),
            draw(st.sampled_from([b"CERTIFICATE", b"PRIVATE KEY", b"EC PRIVATE KEY"])),
        )
    if kind == "flipped":
        index = draw(st.integers(min_value=0, max_value=len(valid_der) - 1))
        flipped = bytearray(valid_der)
        flipped[index] ^= draw(st.integers(min_value=1, max_value=255))
        return _pem(bytes(flipped))
    if kind == "truncated":
        return _pem(valid_der[: draw(st.integers(min_value=0, max_value=len(valid_der)))])
    if kind == "key-pem":
        return valid_key[: draw(st.integers(min_value=0, max_value=len(valid_key)))]
    return _pem(valid_der) + draw(st.binary(max_size=50))


@pytest.fixture(scope="module")
def hostile_material(make):
    issued = make.leaf()
    return issued.certificate.public_bytes(Encoding.DER), issued.key.to_pkcs8_pem()


@settings(
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), fmt=st.sampled_from(list(OutputFormat)))
def test_the_chains_never_raise_on_arbitrary_bytes(make, hostile_material, data, fmt) -> None:
    der, key = hostile_material
    keys = st.sampled_from(
        [
            "tls.crt",
            "tls.key",
            "ca.crt",
            "ca-cert.pem",
            "ca-key.pem",
            "root-cert.pem",
            "cert-chain.pem",
            "other",
        ]
    )
    secret_data = data.draw(st.dictionaries(keys, hostile_values(der, key), max_size=8))
    annotations = data.draw(
        st.dictionaries(
            st.sampled_from([ANNOTATION_ISSUER_FINGERPRINT, "x"]), st.text(max_size=70), max_size=2
        )
    )
    secret = policies.parse_secret(secret_data, annotations, output_format=fmt)
    spec = make.spec() if fmt is OutputFormat.TLS else make.spec(isCA=True, outputFormat=str(fmt))
    inp = make.input(
        spec=spec,
        secret=secret,
        now=data.draw(st.datetimes(timezones=st.just(dt.UTC))),
        renew_requested_at=data.draw(st.none() | st.datetimes(timezones=st.just(dt.UTC))),
    )
    assessment = policies.assess(inp)
    assert len(assessment.conditions) == 5
    for check in policies.TRIGGER_CHAIN:
        check(inp)
    policies.reusable_key(spec, secret)


def test_hostile_material_strategy_can_produce_a_valid_leaf(make, hostile_material) -> None:
    # Guards the property above against testing only trivially broken input.
    der, key = hostile_material
    secret = policies.parse_secret({"tls.crt": _pem(der), "tls.key": key})
    assert secret.leaf is not None
    assert secret.private_key is not None
    assert secret.private_key.algorithm is KeyAlgorithm.ECDSA
