"""Trust bundles: the ConfigMaps a CA publishes, and the certificates that trust it. I/O.

Two jobs for the CA side of a rollover (``rollover.py`` decides, this module reads and writes):

``publish``
    Keep ConfigMap ``spec.trustBundle.configMapName`` with the trusted set (PEM) in every
    namespace the selector picks (omitted: the CA's own namespace; ``{}``: every namespace),
    create it in namespaces as they appear (the handlers watch Namespaces and poke the CA),
    and remove it where the selector no longer applies. The ConfigMaps mirror the CA Secret's
    ``ca.crt``, which is the source of truth. A ConfigMap dabba did not write (no
    ``dabba.io/trust-bundle-source`` naming this CA) is never overwritten or deleted: it is
    reported as a copy that could not be written, and a rollover waits for it.

    No list or watch on ConfigMaps: each copy is read and written by name, and what this
    process last wrote is remembered (:class:`Cache`), so a steady-state reconcile costs one
    label-selected list of Namespaces. Copies are re-read after :data:`VERIFY_AFTER` to repair
    edits, and once per process start every namespace is checked for stale copies.

``holders``
    The certificates in dabba's Secrets (one label-selected list, as the Secret watch uses),
    reduced to what trust needs: which candidate roots each chain reaches, what its ``ca.crt``
    holds, whether this CA issued it and whether the signing CA signed it. Parsed results are
    cached per resourceVersion. Private keys are never read.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from cryptography import x509
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from dabba.certs import pki
from dabba.certs.gather import decode_data
from dabba.certs.model import (
    ANNOTATION_BUNDLE_SOURCE,
    ANNOTATION_ISSUER_KIND,
    ANNOTATION_ISSUER_NAME,
    ANNOTATION_ISSUER_NAMESPACE,
    BUNDLE_LABEL,
    CA_CERT_KEY,
    TLS_CERT_KEY,
    IssuerKind,
    TrustBundleSpec,
)
from dabba.certs.rollover import Copy, Holder
from dabba.certs.store import SECRET_LABEL
from dabba.k8s import objects
from dabba.k8s.client import Clients

#: Namespaces to consider: None for every namespace, else the operator's watched namespaces.
Scope = tuple[str, ...] | None
#: A CA MeshCertificate: (namespace, name).
CaKey = tuple[str, str]

#: Re-read a ConfigMap copy this long after it was last read or written (repairs edits).
VERIFY_AFTER: Final = 300.0
FORBIDDEN: Final = 403
_PARSED_MAX: Final = 20_000


@dataclasses.dataclass(frozen=True)
class _Entry:
    roots: frozenset[str]
    pem: bytes
    name: str
    key: str
    resource_version: str
    checked: float


@dataclasses.dataclass(frozen=True)
class _Parsed:
    chain: tuple[x509.Certificate, ...]
    bundle: frozenset[str] | None
    annotations: Mapping[str, str]


class Cache:
    """What this process knows about bundle copies and parsed Secrets (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._copies: dict[CaKey, dict[str, _Entry]] = {}
        self._scanned: set[CaKey] = set()
        self._parsed: dict[tuple[str, str], _Parsed] = {}
        self._signed: dict[tuple[str, str], bool] = {}

    def copies(self, ca: CaKey) -> dict[str, _Entry]:
        with self._lock:
            return dict(self._copies.get(ca, {}))

    def put(self, ca: CaKey, namespace: str, entry: _Entry | None) -> None:
        with self._lock:
            entries = self._copies.setdefault(ca, {})
            if entry is None:
                entries.pop(namespace, None)
            else:
                entries[namespace] = entry

    def scanned(self, ca: CaKey) -> bool:
        with self._lock:
            return ca in self._scanned

    def mark_scanned(self, ca: CaKey) -> None:
        with self._lock:
            self._scanned.add(ca)

    def forget(self, ca: CaKey) -> None:
        """Drop everything about ``ca`` (deleted, or its trustBundle removed)."""
        with self._lock:
            self._copies.pop(ca, None)
            self._scanned.discard(ca)

    def parsed(self, key: tuple[str, str]) -> _Parsed | None:
        with self._lock:
            return self._parsed.get(key)

    def put_parsed(self, key: tuple[str, str], value: _Parsed) -> None:
        with self._lock:
            if len(self._parsed) > _PARSED_MAX:
                self._parsed.clear()
            self._parsed[key] = value

    def signed(self, certificate: x509.Certificate, signer: x509.Certificate) -> bool:
        """``pki.issued_by``, remembered (signature checks are the costly part)."""
        key = (pki.fingerprint_sha256(certificate), pki.fingerprint_sha256(signer))
        with self._lock:
            known = self._signed.get(key)
        if known is None:
            known = pki.issued_by(certificate, signer)
            with self._lock:
                if len(self._signed) > _PARSED_MAX:
                    self._signed.clear()
                self._signed[key] = known
        return known


# ---------------------------------------------------------------------------------------------
# Namespaces


def _namespaces(k: Clients, selector: str | None = None) -> dict[str, bool]:
    """Namespace name -> whether it is active (not terminating)."""
    kwargs: dict[str, Any] = {"_preload_content": False}
    if selector:
        kwargs["label_selector"] = selector
    items = objects.raw_json(k.core.list_namespace(**kwargs)).get("items", [])
    return {
        item["metadata"]["name"]: (item.get("status") or {}).get("phase") != "Terminating"
        for item in items
    }


def selected_namespaces(
    k: Clients, bundle: TrustBundleSpec, ca_namespace: str, scope: Scope
) -> list[str]:
    """Active namespaces the bundle goes to (within the operator's scope)."""
    selector = bundle.label_selector()
    if selector is None:
        found = [ca_namespace]
    else:
        found = [name for name, active in _namespaces(k, selector).items() if active]
    return sorted(n for n in found if scope is None or n in scope)


# ---------------------------------------------------------------------------------------------
# ConfigMaps


def _source(ca: CaKey) -> str:
    return f"{ca[0]}/{ca[1]}"


def _read(k: Clients, namespace: str, name: str) -> dict[str, Any] | None:
    resp = objects.or_none(
        lambda: k.core.read_namespaced_config_map(name, namespace, _preload_content=False)
    )
    return None if resp is None else objects.raw_json(resp)


def _fingerprints(pem: str | bytes | None) -> frozenset[str] | None:
    if not pem:
        return None
    raw = pem.encode() if isinstance(pem, str) else pem
    try:
        return frozenset(pki.fingerprint_sha256(c) for c in pki.load_certificates(raw))
    except pki.PemError:
        return None


def _body(
    ca: CaKey, bundle: TrustBundleSpec, namespace: str, pem: bytes, rv: str | None
) -> client.V1ConfigMap:
    metadata: dict[str, Any] = {
        "name": bundle.config_map_name,
        "namespace": namespace,
        "labels": {BUNDLE_LABEL: "true"},
        "annotations": {ANNOTATION_BUNDLE_SOURCE: _source(ca)},
    }
    if rv:
        metadata["resourceVersion"] = rv
    return client.V1ConfigMap.model_validate(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "data": {bundle.key: pem.decode()},
        }
    )


