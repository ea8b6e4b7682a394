from __future__ import annotations

import datetime as dt
import ipaddress
import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dabba.certs import model
from dabba.certs.model import (
    Condition,
    ConditionStatus,
    IssuerKind,
    IssuerSecretFormat,
    KeyAlgorithm,
    MeshCertificateSpec,
    MeshCertificateStatus,
    OutputFormat,
    Reason,
    RotationPolicy,
    TrustedRoot,
)
from dabba.errors import SpecError

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LEAF = {
    "secretName": "payments-mtls",
    "issuerRef": {"name": "mesh-root", "namespace": "dabba-system"},
    "serviceAccountName": "payments",
}


def spec_of(**overrides) -> MeshCertificateSpec:
    raw = {**LEAF, **overrides}
    return MeshCertificateSpec.from_k8s(
        {k: v for k, v in raw.items() if v is not None}, namespace="shop"
    )


# --------------------------------------------------------------------------------------------
# Durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("24h", dt.timedelta(hours=24), id="hours"),
        pytest.param("90m", dt.timedelta(minutes=90), id="minutes beyond an hour"),
        pytest.param("1h30m", dt.timedelta(hours=1, minutes=30), id="hours and minutes"),
        pytest.param("60s", dt.timedelta(seconds=60), id="seconds"),
        pytest.param("1500ms", dt.timedelta(milliseconds=1500), id="milliseconds"),
        pytest.param("2m500ms", dt.timedelta(minutes=2, milliseconds=500), id="minutes and ms"),
        pytest.param(
            "1h2m3s4ms",
            dt.timedelta(hours=1, minutes=2, seconds=3, milliseconds=4),
            id="every unit",
        ),
        pytest.param("0s", dt.timedelta(0), id="zero"),
    ],
)
def test_parse_duration_accepts_the_crd_grammar(text, expected) -> None:
    assert model.parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("1.5h", id="fractions are refused, not guessed"),
        pytest.param("90d", id="days are not a unit"),
        pytest.param("30m1h", id="units out of order"),
        pytest.param("1h1h", id="a unit twice"),
        pytest.param("-5m", id="negative"),
        pytest.param("5", id="no unit"),
        pytest.param(" 5m", id="leading space"),
        pytest.param("5M", id="uppercase unit"),
        pytest.param("9" * 30 + "h", id="too long for a timedelta"),
    ],
)
def test_parse_duration_refuses_everything_else(text) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        model.parse_duration(text)


@given(st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=100_000)))
def test_format_duration_round_trips_to_the_millisecond(value) -> None:
    whole_ms = value - value % dt.timedelta(milliseconds=1)
    assert model.parse_duration(model.format_duration(value)) == whole_ms


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(dt.timedelta(hours=24), "24h", id="whole hours"),
        pytest.param(dt.timedelta(hours=1, minutes=30), "1h30m", id="mixed"),
        pytest.param(dt.timedelta(0), "0s", id="zero"),
        pytest.param(dt.timedelta(milliseconds=1500), "1s500ms", id="ms"),
    ],
)
def test_format_duration_uses_the_largest_units(value, text) -> None:
    assert model.format_duration(value) == text


def test_format_duration_refuses_negative_values() -> None:
    with pytest.raises(ValueError, match="negative"):
        model.format_duration(dt.timedelta(seconds=-1))


