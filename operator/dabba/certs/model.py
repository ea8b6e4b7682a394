"""The MeshCertificate API as Python values. Pure: no I/O, no cryptography, no framework.

A MeshCertificate (SPEC §2) asks for one certificate: a workload identity (a SPIFFE URI built
from a ServiceAccount, the DNS names of a Service, IPs) or a mesh CA (``isCA``), signed by a
CA MeshCertificate, by an existing CA Secret, or by itself (a root). dabba keeps the key and
certificate in a Secret and re-issues it before expiry or whenever it drifts from the spec.

This module turns the API's dicts into frozen values and back::

    spec dict ──MeshCertificateSpec.from_k8s(spec, namespace=…)──▶ MeshCertificateSpec
                 (runtime defaults applied; anything CEL should have refused → SpecError)
    status dict ◀──to_k8s── MeshCertificateStatus ──from_k8s──▶ (lenient: junk → None)

and holds the vocabulary every other module shares: condition types, reasons (one line of
doc each, as cert-manager's ``constants.go``), the duration grammar, SPIFFE ID derivation and
validation, the four DNS forms of a Service, the usage names, and the Secret keys and
annotations of each output format.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, TypeVar

from dabba.errors import SpecError
from dabba.k8s.meta import GROUP

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_E = TypeVar("_E", bound=StrEnum)

# ---------------------------------------------------------------------------------------------
# Enumerations of the spec


class KeyAlgorithm(StrEnum):
    """Private key algorithm (``spec.privateKey.algorithm``)."""

    #: Elliptic curve P-256 or P-384: cheap to generate, the mesh default (Linkerd, SPIRE).
    ECDSA = "ECDSA"
    #: RSA 2048/3072/4096: for peers that cannot do ECDSA; generation is slow (use a thread).
    RSA = "RSA"
    #: Ed25519: fixed size; not accepted by every TLS stack or mesh CA.
    ED25519 = "Ed25519"


class RotationPolicy(StrEnum):
    """What happens to the private key on re-issue (``spec.privateKey.rotationPolicy``)."""

    #: A new key on every issuance (cert-manager's default since v1.18).
    ALWAYS = "Always"
    #: Keep the Secret's key while it parses and matches algorithm and size.
    NEVER = "Never"


class OutputFormat(StrEnum):
    """Layout of the Secret (``spec.outputFormat``)."""

    #: kubernetes.io/tls: tls.crt (leaf + chain), tls.key (PKCS#8), ca.crt (trust roots).
    TLS = "tls"
    #: istiod plug-in CA (``cacerts``): ca-cert.pem, ca-key.pem, root-cert.pem,
    #: cert-chain.pem, plus the tls.* keys.
    ISTIO = "istio"
    #: Linkerd identity issuer with scheme kubernetes.io/tls: tls.crt, tls.key, ca.crt.
    LINKERD = "linkerd"


class IssuerKind(StrEnum):
    """What ``spec.issuerRef`` points at."""

    #: A CA MeshCertificate (``isCA: true``); its Secret is read in the tls layout.
    MESH_CERTIFICATE = "MeshCertificate"
    #: An existing CA Secret in the layout named by ``issuerRef.format``.
    SECRET = "Secret"  # noqa: S105 - a Kubernetes kind, not a password


class IssuerSecretFormat(StrEnum):
    """Layout of a Secret that holds a signing CA."""

    #: tls.crt (CA certificate first, then its chain), tls.key, ca.crt (roots).
    TLS = "tls"
    #: Istio plug-in CA: ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem.
    ISTIO = "istio"


class ConditionType(StrEnum):
    """Status condition types of a MeshCertificate (SPEC §2.4)."""

    #: The Secret holds a certificate that matches the spec and has not expired.
    READY = "Ready"
    #: An issuance is needed or running; the reason says why (the trigger chain).
    ISSUING = "Issuing"
    #: The certificate in the Secret is past its notAfter.
    EXPIRED = "Expired"
    #: The renewal time passed some time ago and the certificate has still not been renewed.
    RENEWAL_OVERDUE = "RenewalOverdue"
    #: The issuer cannot sign (missing, unparseable, not a CA, or expired).
    ISSUER_NOT_READY = "IssuerNotReady"
    #: CA only: a rollover (SPEC §2.3) is running; the reason is its phase.
    ROLLING_OVER = "RollingOver"
    #: CA only: a renew request arrived while a rollover was running and was not acted on.
    ROLLOVER_REFUSED = "RolloverRefused"
    #: CA with spec.trustBundle only: every selected namespace holds the trust-bundle ConfigMap.
    TRUST_BUNDLE_READY = "TrustBundleReady"


class ConditionStatus(StrEnum):
    """The three values of a Kubernetes condition status."""

    #: The condition holds.
    TRUE = "True"
    #: The condition does not hold.
    FALSE = "False"
    #: dabba cannot tell (e.g. no certificate to look at).
    UNKNOWN = "Unknown"


class Reason(StrEnum):
    """CamelCase reasons for conditions, Events and ``lastFailureReason``.

    The first group names the checks of the trigger and readiness chains
    (``policies.py``), in chain order.
    """

    #: The Secret named by spec.secretName does not exist.
    DOES_NOT_EXIST = "DoesNotExist"
    #: A key the output format needs (e.g. tls.crt, tls.key) is absent or empty.
    MISSING_DATA = "MissingData"
    #: Two copies of the same material in the Secret disagree (istio's ca-cert.pem vs tls.crt).
    INCONSISTENT_DATA = "InconsistentData"
    #: tls.crt does not parse as PEM X.509 certificates.
    INVALID_CERTIFICATE = "InvalidCertificate"
    #: tls.key does not parse as an unencrypted ECDSA, RSA or Ed25519 private key.
    INVALID_PRIVATE_KEY = "InvalidPrivateKey"
    #: The private key does not belong to the certificate's public key.
    INVALID_KEY_PAIR = "InvalidKeyPair"
    #: SPIFFE URI, DNS names, IP addresses, common name or isCA differ from the spec.
    IDENTITY_CHANGED = "IdentityChanged"
    #: Key usages or extended key usages differ from the spec.
    USAGES_CHANGED = "UsagesChanged"
    #: The key's algorithm or size differs from spec.privateKey.
    KEY_SPEC_CHANGED = "KeySpecChanged"
    #: The certificate's notBefore is further in the future than clock skew explains.
    NOT_YET_VALID = "NotYetValid"
    #: The certificate was not signed by the current issuer, or the issuer was re-issued.
    ISSUER_CHANGED = "IssuerChanged"
    #: The certificate lives longer than spec.duration now allows (duration was shortened).
    DURATION_CHANGED = "DurationChanged"
    #: The certificate is past its notAfter.
    EXPIRED = "Expired"
    #: The renewal time (notAfter - renewBefore - jitter) has been reached.
    RENEWING = "Renewing"
    #: Someone asked for a re-issue (``dabba cert renew``) after the last issuance.
    MANUAL_RENEWAL = "ManualRenewal"

    #: Ready/Issuing: the certificate is valid and matches the spec; nothing to do.
    UP_TO_DATE = "UpToDate"
    #: Expired=False: the certificate is inside its validity window.
    NOT_EXPIRED = "NotExpired"
    #: RenewalOverdue=False: the renewal time has not passed (or only just).
    ON_SCHEDULE = "OnSchedule"
    #: RenewalOverdue=True: the renewal time passed and no new certificate arrived.
    RENEWAL_OVERDUE = "RenewalOverdue"
    #: IssuerNotReady=False: the issuer CA is loaded, valid and able to sign.
    ISSUER_READY = "IssuerReady"
    #: IssuerNotReady=False: a self-signed root needs no issuer.
    SELF_SIGNED = "SelfSigned"
    #: IssuerNotReady=True: the issuer is missing or its Secret cannot be used.
    ISSUER_UNAVAILABLE = "IssuerUnavailable"
    #: IssuerNotReady=True: the issuer's certificate is not a CA (basicConstraints).
    ISSUER_NOT_CA = "IssuerNotCA"
    #: IssuerNotReady=True: the issuer's certificate is expired or not yet valid.
    ISSUER_EXPIRED = "IssuerExpired"

    #: Event: a new certificate was written to the Secret.
    ISSUED = "Issued"
    #: lastFailureReason/Event: signing or writing the Secret failed.
    ISSUANCE_FAILED = "IssuanceFailed"
    #: Issuing: a failed issuance is waiting out its backoff before the next attempt.
    BACKING_OFF = "BackingOff"
    #: Issuing: the issuer's issuance budget is spent; the issuance waits for a token.
    BUDGET_EXHAUSTED = "BudgetExhausted"
    #: Ready=False: the spec is valid for the schema but not for the operator.
    INVALID_SPEC = "InvalidSpec"

    # CA rollover (SPEC §2.3, ``rollover.py``); the phase names double as reasons.
    #: RollingOver=False: no rollover is running.
    IDLE = "Idle"
    #: Event: a rollover started (the next CA was generated); the message says why.
    ROLLOVER_STARTED = "RolloverStarted"
    #: Event: the rollover finished; only the new CA's roots (and those still needed) remain.
    ROLLOVER_COMPLETED = "RolloverCompleted"
    #: RolloverRefused=True / Warning Event: a renew request came while a rollover was running.
    ROLLOVER_IN_PROGRESS = "RolloverInProgress"
    #: RolloverRefused=False: the rollover that refused a request is over.
    ROLLOVER_FINISHED = "RolloverFinished"
    #: Warning Event: the current CA became unusable mid-rollover; the next one signs at once.
    ROLLOVER_FORCED = "RolloverForced"
    #: Warning Event: next.crt/next.key were found where no rollover can use them; removed.
    NEXT_CA_DISCARDED = "NextCADiscarded"
    #: Event: a root left the trusted set (nothing live chains to it any more).
    ROOT_RETIRED = "RootRetired"
    #: Event: a leaf's ca.crt was rewritten to its issuer's trusted set (no re-issue).
    TRUST_BUNDLE_UPDATED = "TrustBundleUpdated"
    #: TrustBundleReady=True: the ConfigMap is current in every selected namespace.
    PUBLISHED = "Published"
    #: TrustBundleReady=False / Warning Event: some selected namespace could not be written.
    PUBLISH_FAILED = "PublishFailed"


# ---------------------------------------------------------------------------------------------
# Secret keys and annotations

#: Secret type of every Secret dabba writes.
SECRET_TYPE_TLS: Final = "kubernetes.io/tls"  # noqa: S105 - a Secret type, not a password
#: Leaf certificate followed by its chain (not including a self-signed root).
TLS_CERT_KEY: Final = "tls.crt"
#: PKCS#8 PEM private key.
TLS_KEY_KEY: Final = "tls.key"
#: Trust roots (PEM, one or more).
CA_CERT_KEY: Final = "ca.crt"
#: Istio plug-in CA: the signing CA certificate.
ISTIO_CA_CERT_KEY: Final = "ca-cert.pem"
#: Istio plug-in CA: the signing CA's private key.
ISTIO_CA_KEY_KEY: Final = "ca-key.pem"
#: Istio plug-in CA: the trusted roots (may hold several during a rollover).
ISTIO_ROOT_CERT_KEY: Final = "root-cert.pem"
#: Istio plug-in CA: ca-cert.pem, its intermediates, then the root.
ISTIO_CERT_CHAIN_KEY: Final = "cert-chain.pem"

#: Keys a Secret must hold for each output format; a missing one triggers a re-issue.
REQUIRED_SECRET_KEYS: Final[Mapping[OutputFormat, tuple[str, ...]]] = MappingProxyType(
    {
        OutputFormat.TLS: (TLS_CERT_KEY, TLS_KEY_KEY),
        OutputFormat.ISTIO: (
            TLS_CERT_KEY,
            TLS_KEY_KEY,
            ISTIO_CA_CERT_KEY,
            ISTIO_CA_KEY_KEY,
            ISTIO_ROOT_CERT_KEY,
            ISTIO_CERT_CHAIN_KEY,
        ),
        # why: Linkerd's identity controller refuses a kubernetes.io/tls issuer Secret without
        # ca.crt (linkerd2 issuercerts.FetchExternalIssuerData).
        OutputFormat.LINKERD: (TLS_CERT_KEY, TLS_KEY_KEY, CA_CERT_KEY),
    }
)

# Annotation names cert-manager writes on its Secrets (cert-manager pkg/apis/certmanager/v1/
# types.go). Reusing them keeps Reloader, kubectl plugins and dashboards working.
#: Name of the MeshCertificate that owns the Secret.
ANNOTATION_CERTIFICATE_NAME: Final = "cert-manager.io/certificate-name"
#: issuerRef.name (absent for a self-signed root).
ANNOTATION_ISSUER_NAME: Final = "cert-manager.io/issuer-name"
#: issuerRef.kind (MeshCertificate or Secret; absent for a self-signed root).
ANNOTATION_ISSUER_KIND: Final = "cert-manager.io/issuer-kind"
#: API group of the issuer kind: dabba.io for MeshCertificate, "" (core) for Secret.
ANNOTATION_ISSUER_GROUP: Final = "cert-manager.io/issuer-group"
#: Subject common name ("" when none).
ANNOTATION_COMMON_NAME: Final = "cert-manager.io/common-name"
#: DNS SANs, comma-separated.
ANNOTATION_ALT_NAMES: Final = "cert-manager.io/alt-names"
#: IP SANs, comma-separated.
ANNOTATION_IP_SANS: Final = "cert-manager.io/ip-sans"
#: URI SANs (the SPIFFE ID), comma-separated.
ANNOTATION_URI_SANS: Final = "cert-manager.io/uri-sans"

# dabba's own provenance annotations (no cert-manager equivalent).
#: Serial number of the certificate, lowercase hex.
ANNOTATION_SERIAL: Final = f"{GROUP}/serial"
#: notAfter, RFC 3339 UTC.
ANNOTATION_NOT_AFTER: Final = f"{GROUP}/not-after"
#: Issuance counter of the MeshCertificate that wrote this certificate.
ANNOTATION_REVISION: Final = f"{GROUP}/revision"
#: SHA-256 fingerprint (hex) of the CA certificate that signed this one.
ANNOTATION_ISSUER_FINGERPRINT: Final = f"{GROUP}/issuer-fingerprint"
#: SHA-256 fingerprint (hex) of this certificate; restartOnRotation stamps it on pod templates.
ANNOTATION_FINGERPRINT: Final = f"{GROUP}/fingerprint"
#: Namespace of the issuer (cert-manager issuers are same-namespace; ours need not be).
ANNOTATION_ISSUER_NAMESPACE: Final = f"{GROUP}/issuer-namespace"
#: On the MeshCertificate: RFC 3339 time of a renew request (``dabba cert renew``).
ANNOTATION_RENEW_REQUESTED_AT: Final = f"{GROUP}/renew-requested-at"
#: On a CA MeshCertificate: how long consumers need to pick up a changed Secret or ConfigMap
#: (kubelet volume sync plus the application's reload), in the duration grammar. A rollover
#: waits this long after every bundle copy holds a new root before the new CA signs, and
#: after the last certificate of an old root is gone before the root leaves the bundle.
ANNOTATION_PROPAGATION_DELAY: Final = f"{GROUP}/trust-propagation-delay"

# A CA's Secret during a rollover (SPEC §2.3): the next CA waits beside the signing one, in the
# same Secret, so adding, promoting and discarding it are single atomic writes.
#: The next CA certificate (and its chain), once generated and until it becomes the signer.
NEXT_CERT_KEY: Final = "next.crt"
#: The next CA's PKCS#8 private key (same protection as tls.key: it is in the same Secret).
NEXT_KEY_KEY: Final = "next.key"

# Trust-bundle ConfigMaps (spec.trustBundle).
#: Label on every trust-bundle ConfigMap dabba writes (value "true").
BUNDLE_LABEL: Final = f"{GROUP}/trust-bundle"
#: Annotation naming the CA MeshCertificate ("namespace/name") that owns a bundle ConfigMap;
#: dabba never overwrites or deletes a ConfigMap without it.
ANNOTATION_BUNDLE_SOURCE: Final = f"{GROUP}/trust-bundle-source"

# ---------------------------------------------------------------------------------------------
# Keys

#: Key sizes the API accepts per algorithm; the first is the default (Ed25519 has no size: 0).
KEY_SIZES: Final[Mapping[KeyAlgorithm, tuple[int, ...]]] = MappingProxyType(
    {
        KeyAlgorithm.ECDSA: (256, 384),
        KeyAlgorithm.RSA: (2048, 3072, 4096),
        KeyAlgorithm.ED25519: (0,),
    }
)


@dataclasses.dataclass(frozen=True, slots=True)
class PrivateKeySpec:
    """``spec.privateKey`` with runtime defaults (ECDSA 256, rotation Always)."""

    algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA
    size: int = 256
    rotation_policy: RotationPolicy = RotationPolicy.ALWAYS

    def __post_init__(self) -> None:
        if self.size not in KEY_SIZES[self.algorithm]:
            allowed = ", ".join(str(s) for s in KEY_SIZES[self.algorithm])
            raise SpecError(
                f"privateKey: {self.algorithm} does not support size {self.size} "
                f"(allowed: {allowed})"
            )

    @classmethod
    def from_k8s(cls, raw: Mapping[str, Any] | None) -> PrivateKeySpec:
        """Read ``spec.privateKey``; a missing size takes the algorithm's default.

        Raises:
            SpecError: unknown algorithm or rotation policy, or a size the algorithm lacks.
        """
        raw = raw or {}
        algorithm = _enum(KeyAlgorithm, raw.get("algorithm"), KeyAlgorithm.ECDSA, "algorithm")
        size = raw.get("size")
        if size is None:
            size = KEY_SIZES[algorithm][0]
        if not isinstance(size, int) or isinstance(size, bool):
            raise SpecError(f"privateKey.size must be an integer, not {size!r}")
        policy = _enum(
            RotationPolicy, raw.get("rotationPolicy"), RotationPolicy.ALWAYS, "rotationPolicy"
        )
        return cls(algorithm=algorithm, size=size, rotation_policy=policy)

    def describe(self) -> str:
        """Short human form, e.g. ``ECDSA-256`` or ``Ed25519``."""
        return describe_key(self.algorithm, self.size)


def describe_key(algorithm: KeyAlgorithm, size: int) -> str:
    """``ECDSA-256``, ``RSA-2048`` or ``Ed25519``: one spelling for specs and actual keys."""
    return str(algorithm) if algorithm is KeyAlgorithm.ED25519 else f"{algorithm}-{size}"


# ---------------------------------------------------------------------------------------------
# Usages (cert-manager's names, pkg/apis/certmanager/v1/types.go and pkg/util/pki)

#: Usage name → field of the X.509 KeyUsage extension (``cryptography.x509.KeyUsage``).
KEY_USAGE_FIELDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "signing": "digital_signature",
        "digital signature": "digital_signature",
        "content commitment": "content_commitment",
        "key encipherment": "key_encipherment",
        "key agreement": "key_agreement",
        "data encipherment": "data_encipherment",
        "cert sign": "key_cert_sign",
        "crl sign": "crl_sign",
        "encipher only": "encipher_only",
        "decipher only": "decipher_only",
    }
)

#: Usage name → dotted OID of an extended key usage.
EXTENDED_KEY_USAGE_OIDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "any": "2.5.29.37.0",
        "server auth": "1.3.6.1.5.5.7.3.1",
        "client auth": "1.3.6.1.5.5.7.3.2",
        "code signing": "1.3.6.1.5.5.7.3.3",
        "email protection": "1.3.6.1.5.5.7.3.4",
        "s/mime": "1.3.6.1.5.5.7.3.4",
        "ipsec end system": "1.3.6.1.5.5.7.3.5",
        "ipsec tunnel": "1.3.6.1.5.5.7.3.6",
        "ipsec user": "1.3.6.1.5.5.7.3.7",
        "timestamping": "1.3.6.1.5.5.7.3.8",
        "ocsp signing": "1.3.6.1.5.5.7.3.9",
        "microsoft sgc": "1.3.6.1.4.1.311.10.3.3",
        "netscape sgc": "2.16.840.1.113730.4.1",
    }
)

#: Every usage name the API accepts.
USAGE_NAMES: Final = frozenset(KEY_USAGE_FIELDS) | frozenset(EXTENDED_KEY_USAGE_OIDS)
#: ``spec.usages`` when omitted.
DEFAULT_USAGES: Final = ("digital signature", "key encipherment", "server auth", "client auth")


@dataclasses.dataclass(frozen=True, slots=True)
class Usages:
    """What a certificate's KeyUsage and ExtendedKeyUsage extensions must hold."""

    #: Field names of ``cryptography.x509.KeyUsage`` that are set.
    key_usage: frozenset[str]
    #: Dotted OIDs of the extended key usages (empty: no EKU extension).
    extended: frozenset[str]


