"""Make keys, sign certificates, load CAs and lay out the Secret, with ``cryptography`` only.

No Kubernetes I/O and no clock: the caller passes ``now`` and the decoded Secret data, and
gets values back. The flow for one issuance::

    generate_private_key(spec.private_key)     RSA is slow: the I/O layer runs this in a thread
        (or policies.reusable_key(…) with rotationPolicy Never)
    load_issuer(issuer Secret data, layout, now)  → CertificateAuthority (or IssuerError)
    issue(spec, key, ca_or_None, now)             → IssuedCertificate (None: self-signed root)
    secret_data(issued, spec.output_format)       → SecretData   (the Secret's data)
    secret_annotations(issued, spec, name=…, …)   → dict          (the Secret's annotations)

Issuer Secret layouts (SPEC §2.1, anchors/cert-rotation.md §1.8, §3.1, §3.2):

    tls     tls.crt = CA certificate + its chain, tls.key, ca.crt = trust roots
            (a CA MeshCertificate's own Secret, whatever its outputFormat, and any
            cert-manager CA Secret)
    istio   ca-cert.pem, ca-key.pem, root-cert.pem (roots), cert-chain.pem
            (ca-cert.pem, its intermediates, then the root)

Output formats (the ``data`` written for ``spec.outputFormat``):

    tls      tls.crt = leaf + intermediates (no self-signed root), tls.key = PKCS#8 PEM,
             ca.crt = the trust roots
    istio    the tls keys, plus ca-cert.pem (= the leaf, a CA), ca-key.pem (= tls.key),
             root-cert.pem (= ca.crt), cert-chain.pem (leaf, intermediates, root)
    linkerd  the tls keys; Linkerd's identity issuer with scheme kubernetes.io/tls reads
             tls.crt and tls.key and refuses a Secret without ca.crt (the trust anchors)

Every certificate is clamped so that it never outlives its issuer's chain (Istio's and
Linkerd's rule; cert-manager does not clamp).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

from dabba.certs import pki
from dabba.certs.model import (
    ANNOTATION_ALT_NAMES,
    ANNOTATION_CERTIFICATE_NAME,
    ANNOTATION_COMMON_NAME,
    ANNOTATION_FINGERPRINT,
    ANNOTATION_IP_SANS,
    ANNOTATION_ISSUER_FINGERPRINT,
    ANNOTATION_ISSUER_GROUP,
    ANNOTATION_ISSUER_KIND,
    ANNOTATION_ISSUER_NAME,
    ANNOTATION_ISSUER_NAMESPACE,
    ANNOTATION_NOT_AFTER,
    ANNOTATION_REVISION,
    ANNOTATION_SERIAL,
    ANNOTATION_URI_SANS,
    CA_CERT_KEY,
    DEFAULT_DURATION,
    DEFAULT_USAGES,
    ISTIO_CA_CERT_KEY,
    ISTIO_CA_KEY_KEY,
    ISTIO_CERT_CHAIN_KEY,
    ISTIO_ROOT_CERT_KEY,
    NEXT_CERT_KEY,
    NEXT_KEY_KEY,
    TLS_CERT_KEY,
    TLS_KEY_KEY,
    IPAddress,
    IssuerKind,
    IssuerSecretFormat,
    KeyAlgorithm,
    MeshCertificateSpec,
    OutputFormat,
    PrivateKeySpec,
    Usages,
    effective_usages,
    format_time,
)
from dabba.certs.pki import PrivateKey, fingerprint_sha256, issued_by, to_pem, verify_chain
from dabba.errors import DabbaError
from dabba.k8s.meta import GROUP

__all__ = [
    "CertificateAuthority",
    "CertificateTemplate",
    "IssuedCertificate",
    "IssuerError",
    "SecretData",
    "ca_secret_data",
    "generate_private_key",
    "issue",
    "load_issuer",
    "load_next",
    "secret_annotations",
    "secret_data",
    "sign",
    "verify_chain",
]

_RSA_PUBLIC_EXPONENT: Final = 65537
_CURVES: Final = {256: ec.SECP256R1, 384: ec.SECP384R1}


class IssuerError(DabbaError):
    """The issuer cannot sign: missing, malformed, not a CA, expired, or constrained.

    Transient from the operator's point of view (IssuerNotReady, backoff): the CA may be
    fixed or appear later. Messages never contain key material.
    """


# ---------------------------------------------------------------------------------------------
# Keys


def generate_private_key(spec: PrivateKeySpec) -> PrivateKey:
    """A new key of the algorithm and size in ``spec``.

    Plain and blocking on purpose: RSA generation takes 40 to 600 ms (anchors §5.3), so the
    I/O layer calls this through ``asyncio.to_thread``; ECDSA and Ed25519 take microseconds.
    """
    if spec.algorithm is KeyAlgorithm.ECDSA:
        return PrivateKey(ec.generate_private_key(_CURVES[spec.size]()))
    if spec.algorithm is KeyAlgorithm.RSA:
        return PrivateKey(rsa.generate_private_key(_RSA_PUBLIC_EXPONENT, spec.size))
    return PrivateKey(ed25519.Ed25519PrivateKey.generate())


def _signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | None:
    # Match the hash to the key's strength; Ed25519 hashes internally (None is required).
    if key.algorithm is KeyAlgorithm.ED25519:
        return None
    if key.algorithm is KeyAlgorithm.ECDSA and key.size == 384:  # noqa: PLR2004 - P-384
        return hashes.SHA384()
    return hashes.SHA256()


# ---------------------------------------------------------------------------------------------
# CAs and issued certificates


@functools.lru_cache(maxsize=128)
def _chain_expiry(
    path: tuple[x509.Certificate, ...], roots: tuple[x509.Certificate, ...]
) -> dt.datetime:
    # Cached: signature checks cost more than the rest of an issuance's CPU, and a thousand
    # leaves of one CA ask the same question (issuance benchmark, issue 8).
    limit = min(c.not_valid_after_utc for c in path)
    top = path[-1]
    if pki.self_signed(top):
        return limit
    signers = [r.not_valid_after_utc for r in roots if issued_by(top, r)]
    return min(limit, max(signers)) if signers else limit


@dataclasses.dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A CA able to sign: its certificate, key, the chain above it and the trust roots.

    Construction validates that the key belongs to the certificate and that the certificate
    is a CA allowed to sign certificates.
    """

    certificate: x509.Certificate
    key: PrivateKey
    #: Certificates between ``certificate`` and the root, nearest first; no self-signed root.
    chain: tuple[x509.Certificate, ...] = ()
    #: Trust anchors; left empty for a self-signed CA, it becomes (certificate,).
    roots: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        if not self.key.matches(self.certificate):
            raise IssuerError("the issuer's private key does not match its certificate")
        try:
            facts = pki.CertificateFacts.from_certificate(self.certificate)
        except pki.PemError as exc:
            raise IssuerError(f"issuer certificate: {exc}") from None
        if not facts.is_ca:
            raise IssuerError(f"issuer {facts.subject} is not a CA (basicConstraints)")
        if facts.key_usage is not None and "key_cert_sign" not in facts.key_usage:
            raise IssuerError(f"issuer {facts.subject} may not sign certificates (keyUsage)")
        if not self.roots:
            if not facts.self_signed:
                raise IssuerError(
                    f"no trust roots for issuer {facts.subject}: add ca.crt (or root-cert.pem)"
                )
            object.__setattr__(self, "roots", (self.certificate,))

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the CA certificate (``status.issuerFingerprint``)."""
        return fingerprint_sha256(self.certificate)

    @property
    def path_length(self) -> int | None:
        """The CA's pathLenConstraint (None: unconstrained)."""
        constraints = self.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        return constraints.value.path_length

    def expires_at(self) -> dt.datetime:
        """When the signing chain dies: the earliest notAfter of the CA, its chain and root.

        Roots only count if they sign the top of the chain; with several candidates (a
        rollover with two roots of one name) the one that lives longest counts.
        """
        return _chain_expiry((self.certificate, *self.chain), self.roots)

    @classmethod
    def from_issued(cls, issued: IssuedCertificate) -> CertificateAuthority:
        """Use a freshly issued CA certificate to sign (no Secret round trip)."""
        return cls(
            certificate=issued.certificate, key=issued.key, chain=issued.chain, roots=issued.roots
        )