def test_times_round_trip_in_rfc3339_utc() -> None:
    plus_two = dt.datetime(2026, 1, 1, 2, 0, 0, 999, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert model.format_time(plus_two) == "2026-01-01T00:00:00Z"
    assert model.parse_time("2026-01-01T00:00:00Z") == T0
    assert model.parse_time("2026-01-01T00:00:00") is None  # no offset: ambiguous
    assert model.parse_time("yesterday") is None
    assert model.parse_time(17) is None
    assert model.parse_time(T0) == T0


# --------------------------------------------------------------------------------------------
# SPIFFE IDs


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("spiffe://cluster.local/ns/shop/sa/payments", id="istio style"),
        pytest.param("spiffe://example.org", id="a bare trust domain (CA only)"),
        pytest.param("spiffe://td_1.example-2.org/A.b-c_D", id="every allowed character"),
        pytest.param("spiffe://td/" + "a" * 2000, id="long but under 2048 bytes"),
        pytest.param("spiffe://td/..x/x..", id="dots inside a segment are fine"),
    ],
)
def test_valid_spiffe_ids(value) -> None:
    assert model.validate_spiffe_id(value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param("spiffe://td/ns/../x", "must not be '.' or '..'", id="dot-dot segment"),
        pytest.param("spiffe://td/./x", "must not be '.' or '..'", id="dot segment"),
        pytest.param("spiffe://TD/x", "must be lowercase", id="uppercase trust domain"),
        pytest.param("spiffe://td//x", "must not be empty", id="empty segment"),
        pytest.param("spiffe://td/x/", "must not be empty", id="trailing slash"),
        pytest.param("spiffe://td/", "must not be empty", id="only a slash"),
        pytest.param("spiffe://td/x?y", "query", id="query"),
        pytest.param("spiffe://td/x#y", "fragment", id="fragment"),
        pytest.param("spiffe://td:443/x", "port", id="port"),
        pytest.param("spiffe://user@td/x", "user info", id="user info"),
        pytest.param("spiffe://td/x%2Fy", "percent-encoding", id="percent-encoding"),
        pytest.param("spiffe://td/a b", "path contains ' '", id="space in path"),
        pytest.param("spiffe://td/caf\u00e9", "path contains", id="non-ascii in path"),
        pytest.param("spiffe://t*d/x", "trust domain contains '*'", id="bad trust domain char"),
        pytest.param("spiffe:///x", "trust domain is empty", id="missing trust domain"),
        pytest.param("SPIFFE://td/x", "scheme must be lowercase", id="uppercase scheme"),
        pytest.param("https://td/x", "starts with spiffe://", id="other scheme"),
        pytest.param("spiffe:/td/x", "starts with spiffe://", id="one slash"),
        pytest.param("", "starts with spiffe://", id="empty"),
        pytest.param("spiffe://td/" + "a" * 2040, "at most 2048 bytes", id="too long"),
        pytest.param("spiffe://" + "a" * 256 + "/x", "longer than 255", id="long trust domain"),
    ],
)
def test_invalid_spiffe_ids_say_why(value, reason) -> None:
    problem = model.validate_spiffe_id(value)
    assert problem is not None
    assert reason in problem


def test_a_leaf_spiffe_id_needs_a_path() -> None:
    assert model.validate_spiffe_id("spiffe://td", require_path=True) == (
        "a leaf certificate's SPIFFE ID needs a path"
    )
    assert model.validate_spiffe_id("spiffe://td/x", require_path=True) is None


_TD = st.text(string.ascii_lowercase + string.digits + ".-_", min_size=1, max_size=30)
_SEGMENT = st.text(string.ascii_letters + string.digits + ".-_", min_size=1, max_size=12).filter(
    lambda s: s not in {".", ".."}
)


@given(_TD, st.lists(_SEGMENT, max_size=6))
def test_every_canonical_spiffe_id_is_accepted(trust_domain, segments) -> None:
    value = "spiffe://" + trust_domain + "".join("/" + s for s in segments)
    assert model.validate_spiffe_id(value) is None


@given(st.text())
def test_the_spiffe_validator_never_raises(value) -> None:
    problem = model.validate_spiffe_id(value)
    assert problem is None or isinstance(problem, str)
    if problem is None:  # whatever it accepts is canonical
        assert re.fullmatch(r"spiffe://[a-z0-9._-]+(/[A-Za-z0-9._-]+)*", value)
        assert "/./" not in value + "/"
        assert "/../" not in value + "/"


