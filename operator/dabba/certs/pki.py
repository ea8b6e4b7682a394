"""Parsed PKI material: certificate facts, a private key that never shows itself, a chain walk.

Pure: ``cryptography`` parses and verifies bytes in memory; nothing here does I/O or logs.
Both the decision side (``policies``) and the signing side (``issuer``) use these types, so
"what is in this certificate" is answered in exactly one place.

Three rules hold for everything here:

* **Hostile input never escapes as an odd exception.** A Secret is user-editable: its bytes
  may be anything. ``load_*``/``parse_*`` raise :class:`PemError` (a ``ValueError``) and
  nothing else, and :class:`CertificateFacts` reads every extension eagerly, because
  ``cryptography`` parses extensions lazily and a malformed one would otherwise blow up
  later, deep inside a policy check.
* **Key material never shows.** :class:`PrivateKey` wraps the key; its ``repr``/``str`` is
  ``<PrivateKey ECDSA-256 sha256:…>`` (a *public* key fingerprint) and error messages are
  fixed strings, never the input.
* **Verification is a plain signature walk** (:func:`verify_chain`). ``cryptography``'s
  ``x509.verification`` implements the CA/Browser web-PKI profile, which refuses Ed25519
  signatures outright ("Forbidden public key algorithm") — and Ed25519 CAs are part of the API.
  The walk checks exactly what mesh peers check: names chain, signatures verify, issuers are
  CAs allowed to sign, path lengths hold, and every certificate is valid at ``now``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import ipaddress
from collections.abc import Sequence
from typing import Final, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from dabba.certs.model import IPAddress, KeyAlgorithm, describe_key

SupportedPrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
SupportedPublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

_T = TypeVar("_T", bound=x509.ExtensionType)

#: Largest RSA key :func:`load_private_key` validates; the API issues at most 4096 bits.
MAX_RSA_KEY_BITS: Final = 8192
#: Longest chain :func:`verify_chain` will build (leaf and root included).
MAX_CHAIN_DEPTH: Final = 8
_SUPPORTED_CURVES: Final = {"secp256r1": 256, "secp384r1": 384}


class PemError(ValueError):
    """Bytes that are not the PEM the caller hoped for. The message never quotes the input."""


def fingerprint_sha256(certificate: x509.Certificate) -> str:
    """SHA-256 of the DER encoding, lowercase hex, no colons (``status.fingerprintSHA256``)."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def public_key_der(key: CertificatePublicKeyTypes) -> bytes:
    """DER SubjectPublicKeyInfo: the one comparison that works for every key type."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_algorithm_and_size(key: object) -> tuple[KeyAlgorithm, int] | None:
    """(algorithm, size) of a public or private key, or None for a type the API lacks.

    ECDSA curves other than P-256/P-384, RSA below 2048 bits, DSA, Ed448 and X25519 are all
    "unsupported": dabba never issues them, so finding one in a Secret means re-issue.
    """
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        size = _SUPPORTED_CURVES.get(key.curve.name)
        return None if size is None else (KeyAlgorithm.ECDSA, size)
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return (KeyAlgorithm.RSA, key.key_size)
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return (KeyAlgorithm.ED25519, 0)
    return None


class PrivateKey:
    """A private key that can sign and serialise itself but never prints itself.

    ``repr``/``str`` show the algorithm and a SHA-256 prefix of the *public* key, which is
    enough to tell keys apart in logs and tests. The raw key is reachable only through the
    explicitly named :attr:`crypto_key` and :meth:`to_pkcs8_pem`.
    """

    __slots__ = ("_algorithm", "_key", "_public_der", "_size")

    def __init__(self, key: SupportedPrivateKey) -> None:
        """Wrap ``key``.

        Raises:
            TypeError: a key type or size the API does not support.
        """
        described = key_algorithm_and_size(key)
        if described is None or not isinstance(
            key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
        ):
            raise TypeError(f"unsupported private key type {type(key).__name__}")
        self._key = key
        self._algorithm, self._size = described
        self._public_der = public_key_der(key.public_key())

    @property
    def algorithm(self) -> KeyAlgorithm:
        """ECDSA, RSA or Ed25519."""
        return self._algorithm

    @property
    def size(self) -> int:
        """Curve size or modulus bits; 0 for Ed25519."""
        return self._size

    @property
    def crypto_key(self) -> SupportedPrivateKey:
        """The ``cryptography`` key object, for signing. Never log it."""
        return self._key

    @property
    def public_key_der(self) -> bytes:
        """DER SubjectPublicKeyInfo of the matching public key."""
        return self._public_der

    @property
    def public_key_fingerprint(self) -> str:
        """SHA-256 hex of the public key (safe to show)."""
        return hashlib.sha256(self._public_der).hexdigest()

    def public_key(self) -> SupportedPublicKey:
        """The matching public key."""
        return self._key.public_key()

    def describe(self) -> str:
        """``ECDSA-256``, ``RSA-2048`` or ``Ed25519``."""
        return describe_key(self._algorithm, self._size)

    def matches(self, certificate: x509.Certificate) -> bool:
        """Whether ``certificate`` carries this key's public half."""
        try:
            return public_key_der(certificate.public_key()) == self._public_der
        except Exception:  # why: an unsupported or malformed key in a hostile certificate
            return False

    def to_pkcs8_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM (``tls.key``). The one way key bytes leave this object."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def __repr__(self) -> str:
        return f"<PrivateKey {self.describe()} sha256:{self.public_key_fingerprint[:16]}…>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrivateKey):
            return NotImplemented
        return self._public_der == other._public_der

    def __hash__(self) -> int:
        return hash(self._public_der)

    def __reduce__(self) -> str | tuple[object, ...]:
        # why: pickling would copy the key bytes into caches, queues or crash dumps.
        raise TypeError("PrivateKey cannot be pickled")

    # Immutable, so a copy is the object itself; without these, copy.deepcopy (and so
    # dataclasses.asdict on anything holding a key) would hit __reduce__ above.
    def __copy__(self) -> PrivateKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> PrivateKey:
        return self


