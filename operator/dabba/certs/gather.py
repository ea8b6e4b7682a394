"""Read what one certificate decision needs: its Secret and its issuer's CA. I/O, no writes.

Missing objects are values (``None`` plus a reason), never exceptions: the trigger chain and
the ``IssuerNotReady`` condition decide what a missing Secret or CA means.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from dabba.certs import pki
from dabba.certs.issuer import CertificateAuthority, IssuerError, load_issuer
from dabba.certs.model import IssuerKind, MeshCertificateSpec
from dabba.certs.policies import SecretContents, parse_secret
from dabba.k8s import meta, objects
from dabba.k8s.cache import parse_resource_version
from dabba.k8s.client import Clients

#: Every Secret dabba writes carries this label (value: the MeshCertificate's name); the
#: Secret watch selects on it.
SECRET_LABEL = f"{meta.GROUP}/meshcertificate"


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
    #: The issuer certificate's facts (parsed once per CA, not once per leaf).
    issuer_facts: pki.CertificateFacts | None = None


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


@dataclasses.dataclass(frozen=True)
class _Loaded:
    authority: CertificateAuthority
    facts: pki.CertificateFacts
    #: The whole chain is valid within [valid_from, valid_until): load_issuer's time check.
    valid_from: dt.datetime
    valid_until: dt.datetime
    at: float

    @classmethod
    def of(cls, authority: CertificateAuthority, at: float) -> _Loaded:
        path = (authority.certificate, *authority.chain, *authority.roots)
        return cls(
            authority=authority,
            facts=pki.CertificateFacts.from_certificate(authority.certificate),
            valid_from=max(c.not_valid_before_utc for c in path),
            valid_until=min(c.not_valid_after_utc for c in path),
            at=at,
        )


#: Longer than any read of a Secret can take (the client's request timeout is 60 s).
READ_RACE_WINDOW = 90.0
_NEWEST_PRUNE_AT = 2048


class IssuerCache:
    """Signing CAs kept between reconciles, so a thousand leaves of one CA read and parse it
    once instead of a thousand times (issuance benchmark, issue 8: two GETs and a key parse
    per leaf).

    Only what a watch reports changes of is kept: CA MeshCertificates in the operator's scope
    (``note_certificate``, from the MeshCertificate events) and the Secrets with dabba's label
    (``forget_secret``, from the Secret events). An external CA Secret is read every time.
    Entries also expire after :attr:`max_age` seconds, which bounds what an event lost while
    a watch reconnects could cost. Thread-safe: events arrive on kopf's loop, reads come from
    worker threads.
    """

    def __init__(
        self,
        clusterwide: bool,
        namespaces: tuple[str, ...],
        max_age: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._all = clusterwide
        self._namespaces = frozenset(namespaces)
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        #: CA MeshCertificate (namespace, name) -> its secretName.
        self._cas: dict[tuple[str, str], str] = {}
        #: (Secret namespace, name, layout) -> the loaded CA.
        self._loaded: dict[tuple[str, str, str], _Loaded] = {}
        #: Secret (namespace, name) -> the newest resourceVersion an event reported, and when.
        self._newest: dict[tuple[str, str], tuple[int, float]] = {}
        self._prune_at = _NEWEST_PRUNE_AT

    def _watched(self, namespace: str) -> bool:
        return self._all or namespace in self._namespaces

    def note_certificate(self, namespace: str, name: str, body: Mapping[str, Any] | None) -> None:
        """A MeshCertificate event (``None``: deleted)."""
        spec = (body or {}).get("spec") or {}
        with self._lock:
            if spec.get("isCA") and spec.get("secretName"):
                self._cas[namespace, name] = str(spec["secretName"])
            else:
                self._cas.pop((namespace, name), None)

    def forget_secret(self, namespace: str, name: str, resource_version: str | None = None) -> None:
        """A Secret event: drop what was loaded from it, and remember how new the Secret is
        now, so a read that raced with this change cannot put the older data back."""
        with self._lock:
            for key in [k for k in self._loaded if k[:2] == (namespace, name)]:
                del self._loaded[key]
            rv = parse_resource_version(resource_version)
            if rv is not None:
                now = self._clock()
                old = self._newest.get((namespace, name))
                self._newest[namespace, name] = (max(rv, old[0] if old else 0), now)
                if len(self._newest) > self._prune_at:
                    # A read races with an event for at most one request's time. The next
                    # prune waits until the map has doubled: amortised O(1) per event.
                    cutoff = now - READ_RACE_WINDOW
                    self._newest = {k: v for k, v in self._newest.items() if v[1] >= cutoff}
                    self._prune_at = max(_NEWEST_PRUNE_AT, 2 * len(self._newest))

    def clear(self) -> None:
        with self._lock:
            self._cas.clear()
            self._loaded.clear()
            self._newest.clear()

    def ca_secret_name(self, namespace: str, name: str) -> str | None:
        with self._lock:
            return self._cas.get((namespace, name)) if self._watched(namespace) else None

    def loaded(self, namespace: str, name: str, layout: str, now: dt.datetime) -> _Loaded | None:
        with self._lock:
            entry = self._loaded.get((namespace, name, layout))
        if entry is None or self._clock() - entry.at > self._max_age:
            return None
        return entry if entry.valid_from <= now < entry.valid_until else None

    def keep(self, secret: SecretObject, layout: str, authority: CertificateAuthority) -> _Loaded:
        entry = _Loaded.of(authority, self._clock())
        # Only a Secret a watch tells us about (dabba's label, in scope) may be kept, and only
        # if no event has reported a newer version of it meanwhile.
        key = (secret.namespace, secret.name)
        if self._watched(secret.namespace) and secret.labels.get(SECRET_LABEL):
            with self._lock:
                rv = parse_resource_version(secret.resource_version)
                newest = self._newest.get(key)
                if rv is not None and (newest is None or rv >= newest[0]):
                    self._loaded[secret.namespace, secret.name, layout] = entry
        return entry


def _issuer(  # noqa: PLR0911 - one return per way an issuer can be unusable
    k: Clients, spec: MeshCertificateSpec, now: dt.datetime, cache: IssuerCache | None
) -> tuple[_Loaded | None, str | None, tuple[str, str] | None]:
    ref = spec.issuer_ref
    if ref is None:
        return None, None, None
    if ref.kind is IssuerKind.MESH_CERTIFICATE:
        known = cache.ca_secret_name(ref.namespace, ref.name) if cache else None
        if known is None:
            ca = objects.get_custom(k, meta.MESHCERT_PLURAL, ref.namespace, ref.name)
            if ca is None:
                return None, f"MeshCertificate {ref.namespace}/{ref.name} not found", None
            ca_spec = ca.get("spec", {})
            if not ca_spec.get("isCA"):
                return None, f"MeshCertificate {ref.namespace}/{ref.name} is not a CA (isCA)", None
            known = str(ca_spec.get("secretName", ""))
        secret_ref = (ref.namespace, known)
        what = f"CA MeshCertificate {ref.namespace}/{ref.name}"
    else:
        secret_ref = (ref.namespace, ref.name)
        what = f"issuer Secret {ref.namespace}/{ref.name}"
    layout = str(ref.secret_format)
    if cache is not None and (hit := cache.loaded(*secret_ref, layout, now)) is not None:
        return hit, None, secret_ref
    secret = read_secret(k, *secret_ref)
    if secret is None:
        return None, f"{what}: Secret {secret_ref[0]}/{secret_ref[1]} not found", secret_ref
    try:
        authority = load_issuer(secret.data, ref.secret_format, now)
    except IssuerError as exc:
        return None, f"{what}: {exc}", secret_ref
    if cache is None:
        return _Loaded.of(authority, time.monotonic()), None, secret_ref
    return cache.keep(secret, layout, authority), None, secret_ref


def gather(
    k: Clients,
    spec: MeshCertificateSpec,
    namespace: str,
    now: dt.datetime,
    issuers: IssuerCache | None = None,
    *,
    secret_absent: bool = False,
) -> Gathered:
    """Read the certificate's Secret and its issuer (the issuer from ``issuers`` if kept).

    ``secret_absent``: the caller knows the certificate is brand new, so its Secret is not
    read (a create that finds one anyway fails with 409 and the next reconcile reads it).
    """
    try:
        secret = None if secret_absent else read_secret(k, namespace, spec.secret_name)
    except ApiException as exc:
        raise RuntimeError(f"reading Secret {namespace}/{spec.secret_name}: {exc.reason}") from None
    contents = (
        None
        if secret is None
        else parse_secret(secret.data, secret.annotations, output_format=spec.output_format)
    )
    loaded, issuer_error, issuer_secret = _issuer(k, spec, now, issuers)
    return Gathered(
        secret,
        contents,
        loaded.authority if loaded else None,
        issuer_error,
        issuer_secret,
        loaded.facts if loaded else None,
    )