@dataclasses.dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A signed certificate with its key, intermediates and trust roots."""

    certificate: x509.Certificate
    key: PrivateKey
    #: Intermediates after the leaf, nearest first, ending below any self-signed root.
    chain: tuple[x509.Certificate, ...]
    #: Trust roots to publish as ca.crt.
    roots: tuple[x509.Certificate, ...]
    #: Fingerprint of the CA certificate that signed it (its own, for a self-signed root).
    issuer_fingerprint: str

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate."""
        return fingerprint_sha256(self.certificate)

    @property
    def serial_number(self) -> str:
        """Lowercase hex serial."""
        return format(self.certificate.serial_number, "x")

    @property
    def not_before(self) -> dt.datetime:
        """notBefore (aware, UTC)."""
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> dt.datetime:
        """notAfter (aware, UTC)."""
        return self.certificate.not_valid_after_utc

    @classmethod
    def from_authority(cls, ca: CertificateAuthority) -> IssuedCertificate:
        """A CA loaded from a Secret, as the certificate it once was (to lay out a Secret).

        The issuer fingerprint is found by signature: the next certificate of the chain, or
        the root that signed it, or the CA itself when it is self-signed.
        """
        cert = ca.certificate
        signer = next(
            (c for c in (cert, *ca.chain, *ca.roots) if issued_by(cert, c)),
            cert,
        )
        return cls(
            certificate=cert,
            key=ca.key,
            chain=ca.chain,
            roots=ca.roots,
            issuer_fingerprint=fingerprint_sha256(signer),
        )

    def path_root(self) -> x509.Certificate | None:
        """The root that signs the top of the chain (the certificate itself for a root)."""
        top = (self.certificate, *self.chain)[-1]
        if pki.self_signed(top):
            return top
        return next((root for root in self.roots if issued_by(top, root)), None)