def effective_usages(names: Iterable[str], *, is_ca: bool) -> Usages:
    """The extensions a spec's usage names produce; the issuer and the checks share this.

    Args:
        names: usage names from ``spec.usages`` (cert-manager's spelling).
        is_ca: CAs always get ``cert sign`` and ``crl sign`` (the CRD documents this).

    Raises:
        SpecError: an unknown usage name.
    """
    key_usage: set[str] = set()
    extended: set[str] = set()
    for name in names:
        if name in KEY_USAGE_FIELDS:
            key_usage.add(KEY_USAGE_FIELDS[name])
        elif name in EXTENDED_KEY_USAGE_OIDS:
            extended.add(EXTENDED_KEY_USAGE_OIDS[name])
        else:
            raise SpecError(f"usages: unknown usage {name!r}")
    if is_ca:
        key_usage |= {"key_cert_sign", "crl_sign"}
    # why: RFC 5280 leaves encipherOnly/decipherOnly undefined without keyAgreement, and
    # cryptography refuses to build such a KeyUsage; asking for either implies key agreement.
    if key_usage & {"encipher_only", "decipher_only"}:
        key_usage.add("key_agreement")
    return Usages(key_usage=frozenset(key_usage), extended=frozenset(extended))


# ---------------------------------------------------------------------------------------------
# Durations and timestamps

