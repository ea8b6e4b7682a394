"""Should dabba (re-)issue this certificate, and is it Ready? Pure, cert-manager style.

Each check is a small named function ``(PolicyInput) -> Violation | None``; a *chain* is an
ordered tuple of checks and :func:`evaluate` returns the first violation. The order is part
of the contract (the reason shown to the user is the first one that applies) and is tested
as a whole, like cert-manager's ``Test_NewTriggerPolicyChain``::

    TRIGGER_CHAIN (Issuing=True with the first reason found)       READINESS_CHAIN (Ready)
    ───────────────────────────────────────────────────────────    ───────────────────────
     1 secret_missing          DoesNotExist                          1-10 the same checks
     2 secret_missing_data     MissingData                          11 expired
     3 secret_inconsistent     InconsistentData
     4 certificate_invalid     InvalidCertificate                    (issuer_changed, a
     5 private_key_invalid     InvalidPrivateKey                     shortened duration,
     6 key_pair_mismatch       InvalidKeyPair                        renewal and manual
     7 identity_differs        IdentityChanged                       renewal leave a valid
     8 usages_differ           UsagesChanged                         certificate Ready)
     9 key_spec_differs        KeySpecChanged
    10 not_yet_valid           NotYetValid
    11 issuer_changed          IssuerChanged
    12 duration_shortened      DurationChanged
    13 expired                 Expired
    14 renewal_due             Renewing
    15 manual_renewal          ManualRenewal

Why ``expired`` comes before ``renewal_due``: renewal time is always strictly before notAfter,
so with the opposite order ``Expired`` could never be the reason and users would read
"Renewing" on a certificate that is already dead.

Secret parsing lives here too (:func:`parse_secret`, built on ``pki``), because the chain
must survive *any* bytes a user puts in the Secret: parsing never raises, it records what
failed, and the checks turn that into reasons. Nothing here does I/O; the caller (gather)
reads the Secret and the issuer, computes the renewal time with ``rotation.renewal_time``
(as cert-manager's trigger reads the stored ``status.renewalTime``), and passes ``now``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Final

from dabba.certs import pki
from dabba.certs.model import (
    ANNOTATION_ISSUER_FINGERPRINT,
    CA_CERT_KEY,
    EXTENDED_KEY_USAGE_OIDS,
    ISTIO_CA_CERT_KEY,
    ISTIO_CA_KEY_KEY,
    ISTIO_ROOT_CERT_KEY,
    REQUIRED_SECRET_KEYS,
    TLS_CERT_KEY,
    TLS_KEY_KEY,
    Condition,
    ConditionStatus,
    ConditionType,
    MeshCertificateSpec,
    OutputFormat,
    Reason,
    RotationPolicy,
    format_duration,
    format_time,
)
from dabba.certs.pki import CertificateFacts, PrivateKey

#: How far in the future a notBefore may lie before it is suspicious rather than clock skew.
MAX_CLOCK_SKEW: Final = dt.timedelta(minutes=5)
#: Slack when comparing an issued lifetime with spec.duration (X.509 times are whole seconds).
DURATION_TOLERANCE: Final = dt.timedelta(seconds=1)
#: How long after the renewal time a missing renewal becomes ``RenewalOverdue`` (at most half
#: of what is left before notAfter, so short-lived certificates get a proportionate grace).
RENEWAL_GRACE: Final = dt.timedelta(seconds=60)


# ---------------------------------------------------------------------------------------------
# Inputs


@dataclasses.dataclass(frozen=True, slots=True)
class SecretContents:
    """What the chains need from the Secret, parsed once. Never holds key bytes."""

    #: Required keys (per output format) that are absent or empty.
    missing_keys: tuple[str, ...] = ()
    #: Keys whose content should equal another key's and does not (istio copies).
    inconsistent_keys: tuple[str, ...] = ()
    #: tls.crt, leaf first; empty when it did not parse.
    chain: tuple[CertificateFacts, ...] = ()
    certificate_error: str | None = None
    private_key: PrivateKey | None = None
    private_key_error: str | None = None
    #: ca.crt, when present and parseable.
    ca_certificates: tuple[CertificateFacts, ...] = ()
    annotations: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )

    @property
    def leaf(self) -> CertificateFacts | None:
        """The first certificate of tls.crt."""
        return self.chain[0] if self.chain else None


def parse_secret(
    data: Mapping[str, bytes],
    annotations: Mapping[str, str] | None = None,
    *,
    output_format: OutputFormat = OutputFormat.TLS,
) -> SecretContents:
    """Parse a Secret's decoded ``data`` for the chains. Never raises, whatever the bytes.

    Args:
        data: Secret data with values already base64-decoded.
        annotations: the Secret's annotations (for the issuer fingerprint).
        output_format: decides which keys are required.
    """

    def value(key: str) -> bytes:
        raw = data.get(key)
        return raw if isinstance(raw, bytes) else b""

    missing = tuple(k for k in REQUIRED_SECRET_KEYS[output_format] if not value(k).strip())

    chain: tuple[CertificateFacts, ...] = ()
    certificate_error: str | None = None
    if value(TLS_CERT_KEY).strip():
        try:
            chain = pki.parse_certificates(value(TLS_CERT_KEY))
        except pki.PemError as exc:
            certificate_error = f"{TLS_CERT_KEY}: {exc}"

    private_key: PrivateKey | None = None
    private_key_error: str | None = None
    if value(TLS_KEY_KEY).strip():
        try:
            private_key = pki.load_private_key(value(TLS_KEY_KEY))
        except pki.PemError as exc:
            private_key_error = f"{TLS_KEY_KEY}: {exc}"

    ca_certificates: tuple[CertificateFacts, ...] = ()
    if value(CA_CERT_KEY).strip():
        try:
            ca_certificates = pki.parse_certificates(value(CA_CERT_KEY))
        except pki.PemError:
            ca_certificates = ()

    inconsistent: list[str] = []
    if output_format is OutputFormat.ISTIO and chain:
        # why: istiod reads only the ca-*.pem keys and other tools only tls.*; if someone
        # edits one copy the two consumers would silently use different CAs.
        try:
            ca_cert = pki.load_certificates(value(ISTIO_CA_CERT_KEY))[0]
            if pki.fingerprint_sha256(ca_cert) != chain[0].fingerprint_sha256:
                inconsistent.append(ISTIO_CA_CERT_KEY)
        except pki.PemError:
            inconsistent.append(ISTIO_CA_CERT_KEY)
        if value(ISTIO_CA_KEY_KEY).strip() != value(TLS_KEY_KEY).strip():
            inconsistent.append(ISTIO_CA_KEY_KEY)
        if value(ISTIO_ROOT_CERT_KEY).strip() != value(CA_CERT_KEY).strip():
            inconsistent.append(ISTIO_ROOT_CERT_KEY)
    return SecretContents(
        missing_keys=missing,
        inconsistent_keys=tuple(k for k in inconsistent if k not in missing),
        chain=chain,
        certificate_error=certificate_error,
        private_key=private_key,
        private_key_error=private_key_error,
        ca_certificates=ca_certificates,
        annotations=MappingProxyType(dict(annotations or {})),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class PolicyInput:
    """Everything one decision looks at, gathered beforehand (cert-manager's ``Input``)."""

    spec: MeshCertificateSpec
    now: dt.datetime
    #: None: the Secret does not exist.
    secret: SecretContents | None
    #: The current issuer CA certificate; None for a self-signed spec or when unavailable.
    issuer: CertificateFacts | None = None
    #: Why the issuer could not be loaded (only read when the spec has an issuerRef).
    issuer_error: str | None = None
    #: ``rotation.renewal_time`` of the certificate in the Secret (None: none to renew).
    renewal_time: dt.datetime | None = None
    #: The MeshCertificate's renew-requested-at annotation, parsed.
    renew_requested_at: dt.datetime | None = None
    #: metadata.generation, stamped on the conditions as observedGeneration.
    generation: int | None = None

    @property
    def leaf(self) -> CertificateFacts | None:
        """The Secret's certificate, if there is a parseable one."""
        return None if self.secret is None else self.secret.leaf


@dataclasses.dataclass(frozen=True, slots=True)
class Violation:
    """A failed check: the reason (a ``model.Reason``) and a message for humans."""

    reason: Reason
    message: str


Check = Callable[[PolicyInput], Violation | None]


def evaluate(chain: Sequence[Check], inp: PolicyInput) -> Violation | None:
    """The first violation of ``chain``, or None. Purely computational, no side effects."""
    for check in chain:
        if (violation := check(inp)) is not None:
            return violation
    return None


# ---------------------------------------------------------------------------------------------
# Checks, in chain order


def secret_missing(inp: PolicyInput) -> Violation | None:
    """The Secret named by spec.secretName does not exist."""
    if inp.secret is None:
        return Violation(Reason.DOES_NOT_EXIST, f"Secret {inp.spec.secret_name} does not exist")
    return None


def secret_missing_data(inp: PolicyInput) -> Violation | None:
    """A key the output format requires is absent or empty."""
    if inp.secret is not None and inp.secret.missing_keys:
        keys = ", ".join(inp.secret.missing_keys)
        return Violation(Reason.MISSING_DATA, f"Secret is missing or has empty {keys}")
    return None


def secret_inconsistent(inp: PolicyInput) -> Violation | None:
    """Duplicate copies of the same material disagree (istio's ca-*.pem vs tls.*)."""
    if inp.secret is not None and inp.secret.inconsistent_keys:
        keys = ", ".join(inp.secret.inconsistent_keys)
        return Violation(
            Reason.INCONSISTENT_DATA, f"{keys} no longer match tls.crt, tls.key and ca.crt"
        )
    return None


def certificate_invalid(inp: PolicyInput) -> Violation | None:
    """tls.crt does not parse."""
    if inp.secret is not None and inp.secret.certificate_error is not None:
        return Violation(Reason.INVALID_CERTIFICATE, inp.secret.certificate_error)
    return None


def private_key_invalid(inp: PolicyInput) -> Violation | None:
    """tls.key does not parse as a supported, unencrypted key."""
    if inp.secret is not None and inp.secret.private_key_error is not None:
        return Violation(Reason.INVALID_PRIVATE_KEY, inp.secret.private_key_error)
    return None


def key_pair_mismatch(inp: PolicyInput) -> Violation | None:
    """tls.key is not the private half of the certificate's public key."""
    secret, leaf = inp.secret, inp.leaf
    if secret is None or leaf is None or secret.private_key is None:
        return None
    if secret.private_key.public_key_der != leaf.public_key_der:
        return Violation(
            Reason.INVALID_KEY_PAIR, "tls.key does not belong to the certificate in tls.crt"
        )
    return None


def _set_diff(label: str, want: set[str], have: set[str]) -> str | None:
    if want == have:
        return None
    parts = []
    if missing := sorted(want - have):
        parts.append(f"missing {', '.join(missing)}")
    if extra := sorted(have - want):
        parts.append(f"unexpected {', '.join(extra)}")
    return f"{label}: {'; '.join(parts)}"


def identity_differs(inp: PolicyInput) -> Violation | None:
    """SPIFFE URI, DNS names (incl. the Service forms), IPs, CN or isCA differ from spec."""
    leaf, spec = inp.leaf, inp.spec
    if leaf is None:
        return None
    diffs = [
        _set_diff("URI SANs", set(spec.uris), set(leaf.uris)),
        _set_diff("DNS names", set(spec.all_dns_names), set(leaf.dns_names)),
        _set_diff(
            "IP addresses",
            {str(ip) for ip in spec.ip_addresses},
            {str(ip) for ip in leaf.ip_addresses},
        ),
    ]
    if spec.effective_common_name != leaf.common_name:
        diffs.append(f"common name: want {spec.effective_common_name!r}, have {leaf.common_name!r}")
    if spec.is_ca != leaf.is_ca:
        diffs.append(f"isCA: want {str(spec.is_ca).lower()}, have {str(leaf.is_ca).lower()}")
    found = [d for d in diffs if d is not None]
    if found:
        return Violation(Reason.IDENTITY_CHANGED, "; ".join(found))
    return None


# OID -> the first usage name that maps to it ("email protection" rather than "s/mime").
_EKU_NAMES: Final = {oid: name for name, oid in list(EXTENDED_KEY_USAGE_OIDS.items())[::-1]}


def usages_differ(inp: PolicyInput) -> Violation | None:
    """KeyUsage or ExtendedKeyUsage differ from what spec.usages (and isCA) produce."""
    leaf = inp.leaf
    if leaf is None:
        return None
    want = inp.spec.expected_usages
    diffs = [
        _set_diff(
            "key usages",
            {u.replace("_", " ") for u in want.key_usage},
            {u.replace("_", " ") for u in leaf.key_usage or ()},
        ),
        _set_diff(
            "extended key usages",
            {_EKU_NAMES.get(o, o) for o in want.extended},
            {_EKU_NAMES.get(o, o) for o in leaf.extended_key_usage},
        ),
    ]
    found = [d for d in diffs if d is not None]
    if found:
        return Violation(Reason.USAGES_CHANGED, "; ".join(found))
    return None


def key_spec_differs(inp: PolicyInput) -> Violation | None:
    """The certificate's key algorithm or size differs from spec.privateKey."""
    leaf = inp.leaf
    if leaf is None:
        return None
    want = inp.spec.private_key
    if leaf.key_algorithm is not want.algorithm or leaf.key_size != want.size:
        return Violation(
            Reason.KEY_SPEC_CHANGED,
            f"key is {leaf.describe_key()}, spec asks for {want.describe()}",
        )
    return None


def not_yet_valid(inp: PolicyInput) -> Violation | None:
    """notBefore lies further ahead than clock skew between nodes can explain."""
    leaf = inp.leaf
    # Subtract datetimes (never overflows) rather than add to `now` (which can, at year 9999).
    if leaf is not None and leaf.not_before - inp.now > MAX_CLOCK_SKEW:
        return Violation(
            Reason.NOT_YET_VALID, f"certificate is not valid before {format_time(leaf.not_before)}"
        )
    return None


def issuer_changed(inp: PolicyInput) -> Violation | None:
    """Not signed by the current issuer, or the issuer's certificate was re-issued.

    cert-manager does not detect this (its issues 2478, 5851, 9076): leaves keep chaining to
    a CA that rotated. Here the leaf must verify against the issuer gather found *now*, and
    the Secret's issuer-fingerprint annotation must name that exact certificate so a CA that
    was re-issued with the same key still refreshes its leaves' chains and clamped expiry.
    """
    leaf, issuer = inp.leaf, inp.issuer
    if leaf is None:
        return None
    if inp.spec.is_self_signed:
        return _not_self_signed(leaf)
    if issuer is None:
        return None  # unknown: IssuerNotReady reports it; never re-issue blind
    if not pki.issued_by(leaf.certificate, issuer.certificate):
        return Violation(
            Reason.ISSUER_CHANGED,
            f"certificate was not signed by the current issuer {issuer.subject or '<empty>'} "
            f"(sha256:{issuer.fingerprint_sha256[:16]}…)",
        )
    recorded = inp.secret.annotations.get(ANNOTATION_ISSUER_FINGERPRINT) if inp.secret else None
    if recorded and recorded != issuer.fingerprint_sha256:
        return Violation(
            Reason.ISSUER_CHANGED,
            f"issuer certificate changed (sha256:{recorded[:16]}… → "
            f"sha256:{issuer.fingerprint_sha256[:16]}…)",
        )
    return None


def _not_self_signed(leaf: CertificateFacts) -> Violation | None:
    if leaf.self_signed:
        return None
    return Violation(
        Reason.ISSUER_CHANGED,
        f"certificate is signed by {leaf.issuer or '<empty>'} but the spec asks for a "
        "self-signed root",
    )


def duration_shortened(inp: PolicyInput) -> Violation | None:
    """The certificate lives longer than spec.duration now allows.

    Issued lifetimes are never longer than requested (clamping only shortens them), so a
    longer one means the user lowered ``duration`` and expects it to apply now.
    """
    leaf = inp.leaf
    if leaf is not None and leaf.lifetime > inp.spec.duration + DURATION_TOLERANCE:
        return Violation(
            Reason.DURATION_CHANGED,
            f"certificate was issued for {format_duration(leaf.lifetime)}, spec.duration is "
            f"{format_duration(inp.spec.duration)}",
        )
    return None


def expired(inp: PolicyInput) -> Violation | None:
    """The certificate is at or past its notAfter."""
    leaf = inp.leaf
    if leaf is not None and inp.now >= leaf.not_after:
        return Violation(Reason.EXPIRED, f"certificate expired at {format_time(leaf.not_after)}")
    return None


def renewal_due(inp: PolicyInput) -> Violation | None:
    """The renewal time (notAfter - renewBefore - jitter) has been reached."""
    if inp.leaf is not None and inp.renewal_time is not None and inp.now >= inp.renewal_time:
        return Violation(
            Reason.RENEWING, f"renewal time {format_time(inp.renewal_time)} has been reached"
        )
    return None


def manual_renewal(inp: PolicyInput) -> Violation | None:
    """A renew request (``dabba cert renew``) is newer than the current certificate.

    The certificate's notBefore is its issuance time (dabba does not backdate), so a
    request made after it has not been served yet. Strictly newer: a request in the very
    second of the last issuance is treated as served, which cannot loop.
    """
    leaf, requested = inp.leaf, inp.renew_requested_at
    if leaf is not None and requested is not None and requested > leaf.not_before:
        return Violation(Reason.MANUAL_RENEWAL, f"renewal requested at {format_time(requested)}")
    return None


#: Decides whether to issue; the first violation is the reason (order tested as a whole).
TRIGGER_CHAIN: Final[tuple[Check, ...]] = (
    secret_missing,
    secret_missing_data,
    secret_inconsistent,
    certificate_invalid,
    private_key_invalid,
    key_pair_mismatch,
    identity_differs,
    usages_differ,
    key_spec_differs,
    not_yet_valid,
    issuer_changed,
    duration_shortened,
    expired,
    renewal_due,
    manual_renewal,
)

#: Decides Ready: the Secret is intact, matches the spec and is inside its validity window.
READINESS_CHAIN: Final[tuple[Check, ...]] = (*TRIGGER_CHAIN[:10], expired)


# ---------------------------------------------------------------------------------------------
# Issuer health and conditions


def issuer_problem(inp: PolicyInput) -> Violation | None:  # noqa: PLR0911 - one exit per problem
    """Why the issuer cannot sign for this spec right now, or None (IssuerNotReady)."""
    spec, issuer = inp.spec, inp.issuer
    if spec.is_self_signed:
        return None
    if issuer is None:
        ref = spec.issuer_ref
        where = f"{ref.kind} {ref.namespace}/{ref.name}" if ref else "issuer"
        return Violation(Reason.ISSUER_UNAVAILABLE, inp.issuer_error or f"{where} not found")
    if not issuer.is_ca:
        return Violation(Reason.ISSUER_NOT_CA, f"issuer {issuer.subject} is not a CA")
    if issuer.key_usage is not None and "key_cert_sign" not in issuer.key_usage:
        return Violation(Reason.ISSUER_NOT_CA, f"issuer {issuer.subject} may not sign certificates")
    if spec.is_ca and issuer.path_length == 0:
        return Violation(
            Reason.ISSUER_NOT_CA,
            f"issuer {issuer.subject} has path length 0 and cannot sign another CA",
        )
    if not issuer.not_before <= inp.now < issuer.not_after:
        return Violation(
            Reason.ISSUER_EXPIRED,
            f"issuer {issuer.subject} is valid {format_time(issuer.not_before)} to "
            f"{format_time(issuer.not_after)}",
        )
    return None


def renewal_overdue_at(renewal_time: dt.datetime, not_after: dt.datetime) -> dt.datetime:
    """When a renewal that has not happened becomes ``RenewalOverdue``."""
    grace = min(RENEWAL_GRACE, max(not_after - renewal_time, dt.timedelta(0)) / 2)
    return renewal_time + grace


def reusable_key(spec: MeshCertificateSpec, secret: SecretContents | None) -> PrivateKey | None:
    """The Secret's key when rotationPolicy Never allows keeping it, else None (make one).

    A key is kept only if it parses and has the algorithm and size the spec asks for; a
    wrong key is replaced rather than kept forever (cert-manager waits for a human there).
    """
    if spec.private_key.rotation_policy is not RotationPolicy.NEVER or secret is None:
        return None
    key = secret.private_key
    if key is None or key.algorithm is not spec.private_key.algorithm:
        return None
    return key if key.size == spec.private_key.size else None


@dataclasses.dataclass(frozen=True, slots=True)
class Assessment:
    """The outcome of both chains and the issuer check, plus the conditions they imply."""

    #: Issue, and why; None: nothing to do.
    trigger: Violation | None
    #: Why the certificate is not Ready; None: Ready.
    readiness: Violation | None
    #: Why the issuer cannot sign; None: it can (or none is needed).
    issuer: Violation | None
    conditions: tuple[Condition, ...]

    @property
    def should_issue(self) -> bool:
        """The trigger chain fired."""
        return self.trigger is not None

    @property
    def can_issue(self) -> bool:
        """The issuer is able to sign."""
        return self.issuer is None


def assess(inp: PolicyInput) -> Assessment:
    """Run both chains and the issuer check and derive the five conditions (SPEC §2.4).

    Ready is never True for an expired certificate: ``expired`` is in the readiness chain and
    Ready is True only when that whole chain passes. Conditions carry ``inp.now`` as their
    transition time; ``model.set_condition`` keeps the old one when a status did not change.
    """
    trigger = evaluate(TRIGGER_CHAIN, inp)
    readiness = evaluate(READINESS_CHAIN, inp)
    issuer = issuer_problem(inp)

    def condition(
        type_: ConditionType, status: ConditionStatus, reason: Reason, message: str
    ) -> Condition:
        return Condition(
            type=type_,
            status=status,
            reason=reason,
            message=message,
            last_transition_time=inp.now,
            observed_generation=inp.generation,
        )

    conditions = (
        condition(ConditionType.READY, *_ready(inp, readiness)),
        condition(ConditionType.ISSUING, *_issuing(inp, trigger)),
        condition(ConditionType.EXPIRED, *_expired(inp, readiness)),
        condition(ConditionType.RENEWAL_OVERDUE, *_renewal_overdue(inp, readiness)),
        condition(ConditionType.ISSUER_NOT_READY, *_issuer_not_ready(inp, issuer)),
    )
    return Assessment(trigger=trigger, readiness=readiness, issuer=issuer, conditions=conditions)


_Verdict = tuple[ConditionStatus, Reason, str]
_NO_CERTIFICATE: Final = Violation(Reason.DOES_NOT_EXIST, "no certificate")


def _ready(inp: PolicyInput, readiness: Violation | None) -> _Verdict:
    leaf = inp.leaf
    if readiness is None and leaf is not None:
        return (
            ConditionStatus.TRUE,
            Reason.UP_TO_DATE,
            f"certificate is valid until {format_time(leaf.not_after)} and matches the spec",
        )
    why = readiness or _NO_CERTIFICATE
    return ConditionStatus.FALSE, why.reason, why.message


def _issuing(inp: PolicyInput, trigger: Violation | None) -> _Verdict:
    if trigger is not None:
        return ConditionStatus.TRUE, trigger.reason, trigger.message
    renews = f"; renews at {format_time(inp.renewal_time)}" if inp.renewal_time else ""
    return ConditionStatus.FALSE, Reason.UP_TO_DATE, f"no issuance needed{renews}"


def _expired(inp: PolicyInput, readiness: Violation | None) -> _Verdict:
    leaf = inp.leaf
    if leaf is None:
        why = readiness or _NO_CERTIFICATE
        return ConditionStatus.UNKNOWN, why.reason, why.message
    if inp.now >= leaf.not_after:
        return (
            ConditionStatus.TRUE,
            Reason.EXPIRED,
            f"certificate expired at {format_time(leaf.not_after)}",
        )
    return (
        ConditionStatus.FALSE,
        Reason.NOT_EXPIRED,
        f"certificate is valid until {format_time(leaf.not_after)}",
    )


def _renewal_overdue(inp: PolicyInput, readiness: Violation | None) -> _Verdict:
    leaf, renewal = inp.leaf, inp.renewal_time
    if leaf is None or renewal is None:
        reason = readiness.reason if readiness else Reason.ON_SCHEDULE
        return ConditionStatus.UNKNOWN, reason, "no renewal scheduled for the current certificate"
    if inp.now >= renewal_overdue_at(renewal, leaf.not_after):
        return (
            ConditionStatus.TRUE,
            Reason.RENEWAL_OVERDUE,
            f"renewal was due at {format_time(renewal)}; the certificate expires at "
            f"{format_time(leaf.not_after)}",
        )
    return ConditionStatus.FALSE, Reason.ON_SCHEDULE, f"renewal due at {format_time(renewal)}"


def _issuer_not_ready(inp: PolicyInput, issuer: Violation | None) -> _Verdict:
    if issuer is not None:
        return ConditionStatus.TRUE, issuer.reason, issuer.message
    if inp.spec.is_self_signed:
        return ConditionStatus.FALSE, Reason.SELF_SIGNED, "a self-signed root needs no issuer"
    subject = inp.issuer.subject if inp.issuer else ""
    return ConditionStatus.FALSE, Reason.ISSUER_READY, f"issuer {subject} can sign"