def test_spiffe_id_and_service_names_are_derived() -> None:
    assert model.spiffe_id_for("cluster.local", "shop", "payments") == (
        "spiffe://cluster.local/ns/shop/sa/payments"
    )
    assert model.service_dns_names("payments", "shop") == (
        "payments",
        "payments.shop",
        "payments.shop.svc",
        "payments.shop.svc.cluster.local",
    )


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        pytest.param("api.example.com", True, id="subdomain"),
        pytest.param("*.example.com", True, id="wildcard"),
        pytest.param("a", True, id="single label"),
        pytest.param("API.example.com", False, id="uppercase"),
        pytest.param("-a.example.com", False, id="leading hyphen"),
        pytest.param("a..b", False, id="empty label"),
        pytest.param("a.*.b", False, id="inner wildcard"),
        pytest.param("a" * 64 + ".com", False, id="label too long"),
        pytest.param(("a" * 60 + ".") * 5, False, id="name too long"),
    ],
)
def test_dns_name_validation(name, ok) -> None:
    assert (model.validate_dns_name(name) is None) is ok


# --------------------------------------------------------------------------------------------
# Spec


def test_a_minimal_leaf_spec_gets_every_runtime_default() -> None:
    spec = spec_of()
    assert spec.trust_domain == "cluster.local"
    assert spec.duration == dt.timedelta(hours=24)
    assert spec.renew_before is None
    assert spec.private_key == model.PrivateKeySpec(KeyAlgorithm.ECDSA, 256, RotationPolicy.ALWAYS)
    assert spec.usages == ("digital signature", "key encipherment", "server auth", "client auth")
    assert spec.output_format is OutputFormat.TLS
    assert spec.is_ca is False
    assert spec.spiffe_id == "spiffe://cluster.local/ns/shop/sa/payments"
    assert spec.uris == ("spiffe://cluster.local/ns/shop/sa/payments",)
    assert spec.issuer_ref == model.IssuerRef(
        kind=IssuerKind.MESH_CERTIFICATE, name="mesh-root", namespace="dabba-system"
    )
    assert spec.issuer_ref is not None
    assert spec.issuer_ref.secret_format is IssuerSecretFormat.TLS
    assert spec.issuer_ref.key == "MeshCertificate/dabba-system/mesh-root"
    assert spec.effective_common_name is None
    assert spec.warnings() == ()


@pytest.mark.parametrize(
    ("private_key", "expected"),
    [
        pytest.param(None, ("ECDSA", 256), id="omitted: ECDSA 256"),
        pytest.param({"algorithm": "ECDSA"}, ("ECDSA", 256), id="ECDSA without size: 256"),
        pytest.param({"algorithm": "RSA"}, ("RSA", 2048), id="RSA without size: 2048"),
        pytest.param({"algorithm": "Ed25519"}, ("Ed25519", 0), id="Ed25519 has no size"),
        pytest.param({"algorithm": "Ed25519", "size": 0}, ("Ed25519", 0), id="Ed25519 size 0"),
        pytest.param({"algorithm": "RSA", "size": 4096}, ("RSA", 4096), id="explicit RSA size"),
        pytest.param({"algorithm": "ECDSA", "size": 384}, ("ECDSA", 384), id="P-384"),
    ],
)
def test_key_size_defaults_per_algorithm(private_key, expected) -> None:
    spec = spec_of(privateKey=private_key)
    assert (str(spec.private_key.algorithm), spec.private_key.size) == expected


def test_issuer_namespace_defaults_to_the_certificates_and_secret_issuers_keep_their_format() -> (
    None
):
    spec = spec_of(issuerRef={"kind": "Secret", "name": "cacerts", "format": "istio"})
    assert spec.issuer_ref == model.IssuerRef(
        kind=IssuerKind.SECRET, name="cacerts", namespace="shop", format=IssuerSecretFormat.ISTIO
    )
    assert spec.issuer_ref.secret_format is IssuerSecretFormat.ISTIO