def _gone_namespace(exc: ApiException) -> bool:
    """The namespace is being deleted or already gone: not a copy, not an error."""
    body = str(exc.body or "")
    return exc.status == objects.NOT_FOUND or (
        exc.status == FORBIDDEN and "being terminated" in body
    )


def _ensure(  # noqa: PLR0911, PLR0912 - one exit per outcome of a write
    k: Clients,
    cache: Cache,
    ca: CaKey,
    bundle: TrustBundleSpec,
    namespace: str,
    pem: bytes,
    roots: frozenset[str],
    now: float,
) -> Copy | None:
    """Make one copy hold ``pem``; None when the namespace is going away."""
    where = f"{namespace}/{bundle.config_map_name}"
    entry = cache.copies(ca).get(namespace)
    fresh = (
        entry is not None
        and now - entry.checked < VERIFY_AFTER
        and (entry.name, entry.key) == (bundle.config_map_name, bundle.key)
    )
    if fresh and entry is not None and entry.pem == pem:
        return Copy(where, entry.roots)
    rv: str | None = None
    for _attempt in range(3):
        try:
            if fresh and entry is not None:
                rv = entry.resource_version
            else:
                current = _read(k, namespace, bundle.config_map_name)
                if current is not None:
                    source = (current["metadata"].get("annotations") or {}).get(
                        ANNOTATION_BUNDLE_SOURCE
                    )
                    if source != _source(ca):
                        cache.put(ca, namespace, None)
                        owner = f"the trust bundle of {source}" if source else "not dabba's"
                        return Copy(where, None, f"a ConfigMap of that name exists ({owner})")
                    data = current.get("data") or {}
                    rv = str(current["metadata"]["resourceVersion"])
                    if data == {bundle.key: pem.decode()}:
                        cache.put(
                            ca,
                            namespace,
                            _Entry(roots, pem, bundle.config_map_name, bundle.key, rv, now),
                        )
                        return Copy(where, roots)
                else:
                    rv = None
            body = _body(ca, bundle, namespace, pem, rv)
            if rv is None:
                resp = k.core.create_namespaced_config_map(namespace, body, _preload_content=False)
            else:
                resp = k.core.replace_namespaced_config_map(
                    bundle.config_map_name, namespace, body, _preload_content=False
                )
            new_rv = str(objects.raw_json(resp)["metadata"]["resourceVersion"])
            cache.put(
                ca, namespace, _Entry(roots, pem, bundle.config_map_name, bundle.key, new_rv, now)
            )
            return Copy(where, roots)
        except ApiException as exc:
            replacing = rv is not None
            if exc.status == objects.CONFLICT or (replacing and exc.status == objects.NOT_FOUND):
                fresh = False  # changed, created or deleted since: read again
                continue
            if _gone_namespace(exc):
                cache.put(ca, namespace, None)
                return None
            cache.put(ca, namespace, None)
            return Copy(where, None, _reason(exc))
    return Copy(where, None, "kept changing while being written")