# ---------------------------------------------------------------------------------------------
# Signing


@dataclasses.dataclass(frozen=True, slots=True)
class CertificateTemplate:
    """What goes into one certificate, independent of key and issuer."""

    common_name: str | None = None
    uris: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[IPAddress, ...] = ()
    usages: Usages = dataclasses.field(
        default_factory=lambda: effective_usages(DEFAULT_USAGES, is_ca=False)
    )
    is_ca: bool = False
    duration: dt.timedelta = DEFAULT_DURATION
    #: CA only: pathLenConstraint; None derives it from the issuer (one less, or unlimited).
    path_length: int | None = None

    @classmethod
    def from_spec(cls, spec: MeshCertificateSpec) -> CertificateTemplate:
        """The template a MeshCertificate spec asks for (the checks expect the same values)."""
        return cls(
            common_name=spec.effective_common_name,
            uris=spec.uris,
            dns_names=spec.all_dns_names,
            ip_addresses=spec.ip_addresses,
            usages=spec.expected_usages,
            is_ca=spec.is_ca,
            duration=spec.duration,
        )


def _key_usage(fields: frozenset[str]) -> x509.KeyUsage:
    def has(name: str) -> bool:
        return name in fields

    return x509.KeyUsage(
        digital_signature=has("digital_signature"),
        content_commitment=has("content_commitment"),
        key_encipherment=has("key_encipherment"),
        data_encipherment=has("data_encipherment"),
        key_agreement=has("key_agreement"),
        key_cert_sign=has("key_cert_sign"),
        crl_sign=has("crl_sign"),
        encipher_only=has("encipher_only"),
        decipher_only=has("decipher_only"),
    )


def _path_length(template: CertificateTemplate, issuer: CertificateAuthority | None) -> int | None:
    if not template.is_ca:
        return None
    if issuer is None:
        return template.path_length
    parent = issuer.path_length
    if parent is None:
        return template.path_length
    if parent == 0:
        raise IssuerError("the issuer has path length 0 and cannot sign another CA")
    if template.path_length is None:
        return parent - 1
    if template.path_length > parent - 1:
        raise IssuerError(
            f"path length {template.path_length} exceeds what the issuer allows ({parent - 1})"
        )
    return template.path_length


