from __future__ import annotations

import base64
import copy
import datetime as dt
import ipaddress
import pickle
import secrets
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dabba.certs import issuer, pki, policies
from dabba.certs.issuer import CertificateAuthority, CertificateTemplate, IssuerError
from dabba.certs.model import (
    IssuerSecretFormat,
    KeyAlgorithm,
    MeshCertificateSpec,
    OutputFormat,
    PrivateKeySpec,
    effective_usages,
)
from dabba.clock import SystemClock

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


def ext(certificate: x509.Certificate, kind):
    return certificate.extensions.get_extension_for_class(kind)


# --------------------------------------------------------------------------------------------
# Keys


@pytest.mark.parametrize(
    ("algorithm", "size", "described"),
    [
        pytest.param(KeyAlgorithm.ECDSA, 256, "ECDSA-256", id="ECDSA P-256"),
        pytest.param(KeyAlgorithm.ECDSA, 384, "ECDSA-384", id="ECDSA P-384"),
        pytest.param(KeyAlgorithm.RSA, 2048, "RSA-2048", id="RSA 2048"),
        pytest.param(KeyAlgorithm.RSA, 3072, "RSA-3072", id="RSA 3072"),
        pytest.param(KeyAlgorithm.ED25519, 0, "Ed25519", id="Ed25519"),
    ],
)
def test_every_algorithm_issues_a_leaf_with_its_key(make, algorithm, size, described) -> None:
    key = make.key(algorithm, size)
    assert (key.algorithm, key.size, key.describe()) == (algorithm, size, described)
    spec = make.spec(privateKey={"algorithm": str(algorithm), "size": size})
    issued = make.leaf(spec, key=key)
    facts = pki.CertificateFacts.from_certificate(issued.certificate)
    assert (facts.key_algorithm, facts.key_size) == (algorithm, size)
    assert key.matches(issued.certificate)
    assert pki.verify_chain(issued.certificate, issued.chain, issued.roots, T0) is None


def test_rsa_4096_keys_work(make) -> None:
    key = issuer.generate_private_key(PrivateKeySpec(KeyAlgorithm.RSA, 4096))
    assert key.describe() == "RSA-4096"
    issued = make.leaf(make.spec(privateKey={"algorithm": "RSA", "size": 4096}), key=key)
    assert pki.CertificateFacts.from_certificate(issued.certificate).key_size == 4096


@pytest.mark.parametrize(
    ("algorithm", "size", "hash_name"),
    [
        pytest.param(KeyAlgorithm.ECDSA, 256, "sha256", id="a P-256 CA signs with SHA-256"),
        pytest.param(KeyAlgorithm.ECDSA, 384, "sha384", id="a P-384 CA signs with SHA-384"),
        pytest.param(KeyAlgorithm.RSA, 2048, "sha256", id="an RSA CA signs with SHA-256"),
        pytest.param(KeyAlgorithm.ED25519, 0, None, id="an Ed25519 CA signs with Ed25519"),
    ],
)
def test_every_ca_algorithm_signs_verifiable_leaves(make, algorithm, size, hash_name) -> None:
    ca = make.root(algorithm=algorithm, size=size, slot=0)
    issued = make.leaf(ca=ca)
    algorithm_used = issued.certificate.signature_hash_algorithm
    assert (algorithm_used.name if algorithm_used else None) == hash_name
    assert pki.verify_chain(issued.certificate, issued.chain, issued.roots, T0) is None


def test_issue_refuses_a_key_that_does_not_fit_the_spec(make) -> None:
    with pytest.raises(ValueError, match="key is ECDSA-256, spec asks for RSA-2048"):
        issuer.issue(make.spec(privateKey={"algorithm": "RSA"}), make.key(), make.root(), T0)


def test_issue_wants_an_issuer_exactly_when_the_spec_has_an_issuer_ref(make) -> None:
    with pytest.raises(IssuerError, match="needs a loaded CertificateAuthority"):
        issuer.issue(make.spec(), make.key(), None, T0)
    root_spec = make.spec(issuerRef=None, isCA=True)
    with pytest.raises(IssuerError, match="takes no issuer"):
        issuer.issue(root_spec, make.key(), make.root(), T0)


# --------------------------------------------------------------------------------------------
# Names, usages, constraints


def test_a_workload_certificate_carries_exactly_the_spec_identity(make) -> None:
    spec = make.spec(dnsNames=["api.example.com"], ipAddresses=["10.0.0.7", "2001:db8::1"])
    issued = make.leaf(spec)
    cert = issued.certificate
    san = ext(cert, x509.SubjectAlternativeName)
    assert san.critical  # empty subject → critical SAN (RFC 5280)
    assert cert.subject == x509.Name([])
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/shop/sa/payments"
    ]
    assert san.value.get_values_for_type(x509.DNSName) == [
        "payments",
        "payments.shop",
        "payments.shop.svc",
        "payments.shop.svc.cluster.local",
        "api.example.com",
    ]
    assert san.value.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.7"),
        ipaddress.ip_address("2001:db8::1"),
    ]
    assert issued.not_before == T0
    assert issued.not_after == T0 + 24 * H
    assert cert.issuer == make.root().certificate.subject
    # The same spec reads back as "nothing to do".
    inp = make.input(spec=spec, issued=issued)
    assert policies.evaluate(policies.TRIGGER_CHAIN, inp) is None