def _reason(exc: ApiException) -> str:
    # The API's message names the quota, the missing permission, …; never key material.
    try:
        message = json.loads(exc.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or exc.reason or exc.status)


def _remove(k: Clients, ca: CaKey, namespace: str, name: str) -> None:
    """Delete the copy in ``namespace`` if this CA wrote it."""
    current = _read(k, namespace, name)
    if current is None:
        return
    source = (current["metadata"].get("annotations") or {}).get(ANNOTATION_BUNDLE_SOURCE)
    if source != _source(ca):
        return
    try:
        k.core.delete_namespaced_config_map(
            name,
            namespace,
            body=client.V1DeleteOptions(
                preconditions=client.V1Preconditions(
                    resource_version=current["metadata"]["resourceVersion"]
                )
            ),
        )
    except ApiException as exc:
        if exc.status not in (objects.NOT_FOUND, objects.CONFLICT):
            raise


def publish(
    k: Clients,
    cache: Cache,
    ca: CaKey,
    bundle: TrustBundleSpec,
    pem: bytes,
    scope: Scope,
) -> tuple[Copy, ...]:
    """Every selected namespace holds ``pem``; stale copies of this CA are removed.

    Returns one :class:`Copy` per selected namespace (namespaces being deleted are left out).
    """
    now = time.monotonic()
    roots = _fingerprints(pem) or frozenset()
    selected = selected_namespaces(k, bundle, ca[0], scope)
    if not cache.scanned(ca):
        # Once per process: copies left where the selector no longer applies (it changed, or
        # a namespace's labels did, while no dabba was running).
        others = [n for n in _namespaces(k) if n not in selected and (scope is None or n in scope)]
        for namespace in others:
            _remove(k, ca, namespace, bundle.config_map_name)
        cache.mark_scanned(ca)
    copies = []
    for namespace in selected:
        copy = _ensure(k, cache, ca, bundle, namespace, pem, roots, now)
        if copy is not None:
            copies.append(copy)
    for namespace, entry in cache.copies(ca).items():
        if namespace not in selected or entry.name != bundle.config_map_name:
            _remove(k, ca, namespace, entry.name)
            cache.put(ca, namespace, None)
    return tuple(copies)