def sign(
    template: CertificateTemplate,
    key: PrivateKey,
    issuer: CertificateAuthority | None,
    now: dt.datetime,
    *,
    serial_number: int | None = None,
) -> IssuedCertificate:
    """Sign ``key``'s public half with ``issuer`` (or with ``key`` itself when None).

    notBefore is ``now`` (whole seconds, no backdating, so it doubles as the issuance time);
    notAfter is ``now + duration`` clamped to when the issuer's chain expires.

    Args:
        template: names, usages, CA flag and duration.
        key: the subject's key.
        issuer: the signing CA; None makes a self-signed certificate.
        now: the issuance time (aware).
        serial_number: fixed serial for tests; random 159-bit otherwise.

    Raises:
        IssuerError: the issuer is not valid at ``now``, expires before the certificate could
            start, or its path length forbids a CA.
        ValueError: the template has no identity at all (no subject, no SANs).
    """
    not_before = now.astimezone(dt.UTC).replace(microsecond=0)
    not_after = not_before + template.duration
    if issuer is not None:
        issuer_start = issuer.certificate.not_valid_before_utc
        if not_before < issuer_start:
            raise IssuerError(f"the issuer is not valid before {format_time(issuer_start)}")
        not_after = min(not_after, issuer.expires_at())
        if not_after <= not_before:
            raise IssuerError(f"the issuer chain expired at {format_time(not_after)}")

    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, template.common_name)]
        if template.common_name
        else []
    )
    general_names: list[x509.GeneralName] = [
        *(x509.UniformResourceIdentifier(uri) for uri in template.uris),
        *(x509.DNSName(name) for name in template.dns_names),
        *(x509.IPAddress(ip) for ip in template.ip_addresses),
    ]
    if not template.common_name and not general_names:
        raise ValueError("a certificate needs a common name or at least one SAN")

    signer = key if issuer is None else issuer.key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if issuer is None else issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number() if serial_number is None else serial_number)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.BasicConstraints(ca=template.is_ca, path_length=_path_length(template, issuer)),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_id(signer, issuer), critical=False)
    )
    if template.usages.key_usage:
        builder = builder.add_extension(_key_usage(template.usages.key_usage), critical=True)
    if template.usages.extended:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(
                [ObjectIdentifier(oid) for oid in sorted(template.usages.extended)]
            ),
            critical=False,
        )
    if general_names:
        # RFC 5280 §4.2.1.6: with an empty subject the SAN extension must be critical
        # (SPIFFE-only workload certificates have no CN).
        builder = builder.add_extension(
            x509.SubjectAlternativeName(general_names), critical=not template.common_name
        )
    certificate = builder.sign(signer.crypto_key, _signature_hash(signer))

    if issuer is None:
        return IssuedCertificate(
            certificate=certificate,
            key=key,
            chain=(),
            roots=(certificate,),
            issuer_fingerprint=fingerprint_sha256(certificate),
        )
    above = (issuer.certificate, *issuer.chain)
    return IssuedCertificate(
        certificate=certificate,
        key=key,
        # tls.crt ends at the highest certificate that is not a self-signed root (cert-manager).
        chain=tuple(c for c in above if not pki.self_signed(c)),
        roots=issuer.roots,
        issuer_fingerprint=issuer.fingerprint,
    )


def _authority_key_id(
    signer: PrivateKey, issuer: CertificateAuthority | None
) -> x509.AuthorityKeyIdentifier:
    # Reuse the issuer's own SKI when it has one, so AKI matches it byte for byte even if
    # the issuer was made by a tool that computes key identifiers differently.
    if issuer is not None:
        try:
            ski = issuer.certificate.extensions.get_extension_for_class(
                x509.SubjectKeyIdentifier
            ).value
        except x509.ExtensionNotFound:
            pass
        else:
            return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key())


def issue(
    spec: MeshCertificateSpec,
    key: PrivateKey,
    issuer: CertificateAuthority | None,
    now: dt.datetime,
) -> IssuedCertificate:
    """Sign the certificate ``spec`` describes.

    Args:
        spec: the MeshCertificate spec.
        key: the subject key (new, or reused under rotationPolicy Never).
        issuer: the CA named by ``spec.issuerRef``; must be None exactly for a self-signed
            root (no issuerRef).
        now: the issuance time.

    Raises:
        IssuerError: see :func:`sign`; also when ``issuer`` does not fit the spec.
    """
    if spec.is_self_signed != (issuer is None):
        raise IssuerError(
            "a self-signed root takes no issuer"
            if spec.is_self_signed
            else "an issuerRef needs a loaded CertificateAuthority"
        )
    if key.algorithm is not spec.private_key.algorithm or key.size != spec.private_key.size:
        raise ValueError(f"key is {key.describe()}, spec asks for {spec.private_key.describe()}")
    return sign(CertificateTemplate.from_spec(spec), key, issuer, now)