def test_the_service_forms_come_first_and_duplicates_are_dropped() -> None:
    spec = spec_of(service="payments", dnsNames=["payments.shop", "api.example.com"])
    assert spec.all_dns_names == (
        "payments",
        "payments.shop",
        "payments.shop.svc",
        "payments.shop.svc.cluster.local",
        "api.example.com",
    )


def test_an_explicit_spiffe_id_and_a_custom_trust_domain() -> None:
    assert spec_of(serviceAccountName=None, spiffeId="spiffe://corp/x").spiffe_id == (
        "spiffe://corp/x"
    )
    assert spec_of(trustDomain="corp.example").spiffe_id == (
        "spiffe://corp.example/ns/shop/sa/payments"
    )


def test_a_full_ca_spec() -> None:
    spec = MeshCertificateSpec.from_k8s(
        {
            "secretName": "cacerts",
            "isCA": True,
            "duration": "8760h",
            "renewBefore": "720h",
            "outputFormat": "istio",
            "privateKey": {"algorithm": "RSA", "size": 3072, "rotationPolicy": "Never"},
            "usages": ["cert sign"],
            "secretTemplate": {"labels": {"team": "mesh"}, "annotations": {"a": "b"}},
            "trustBundle": {"configMapName": "mesh-roots", "namespaceSelector": {}},
            "restartOnRotation": [{"name": "istiod"}, {"kind": "DaemonSet", "name": "ztunnel"}],
            "ipAddresses": ["10.0.0.1", "::1"],
            "commonName": "mesh CA",
        },
        namespace="istio-system",
    )
    assert spec.is_self_signed
    assert spec.renew_before == dt.timedelta(hours=720)
    assert spec.private_key.rotation_policy is RotationPolicy.NEVER
    assert dict(spec.secret_labels) == {"team": "mesh"}
    assert dict(spec.secret_annotations) == {"a": "b"}
    assert spec.trust_bundle == model.TrustBundleSpec("mesh-roots", "ca.crt", {})
    assert spec.restart_on_rotation == (
        model.WorkloadRef("Deployment", "istiod"),
        model.WorkloadRef("DaemonSet", "ztunnel"),
    )
    assert spec.ip_addresses == (ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("::1"))
    assert spec.effective_common_name == "mesh CA"
    assert spec.expected_usages.key_usage == {"key_cert_sign", "crl_sign"}