def load_private_key(pem: bytes) -> PrivateKey:
    """Parse an unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1).

    Raises:
        PemError: not a key, encrypted, or a type the API does not support. The message is
            fixed text: the input may be a real key.
    """
    try:
        # why: OpenSSL's RSA key validation costs grows steeply with the modulus; a hostile
        # Secret could hold a huge key. Parse cheaply first, bound the size, then validate.
        key = serialization.load_pem_private_key(
            pem, password=None, unsafe_skip_rsa_key_validation=True
        )
        if isinstance(key, rsa.RSAPrivateKey):
            if key.key_size > MAX_RSA_KEY_BITS:
                raise PemError(f"unsupported RSA key size {key.key_size}")
            key = serialization.load_pem_private_key(pem, password=None)
    except PemError:
        raise
    except TypeError:
        raise PemError("the private key is encrypted") from None
    except Exception:  # why: cryptography raises several types on garbage
        raise PemError("not a PEM private key") from None
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise PemError(f"unsupported private key type {type(key).__name__}")
    try:
        return PrivateKey(key)
    except TypeError:
        raise PemError(f"unsupported private key ({type(key).__name__})") from None


def load_certificates(pem: bytes) -> tuple[x509.Certificate, ...]:
    """Every ``CERTIFICATE`` block of a PEM bundle, in order.

    Raises:
        PemError: no certificate, or a block that does not parse.
    """
    if not isinstance(pem, bytes) or not pem.strip():
        raise PemError("no PEM data")
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except Exception as exc:  # why: ValueError and friends from hostile bytes
        raise PemError(f"not a PEM certificate bundle ({type(exc).__name__})") from None
    if not certificates:
        raise PemError("no PEM certificate")
    return tuple(certificates)