# ---------------------------------------------------------------------------------------------
# Loading an issuer from its Secret


def _required(data: Mapping[str, bytes], key: str) -> bytes:
    value = data.get(key)
    if not isinstance(value, bytes) or not value.strip():
        raise IssuerError(f"issuer Secret has no {key}")
    return value


def _certificates(data: Mapping[str, bytes], key: str) -> tuple[x509.Certificate, ...]:
    try:
        return pki.load_certificates(_required(data, key))
    except pki.PemError as exc:
        raise IssuerError(f"issuer Secret {key}: {exc}") from None


def _optional_certificates(data: Mapping[str, bytes], key: str) -> tuple[x509.Certificate, ...]:
    value = data.get(key)
    if not isinstance(value, bytes) or not value.strip():
        return ()
    return _certificates(data, key)


def load_issuer(
    data: Mapping[str, bytes], layout: IssuerSecretFormat, now: dt.datetime
) -> CertificateAuthority:
    """Load a signing CA from a Secret's decoded ``data``.

    Args:
        data: Secret data, base64-decoded.
        layout: ``tls`` (a CA MeshCertificate's Secret or any tls CA Secret) or ``istio``
            (plug-in CA ``cacerts``).
        now: the CA must be valid now, and its chain must verify against its own roots.

    Raises:
        IssuerError: for anything unusable, with a message safe to show in status.
    """
    if layout is IssuerSecretFormat.ISTIO:
        ca_certificate = _certificates(data, ISTIO_CA_CERT_KEY)[0]
        key_key = ISTIO_CA_KEY_KEY
        roots = _certificates(data, ISTIO_ROOT_CERT_KEY)
        ca_fingerprint = fingerprint_sha256(ca_certificate)
        chain = tuple(
            c
            for c in _optional_certificates(data, ISTIO_CERT_CHAIN_KEY)
            if fingerprint_sha256(c) != ca_fingerprint and not pki.self_signed(c)
        )
    else:
        ca_certificate, *rest = _certificates(data, TLS_CERT_KEY)
        key_key = TLS_KEY_KEY
        roots = _optional_certificates(data, CA_CERT_KEY)
        chain = tuple(c for c in rest if not pki.self_signed(c))
        if not roots:
            roots = tuple(c for c in (ca_certificate, *rest) if pki.self_signed(c))
    try:
        key = pki.load_private_key(_required(data, key_key))
    except pki.PemError as exc:
        raise IssuerError(f"issuer Secret {key_key}: {exc}") from None
    authority = CertificateAuthority(
        certificate=ca_certificate, key=key, chain=chain, roots=tuple(roots)
    )
    if problem := verify_chain(ca_certificate, chain, authority.roots, now):
        raise IssuerError(f"issuer does not verify against its own roots: {problem}")
    return authority


def load_next(
    data: Mapping[str, bytes], roots: Sequence[x509.Certificate], now: dt.datetime
) -> CertificateAuthority | None:
    """The next CA a rollover keeps in ``next.crt``/``next.key``, or None.

    None also for anything unusable (unparseable, key mismatch, not a CA, not valid now, no
    path to ``roots``): a broken next CA is discarded and prepared again, never used.
    """
    raw_cert, raw_key = data.get(NEXT_CERT_KEY), data.get(NEXT_KEY_KEY)
    if not raw_cert or not raw_key:
        return None
    try:
        certificate, *rest = pki.load_certificates(raw_cert)
        key = pki.load_private_key(raw_key)
        chain = tuple(c for c in rest if not pki.self_signed(c))
        authority = CertificateAuthority(
            certificate=certificate, key=key, chain=chain, roots=tuple(roots)
        )
    except (pki.PemError, IssuerError):
        return None
    anchors = (*roots, *((certificate,) if pki.self_signed(certificate) else ()))
    if verify_chain(certificate, chain, anchors, now) is not None:
        return None
    return authority


# ---------------------------------------------------------------------------------------------
# The Secret


