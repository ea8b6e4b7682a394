"""Read what one certificate decision needs: its Secret and its issuer's CA. I/O, no writes.

Missing objects are values (``None`` plus a reason), never exceptions: the trigger chain and
the ``IssuerNotReady`` condition decide what a missing Secret or CA means.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from dabba.certs import pki
from dabba.certs.issuer import CertificateAuthority, IssuerError, load_issuer
from dabba.certs.model import IssuerKind, MeshCertificateSpec
from dabba.certs.policies import SecretContents, parse_secret
from dabba.k8s import meta, objects
from dabba.k8s.client import Clients


@dataclasses.dataclass(frozen=True)
class SecretObject:
    """A Secret as read: decoded data plus the metadata the writer needs."""

    name: str
    namespace: str
    type: str
    data: Mapping[str, bytes] = dataclasses.field(repr=False)
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    resource_version: str
    owner_references: tuple[Mapping[str, Any], ...]


@dataclasses.dataclass(frozen=True)
class Gathered:
    secret: SecretObject | None
    contents: SecretContents | None
    authority: CertificateAuthority | None
    issuer_error: str | None
    #: The Secret holding the issuer (namespace, name), to watch for CA changes.
    issuer_secret: tuple[str, str] | None

    @property
    def issuer_facts(self) -> pki.CertificateFacts | None:
        if self.authority is None:
            return None
        return pki.CertificateFacts.from_certificate(self.authority.certificate)


def decode_data(data: Mapping[str, str] | None) -> dict[str, bytes]:
    """A Secret's ``data`` with every value base64-decoded (bad base64 reads as empty)."""
    out: dict[str, bytes] = {}
    for key, value in (data or {}).items():
        try:
            out[key] = base64.b64decode(value, validate=True)
        except (ValueError, TypeError):
            out[key] = b""  # unparseable base64 reads as an empty key: the chain reports it
    return out


def read_secret(k: Clients, namespace: str, name: str) -> SecretObject | None:
    """The Secret with decoded data, or None."""
    resp = objects.or_none(
        lambda: k.core.read_namespaced_secret(name, namespace, _preload_content=False)
    )
    if resp is None:
        return None
    raw = objects.raw_json(resp)
    md = raw.get("metadata", {})
    return SecretObject(
        name=name,
        namespace=namespace,
        type=raw.get("type", ""),
        data=decode_data(raw.get("data")),
        labels=md.get("labels") or {},
        annotations=md.get("annotations") or {},
        resource_version=md.get("resourceVersion", ""),
        owner_references=tuple(md.get("ownerReferences") or ()),
    )


def _issuer(
    k: Clients, spec: MeshCertificateSpec, now: dt.datetime
) -> tuple[CertificateAuthority | None, str | None, tuple[str, str] | None]:
    ref = spec.issuer_ref
    if ref is None:
        return None, None, None
    if ref.kind is IssuerKind.MESH_CERTIFICATE:
        ca = objects.get_custom(k, meta.MESHCERT_PLURAL, ref.namespace, ref.name)
        if ca is None:
            return None, f"MeshCertificate {ref.namespace}/{ref.name} not found", None
        ca_spec = ca.get("spec", {})
        if not ca_spec.get("isCA"):
            return None, f"MeshCertificate {ref.namespace}/{ref.name} is not a CA (isCA)", None
        secret_ref = (ref.namespace, str(ca_spec.get("secretName", "")))
        what = f"CA MeshCertificate {ref.namespace}/{ref.name}"
    else:
        secret_ref = (ref.namespace, ref.name)
        what = f"issuer Secret {ref.namespace}/{ref.name}"
    secret = read_secret(k, *secret_ref)
    if secret is None:
        return None, f"{what}: Secret {secret_ref[0]}/{secret_ref[1]} not found", secret_ref
    try:
        return load_issuer(secret.data, ref.secret_format, now), None, secret_ref
    except IssuerError as exc:
        return None, f"{what}: {exc}", secret_ref


def gather(k: Clients, spec: MeshCertificateSpec, namespace: str, now: dt.datetime) -> Gathered:
    """Read the certificate's Secret and its issuer."""
    try:
        secret = read_secret(k, namespace, spec.secret_name)
    except ApiException as exc:
        raise RuntimeError(f"reading Secret {namespace}/{spec.secret_name}: {exc.reason}") from None
    contents = (
        None
        if secret is None
        else parse_secret(secret.data, secret.annotations, output_format=spec.output_format)
    )
    authority, issuer_error, issuer_secret = _issuer(k, spec, now)
    return Gathered(secret, contents, authority, issuer_error, issuer_secret)