def withdraw(k: Clients, cache: Cache, ca: CaKey, name: str | None, scope: Scope) -> None:
    """Remove every copy this CA wrote (it was deleted, or its trustBundle was removed).

    With ``name`` (the ConfigMap name from the deleted object's spec), every namespace is
    checked; without it, only the copies this process knows of.
    """
    known = cache.copies(ca)
    for namespace, entry in known.items():
        _remove(k, ca, namespace, entry.name)
    if name:
        for namespace in sorted(_namespaces(k)):
            if namespace not in known and (scope is None or namespace in scope):
                _remove(k, ca, namespace, name)
    cache.forget(ca)


# ---------------------------------------------------------------------------------------------
# Certificates that trust this CA


def _secret_items(k: Clients, scope: Scope) -> Iterable[Mapping[str, Any]]:
    if scope is None:
        resp = k.core.list_secret_for_all_namespaces(
            label_selector=SECRET_LABEL, _preload_content=False
        )
        yield from objects.raw_json(resp).get("items", [])
        return
    for namespace in scope:
        resp = k.core.list_namespaced_secret(
            namespace, label_selector=SECRET_LABEL, _preload_content=False
        )
        yield from objects.raw_json(resp).get("items", [])


def _parse(item: Mapping[str, Any]) -> _Parsed:
    md = item.get("metadata") or {}
    raw = item.get("data") or {}
    # Decode the two public keys only; tls.key is never touched.
    data = decode_data({key: raw[key] for key in (TLS_CERT_KEY, CA_CERT_KEY) if key in raw})
    try:
        chain = pki.load_certificates(data.get(TLS_CERT_KEY, b""))
    except pki.PemError:
        chain = ()
    return _Parsed(chain, _fingerprints(data.get(CA_CERT_KEY)), md.get("annotations") or {})


def holders(
    k: Clients,
    cache: Cache,
    scope: Scope,
    *,
    ca: CaKey,
    exclude: tuple[str, str],
    candidates: Sequence[x509.Certificate],
    signer: x509.Certificate | None,
) -> tuple[Holder, ...]:
    """Every live-or-not certificate in dabba's Secrets that chains to a candidate root.

    Args:
        ca: the CA MeshCertificate (namespace, name), to recognise its direct leaves.
        exclude: the CA's own Secret (namespace, name).
        candidates: the roots in play (trusted set, published, current, next).
        signer: the CA's current signing certificate (None: none usable).
    """
    out = []
    for item in _secret_items(k, scope):
        md = item.get("metadata") or {}
        where = (str(md.get("namespace", "")), str(md.get("name", "")))
        if where == exclude:
            continue
        key = (f"{where[0]}/{where[1]}", f"{md.get('uid')}/{md.get('resourceVersion')}")
        parsed = cache.parsed(key)
        if parsed is None:
            parsed = _parse(item)
            cache.put_parsed(key, parsed)
        if not parsed.chain:
            continue
        reached = _reached(cache, parsed.chain, candidates)
        if not reached:
            continue
        annotations = parsed.annotations
        direct = (
            annotations.get(ANNOTATION_ISSUER_KIND) == IssuerKind.MESH_CERTIFICATE
            and annotations.get(ANNOTATION_ISSUER_NAME) == ca[1]
            and annotations.get(ANNOTATION_ISSUER_NAMESPACE) == ca[0]
        )
        leaf = parsed.chain[0]
        out.append(
            Holder(
                name=key[0],
                not_after=leaf.not_valid_after_utc,
                chains_to=reached,
                bundle=parsed.bundle,
                direct=direct,
                on_current=signer is not None and cache.signed(leaf, signer),
            )
        )
    return tuple(out)


def _reached(
    cache: Cache, chain: Sequence[x509.Certificate], candidates: Sequence[x509.Certificate]
) -> frozenset[str]:
    top = chain[-1]
    found = set()
    for candidate in candidates:
        fingerprint = pki.fingerprint_sha256(candidate)
        if fingerprint == pki.fingerprint_sha256(top) or (
            candidate.subject == top.issuer and cache.signed(top, candidate)
        ):
            found.add(fingerprint)
    return frozenset(found)