def test_a_common_name_makes_the_san_non_critical(make) -> None:
    issued = make.leaf(make.spec(commonName="payments"))
    assert issued.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "payments"
    )
    assert not ext(issued.certificate, x509.SubjectAlternativeName).critical


def test_default_usages_and_key_identifiers(make) -> None:
    issued = make.leaf()
    usage = ext(issued.certificate, x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert usage.value.key_encipherment
    assert not usage.value.key_cert_sign
    eku = ext(issued.certificate, x509.ExtendedKeyUsage)
    assert set(eku.value) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    constraints = ext(issued.certificate, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value == x509.BasicConstraints(ca=False, path_length=None)
    ski = ext(make.root().certificate, x509.SubjectKeyIdentifier).value
    aki = ext(issued.certificate, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert ext(issued.certificate, x509.SubjectKeyIdentifier).value == (
        x509.SubjectKeyIdentifier.from_public_key(issued.key.public_key())
    )


_ALL_KEY_USAGE_NAMES = [
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
]


@pytest.mark.parametrize(
    ("usages", "key_usage", "eku"),
    [
        pytest.param(
            ["server auth"], None, {"1.3.6.1.5.5.7.3.1"}, id="only an EKU: no KeyUsage extension"
        ),
        pytest.param(
            ["digital signature"],
            {"digital_signature"},
            None,
            id="only a key usage: no EKU extension",
        ),
        pytest.param(
            ["code signing", "email protection", "s/mime", "timestamping", "ocsp signing"],
            None,
            {"1.3.6.1.5.5.7.3.3", "1.3.6.1.5.5.7.3.4", "1.3.6.1.5.5.7.3.8", "1.3.6.1.5.5.7.3.9"},
            id="s/mime and email protection are one OID",
        ),
        pytest.param(
            [
                "ipsec end system",
                "ipsec tunnel",
                "ipsec user",
                "microsoft sgc",
                "netscape sgc",
                "any",
            ],
            None,
            {
                "1.3.6.1.5.5.7.3.5",
                "1.3.6.1.5.5.7.3.6",
                "1.3.6.1.5.5.7.3.7",
                "1.3.6.1.4.1.311.10.3.3",
                "2.16.840.1.113730.4.1",
                "2.5.29.37.0",
            },
            id="the rare extended usages",
        ),
        pytest.param(
            _ALL_KEY_USAGE_NAMES,
            {
                "digital_signature",
                "content_commitment",
                "key_encipherment",
                "key_agreement",
                "data_encipherment",
                "key_cert_sign",
                "crl_sign",
                "encipher_only",
                "decipher_only",
            },
            None,
            id="every key usage",
        ),
    ],
)
def test_usage_names_become_extensions(make, usages, key_usage, eku) -> None:
    template = CertificateTemplate(dns_names=("x",), usages=effective_usages(usages, is_ca=False))
    issued = issuer.sign(template, make.key(), make.root(), T0)
    facts = pki.CertificateFacts.from_certificate(issued.certificate)
    assert facts.key_usage == (None if key_usage is None else frozenset(key_usage))
    assert facts.extended_key_usage == frozenset(eku or ())
    if eku is None:
        with pytest.raises(x509.ExtensionNotFound):
            ext(issued.certificate, x509.ExtendedKeyUsage)


@pytest.mark.parametrize(
    ("parent_path_length", "requested", "expected"),
    [
        pytest.param(None, None, None, id="under an unconstrained root: unconstrained"),
        pytest.param(None, 0, 0, id="an explicit path length is kept"),
        pytest.param(2, None, 1, id="one less than the issuer"),
        pytest.param(2, 1, 1, id="explicit and allowed"),
        pytest.param(1, None, 0, id="down to zero"),
    ],
)
def test_ca_path_length(make, parent_path_length, requested, expected) -> None:
    parent = make.root(path_length=parent_path_length, slot=110)
    child = make.intermediate(parent, path_length=requested, slot=210)
    assert child.path_length == expected
    assert ext(child.certificate, x509.BasicConstraints).value.ca
    usage = ext(child.certificate, x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign


@pytest.mark.parametrize(
    ("parent_path_length", "requested", "message"),
    [
        pytest.param(
            0, None, "path length 0 and cannot sign another CA", id="a pathlen-0 issuer signs no CA"
        ),
        pytest.param(
            1, 1, "exceeds what the issuer allows", id="a child may not exceed its parent"
        ),
    ],
)
def test_ca_path_length_limits(make, parent_path_length, requested, message) -> None:
    parent = make.root(path_length=parent_path_length, slot=111)
    with pytest.raises(IssuerError, match=message):
        make.intermediate(parent, path_length=requested, slot=211)


def test_a_pathlen_zero_ca_still_signs_leaves(make) -> None:
    ca = make.intermediate(make.root(), path_length=0, slot=212)
    issued = make.leaf(ca=ca)
    assert pki.verify_chain(issued.certificate, issued.chain, issued.roots, T0) is None


def test_a_self_signed_root_from_a_spec(make) -> None:
    spec = MeshCertificateSpec.from_k8s(
        {"secretName": "mesh-root", "isCA": True, "duration": "87600h"}, namespace="dabba-system"
    )
    root = issuer.issue(spec, make.key(slot=60), None, T0)
    assert root.certificate.subject == root.certificate.issuer
    assert root.roots == (root.certificate,)
    assert root.chain == ()
    assert root.issuer_fingerprint == root.fingerprint
    assert root.path_root() == root.certificate
    assert ext(root.certificate, x509.BasicConstraints).value == x509.BasicConstraints(
        ca=True, path_length=None
    )
    assert pki.verify_chain(root.certificate, (), root.roots, T0) is None


def test_a_certificate_needs_some_identity(make) -> None:
    with pytest.raises(ValueError, match="common name or at least one SAN"):
        issuer.sign(CertificateTemplate(), make.key(), make.root(), T0)


# --------------------------------------------------------------------------------------------
# Clamping


def test_a_leaf_never_outlives_its_issuer(make) -> None:
    short_ca = make.intermediate(make.root(), duration=5 * H, slot=220)
    issued = make.leaf(make.spec(duration="48h"), short_ca)
    assert issued.not_after == short_ca.certificate.not_valid_after_utc


def test_a_leaf_never_outlives_the_root_above_its_intermediate(make) -> None:
    short_root = make.root(duration=2 * DAY, slot=120)
    long_intermediate = make.intermediate(short_root, duration=365 * DAY, slot=221)
    assert (
        long_intermediate.certificate.not_valid_after_utc
        == short_root.certificate.not_valid_after_utc
    )
    issued = make.leaf(make.spec(duration="72h"), long_intermediate)
    assert issued.not_after == short_root.certificate.not_valid_after_utc


@pytest.mark.parametrize(
    ("now", "message"),
    [
        pytest.param(T0 + 400 * DAY, "issuer chain expired", id="an expired issuer cannot sign"),
        pytest.param(T0 - 10 * DAY, "not valid before", id="an issuer from the future cannot sign"),
    ],
)
def test_an_issuer_outside_its_validity_cannot_sign(make, now, message) -> None:
    ca = make.intermediate(make.root(), duration=365 * DAY, slot=222)
    with pytest.raises(IssuerError, match=message):
        make.leaf(ca=ca, now=now)


def test_microseconds_are_dropped_from_the_issuance_time(make) -> None:
    issued = make.leaf(now=T0 + dt.timedelta(microseconds=999_999))
    assert issued.not_before == T0


# --------------------------------------------------------------------------------------------
# Output formats


def pem_list(data: bytes) -> list[str]:
    return [pki.fingerprint_sha256(c) for c in pki.load_certificates(data)]


@pytest.fixture(scope="module")
def chain3(make):
    """root → intermediate → leaf."""
    root = make.root()
    intermediate = make.intermediate(root, slot=230)
    return root, intermediate, make.leaf(ca=intermediate)


def test_tls_layout(make, chain3) -> None:
    root, intermediate, leaf = chain3
    data = issuer.secret_data(leaf, OutputFormat.TLS)
    assert set(data) == {"tls.crt", "tls.key", "ca.crt"}
    assert pem_list(data["tls.crt"]) == [leaf.fingerprint, intermediate.fingerprint]
    assert pem_list(data["ca.crt"]) == [root.fingerprint]
    assert data["tls.key"].startswith(b"-----BEGIN " + b"PRIVATE KEY-----")  # PKCS#8
    assert pki.load_private_key(data["tls.key"]) == leaf.key


def test_a_leaf_under_a_root_has_no_root_in_tls_crt(make) -> None:
    leaf = make.leaf()
    data = issuer.secret_data(leaf, OutputFormat.TLS)
    assert pem_list(data["tls.crt"]) == [leaf.fingerprint]
    assert pem_list(data["ca.crt"]) == [make.root().fingerprint]


@pytest.fixture(scope="module")
def istio_intermediate(make, chain3):
    root, intermediate, _ = chain3
    spec = make.spec(
        isCA=True,
        outputFormat="istio",
        serviceAccountName=None,
        service=None,
        commonName="istiod CA",
    )
    return root, intermediate, issuer.issue(spec, make.key(slot=231), intermediate, T0)


def test_istio_plug_in_ca_layout(istio_intermediate) -> None:
    root, intermediate, ca = istio_intermediate
    data = issuer.secret_data(ca, OutputFormat.ISTIO)
    assert set(data) == {
        "tls.crt",
        "tls.key",
        "ca.crt",
        "ca-cert.pem",
        "ca-key.pem",
        "root-cert.pem",
        "cert-chain.pem",
    }
    assert pem_list(data["ca-cert.pem"]) == [ca.fingerprint]
    assert data["ca-key.pem"] == data["tls.key"]
    assert data["root-cert.pem"] == data["ca.crt"]
    assert pem_list(data["root-cert.pem"]) == [root.fingerprint]
    # istiod's cert-chain.pem: the CA, its intermediates, then the root (tools/certs Makefile).
    assert pem_list(data["cert-chain.pem"]) == [
        ca.fingerprint,
        intermediate.fingerprint,
        root.fingerprint,
    ]
    assert pem_list(data["tls.crt"]) == [ca.fingerprint, intermediate.fingerprint]


def test_istio_layout_of_a_self_signed_root(make) -> None:
    spec = make.spec(issuerRef=None, isCA=True, outputFormat="istio")
    root = issuer.issue(spec, make.key(slot=61), None, T0)
    data = issuer.secret_data(root, OutputFormat.ISTIO)
    assert pem_list(data["cert-chain.pem"]) == [root.fingerprint]
    assert pem_list(data["root-cert.pem"]) == [root.fingerprint]


def test_linkerd_identity_issuer_layout(make, chain3) -> None:
    root, intermediate, _ = chain3
    spec = make.spec(
        isCA=True,
        outputFormat="linkerd",
        serviceAccountName=None,
        service=None,
        commonName="identity.linkerd.cluster.local",
    )
    ca = issuer.issue(spec, make.key(slot=232), intermediate, T0)
    data = issuer.secret_data(ca, OutputFormat.LINKERD)
    # Linkerd's identity controller, scheme kubernetes.io/tls, reads exactly these three keys.
    assert set(data) == {"tls.crt", "tls.key", "ca.crt"}
    assert pem_list(data["ca.crt"]) == [root.fingerprint]
    assert pem_list(data["tls.crt"]) == [ca.fingerprint, intermediate.fingerprint]


@pytest.mark.parametrize("fmt", [OutputFormat.ISTIO, OutputFormat.LINKERD])
def test_mesh_layouts_need_a_ca(make, fmt) -> None:
    with pytest.raises(ValueError, match="needs a CA certificate"):
        issuer.secret_data(make.leaf(), fmt)


def test_every_layout_parses_back_as_a_clean_secret(make, istio_intermediate) -> None:
    _, intermediate, ca = istio_intermediate
    spec = make.spec(
        isCA=True,
        outputFormat="istio",
        serviceAccountName=None,
        service=None,
        commonName="istiod CA",
    )
    data = issuer.secret_data(ca, OutputFormat.ISTIO)
    secret = policies.parse_secret(dict(data), output_format=OutputFormat.ISTIO)
    inp = policies.PolicyInput(
        spec=spec,
        now=T0 + H,
        secret=secret,
        issuer=pki.CertificateFacts.from_certificate(intermediate.certificate),
    )
    assert policies.evaluate(policies.TRIGGER_CHAIN, inp) is None


def test_secret_data_never_prints_the_key_and_encodes_for_the_api(make) -> None:
    leaf = make.leaf()
    data = issuer.secret_data(leaf, OutputFormat.TLS)
    assert repr(data) == "<SecretData keys=['ca.crt', 'tls.crt', 'tls.key']>"
    assert str(data) == repr(data)
    assert len(data) == 3
    encoded = data.to_base64()
    assert base64.b64decode(encoded["tls.key"]) == data["tls.key"]


# --------------------------------------------------------------------------------------------
# Annotations


def test_annotations_of_a_leaf(make) -> None:
    spec = make.spec(commonName="payments", ipAddresses=["10.0.0.7"])
    leaf = make.leaf(spec)
    annotations = issuer.secret_annotations(leaf, spec, certificate_name="payments", revision=3)
    assert annotations == {
        "cert-manager.io/certificate-name": "payments",
        "cert-manager.io/issuer-name": "mesh-root",
        "cert-manager.io/issuer-kind": "MeshCertificate",
        "cert-manager.io/issuer-group": "dabba.io",
        "cert-manager.io/common-name": "payments",
        "cert-manager.io/alt-names": (
            "payments,payments.shop,payments.shop.svc,payments.shop.svc.cluster.local"
        ),
        "cert-manager.io/ip-sans": "10.0.0.7",
        "cert-manager.io/uri-sans": "spiffe://cluster.local/ns/shop/sa/payments",
        "dabba.io/serial": format(leaf.certificate.serial_number, "x"),
        "dabba.io/not-after": "2026-01-02T00:00:00Z",
        "dabba.io/revision": "3",
        "dabba.io/fingerprint": leaf.fingerprint,
        "dabba.io/issuer-fingerprint": make.root().fingerprint,
        "dabba.io/issuer-namespace": "dabba-system",
    }


def test_annotations_of_a_root_and_of_a_secret_issued_certificate(make) -> None:
    root_spec = make.spec(issuerRef=None, isCA=True, serviceAccountName=None, service=None)
    root = make.leaf(root_spec, slot=62)
    annotations = issuer.secret_annotations(root, root_spec, certificate_name="r", revision=1)
    assert "cert-manager.io/issuer-name" not in annotations
    assert annotations["dabba.io/issuer-fingerprint"] == root.fingerprint
    assert annotations["cert-manager.io/alt-names"] == ""
    secret_spec = make.spec(issuerRef={"kind": "Secret", "name": "cacerts", "format": "istio"})
    leaf = make.leaf(secret_spec)
    annotations = issuer.secret_annotations(leaf, secret_spec, certificate_name="p", revision=1)
    assert annotations["cert-manager.io/issuer-kind"] == "Secret"
    assert annotations["cert-manager.io/issuer-group"] == ""
    assert annotations["dabba.io/issuer-namespace"] == "shop"


# --------------------------------------------------------------------------------------------
# Loading issuers


def test_load_a_ca_meshcertificate_secret(make, chain3) -> None:
    root, intermediate, _ = chain3
    spec = make.spec(isCA=True, serviceAccountName=None, service=None, commonName="sub CA")
    sub = issuer.issue(spec, make.key(slot=233), intermediate, T0)
    loaded = issuer.load_issuer(
        dict(issuer.secret_data(sub, OutputFormat.TLS)), IssuerSecretFormat.TLS, T0
    )
    assert loaded.fingerprint == sub.fingerprint
    assert [pki.fingerprint_sha256(c) for c in loaded.chain] == [intermediate.fingerprint]
    assert [pki.fingerprint_sha256(c) for c in loaded.roots] == [root.fingerprint]
    leaf = make.leaf(ca=loaded)
    assert pki.verify_chain(leaf.certificate, leaf.chain, leaf.roots, T0) is None
    assert [pki.fingerprint_sha256(c) for c in leaf.chain] == [
        sub.fingerprint,
        intermediate.fingerprint,
    ]


def test_load_a_tls_secret_without_ca_crt_when_the_ca_is_a_root(make) -> None:
    root = make.root()
    data = {"tls.crt": pki.to_pem((root.certificate,)), "tls.key": root.key.to_pkcs8_pem()}
    loaded = issuer.load_issuer(data, IssuerSecretFormat.TLS, T0)
    assert loaded.roots == (root.certificate,)


def test_load_a_tls_secret_whose_chain_ends_in_the_root(make, chain3) -> None:
    root, intermediate, _ = chain3
    data = {
        "tls.crt": pki.to_pem((intermediate.certificate, root.certificate)),
        "tls.key": intermediate.key.to_pkcs8_pem(),
    }
    loaded = issuer.load_issuer(data, IssuerSecretFormat.TLS, T0)
    assert loaded.roots == (root.certificate,)
    assert loaded.chain == ()


def test_load_an_istio_plug_in_ca_secret(istio_intermediate) -> None:
    root, intermediate, ca = istio_intermediate
    data = dict(issuer.secret_data(ca, OutputFormat.ISTIO))
    for key in ("tls.crt", "tls.key", "ca.crt"):
        del data[key]  # a hand-made cacerts Secret has only the four istio keys
    loaded = issuer.load_issuer(data, IssuerSecretFormat.ISTIO, T0)
    assert loaded.fingerprint == ca.fingerprint
    assert loaded.chain == (intermediate.certificate,)
    assert loaded.roots == (root.certificate,)
    del data["cert-chain.pem"]  # without it the intermediate is unknown: the CA is refused
    with pytest.raises(IssuerError, match="no trusted root or intermediate named CN=mesh-int"):
        issuer.load_issuer(data, IssuerSecretFormat.ISTIO, T0)


def test_an_istio_root_ca_needs_no_cert_chain(make) -> None:
    root = make.root()
    data = {
        "ca-cert.pem": pki.to_pem((root.certificate,)),
        "ca-key.pem": root.key.to_pkcs8_pem(),
        "root-cert.pem": pki.to_pem((root.certificate,)),
    }
    assert issuer.load_issuer(data, IssuerSecretFormat.ISTIO, T0).chain == ()


def _tls(cert, key, ca=None) -> dict[str, bytes]:
    data = {"tls.crt": pki.to_pem((cert,)), "tls.key": key.to_pkcs8_pem()}
    if ca is not None:
        data["ca.crt"] = pki.to_pem((ca,))
    return data


@pytest.mark.parametrize(
    ("case", "message"),
    [
        pytest.param("no tls.crt", "issuer Secret has no tls.crt", id="missing certificate"),
        pytest.param("no tls.key", "issuer Secret has no tls.key", id="missing key"),
        pytest.param(
            "garbage tls.crt", "tls.crt: not a PEM certificate bundle", id="garbage certificate"
        ),
        pytest.param("garbage tls.key", "tls.key: not a PEM private key", id="garbage key"),
        pytest.param("other key", "private key does not match", id="key of another CA"),
        pytest.param("leaf", "is not a CA", id="a leaf is no issuer"),
        pytest.param(
            "intermediate without roots", "no trust roots", id="an intermediate without ca.crt"
        ),
        pytest.param(
            "wrong ca.crt", "does not verify against its own roots", id="ca.crt from another PKI"
        ),
        pytest.param("expired", "expired at", id="an expired CA"),
        pytest.param(
            "istio without root-cert.pem",
            "issuer Secret has no root-cert.pem",
            id="istio without roots",
        ),
    ],
)
def test_unusable_issuer_secrets(make, chain3, case, message) -> None:
    root, intermediate, leaf = chain3
    other = make.root("other", slot=130)
    layout = IssuerSecretFormat.TLS
    now = T0
    data = _tls(intermediate.certificate, intermediate.key, root.certificate)
    if case == "no tls.crt":
        del data["tls.crt"]
    elif case == "no tls.key":
        data["tls.key"] = b""
    elif case == "garbage tls.crt":
        data["tls.crt"] = b"\x00\x01"
    elif case == "garbage tls.key":
        data["tls.key"] = (
            b"-----BEGIN " + b"PRIVATE KEY-----\nxx\n-----END " + b"PRIVATE KEY-----\n"
        )
    elif case == "other key":
        data["tls.key"] = other.key.to_pkcs8_pem()
    elif case == "leaf":
        data = _tls(leaf.certificate, leaf.key, root.certificate)
    elif case == "intermediate without roots":
        del data["ca.crt"]
    elif case == "wrong ca.crt":
        data["ca.crt"] = pki.to_pem((other.certificate,))
    elif case == "expired":
        now = T0 + 400 * DAY
    elif case == "istio without root-cert.pem":
        layout = IssuerSecretFormat.ISTIO
        data = {"ca-cert.pem": data["tls.crt"], "ca-key.pem": data["tls.key"]}
    with pytest.raises(IssuerError, match=message) as raised:
        issuer.load_issuer(data, layout, now)
    assert b"PRIVATE KEY" not in str(raised.value).encode()


def test_a_ca_authority_must_be_a_ca_and_hold_its_key(make, chain3) -> None:
    root, _, leaf = chain3
    with pytest.raises(IssuerError, match="does not match"):
        CertificateAuthority(certificate=root.certificate, key=leaf.key)
    with pytest.raises(IssuerError, match="not a CA"):
        CertificateAuthority(certificate=leaf.certificate, key=leaf.key, roots=(root.certificate,))


# --------------------------------------------------------------------------------------------
# Chain verification


def test_verify_chain_accepts_a_good_chain_and_a_root_itself(chain3) -> None:
    root, intermediate, leaf = chain3
    assert (
        pki.verify_chain(leaf.certificate, [intermediate.certificate], [root.certificate], T0)
        is None
    )
    assert pki.verify_chain(root.certificate, [], [root.certificate], T0) is None
    assert pki.verify_chain(intermediate.certificate, [], [root.certificate], T0) is None


@pytest.mark.parametrize(
    ("case", "message"),
    [
        pytest.param(
            "other root, same name",
            "does not verify with the key of CN=mesh-root",
            id="a root with the same name but another key",
        ),
        pytest.param(
            "other root, other name",
            "no trusted root or intermediate named CN=mesh-intermediate",
            id="a root of another PKI",
        ),
        pytest.param(
            "missing intermediate",
            "no trusted root or intermediate named CN=mesh-intermediate",
            id="the intermediate is not supplied",
        ),
        pytest.param(
            "expired leaf", "certificate <empty subject> expired at", id="an expired leaf"
        ),
        pytest.param("leaf not yet valid", "is not valid before", id="a leaf from the future"),
        pytest.param(
            "expired intermediate", "issuer CN=short expired at", id="an expired intermediate"
        ),
        pytest.param("no roots", "no trust roots", id="no roots at all"),
        pytest.param("leaf as issuer", "is not a CA", id="a leaf cannot sign"),
        pytest.param(
            "path length", "allows path length 0, the chain needs 1", id="a path length is enforced"
        ),
    ],
)
def test_verify_chain_says_why_it_fails(make, chain3, case, message) -> None:
    root, intermediate, leaf = chain3
    cert, intermediates, roots, now = (
        leaf.certificate,
        [intermediate.certificate],
        [root.certificate],
        T0,
    )
    if case == "other root, same name":
        roots = [make.root(slot=131).certificate]
    elif case == "other root, other name":
        roots = [make.root("other", slot=130).certificate]
    elif case == "missing intermediate":
        intermediates = []
    elif case == "expired leaf":
        now = T0 + 2 * DAY
    elif case == "leaf not yet valid":
        now = T0 - H
    elif case == "expired intermediate":
        # The issuer clamps leaves to their CA, so the outliving leaf is forged by hand.
        short = make.intermediate(root, "short", duration=2 * H, slot=240)
        cert = _forge(make, issuer_cert=short.certificate, issuer_key=short.key)
        intermediates, now = [short.certificate], T0 + 2 * H
    elif case == "no roots":
        roots = []
    elif case == "leaf as issuer":
        forged = _forge(make, issuer_cert=leaf.certificate, issuer_key=leaf.key)
        cert, intermediates = forged, [leaf.certificate, intermediate.certificate]
    elif case == "path length":
        zero = make.intermediate(root, "zero", path_length=0, slot=241)
        sub = _forge(make, issuer_cert=zero.certificate, issuer_key=zero.key, ca=True)
        sub_key = make.key(slot=243)
        cert = _forge(make, issuer_cert=sub, issuer_key=sub_key, subject_key=make.key(slot=244))
        intermediates = [sub, zero.certificate]
    problem = pki.verify_chain(cert, intermediates, roots, now)
    assert problem is not None
    assert message in problem


def _forge(make, *, issuer_cert, issuer_key, ca=False, subject_key=None):
    """A certificate built by hand, bypassing the issuer's own rules."""
    subject_key = subject_key or (make.key(slot=243) if ca else make.key(slot=242))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forged-ca" if ca else "forged")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0 - H)
        .not_valid_after(T0 + DAY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key.crypto_key, hashes.SHA256())
    )


def test_verify_chain_tries_every_root_with_the_same_name(make) -> None:
    # During a CA rollover the bundle holds the old and the new root, both "CN=mesh-root".
    old, new = make.root(), make.root(slot=131)
    leaf = make.leaf(ca=new)
    assert pki.verify_chain(leaf.certificate, [], [old.certificate, new.certificate], T0) is None
    assert pki.verify_chain(leaf.certificate, [], [old.certificate], T0) is not None


def test_verify_chain_with_ed25519_which_the_webpki_verifier_refuses(make) -> None:
    ca = make.root(algorithm=KeyAlgorithm.ED25519, size=0, slot=0)
    leaf = make.leaf(ca=ca)
    assert pki.verify_chain(leaf.certificate, [], ca.roots, T0) is None


@pytest.mark.parametrize(
    ("case", "ok"),
    [
        pytest.param("good", True, id="both accept a good chain"),
        pytest.param("other root", False, id="both refuse another root"),
        pytest.param("expired", False, id="both refuse an expired leaf"),
    ],
)
def test_verify_chain_agrees_with_cryptographys_verifier(make, chain3, case, ok) -> None:
    root, intermediate, leaf = chain3
    roots = [make.root(slot=131).certificate] if case == "other root" else [root.certificate]
    now = T0 + 2 * DAY if case == "expired" else T0 + H
    ours = pki.verify_chain(leaf.certificate, [intermediate.certificate], roots, now) is None
    builtin = (
        verification.PolicyBuilder()
        .store(verification.Store(roots))
        .time(now)
        .build_client_verifier()
    )
    try:
        builtin.verify(leaf.certificate, [intermediate.certificate])
        theirs = True
    except verification.VerificationError:
        theirs = False
    assert ours is theirs is ok


# --------------------------------------------------------------------------------------------
# Real TLS: OpenSSL (through Python's ssl) accepts what we issue


def _context(tmp_path, name, issued, trusted, *, server):
    chain = tmp_path / f"{name}.crt"
    key = tmp_path / f"{name}.key"
    data = issuer.secret_data(issued, OutputFormat.TLS)
    chain.write_bytes(data["tls.crt"])
    key.write_bytes(data["tls.key"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    context.load_cert_chain(chain, key)
    context.load_verify_locations(cadata=pki.to_pem(trusted).decode())
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _handshake(client_context, server_context, hostname) -> None:
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(c_in, c_out, server_hostname=hostname)
    server = server_context.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, side, out, peer_in in (
            ("client", client, c_out, s_in),
            ("server", server, s_out, c_in),
        ):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


def test_mutual_tls_with_issued_certificates(make, tmp_path) -> None:
    # OpenSSL checks validity against the wall clock, so this PKI is issued "now".
    now = SystemClock().now()
    root = make.root(start=now - H, slot=140)
    intermediate = make.intermediate(root, start=now - H, slot=250)
    server_leaf = make.leaf(ca=intermediate, now=now)
    client_leaf = make.leaf(
        make.spec(serviceAccountName="orders", service=None), intermediate, now=now, slot=5
    )
    server = _context(tmp_path, "server", server_leaf, [root.certificate], server=True)
    client = _context(tmp_path, "client", client_leaf, [root.certificate], server=False)
    _handshake(client, server, "payments.shop.svc")

    stranger_root = make.root(start=now - H, slot=141)  # same name, different key
    stranger_leaf = make.leaf(ca=stranger_root, now=now, slot=6)
    stranger = _context(tmp_path, "stranger", stranger_leaf, [root.certificate], server=False)
    with pytest.raises(ssl.SSLError):
        _handshake(stranger, server, "payments.shop.svc")


# --------------------------------------------------------------------------------------------
# Key material never shows


def test_private_key_material_never_appears_in_reprs_or_errors(make, chain3) -> None:
    root, _, leaf = chain3
    key = leaf.key
    pem = key.to_pkcs8_pem()
    body_lines = [line for line in pem.decode().splitlines() if not line.startswith("-----")]
    private_value = str(key.crypto_key.private_numbers().private_value)
    secret = make.contents(leaf)
    inp = make.input(issued=leaf, secret=secret)
    shown = [
        repr(key),
        str(key),
        repr(leaf),
        repr(root),
        repr(issuer.secret_data(leaf, OutputFormat.TLS)),
        repr(secret),
        repr(inp),
        repr(policies.assess(inp)),
        repr(policies.parse_secret({"tls.key": pem, "tls.crt": b"junk"})),
    ]
    for text in shown:
        assert private_value not in text
        assert not any(line in text for line in body_lines)
    assert repr(key).startswith("<PrivateKey ECDSA-256 sha256:")
    assert key.public_key_fingerprint[:16] in repr(key)
    # Errors about a key that is not quite a key never echo it.
    for broken in (pem[:-40], pem.replace(b"PRIVATE", b"PUBLIC"), pem + b"junk"):
        secret = policies.parse_secret({"tls.key": broken})
        assert secret.private_key_error is None or not any(
            line in secret.private_key_error for line in body_lines
        )
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)
    # Immutable: copies are the object itself, so deep copies of containers still work.
    assert copy.deepcopy(leaf).key is key
    assert copy.copy(key) is key


def _fake_rsa_key(bits: int) -> bytes:
    """An RSA key of about 2 * bits bits whose "primes" are random odd numbers (invalid)."""
    p = secrets.randbits(bits) | (1 << (bits - 1)) | 1
    q = secrets.randbits(bits) | (1 << (bits - 1)) | 1
    n = p * q
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=(secrets.randbits(2 * bits) % n) | 1,
        dmp1=(secrets.randbits(bits) % p) | 1,
        dmq1=(secrets.randbits(bits) % q) | 1,
        iqmp=secrets.randbits(bits) % p,
        public_numbers=rsa.RSAPublicNumbers(65537, n),
    )
    return numbers.private_key(unsafe_skip_rsa_key_validation=True).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_a_huge_rsa_key_is_refused_before_openssl_validates_it() -> None:
    with pytest.raises(pki.PemError, match=r"unsupported RSA key size 8\d{3}"):
        pki.load_private_key(_fake_rsa_key(4300))


def test_an_ordinary_sized_but_invalid_rsa_key_is_still_validated() -> None:
    with pytest.raises(pki.PemError, match="not a PEM private key"):
        pki.load_private_key(_fake_rsa_key(1024))


def test_private_key_equality_and_support(make) -> None:
    key = make.key()
    again = pki.load_private_key(key.to_pkcs8_pem())
    assert again == key
    assert hash(again) == hash(key)
    assert again != make.key(slot=2)
    assert (key == "x") is False
    with pytest.raises(TypeError, match="unsupported private key type"):
        pki.PrivateKey(ec.generate_private_key(ec.SECP521R1()))


def test_pkcs1_and_sec1_keys_load_too(make) -> None:
    for key in (make.key(), make.key(KeyAlgorithm.RSA, 2048)):
        traditional = key.crypto_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        assert pki.load_private_key(traditional) == key


def test_certificate_parsing_refuses_garbage_with_pem_errors() -> None:
    for junk in (
        b"",
        b"   ",
        b"junk",
        b"-----BEGIN CERTIFICATE-----\n@@\n-----END CERTIFICATE-----\n",
    ):
        with pytest.raises(pki.PemError):
            pki.parse_certificates(junk)


# --------------------------------------------------------------------------------------------
# A CA's Secret during a rollover: the trusted set and the next CA


def _ca_spec(make, **overrides):
    return make.spec(
        issuerRef=None,
        isCA=True,
        serviceAccountName=None,
        service=None,
        commonName="mesh root",
        **overrides,
    )


def test_a_ca_secret_carries_the_trusted_set_and_the_next_ca(make) -> None:
    old = make.leaf(_ca_spec(make), None, slot=11)
    new = make.leaf(_ca_spec(make), None, slot=12)
    data = issuer.ca_secret_data(old, [old.certificate, new.certificate], OutputFormat.TLS, new)
    assert pki.load_certificates(data["tls.crt"]) == (old.certificate,)
    assert pki.load_certificates(data["ca.crt"]) == (old.certificate, new.certificate)
    assert pki.load_certificates(data["next.crt"]) == (new.certificate,)
    assert pki.load_private_key(data["next.key"]) == new.key
    assert "next.key" in repr(data)
    assert b"PRIVATE" not in repr(data).encode()
    # What the leaves load as their issuer: the old CA still signs, both roots are trusted.
    ca = issuer.load_issuer(data, IssuerSecretFormat.TLS, T0)
    assert ca.certificate == old.certificate
    assert len(ca.roots) == 2


def test_the_istio_layout_keeps_root_cert_pem_equal_to_the_trusted_set(make) -> None:
    old = make.leaf(_ca_spec(make, outputFormat="istio"), None, slot=11)
    new = make.leaf(_ca_spec(make, outputFormat="istio"), None, slot=12)
    data = issuer.ca_secret_data(old, [old.certificate, new.certificate], OutputFormat.ISTIO)
    assert data["root-cert.pem"] == data["ca.crt"]
    assert "next.crt" not in data
    contents = policies.parse_secret(data, output_format=OutputFormat.ISTIO)
    assert contents.inconsistent_keys == ()


def test_load_next_accepts_only_a_usable_ca(make) -> None:
    old = make.leaf(_ca_spec(make), None, slot=11)
    new = make.leaf(_ca_spec(make), None, slot=12)
    data = dict(
        issuer.ca_secret_data(old, [old.certificate, new.certificate], OutputFormat.TLS, new)
    )
    loaded = issuer.load_next(data, [old.certificate, new.certificate], T0)
    assert loaded is not None
    assert loaded.certificate == new.certificate
    assert issuer.load_next({}, [old.certificate], T0) is None
    assert issuer.load_next({**data, "next.key": old.key.to_pkcs8_pem()}, [], T0) is None
    assert issuer.load_next({**data, "next.crt": b"junk"}, [], T0) is None
    leaf = make.leaf(ca=make.root())
    not_a_ca = {"next.crt": pki.to_pem([leaf.certificate]), "next.key": leaf.key.to_pkcs8_pem()}
    assert issuer.load_next(not_a_ca, [make.root().certificate], T0) is None
    assert issuer.load_next(data, [old.certificate], T0 + dt.timedelta(days=400)) is None


def test_a_loaded_ca_knows_who_signed_it(make) -> None:
    root = make.root()
    intermediate = make.intermediate(root)
    as_issued = issuer.IssuedCertificate.from_authority(intermediate)
    assert as_issued.issuer_fingerprint == pki.fingerprint_sha256(root.certificate)
    assert issuer.IssuedCertificate.from_authority(root).issuer_fingerprint == (
        pki.fingerprint_sha256(root.certificate)
    )
