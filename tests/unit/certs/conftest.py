"""Shared certificate fixtures: keys made once per session, a small PKI, input builders.

Key generation is the slow part (RSA), so keys come from a session-wide pool keyed by
(algorithm, size, slot); every test that needs "some other ECDSA key" asks for a new slot.
All times derive from T0; nothing reads the wall clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pytest

from dabba.certs import issuer, pki, policies, rotation
from dabba.certs.model import (
    KeyAlgorithm,
    MeshCertificateSpec,
    OutputFormat,
    PrivateKeySpec,
    Usages,
    effective_usages,
)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NAMESPACE = "shop"
UID = "0f4d3c1e-7a8b-4c2d-9e0f-112233445566"

#: The leaf spec most tests start from (SPEC §2.1's example, with a CA MeshCertificate issuer).
LEAF_SPEC: dict[str, Any] = {
    "secretName": "payments-mtls",
    "issuerRef": {"kind": "MeshCertificate", "name": "mesh-root", "namespace": "dabba-system"},
    "serviceAccountName": "payments",
    "service": "payments",
    "duration": "24h",
}


class Pki:
    """Builds keys, CAs, leaves, Secrets and PolicyInputs for tests (cached where costly)."""

    # Test modules cannot import this conftest (importlib mode); they read these instead.
    T0 = T0
    NAMESPACE = NAMESPACE
    UID = UID
    LEAF_SPEC = LEAF_SPEC

    def __init__(self) -> None:
        self._keys: dict[tuple[KeyAlgorithm, int, int], pki.PrivateKey] = {}
        self._cas: dict[tuple[Any, ...], issuer.CertificateAuthority] = {}

    def key(
        self, algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA, size: int = 256, slot: int = 0
    ) -> pki.PrivateKey:
        cache_key = (algorithm, size, slot)
        if cache_key not in self._keys:
            self._keys[cache_key] = issuer.generate_private_key(
                PrivateKeySpec(algorithm=algorithm, size=size)
            )
        return self._keys[cache_key]

    def root(
        self,
        name: str = "mesh-root",
        *,
        slot: int = 100,
        algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA,
        size: int = 256,
        start: dt.datetime = T0 - dt.timedelta(days=1),
        duration: dt.timedelta = dt.timedelta(days=3650),
        path_length: int | None = None,
    ) -> issuer.CertificateAuthority:
        cache_key = ("root", name, slot, algorithm, size, start, duration, path_length)
        if cache_key not in self._cas:
            template = issuer.CertificateTemplate(
                common_name=name,
                usages=_ca_usages(),
                is_ca=True,
                duration=duration,
                path_length=path_length,
            )
            issued = issuer.sign(template, self.key(algorithm, size, slot), None, start)
            self._cas[cache_key] = issuer.CertificateAuthority.from_issued(issued)
        return self._cas[cache_key]

    def intermediate(
        self,
        parent: issuer.CertificateAuthority,
        name: str = "mesh-intermediate",
        *,
        slot: int = 200,
        start: dt.datetime = T0 - dt.timedelta(hours=1),
        duration: dt.timedelta = dt.timedelta(days=365),
        path_length: int | None = None,
    ) -> issuer.CertificateAuthority:
        template = issuer.CertificateTemplate(
            common_name=name,
            usages=_ca_usages(),
            is_ca=True,
            duration=duration,
            path_length=path_length,
        )
        issued = issuer.sign(template, self.key(slot=slot), parent, start)
        return issuer.CertificateAuthority.from_issued(issued)

    def spec(self, **overrides: Any) -> MeshCertificateSpec:
        raw = {**LEAF_SPEC, **overrides}
        raw = {k: v for k, v in raw.items() if v is not None}
        return MeshCertificateSpec.from_k8s(raw, namespace=NAMESPACE)

    def leaf(
        self,
        spec: MeshCertificateSpec | None = None,
        ca: issuer.CertificateAuthority | None = None,
        *,
        now: dt.datetime = T0,
        key: pki.PrivateKey | None = None,
        slot: int = 1,
    ) -> issuer.IssuedCertificate:
        spec = spec or self.spec()
        if key is None:
            key = self.key(spec.private_key.algorithm, spec.private_key.size, slot)
        if ca is None and not spec.is_self_signed:
            ca = self.root()
        return issuer.issue(spec, key, ca, now)

    def data(
        self, issued: issuer.IssuedCertificate, output_format: OutputFormat = OutputFormat.TLS
    ) -> dict[str, bytes]:
        return dict(issuer.secret_data(issued, output_format))

    def contents(
        self,
        issued: issuer.IssuedCertificate | None = None,
        *,
        spec: MeshCertificateSpec | None = None,
        data: Mapping[str, bytes] | None = None,
        annotations: Mapping[str, str] | None = None,
        output_format: OutputFormat | None = None,
    ) -> policies.SecretContents:
        spec = spec or self.spec()
        fmt = output_format or spec.output_format
        if data is None:
            issued = issued or self.leaf(spec)
            data = self.data(issued, fmt)
        if annotations is None and issued is not None:
            annotations = issuer.secret_annotations(
                issued, spec, certificate_name="payments", revision=1
            )
        return policies.parse_secret(data, annotations, output_format=fmt)

    def input(
        self,
        *,
        spec: MeshCertificateSpec | None = None,
        issued: issuer.IssuedCertificate | None = None,
        secret: policies.SecretContents | bool | None = True,
        ca: issuer.CertificateAuthority | bool | None = True,
        now: dt.datetime = T0 + dt.timedelta(hours=1),
        renewal: bool = True,
        **extra: Any,
    ) -> policies.PolicyInput:
        """A PolicyInput; ``True`` means "the consistent default", None means absent."""
        spec = spec or self.spec()
        if ca is True:
            ca = None if spec.is_self_signed else self.root()
        if issued is None and secret is True:
            issued = self.leaf(spec, ca if isinstance(ca, issuer.CertificateAuthority) else None)
        if secret is True:
            secret = self.contents(issued, spec=spec)
        assert secret is None or isinstance(secret, policies.SecretContents)
        ca_facts = (
            pki.CertificateFacts.from_certificate(ca.certificate)
            if isinstance(ca, issuer.CertificateAuthority)
            else None
        )
        leaf = None if secret is None else secret.leaf
        renewal_time = (
            rotation.renewal_time(leaf.not_before, leaf.not_after, spec.renew_before, UID)
            if renewal and leaf is not None
            else None
        )
        fields: dict[str, Any] = {
            "spec": spec,
            "now": now,
            "secret": secret,
            "issuer": ca_facts,
            "renewal_time": renewal_time,
        }
        fields.update(extra)
        return policies.PolicyInput(**fields)


def _ca_usages() -> Usages:
    return effective_usages(["digital signature"], is_ca=True)


@pytest.fixture(scope="session")
def make() -> Pki:
    return Pki()