def test_a_ca_without_common_name_gets_a_generated_one_within_64_characters() -> None:
    spec = MeshCertificateSpec.from_k8s(
        {"secretName": "r" * 200, "isCA": True}, namespace="dabba-system"
    )
    assert spec.effective_common_name is not None
    assert spec.effective_common_name.startswith("dabba CA dabba-system/rrr")
    assert len(spec.effective_common_name) == 64


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"secretName": None}, "secretName is required", id="no secretName"),
        pytest.param({"issuerRef": None}, "issuerRef is required", id="leaf without issuer"),
        pytest.param(
            {"issuerRef": {"kind": "Issuer", "name": "x"}},
            "issuerRef.kind",
            id="unknown issuer kind",
        ),
        pytest.param({"issuerRef": {"name": ""}}, "issuerRef.name", id="issuer without name"),
        pytest.param(
            {"issuerRef": {"kind": "Secret", "name": "x"}},
            "format",
            id="Secret issuer without format",
        ),
        pytest.param(
            {"issuerRef": {"name": "x", "format": "tls"}},
            "only applies",
            id="format on a MeshCertificate issuer",
        ),
        pytest.param(
            {"issuerRef": {"kind": "Secret", "name": "x", "format": "pkcs12"}},
            "issuerRef.format",
            id="unknown issuer format",
        ),
        pytest.param({"duration": "59s"}, "at least 1m", id="duration under 60s"),
        pytest.param({"duration": "1d"}, "duration", id="duration that does not parse"),
        pytest.param({"duration": 3600}, "duration must be a duration", id="duration not a string"),
        pytest.param(
            {"duration": "1h", "renewBefore": "1h"},
            "shorter than duration",
            id="renewBefore equal to duration",
        ),
        pytest.param({"renewBefore": "0s"}, "greater than 0", id="renewBefore zero"),
        pytest.param(
            {"privateKey": {"algorithm": "ECDSA", "size": 521}},
            "does not support size 521",
            id="P-521",
        ),
        pytest.param(
            {"privateKey": {"algorithm": "RSA", "size": 1024}},
            "does not support size 1024",
            id="RSA 1024",
        ),
        pytest.param(
            {"privateKey": {"algorithm": "Ed25519", "size": 256}},
            "Ed25519 does not support",
            id="Ed25519 with a size",
        ),
        pytest.param(
            {"privateKey": {"algorithm": "DSA"}}, "algorithm: unknown value", id="unknown algorithm"
        ),
        pytest.param({"privateKey": {"size": "256"}}, "must be an integer", id="size as text"),
        pytest.param(
            {"privateKey": {"rotationPolicy": "Sometimes"}},
            "rotationPolicy",
            id="unknown rotation policy",
        ),
        pytest.param(
            {"serviceAccountName": None, "spiffeId": "spiffe://td/../x"},
            "'.' or '..'",
            id="dot segments in spiffeId",
        ),
        pytest.param(
            {"serviceAccountName": None, "spiffeId": "spiffe://td"},
            "needs a path",
            id="leaf spiffeId without path",
        ),
        pytest.param(
            {"spiffeId": "spiffe://td/x"}, "not both", id="spiffeId and serviceAccountName"
        ),
        pytest.param(
            {"serviceAccountName": None, "spiffeId": "spiffe://cluster.local/ns/bank/sa/vault"},
            "claims namespace 'bank'",
            id="spiffeId in another namespace",
        ),
        pytest.param(
            {"issuerRef": {"kind": "Secret", "name": "ca", "format": "tls", "namespace": "bank"}},
            "must be in this MeshCertificate's namespace 'shop', not 'bank'",
            id="CA Secret in another namespace",
        ),
        pytest.param({"trustDomain": "Cluster.Local"}, "lowercase", id="uppercase trust domain"),
        pytest.param({"ipAddresses": ["10.0.0.256"]}, "not an IPv4 or IPv6", id="invalid IP"),
        pytest.param({"dnsNames": ["Bad_Name"]}, "DNS-1123", id="invalid DNS name"),
        pytest.param({"dnsNames": "a.example.com"}, "list of strings", id="dnsNames not a list"),
        pytest.param({"usages": ["world domination"]}, "unknown usage", id="unknown usage"),
        pytest.param({"outputFormat": "istio"}, "needs isCA true", id="istio output on a leaf"),
        pytest.param({"outputFormat": "linkerd"}, "needs isCA true", id="linkerd output on a leaf"),
        pytest.param({"outputFormat": "jks"}, "outputFormat", id="unknown output format"),
        pytest.param(
            {"trustBundle": {"configMapName": "roots"}},
            "only be set on a CA",
            id="trustBundle on a leaf",
        ),
        pytest.param(
            {"trustBundle": {"key": "ca.crt"}},
            "configMapName is required",
            id="trustBundle without name",
        ),
        pytest.param({"serviceAccountName": None}, "needs an identity", id="leaf without identity"),
        pytest.param({"commonName": "x" * 65}, "longer than 64", id="common name too long"),
        pytest.param({"isCA": "yes"}, "isCA must be true or false", id="isCA not a bool"),
        pytest.param(
            {"restartOnRotation": [{"kind": "Job", "name": "x"}]},
            "unknown kind",
            id="restart of a Job",
        ),
        pytest.param(
            {"restartOnRotation": [{"kind": "Deployment"}]},
            "name is required",
            id="restart without name",
        ),
        pytest.param(
            {"secretTemplate": {"labels": {"a": 1}}},
            "strings to strings",
            id="label value not a string",
        ),
        pytest.param({"secretTemplate": "x"}, "must be an object", id="template not an object"),
    ],
)
def test_invalid_specs_raise_spec_errors_naming_the_field(overrides, message) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        spec_of(**overrides)