class SecretData(Mapping[str, bytes]):
    """The Secret's ``data`` (raw bytes per key) whose repr lists keys, never values.

    It holds ``tls.key``; printing or logging it by accident must not leak the key.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, bytes]) -> None:
        """Copy ``data``."""
        self._data = dict(data)

    def __getitem__(self, key: str) -> bytes:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"<SecretData keys={sorted(self._data)}>"

    __str__ = __repr__

    def to_base64(self) -> dict[str, str]:
        """The form the Kubernetes API wants in ``Secret.data``."""
        return {k: base64.b64encode(v).decode("ascii") for k, v in self._data.items()}


def secret_data(issued: IssuedCertificate, output_format: OutputFormat) -> SecretData:
    """The Secret ``data`` for ``output_format`` (see the module docstring for the layouts).

    Raises:
        ValueError: istio or linkerd output for a certificate that is not a CA.
    """
    tls_crt = to_pem((issued.certificate, *issued.chain))
    tls_key = issued.key.to_pkcs8_pem()
    ca_crt = to_pem(issued.roots)
    data = {TLS_CERT_KEY: tls_crt, TLS_KEY_KEY: tls_key, CA_CERT_KEY: ca_crt}
    if output_format is OutputFormat.TLS:
        return SecretData(data)
    if not pki.CertificateFacts.from_certificate(issued.certificate).is_ca:
        raise ValueError(f"outputFormat {output_format} needs a CA certificate")
    if output_format is OutputFormat.ISTIO:
        root = issued.path_root()
        path: Sequence[x509.Certificate] = (issued.certificate, *issued.chain)
        if root is not None and fingerprint_sha256(root) != fingerprint_sha256(path[-1]):
            path = (*path, root)
        data |= {
            ISTIO_CA_CERT_KEY: to_pem((issued.certificate,)),
            ISTIO_CA_KEY_KEY: tls_key,
            ISTIO_ROOT_CERT_KEY: ca_crt,
            ISTIO_CERT_CHAIN_KEY: to_pem(path),
        }
    return SecretData(data)


def ca_secret_data(
    signer: IssuedCertificate,
    roots: Sequence[x509.Certificate],
    output_format: OutputFormat,
    next_ca: IssuedCertificate | None = None,
) -> SecretData:
    """A CA's Secret: the signer in its output format, ``roots`` (the trusted set) as ca.crt
    (and root-cert.pem), and the next CA of a rollover in next.crt/next.key.

    Raises:
        ValueError: see :func:`secret_data`.
    """
    data = dict(secret_data(dataclasses.replace(signer, roots=tuple(roots)), output_format))
    if next_ca is not None:
        data[NEXT_CERT_KEY] = to_pem((next_ca.certificate, *next_ca.chain))
        data[NEXT_KEY_KEY] = next_ca.key.to_pkcs8_pem()
    return SecretData(data)


def secret_annotations(
    issued: IssuedCertificate,
    spec: MeshCertificateSpec,
    *,
    certificate_name: str,
    revision: int,
) -> dict[str, str]:
    """Provenance annotations: cert-manager's names where one exists, dabba.io/* otherwise.

    Values describe the certificate actually written (not the spec), so tools reading
    them see what is in the Secret.
    """
    facts = pki.CertificateFacts.from_certificate(issued.certificate)
    annotations = {
        ANNOTATION_CERTIFICATE_NAME: certificate_name,
        ANNOTATION_COMMON_NAME: facts.common_name or "",
        ANNOTATION_ALT_NAMES: ",".join(facts.dns_names),
        ANNOTATION_IP_SANS: ",".join(str(ip) for ip in facts.ip_addresses),
        ANNOTATION_URI_SANS: ",".join(facts.uris),
        ANNOTATION_SERIAL: facts.serial_number,
        ANNOTATION_NOT_AFTER: format_time(facts.not_after),
        ANNOTATION_REVISION: str(revision),
        ANNOTATION_FINGERPRINT: facts.fingerprint_sha256,
        ANNOTATION_ISSUER_FINGERPRINT: issued.issuer_fingerprint,
    }
    ref = spec.issuer_ref
    if ref is not None:
        annotations |= {
            ANNOTATION_ISSUER_NAME: ref.name,
            ANNOTATION_ISSUER_KIND: str(ref.kind),
            # cert-manager writes the API group; a Secret is in the core group ("").
            ANNOTATION_ISSUER_GROUP: GROUP if ref.kind is IssuerKind.MESH_CERTIFICATE else "",
            ANNOTATION_ISSUER_NAMESPACE: ref.namespace,
        }
    return annotations