#: The shortest lifetime the API accepts (short TTLs are a first-class mode).
MIN_DURATION: Final = dt.timedelta(seconds=60)
#: ``spec.duration`` when omitted.
DEFAULT_DURATION: Final = dt.timedelta(hours=24)

# why: the same grammar as the CRD's CEL rule (integers, units h m s ms, largest first), a
# subset of Go's time.ParseDuration; "1.5h" and "90d" are refused rather than guessed.
_DURATION_RE: Final = re.compile(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?(?:([0-9]+)ms)?")


def parse_duration(text: str) -> dt.timedelta:
    """Parse ``24h``, ``90m``, ``1h30m``, ``60s`` or ``1500ms`` into a timedelta.

    Raises:
        ValueError: the text is empty, does not follow the grammar, or is absurdly long.
    """
    match = _DURATION_RE.fullmatch(text)
    if not text or match is None:
        raise ValueError(
            f"invalid duration {text!r}: use whole numbers with units h, m, s, ms, "
            "largest first (e.g. 24h, 90m, 1h30m)"
        )
    hours, minutes, seconds, millis = (int(g) if g else 0 for g in match.groups())
    try:
        return dt.timedelta(hours=hours, minutes=minutes, seconds=seconds, milliseconds=millis)
    except OverflowError:
        raise ValueError(f"invalid duration {text!r}: too long") from None


def format_duration(value: dt.timedelta) -> str:
    """The inverse of :func:`parse_duration` (sub-millisecond remainders are dropped).

    Raises:
        ValueError: for a negative duration, which the grammar cannot express.
    """
    if value < dt.timedelta(0):
        raise ValueError("negative durations have no spelling")
    millis_total = value // dt.timedelta(milliseconds=1)
    hours, rest = divmod(millis_total, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    parts = [(hours, "h"), (minutes, "m"), (seconds, "s"), (millis, "ms")]
    text = "".join(f"{n}{unit}" for n, unit in parts if n)
    return text or "0s"


def format_time(value: dt.datetime) -> str:
    """RFC 3339 in UTC with second precision, as Kubernetes writes timestamps."""
    return value.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> dt.datetime | None:
    """Parse an RFC 3339 timestamp into an aware UTC datetime; anything else gives None."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC) if value.tzinfo else None
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    # why: a timestamp without an offset is ambiguous; Kubernetes never writes one.
    return parsed.astimezone(dt.UTC) if parsed.tzinfo else None


# ---------------------------------------------------------------------------------------------
# SPIFFE IDs and DNS names

#: ``spec.trustDomain`` when omitted.
DEFAULT_TRUST_DOMAIN: Final = "cluster.local"
#: Kubernetes cluster DNS domain used for the fourth Service name form.
CLUSTER_DOMAIN: Final = "cluster.local"
#: The SPIFFE ID specification's limit on the whole URI, in bytes.
MAX_SPIFFE_ID_LENGTH: Final = 2048
#: The SPIFFE ID specification's limit on the trust domain, in bytes.
MAX_TRUST_DOMAIN_LENGTH: Final = 255

_SPIFFE_SCHEME: Final = "spiffe://"
_TRUST_DOMAIN_CHARS: Final = frozenset(string.ascii_lowercase + string.digits + ".-_")
_PATH_CHARS: Final = frozenset(string.ascii_letters + string.digits + ".-_")


def spiffe_id_for(trust_domain: str, namespace: str, service_account: str) -> str:
    """The Istio/SPIRE-style workload identity ``spiffe://<td>/ns/<ns>/sa/<sa>``."""
    return f"{_SPIFFE_SCHEME}{trust_domain}/ns/{namespace}/sa/{service_account}"


def validate_trust_domain(trust_domain: str) -> str | None:  # noqa: PLR0911 - one exit per rule
    """Why ``trust_domain`` is not a SPIFFE trust domain name, or None when it is."""
    if not trust_domain:
        return "trust domain is empty"
    if len(trust_domain.encode()) > MAX_TRUST_DOMAIN_LENGTH:
        return f"trust domain is longer than {MAX_TRUST_DOMAIN_LENGTH} bytes"
    if "@" in trust_domain:
        return "user info ('@') is not allowed in a SPIFFE ID"
    if ":" in trust_domain:
        return "a port is not allowed in a SPIFFE ID"
    for char in trust_domain:
        if char in string.ascii_uppercase:
            return "trust domain must be lowercase"
        if char not in _TRUST_DOMAIN_CHARS:
            return f"trust domain contains {char!r}; only a-z, 0-9, '.', '-' and '_' are allowed"
    return None


def validate_spiffe_id(  # noqa: PLR0911, PLR0912 - one exit per rule of the SPIFFE ID spec
    value: str, *, require_path: bool = False
) -> str | None:
    """Check a SPIFFE ID strictly, as the SPIFFE ID spec and go-spiffe do.

    The Cure53 audit of SPIRE (SPI-01-003) showed that lenient parsing (dot segments, empty
    segments) lets one workload impersonate another, so nothing is normalised: an ID is
    either exactly canonical or refused.

    Args:
        value: the candidate, e.g. ``spiffe://cluster.local/ns/default/sa/web``.
        require_path: a leaf's ID needs a path; only a CA may carry the bare trust domain.

    Returns:
        A short reason ("a port is not allowed in a SPIFFE ID") or None when valid.
    """
    if len(value.encode()) > MAX_SPIFFE_ID_LENGTH:
        return f"a SPIFFE ID is at most {MAX_SPIFFE_ID_LENGTH} bytes"
    if not value.startswith(_SPIFFE_SCHEME):
        if value[: len(_SPIFFE_SCHEME)].lower() == _SPIFFE_SCHEME:
            return "the scheme must be lowercase 'spiffe'"
        return "a SPIFFE ID starts with spiffe://"
    if "?" in value:
        return "a query ('?') is not allowed in a SPIFFE ID"
    if "#" in value:
        return "a fragment ('#') is not allowed in a SPIFFE ID"
    trust_domain, slash, path = value[len(_SPIFFE_SCHEME) :].partition("/")
    if problem := validate_trust_domain(trust_domain):
        return problem
    if not slash:
        return "a leaf certificate's SPIFFE ID needs a path" if require_path else None
    for segment in path.split("/"):
        if not segment:
            return "path segments must not be empty ('//' or a trailing '/')"
        if segment in {".", ".."}:
            return "path segments must not be '.' or '..'"
        for char in segment:
            if char == "%":
                return "percent-encoding is not allowed in a SPIFFE ID path"
            if char not in _PATH_CHARS:
                return f"path contains {char!r}; only letters, digits, '.', '-' and '_'"
    return None


def service_dns_names(
    service: str, namespace: str, cluster_domain: str = CLUSTER_DOMAIN
) -> tuple[str, str, str, str]:
    """The four names a Service answers to: svc, svc.ns, svc.ns.svc, svc.ns.svc.<domain>."""
    return (
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.{cluster_domain}",
    )


_DNS_LABEL: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_RE: Final = re.compile(rf"(\*\.)?{_DNS_LABEL}(\.{_DNS_LABEL})*")


def validate_dns_name(name: str) -> str | None:
    """Why ``name`` is not a lowercase DNS-1123 subdomain (optionally ``*.``), or None."""
    if len(name) > 253:  # noqa: PLR2004 - DNS-1123 subdomain limit
        return f"{name!r} is longer than 253 characters"
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(name):
        return f"{name!r} is not a lowercase DNS-1123 subdomain"
    if any(len(label) > 63 for label in name.split(".")):  # noqa: PLR2004 - label limit
        return f"{name!r} has a label longer than 63 characters"
    return None


# ---------------------------------------------------------------------------------------------
# Spec


@dataclasses.dataclass(frozen=True, slots=True)
class IssuerRef:
    """``spec.issuerRef`` with the namespace resolved."""

    kind: IssuerKind
    name: str
    namespace: str
    #: Layout of an issuer Secret; None for kind MeshCertificate.
    format: IssuerSecretFormat | None = None

    @property
    def secret_format(self) -> IssuerSecretFormat:
        """How to read the issuer's Secret (a CA MeshCertificate's Secret is always tls)."""
        if self.kind is IssuerKind.MESH_CERTIFICATE or self.format is None:
            return IssuerSecretFormat.TLS
        return self.format

    @property
    def key(self) -> str:
        """Stable identity of the issuer, e.g. for the per-issuer issuance budget."""
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclasses.dataclass(frozen=True, slots=True)
class TrustBundleSpec:
    """``spec.trustBundle`` (CA only): where the trusted roots are published."""

    config_map_name: str
    key: str = CA_CERT_KEY
    #: A label selector; None means only the MeshCertificate's own namespace.
    namespace_selector: Mapping[str, Any] | None = dataclasses.field(default=None, hash=False)

    def label_selector(self) -> str | None:
        """The selector in the API's string form; None: the CA's own namespace only.

        ``{}`` selects every namespace (``""``). ``matchLabels`` and ``matchExpressions``
        combine with AND, as in every Kubernetes label selector.

        Raises:
            SpecError: an operator other than In, NotIn, Exists, DoesNotExist, or In/NotIn
                without values.
        """
        selector = self.namespace_selector
        if selector is None:
            return None
        parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
        for expr in selector.get("matchExpressions") or ():
            key, op = expr.get("key"), expr.get("operator")
            values = sorted(str(v) for v in expr.get("values") or ())
            if op in ("In", "NotIn"):
                if not values:
                    raise SpecError(f"trustBundle.namespaceSelector: {op} on {key} needs values")
                parts.append(f"{key} {op.lower()} ({','.join(values)})")
            elif op == "Exists":
                parts.append(str(key))
            elif op == "DoesNotExist":
                parts.append(f"!{key}")
            else:
                raise SpecError(f"trustBundle.namespaceSelector: unknown operator {op!r}")
        return ",".join(parts)


@dataclasses.dataclass(frozen=True, slots=True)
class WorkloadRef:
    """One entry of ``spec.restartOnRotation``."""

    kind: str
    name: str


#: Kinds restartOnRotation may name.
RESTARTABLE_KINDS: Final = frozenset({"Deployment", "StatefulSet", "DaemonSet"})


def _frozen_str_map(raw: object, field: str) -> Mapping[str, str]:
    if raw is None:
        return MappingProxyType({})
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise SpecError(f"{field} must map strings to strings")
    return MappingProxyType(dict(raw))


@dataclasses.dataclass(frozen=True, slots=True)
class MeshCertificateSpec:
    """A validated ``MeshCertificate.spec`` with every runtime default applied (SPEC §2.1)."""

    secret_name: str
    #: The MeshCertificate's namespace (SPIFFE ID, Service names, issuerRef default).
    namespace: str
    issuer_ref: IssuerRef | None = None
    service_account_name: str | None = None
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    #: The explicit ``spiffeId``; see :attr:`spiffe_id` for the effective one.
    explicit_spiffe_id: str | None = None
    service: str | None = None
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[IPAddress, ...] = ()
    common_name: str | None = None
    duration: dt.timedelta = DEFAULT_DURATION
    #: None: one third of the *issued* lifetime (cert-manager's default).
    renew_before: dt.timedelta | None = None
    private_key: PrivateKeySpec = PrivateKeySpec()
    usages: tuple[str, ...] = DEFAULT_USAGES
    is_ca: bool = False
    output_format: OutputFormat = OutputFormat.TLS
    secret_labels: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    secret_annotations: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    trust_bundle: TrustBundleSpec | None = None
    restart_on_rotation: tuple[WorkloadRef, ...] = ()

    @classmethod
    def from_k8s(cls, spec: Mapping[str, Any], *, namespace: str) -> MeshCertificateSpec:
        """Build from the API object's ``spec``, applying the runtime defaults of SPEC §2.1.

        The CRD's defaults and CEL rules already refuse bad objects at apply time; this
        repeats the checks because an object may predate the current CRD, and a wrong value
        must become a clear ``InvalidSpec`` condition rather than a crash deep in signing.

        Args:
            spec: ``MeshCertificate.spec`` as the API returns it.
            namespace: the MeshCertificate's namespace.

        Raises:
            SpecError: with a message naming the field.
        """
        secret_name = spec.get("secretName")
        if not isinstance(secret_name, str) or not secret_name:
            raise SpecError("secretName is required")
        is_ca = _bool(spec.get("isCA"), "isCA")

        issuer_ref = _issuer_ref(spec.get("issuerRef"), namespace)
        if issuer_ref is None and not is_ca:
            raise SpecError("issuerRef is required unless isCA is true (a self-signed root)")

        trust_domain, service_account, spiffe_id = _spiffe_fields(
            spec, namespace=namespace, is_ca=is_ca
        )
        service = _optional_str(spec.get("service"), "service")
        dns_names = _str_tuple(spec.get("dnsNames"), "dnsNames")
        for name in dns_names:
            if problem := validate_dns_name(name):
                raise SpecError(f"dnsNames: {problem}")
        ips = tuple(_ip(raw) for raw in _str_tuple(spec.get("ipAddresses"), "ipAddresses"))
        common_name = _optional_str(spec.get("commonName"), "commonName")
        if common_name is not None and len(common_name) > 64:  # noqa: PLR2004 - ub-common-name
            raise SpecError("commonName is longer than 64 characters")

        duration = _duration(spec.get("duration"), "duration") or DEFAULT_DURATION
        if duration < MIN_DURATION:
            raise SpecError(f"duration must be at least {format_duration(MIN_DURATION)}")
        renew_before = _duration(spec.get("renewBefore"), "renewBefore")
        if renew_before is not None and not dt.timedelta(0) < renew_before < duration:
            raise SpecError("renewBefore must be greater than 0 and shorter than duration")

        usages = spec.get("usages")
        usage_names = DEFAULT_USAGES if usages is None else _str_tuple(usages, "usages")
        effective_usages(usage_names, is_ca=is_ca)  # raises SpecError for unknown names

        output_format = _enum(
            OutputFormat, spec.get("outputFormat"), OutputFormat.TLS, "outputFormat"
        )
        if output_format is not OutputFormat.TLS and not is_ca:
            raise SpecError(f"outputFormat {output_format} writes a mesh CA and needs isCA true")

        trust_bundle = _trust_bundle(spec.get("trustBundle"))
        if trust_bundle is not None and not is_ca:
            raise SpecError("trustBundle can only be set on a CA (isCA true)")

        if not (
            is_ca or service_account or spiffe_id or service or dns_names or ips or common_name
        ):
            raise SpecError(
                "a leaf certificate needs an identity: set serviceAccountName, spiffeId, "
                "service, dnsNames, ipAddresses or commonName"
            )

        template = spec.get("secretTemplate") or {}
        if not isinstance(template, Mapping):
            raise SpecError("secretTemplate must be an object")
        return cls(
            secret_name=secret_name,
            namespace=namespace,
            issuer_ref=issuer_ref,
            service_account_name=service_account,
            trust_domain=trust_domain,
            explicit_spiffe_id=spiffe_id,
            service=service,
            dns_names=dns_names,
            ip_addresses=ips,
            common_name=common_name,
            duration=duration,
            renew_before=renew_before,
            private_key=PrivateKeySpec.from_k8s(_mapping(spec.get("privateKey"), "privateKey")),
            usages=usage_names,
            is_ca=is_ca,
            output_format=output_format,
            secret_labels=_frozen_str_map(template.get("labels"), "secretTemplate.labels"),
            secret_annotations=_frozen_str_map(
                template.get("annotations"), "secretTemplate.annotations"
            ),
            trust_bundle=trust_bundle,
            restart_on_rotation=_workloads(spec.get("restartOnRotation")),
        )

    @property
    def spiffe_id(self) -> str | None:
        """The URI SAN: ``spiffeId``, or the one derived from ``serviceAccountName``."""
        if self.explicit_spiffe_id is not None:
            return self.explicit_spiffe_id
        if self.service_account_name is not None:
            return spiffe_id_for(self.trust_domain, self.namespace, self.service_account_name)
        return None

    @property
    def uris(self) -> tuple[str, ...]:
        """URI SANs the certificate must carry."""
        return (self.spiffe_id,) if self.spiffe_id is not None else ()

    @property
    def service_dns_names(self) -> tuple[str, ...]:
        """The four Service forms, or () without ``service``."""
        if self.service is None:
            return ()
        return service_dns_names(self.service, self.namespace)

    @property
    def all_dns_names(self) -> tuple[str, ...]:
        """DNS SANs: the Service forms, then ``dnsNames``, lowercased, duplicates dropped."""
        seen: dict[str, None] = {}
        for name in (*self.service_dns_names, *self.dns_names):
            seen.setdefault(name.lower(), None)
        return tuple(seen)

    @property
    def effective_common_name(self) -> str | None:
        """``commonName``, or for a CA without one a generated, descriptive name."""
        if self.common_name is not None:
            return self.common_name
        if self.is_ca:
            # why: a CA with an empty subject is legal but unreadable in every tool that
            # prints chains (openssl, kubectl plugins); 64 is X.509's ub-common-name.
            return f"dabba CA {self.namespace}/{self.secret_name}"[:64]
        return None

    @property
    def is_self_signed(self) -> bool:
        """A root: no issuerRef (only allowed with isCA)."""
        return self.issuer_ref is None

    @property
    def expected_usages(self) -> Usages:
        """KeyUsage/ExtendedKeyUsage the certificate must carry."""
        return effective_usages(self.usages, is_ca=self.is_ca)

    def warnings(self) -> tuple[str, ...]:
        """Valid specs that the chosen mesh will still reject; worth a Warning Event."""
        found: list[str] = []
        if self.output_format is OutputFormat.LINKERD and (
            self.private_key.algorithm is not KeyAlgorithm.ECDSA or self.private_key.size != 256  # noqa: PLR2004
        ):
            found.append(
                "Linkerd's identity issuer must be ECDSA P-256; "
                f"{self.private_key.describe()} will be refused by linkerd-identity"
            )
        if (
            self.output_format is OutputFormat.ISTIO
            and self.private_key.algorithm is KeyAlgorithm.ED25519
        ):
            found.append("istiod's plug-in CA signs with RSA or ECDSA keys only, not Ed25519")
        return tuple(found)


def _enum(cls: type[_E], raw: object, default: _E, field: str) -> _E:
    if raw is None:
        return default
    if not isinstance(raw, str):
        raise SpecError(f"{field} must be a string, not {raw!r}")
    try:
        return cls(raw)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise SpecError(f"{field}: unknown value {raw!r} (allowed: {allowed})") from None


def _bool(raw: object, field: str) -> bool:
    if raw is None:
        return False
    if not isinstance(raw, bool):
        raise SpecError(f"{field} must be true or false")
    return raw


def _optional_str(raw: object, field: str) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise SpecError(f"{field} must be a string")
    return raw or None


def _str_tuple(raw: object, field: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise SpecError(f"{field} must be a list of strings")
    if not all(isinstance(item, str) for item in raw):
        raise SpecError(f"{field} must be a list of strings")
    return tuple(raw)


def _mapping(raw: object, field: str) -> Mapping[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise SpecError(f"{field} must be an object")
    return raw


def _ip(raw: str) -> IPAddress:
    try:
        return ipaddress.ip_address(raw)
    except ValueError:
        raise SpecError(f"ipAddresses: {raw!r} is not an IPv4 or IPv6 address") from None


def _duration(raw: object, field: str) -> dt.timedelta | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise SpecError(f"{field} must be a duration string such as 24h")
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise SpecError(f"{field}: {exc}") from None


def _spiffe_fields(
    spec: Mapping[str, Any], *, namespace: str, is_ca: bool
) -> tuple[str, str | None, str | None]:
    trust_domain = _optional_str(spec.get("trustDomain"), "trustDomain") or DEFAULT_TRUST_DOMAIN
    if problem := validate_trust_domain(trust_domain):
        raise SpecError(f"trustDomain: {problem}")
    service_account = _optional_str(spec.get("serviceAccountName"), "serviceAccountName")
    spiffe_id = _optional_str(spec.get("spiffeId"), "spiffeId")
    if service_account and spiffe_id:
        raise SpecError("set either serviceAccountName or spiffeId, not both")
    if spiffe_id is not None and (problem := validate_spiffe_id(spiffe_id, require_path=not is_ca)):
        raise SpecError(f"spiffeId {spiffe_id!r}: {problem}")
    if spiffe_id is not None and (claimed := spiffe_namespace(spiffe_id)) not in (None, namespace):
        # Istio and SPIRE read /ns/<namespace>/ as the workload's namespace: a certificate
        # claiming another namespace's identity would let this one impersonate it.
        raise SpecError(
            f"spiffeId {spiffe_id!r} claims namespace {claimed!r}; a MeshCertificate may only "
            f"claim identities in its own namespace {namespace!r} (…/ns/{namespace}/…)"
        )
    return trust_domain, service_account, spiffe_id


def spiffe_namespace(spiffe_id: str) -> str | None:
    """The namespace an Istio/SPIRE-style ID (``spiffe://td/ns/<ns>/sa/<sa>``) names, if any."""
    path = spiffe_id.removeprefix(_SPIFFE_SCHEME).partition("/")[2]
    segments = path.split("/")
    if len(segments) >= 2 and segments[0] == "ns":  # noqa: PLR2004 - "ns", then the name
        return segments[1]
    return None


def _issuer_ref(raw: object, namespace: str) -> IssuerRef | None:
    ref = _mapping(raw, "issuerRef")
    if ref is None:
        return None
    name = ref.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError("issuerRef.name is required")
    kind = _enum(IssuerKind, ref.get("kind"), IssuerKind.MESH_CERTIFICATE, "issuerRef.kind")
    raw_format = ref.get("format")
    secret_format: IssuerSecretFormat | None = None
    if kind is IssuerKind.SECRET:
        if raw_format is None:
            raise SpecError("issuerRef.format (tls or istio) is required for kind Secret")
        secret_format = _enum(
            IssuerSecretFormat, raw_format, IssuerSecretFormat.TLS, "issuerRef.format"
        )
    elif raw_format is not None:
        raise SpecError("issuerRef.format only applies to issuerRef.kind Secret")
    ref_namespace = _optional_str(ref.get("namespace"), "issuerRef.namespace") or namespace
    if kind is IssuerKind.SECRET and ref_namespace != namespace:
        # The operator can read every CA Secret; letting any namespace sign with another
        # namespace's CA key would hand that key's authority to whoever may create a
        # MeshCertificate. A CA shared across namespaces is a CA MeshCertificate.
        raise SpecError(
            f"issuerRef: a CA Secret must be in this MeshCertificate's namespace {namespace!r}, "
            f"not {ref_namespace!r}; to share a CA across namespaces, make it a CA "
            "MeshCertificate and reference that"
        )
    return IssuerRef(kind=kind, name=name, namespace=ref_namespace, format=secret_format)


def _trust_bundle(raw: object) -> TrustBundleSpec | None:
    bundle = _mapping(raw, "trustBundle")
    if bundle is None:
        return None
    name = bundle.get("configMapName")
    if not isinstance(name, str) or not name:
        raise SpecError("trustBundle.configMapName is required")
    key = _optional_str(bundle.get("key"), "trustBundle.key") or CA_CERT_KEY
    selector = _mapping(bundle.get("namespaceSelector"), "trustBundle.namespaceSelector")
    spec = TrustBundleSpec(
        config_map_name=name,
        key=key,
        namespace_selector=None if selector is None else MappingProxyType(dict(selector)),
    )
    spec.label_selector()  # raises SpecError for a selector the API would not accept
    return spec


def _workloads(raw: object) -> tuple[WorkloadRef, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise SpecError("restartOnRotation must be a list")
    refs = []
    for item in raw:
        entry = _mapping(item, "restartOnRotation[]") or {}
        kind = entry.get("kind") or "Deployment"
        name = entry.get("name")
        if kind not in RESTARTABLE_KINDS:
            raise SpecError(f"restartOnRotation: unknown kind {kind!r}")
        if not isinstance(name, str) or not name:
            raise SpecError("restartOnRotation: name is required")
        refs.append(WorkloadRef(kind=str(kind), name=name))
    return tuple(refs)


# ---------------------------------------------------------------------------------------------
# Status


@dataclasses.dataclass(frozen=True, slots=True)
class Condition:
    """One entry of ``status.conditions`` (metav1.Condition's shape)."""

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""
    last_transition_time: dt.datetime | None = None
    observed_generation: int | None = None

    @classmethod
    def from_k8s(cls, raw: Mapping[str, Any]) -> Condition | None:
        """Parse one condition; None when it lacks a type or a known status."""
        type_, raw_status = raw.get("type"), raw.get("status")
        if not isinstance(type_, str) or not type_ or not isinstance(raw_status, str):
            return None
        try:
            status = ConditionStatus(raw_status)
        except ValueError:
            return None
        return cls(
            type=type_,
            status=status,
            reason=str(raw.get("reason") or ""),
            message=str(raw.get("message") or ""),
            last_transition_time=parse_time(raw.get("lastTransitionTime")),
            observed_generation=_int_or_none(raw.get("observedGeneration")),
        )

    def to_k8s(self) -> dict[str, Any]:
        """The API form; ``lastTransitionTime`` and ``observedGeneration`` only when known."""
        out: dict[str, Any] = {
            "type": self.type,
            "status": str(self.status),
            "reason": self.reason,
            "message": self.message,
        }
        if self.last_transition_time is not None:
            out["lastTransitionTime"] = format_time(self.last_transition_time)
        if self.observed_generation is not None:
            out["observedGeneration"] = self.observed_generation
        return out

    @property
    def is_true(self) -> bool:
        """Whether the status is True."""
        return self.status is ConditionStatus.TRUE


def set_condition(conditions: Sequence[Condition], new: Condition) -> tuple[Condition, ...]:
    """Put ``new`` in place of the condition of the same type.

    ``lastTransitionTime`` records when the *status* last changed, so it is kept from the
    old condition when only the reason or message moved (the metav1 convention).
    """
    out: list[Condition] = []
    replaced = False
    for old in conditions:
        if old.type != new.type:
            out.append(old)
            continue
        replaced = True
        if old.status is new.status and old.last_transition_time is not None:
            new = dataclasses.replace(new, last_transition_time=old.last_transition_time)
        out.append(new)
    if not replaced:
        out.append(new)
    return tuple(out)


@dataclasses.dataclass(frozen=True, slots=True)
class TrustedRoot:
    """One root in a CA's trust bundle, and why it is there (``status.trustedRoots[]``)."""

    fingerprint_sha256: str
    not_after: dt.datetime | None
    #: e.g. "current", or "previous until its last leaf expires".
    reason: str

    @classmethod
    def from_k8s(cls, raw: Mapping[str, Any]) -> TrustedRoot | None:
        """Parse one entry; None without a fingerprint."""
        fingerprint = raw.get("fingerprintSHA256")
        if not isinstance(fingerprint, str) or not fingerprint:
            return None
        return cls(
            fingerprint_sha256=fingerprint,
            not_after=parse_time(raw.get("notAfter")),
            reason=str(raw.get("reason") or ""),
        )

    def to_k8s(self) -> dict[str, Any]:
        """The API form."""
        return {
            "fingerprintSHA256": self.fingerprint_sha256,
            "notAfter": None if self.not_after is None else format_time(self.not_after),
            "reason": self.reason,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class MeshCertificateStatus:
    """``MeshCertificate.status`` (SPEC §2.4). Never holds key material."""

    conditions: tuple[Condition, ...] = ()
    observed_generation: int | None = None
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    renewal_time: dt.datetime | None = None
    serial_number: str | None = None
    fingerprint_sha256: str | None = None
    #: Issuance counter: None before the first issuance, then 1, 2, …
    revision: int | None = None
    issuer_fingerprint: str | None = None
    failed_issuance_attempts: int = 0
    last_failure_time: dt.datetime | None = None
    last_failure_reason: str | None = None
    #: CA only: the roots published in the trust bundle.
    trusted_roots: tuple[TrustedRoot, ...] = ()
    #: CA only: step of the CA rollover (SPEC §2.3); None when no rollover runs.
    rollover_phase: str | None = None
    #: CA only (``status.rollover``): when the running rollover started.
    rollover_start_time: dt.datetime | None = None
    #: When ``rollover_phase`` was entered.
    rollover_phase_time: dt.datetime | None = None
    #: When the phase's wait was first seen satisfied (the propagation delay counts from here).
    rollover_settled_time: dt.datetime | None = None
    #: The last renew request refused because a rollover was running (never served later).
    rollover_refused_request: dt.datetime | None = None

    @classmethod
    def from_k8s(cls, status: Mapping[str, Any] | None) -> MeshCertificateStatus:
        """Parse leniently: a field that does not parse reads as absent, never as an error.

        Status is written only by dabba, but an older dabba or a hand edit must not wedge
        the controller; the next reconcile rewrites every field.
        """
        status = status or {}
        raw_conditions = status.get("conditions")
        conditions = tuple(
            c
            for c in (
                Condition.from_k8s(item)
                for item in (raw_conditions if isinstance(raw_conditions, list) else [])
                if isinstance(item, Mapping)
            )
            if c is not None
        )
        rollover = status.get("rollover")
        rollover = rollover if isinstance(rollover, Mapping) else {}
        raw_roots = status.get("trustedRoots")
        roots = tuple(
            r
            for r in (
                TrustedRoot.from_k8s(item)
                for item in (raw_roots if isinstance(raw_roots, list) else [])
                if isinstance(item, Mapping)
            )
            if r is not None
        )
        return cls(
            conditions=conditions,
            observed_generation=_int_or_none(status.get("observedGeneration")),
            not_before=parse_time(status.get("notBefore")),
            not_after=parse_time(status.get("notAfter")),
            renewal_time=parse_time(status.get("renewalTime")),
            serial_number=_str_or_none(status.get("serialNumber")),
            fingerprint_sha256=_str_or_none(status.get("fingerprintSHA256")),
            revision=_int_or_none(status.get("revision")),
            issuer_fingerprint=_str_or_none(status.get("issuerFingerprint")),
            failed_issuance_attempts=_int_or_none(status.get("failedIssuanceAttempts")) or 0,
            last_failure_time=parse_time(status.get("lastFailureTime")),
            last_failure_reason=_str_or_none(status.get("lastFailureReason")),
            trusted_roots=roots,
            rollover_phase=_str_or_none(status.get("rolloverPhase")),
            rollover_start_time=parse_time(rollover.get("startTime")),
            rollover_phase_time=parse_time(rollover.get("phaseTime")),
            rollover_settled_time=parse_time(rollover.get("settledTime")),
            rollover_refused_request=parse_time(rollover.get("refusedRequest")),
        )

    def to_k8s(self) -> dict[str, Any]:
        """Every field, with None for unset ones.

        Emitting None (rather than leaving the key out) makes a merge patch *clear* a stale
        value, e.g. ``lastFailureReason`` after a successful issuance.
        """

        def time(value: dt.datetime | None) -> str | None:
            return None if value is None else format_time(value)

        return {
            "conditions": [c.to_k8s() for c in self.conditions],
            "observedGeneration": self.observed_generation,
            "notBefore": time(self.not_before),
            "notAfter": time(self.not_after),
            "renewalTime": time(self.renewal_time),
            "serialNumber": self.serial_number,
            "fingerprintSHA256": self.fingerprint_sha256,
            "revision": self.revision,
            "issuerFingerprint": self.issuer_fingerprint,
            "failedIssuanceAttempts": self.failed_issuance_attempts,
            "lastFailureTime": time(self.last_failure_time),
            "lastFailureReason": self.last_failure_reason,
            "trustedRoots": [r.to_k8s() for r in self.trusted_roots] or None,
            "rolloverPhase": self.rollover_phase,
            "rollover": self._rollover_k8s(time),
        }

    def _rollover_k8s(
        self, time: Callable[[dt.datetime | None], str | None]
    ) -> dict[str, str | None] | None:
        fields = {
            "startTime": time(self.rollover_start_time),
            "phaseTime": time(self.rollover_phase_time),
            "settledTime": time(self.rollover_settled_time),
            "refusedRequest": time(self.rollover_refused_request),
        }
        return fields if any(v is not None for v in fields.values()) else None

    def condition(self, type_: str) -> Condition | None:
        """The condition of that type, if present."""
        return next((c for c in self.conditions if c.type == type_), None)


def _int_or_none(raw: object) -> int | None:
    return raw if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0 else None


def _str_or_none(raw: object) -> str | None:
    return raw if isinstance(raw, str) and raw else None