def test_warnings_for_specs_the_mesh_will_refuse() -> None:
    linkerd = MeshCertificateSpec.from_k8s(
        {
            "secretName": "x",
            "isCA": True,
            "outputFormat": "linkerd",
            "privateKey": {"algorithm": "RSA"},
        },
        namespace="linkerd",
    )
    assert "ECDSA P-256" in linkerd.warnings()[0]
    istio = MeshCertificateSpec.from_k8s(
        {
            "secretName": "x",
            "isCA": True,
            "outputFormat": "istio",
            "privateKey": {"algorithm": "Ed25519"},
        },
        namespace="istio-system",
    )
    assert "not Ed25519" in istio.warnings()[0]


# --------------------------------------------------------------------------------------------
# Usages


@pytest.mark.parametrize("name", sorted(model.USAGE_NAMES))
def test_every_usage_name_maps_to_exactly_one_extension(name) -> None:
    usages = model.effective_usages([name], is_ca=False)
    assert len(usages.key_usage) + len(usages.extended) >= 1
    assert (name in model.KEY_USAGE_FIELDS) != (name in model.EXTENDED_KEY_USAGE_OIDS)


def test_cas_always_get_cert_sign_and_crl_sign() -> None:
    assert model.effective_usages([], is_ca=True).key_usage == {"key_cert_sign", "crl_sign"}


def test_encipher_only_implies_key_agreement() -> None:
    assert model.effective_usages(["encipher only"], is_ca=False).key_usage == {
        "encipher_only",
        "key_agreement",
    }


def test_the_usage_list_matches_the_crd_enum() -> None:
    assert len(model.USAGE_NAMES) == 23


# --------------------------------------------------------------------------------------------
# Status and conditions


def test_status_round_trips_through_the_api_form() -> None:
    status = MeshCertificateStatus(
        conditions=(
            Condition("Ready", ConditionStatus.TRUE, "UpToDate", "ok", T0, 3),
            Condition("Issuing", ConditionStatus.FALSE, "UpToDate", "", T0, 3),
        ),
        observed_generation=3,
        not_before=T0,
        not_after=T0 + dt.timedelta(hours=24),
        renewal_time=T0 + dt.timedelta(hours=16),
        serial_number="abc",
        fingerprint_sha256="f" * 64,
        revision=4,
        issuer_fingerprint="e" * 64,
        failed_issuance_attempts=2,
        last_failure_time=T0,
        last_failure_reason="IssuanceFailed",
        trusted_roots=(TrustedRoot("a" * 64, T0, "current"),),
        rollover_phase="AddingRoot",
    )
    api = status.to_k8s()
    assert api["notAfter"] == "2026-01-02T00:00:00Z"
    assert api["trustedRoots"] == [
        {"fingerprintSHA256": "a" * 64, "notAfter": "2026-01-01T00:00:00Z", "reason": "current"}
    ]
    assert api["conditions"][0] == {
        "type": "Ready",
        "status": "True",
        "reason": "UpToDate",
        "message": "ok",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "observedGeneration": 3,
    }
    assert MeshCertificateStatus.from_k8s(api) == status
    assert status.condition("Ready") == status.conditions[0]
    assert status.condition("Expired") is None


def test_an_empty_status_clears_every_field_in_a_merge_patch() -> None:
    api = MeshCertificateStatus().to_k8s()
    assert api["conditions"] == []
    assert api["failedIssuanceAttempts"] == 0
    cleared = {k for k, v in api.items() if v is None}
    assert {"notAfter", "lastFailureReason", "trustedRoots", "rolloverPhase", "revision"} <= cleared
    assert MeshCertificateStatus.from_k8s(None) == MeshCertificateStatus()


