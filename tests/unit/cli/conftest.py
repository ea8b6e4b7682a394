"""Fixtures for the CLI's pure helpers: a fixed ``now`` and a tiny real PKI (cryptography)."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Issued:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


class Pki:
    """Makes a root CA and leaves signed by it, valid around ``NOW``."""

    now = NOW

    def ca(self, name: str = "mesh root", *, days: int = 30) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return Issued(key, cert)

    def leaf(
        self,
        ca: Issued,
        *,
        dns: tuple[str, ...] = ("payments", "payments.shop.svc"),
        ips: tuple[str, ...] = ("10.0.0.7",),
        uris: tuple[str, ...] = ("spiffe://cluster.local/ns/shop/sa/payments",),
        hours: int = 24,
        start: dt.datetime = NOW - dt.timedelta(hours=1),
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        sans += [x509.UniformResourceIdentifier(u) for u in uris]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(ca.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(hours=hours))
            .add_extension(x509.SubjectAlternativeName(sans), critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(ca.key, hashes.SHA256())
        )
        return Issued(key, cert)

    @staticmethod
    def secret(tls_crt: bytes, tls_key: bytes | None, ca_crt: bytes | None) -> dict[str, object]:
        """A kubernetes.io/tls Secret as the API returns it (base64 data)."""
        data = {"tls.crt": tls_crt}
        if tls_key is not None:
            data["tls.key"] = tls_key
        if ca_crt is not None:
            data["ca.crt"] = ca_crt
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": "payments-mtls", "namespace": "shop"},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }


@pytest.fixture(scope="session")
def pki() -> Pki:
    return Pki()


@pytest.fixture
def now() -> dt.datetime:
    return NOW