def to_pem(certificates: Sequence[x509.Certificate]) -> bytes:
    """Concatenated PEM, in the given order."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


@dataclasses.dataclass(frozen=True, slots=True)
class CertificateFacts:
    """Everything the checks compare, read eagerly from one certificate.

    Build with :meth:`from_certificate`, which either reads every field or raises
    :class:`PemError`; afterwards no attribute access can fail.
    """

    certificate: x509.Certificate
    fingerprint_sha256: str
    #: Lowercase hex, no leading zeros (``status.serialNumber``).
    serial_number: str
    subject: str
    issuer: str
    common_name: str | None
    not_before: dt.datetime
    not_after: dt.datetime
    uris: tuple[str, ...]
    dns_names: tuple[str, ...]
    ip_addresses: tuple[IPAddress, ...]
    is_ca: bool
    path_length: int | None
    #: Field names of ``x509.KeyUsage`` that are set; None when the extension is absent.
    key_usage: frozenset[str] | None
    #: Dotted OIDs of the extended key usages (empty when the extension is absent).
    extended_key_usage: frozenset[str]
    #: None for a key type the API does not support.
    key_algorithm: KeyAlgorithm | None
    key_size: int
    public_key_der: bytes = dataclasses.field(repr=False)
    #: Subject == issuer and the signature verifies with its own key.
    self_signed: bool = False

    @property
    def lifetime(self) -> dt.timedelta:
        """notAfter - notBefore."""
        return self.not_after - self.not_before

    def describe_key(self) -> str:
        """``ECDSA-256`` etc., or ``unsupported``."""
        if self.key_algorithm is None:
            return "unsupported"
        return describe_key(self.key_algorithm, self.key_size)

    @classmethod
    def from_certificate(cls, certificate: x509.Certificate) -> CertificateFacts:
        """Read every fact from ``certificate``.

        Raises:
            PemError: a malformed or duplicated extension, a bad name, or an unreadable key.
        """
        try:
            return _facts(certificate)
        except PemError:
            raise
        except Exception as exc:  # why: lazy extension parsing raises many types
            raise PemError(f"malformed certificate ({type(exc).__name__})") from None

    @classmethod
    def _read(cls, certificate: x509.Certificate) -> CertificateFacts:
        extensions = certificate.extensions
        uris: tuple[str, ...] = ()
        dns: tuple[str, ...] = ()
        ips: tuple[IPAddress, ...] = ()
        san = _extension(extensions, x509.SubjectAlternativeName)
        if san is not None:
            uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
            dns = tuple(name.lower() for name in san.get_values_for_type(x509.DNSName))
            ips = tuple(
                ip
                for ip in san.get_values_for_type(x509.IPAddress)
                if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)
            )
        constraints = _extension(extensions, x509.BasicConstraints)
        key_usage_ext = _extension(extensions, x509.KeyUsage)
        key_usage = None if key_usage_ext is None else _key_usage_fields(key_usage_ext)
        eku = _extension(extensions, x509.ExtendedKeyUsage)
        public_key = certificate.public_key()
        described = key_algorithm_and_size(public_key)
        cn_attributes = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        common_name = str(cn_attributes[0].value) if cn_attributes else None
        is_self_signed = self_signed(certificate)
        return cls(
            certificate=certificate,
            fingerprint_sha256=fingerprint_sha256(certificate),
            serial_number=format(certificate.serial_number, "x"),
            subject=certificate.subject.rfc4514_string(),
            issuer=certificate.issuer.rfc4514_string(),
            common_name=common_name,
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            uris=uris,
            dns_names=dns,
            ip_addresses=ips,
            is_ca=constraints is not None and constraints.ca,
            path_length=None if constraints is None else constraints.path_length,
            key_usage=key_usage,
            extended_key_usage=frozenset(oid.dotted_string for oid in eku or ()),
            key_algorithm=None if described is None else described[0],
            key_size=0 if described is None else described[1],
            public_key_der=public_key_der(public_key),
            self_signed=is_self_signed,
        )


@functools.lru_cache(maxsize=256)
def _facts(certificate: x509.Certificate) -> CertificateFacts:
    """Cached by the certificate's DER: every leaf's bundle repeats its CA and roots, and
    reading one verifies a signature (self_signed)."""
    return CertificateFacts._read(certificate)


def parse_certificates(pem: bytes) -> tuple[CertificateFacts, ...]:
    """:func:`load_certificates` then :meth:`CertificateFacts.from_certificate` for each.

    Raises:
        PemError: for anything that is not a clean PEM certificate bundle.
    """
    return tuple(CertificateFacts.from_certificate(c) for c in load_certificates(pem))


def _extension(extensions: x509.Extensions, kind: type[_T]) -> _T | None:
    try:
        return extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


_KEY_USAGE_FIELDS: Final = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


def _key_usage_fields(usage: x509.KeyUsage) -> frozenset[str]:
    fields = {name for name in _KEY_USAGE_FIELDS if getattr(usage, name)}
    # why: cryptography raises on reading encipher_only/decipher_only unless key_agreement.
    if usage.key_agreement:
        fields |= {name for name in ("encipher_only", "decipher_only") if getattr(usage, name)}
    return frozenset(fields)


@functools.lru_cache(maxsize=256)
def self_signed(certificate: x509.Certificate) -> bool:
    """Whether ``certificate`` signed itself (cached: CAs and roots are asked about on every
    issuance, and each answer is a signature check)."""
    return certificate.subject == certificate.issuer and issued_by(certificate, certificate)


def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` directly signed ``certificate`` (names chain, signature verifies)."""
    try:
        certificate.verify_directly_issued_by(issuer)
    except Exception:  # why: InvalidSignature, ValueError, TypeError, Unsupported…
        return False
    return True