def test_status_parsing_is_lenient_with_junk() -> None:
    status = MeshCertificateStatus.from_k8s(
        {
            "conditions": [
                {"type": "Ready", "status": "Maybe"},
                {"status": "True"},
                "junk",
                {"type": "Issuing", "status": "True", "lastTransitionTime": "soon"},
            ],
            "notAfter": "tomorrow",
            "revision": True,
            "failedIssuanceAttempts": -3,
            "serialNumber": 12,
            "trustedRoots": [{"notAfter": "x"}, {"fingerprintSHA256": "ab"}],
            "kopf": {"progress": {}},
        }
    )
    assert status.conditions == (Condition("Issuing", ConditionStatus.TRUE, ""),)
    assert status.not_after is None
    assert status.revision is None
    assert status.failed_issuance_attempts == 0
    assert status.serial_number is None
    assert status.trusted_roots == (TrustedRoot("ab", None, ""),)


def test_set_condition_keeps_the_transition_time_while_the_status_holds() -> None:
    first = Condition("Ready", ConditionStatus.TRUE, "UpToDate", "a", T0)
    later = T0 + dt.timedelta(minutes=5)
    same = model.set_condition(
        (first,), Condition("Ready", ConditionStatus.TRUE, "UpToDate", "b", later)
    )
    assert same == (Condition("Ready", ConditionStatus.TRUE, "UpToDate", "b", T0),)
    flipped = model.set_condition(
        same, Condition("Ready", ConditionStatus.FALSE, "Expired", "c", later)
    )
    assert flipped == (Condition("Ready", ConditionStatus.FALSE, "Expired", "c", later),)
    added = model.set_condition(
        flipped, Condition("Issuing", ConditionStatus.TRUE, "Expired", "", later)
    )
    assert [c.type for c in added] == ["Ready", "Issuing"]
    assert added[1].is_true


def test_reasons_are_unique_camel_case_words() -> None:
    values = [r.value for r in Reason]
    assert len(values) == len(set(values))
    assert all(re.fullmatch(r"[A-Z][A-Za-z0-9]+", v) for v in values)


def test_required_secret_keys_per_format() -> None:
    assert model.REQUIRED_SECRET_KEYS[OutputFormat.TLS] == ("tls.crt", "tls.key")
    assert model.REQUIRED_SECRET_KEYS[OutputFormat.LINKERD] == ("tls.crt", "tls.key", "ca.crt")
    assert set(model.REQUIRED_SECRET_KEYS[OutputFormat.ISTIO]) == {
        "tls.crt",
        "tls.key",
        "ca-cert.pem",
        "ca-key.pem",
        "root-cert.pem",
        "cert-chain.pem",
    }


@pytest.mark.parametrize(
    ("spiffe_id", "expected"),
    [
        ("spiffe://cluster.local/ns/shop/sa/web", "shop"),
        ("spiffe://td/ns/shop", "shop"),
        ("spiffe://td/ns", None),
        ("spiffe://td/workload/ns/bank", None),
        ("spiffe://td", None),
    ],
)
def test_spiffe_namespace_reads_the_istio_convention(spiffe_id: str, expected: str | None) -> None:
    assert model.spiffe_namespace(spiffe_id) == expected


def test_own_namespace_identities_and_same_namespace_ca_secrets_are_accepted() -> None:
    own = spec_of(serviceAccountName=None, spiffeId="spiffe://cluster.local/ns/shop/sa/web")
    assert own.spiffe_id == "spiffe://cluster.local/ns/shop/sa/web"
    other_shape = spec_of(serviceAccountName=None, spiffeId="spiffe://corp/billing/ns/bank")
    assert other_shape.spiffe_id == "spiffe://corp/billing/ns/bank"
    ca = spec_of(issuerRef={"kind": "Secret", "name": "ca", "format": "tls", "namespace": "shop"})
    assert ca.issuer_ref is not None
    assert ca.issuer_ref.namespace == "shop"