def _name(certificate: x509.Certificate) -> str:
    try:
        return certificate.subject.rfc4514_string() or "<empty subject>"
    except Exception:  # why: undecodable attribute values
        return "<unreadable subject>"


def _validity_problem(certificate: x509.Certificate, now: dt.datetime, what: str) -> str | None:
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if now < start:
        return f"{what} {_name(certificate)} is not valid before {start:%Y-%m-%dT%H:%M:%SZ}"
    if now > end:
        return f"{what} {_name(certificate)} expired at {end:%Y-%m-%dT%H:%M:%SZ}"
    return None


def _issuer_problem(issuer: x509.Certificate, now: dt.datetime, cas_below: int) -> str | None:
    """Why ``issuer`` may not sign the next certificate down, or None."""
    try:
        constraints = _extension(issuer.extensions, x509.BasicConstraints)
        key_usage = _extension(issuer.extensions, x509.KeyUsage)
    except Exception:  # why: malformed extensions
        return f"issuer {_name(issuer)} has malformed extensions"
    if constraints is None or not constraints.ca:
        return f"issuer {_name(issuer)} is not a CA"
    if key_usage is not None and not key_usage.key_cert_sign:
        return f"issuer {_name(issuer)} may not sign certificates (keyUsage lacks cert sign)"
    if constraints.path_length is not None and cas_below > constraints.path_length:
        return (
            f"issuer {_name(issuer)} allows path length {constraints.path_length}, "
            f"the chain needs {cas_below}"
        )
    return _validity_problem(issuer, now, "issuer")


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    now: dt.datetime,
    *,
    max_depth: int = MAX_CHAIN_DEPTH,
) -> str | None:
    """Whether ``leaf`` chains to one of ``roots`` through ``intermediates`` at ``now``.

    Depth-first over every candidate issuer whose subject matches, so two roots with the
    same name but different keys — exactly the situation during a CA rollover — are both
    tried. A leaf that is itself one of the roots verifies.

    Args:
        leaf: the certificate to check.
        intermediates: untrusted certificates that may complete the path.
        roots: trust anchors.
        now: the validation time (aware).
        max_depth: longest path, leaf and root included.

    Returns:
        None when a path exists, else the most specific reason the first path failed.
    """
    if not roots:
        return "no trust roots to verify against"
    if problem := _validity_problem(leaf, now, "certificate"):
        return problem
    anchors = {fingerprint_sha256(root) for root in roots}
    leaf_fingerprint = fingerprint_sha256(leaf)
    if leaf_fingerprint in anchors:
        return None
    # Roots first: the shortest path wins, and a rolled-over intermediate is not preferred
    # over the anchor itself.
    pool = [(fingerprint_sha256(c), c) for c in (*roots, *intermediates)]
    failures: list[str] = []

    def walk(certificate: x509.Certificate, depth: int, seen: frozenset[str]) -> bool:
        for fingerprint, candidate in pool:
            if fingerprint in seen or candidate.subject != certificate.issuer:
                continue
            if not issued_by(certificate, candidate):
                failures.append(
                    f"the signature of {_name(certificate)} does not verify with the key of "
                    f"{_name(candidate)} (sha256:{fingerprint[:16]}…)"
                )
                continue
            if problem := _issuer_problem(candidate, now, cas_below=depth):
                failures.append(problem)
                continue
            if fingerprint in anchors:
                return True
            if depth + 2 >= max_depth:
                failures.append(f"no path to a root within {max_depth} certificates")
                continue
            if walk(candidate, depth + 1, seen | {fingerprint}):
                return True
        return False

    if walk(leaf, 0, frozenset({leaf_fingerprint})):
        return None
    if failures:
        return failures[0]
    try:
        wanted = leaf.issuer.rfc4514_string()
    except Exception:  # why: undecodable issuer name
        wanted = "<unreadable issuer>"
    return f"no trusted root or intermediate named {wanted or '<empty>'} issued {_name(leaf)}"
