"""What the three routers share: ownership and adoption bookkeeping, host names, and the
read-compute-write loop over the API.

Ownership of a routing object, from its metadata (``ownership``):

- ``CREATED``: dabba made it for this Canary (label ``dabba.io/canary: <canary>`` and an
  ownerReference to the Canary, so deleting the Canary collects it);
- ``ADOPTED``: it was the user's; its original spec is saved in ``ORIGINAL_ANNOTATION`` and it
  carries the label, but no ownerReference: it must survive the Canary's deletion;
- ``FOREIGN``: the user's, not (yet) managed: ``ensure`` adopts it;
- another Canary's label: ``SpecError`` (two Canaries cannot share one routing object).

The original is saved once, on adoption, and never overwritten, so repeated ``ensure`` calls
or an operator restart cannot replace it with a spec dabba already changed.

Pure except for the ``*_custom`` helpers and ``converge`` at the bottom.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from dabba.canary.model import CanarySpec, Weights
from dabba.canary.naming import CANARY_LABEL
from dabba.canary.routers import ORIGINAL_ANNOTATION
from dabba.errors import DabbaError, SpecError
from dabba.k8s import meta, objects
from dabba.k8s.client import Clients

Obj = dict[str, Any]

#: Name prefix of the header-cohort routes/rules dabba inserts; they are rebuilt on every write.
COHORT_PREFIX: Final = "dabba-cohort-"
#: Name of the weighted catch-all route/rule dabba adds when there is no route to the service.
DEFAULT_ROUTE_NAME: Final = "dabba-default"


class RouteNotFoundError(DabbaError, LookupError):
    """The routing object is missing or not managed by this Canary (``ensure`` first)."""


class Ownership(Enum):
    """Who a routing object belongs to, seen from one Canary."""

    CREATED = "created"
    ADOPTED = "adopted"
    FOREIGN = "foreign"

    @property
    def ours(self) -> bool:
        """Managed by this Canary (created or adopted)."""
        return self is not Ownership.FOREIGN


def ownership(obj: Mapping[str, Any], spec: CanarySpec, what: str) -> Ownership:
    """Classify ``obj`` for the Canary ``spec``.

    Raises:
        SpecError: the object carries another Canary's label.
    """
    md = obj.get("metadata") or {}
    label = (md.get("labels") or {}).get(CANARY_LABEL)
    if label is not None and label != spec.name:
        raise SpecError(
            f"{what} {md.get('name')} is managed by Canary {label}; two Canaries cannot "
            "share a routing object (give one of them another service.name)"
        )
    if ORIGINAL_ANNOTATION in (md.get("annotations") or {}):
        return Ownership.ADOPTED
    if label == spec.name or _owner_ref_to(md, spec.name):
        return Ownership.CREATED
    return Ownership.FOREIGN


def _owner_ref_to(md: Mapping[str, Any], canary: str) -> bool:
    return any(
        ref.get("kind") == meta.CANARY_KIND
        and str(ref.get("apiVersion", "")).startswith(f"{meta.GROUP}/")
        and ref.get("name") == canary
        for ref in md.get("ownerReferences") or []
    )


def created_metadata(spec: CanarySpec, owner: Mapping[str, Any], name: str) -> Obj:
    """Metadata of an object dabba creates: our label and an ownerReference to the Canary."""
    return {
        "name": name,
        "namespace": spec.namespace,
        "labels": {CANARY_LABEL: spec.name},
        "ownerReferences": [objects.owner_reference(owner)],
    }


def adopt(obj: Obj, spec: CanarySpec, original: Mapping[str, Any]) -> None:
    """Mark ``obj`` (in place) as adopted: save ``original`` once, add our label."""
    md = obj.setdefault("metadata", {})
    annotations = md.get("annotations") or {}
    # Compact, key-sorted JSON: the annotation is stable across operator versions.
    annotations.setdefault(
        ORIGINAL_ANNOTATION, json.dumps(original, sort_keys=True, separators=(",", ":"))
    )
    md["annotations"] = annotations
    mark(obj, spec)


def mark(obj: Obj, spec: CanarySpec) -> None:
    """Make sure ``obj`` (in place) carries our label (it may have been removed by hand)."""
    md = obj.setdefault("metadata", {})
    labels = md.get("labels") or {}
    labels[CANARY_LABEL] = spec.name
    md["labels"] = labels


def original(obj: Mapping[str, Any]) -> Obj | None:
    """The saved original of an adopted object, or ``None``."""
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(ORIGINAL_ANNOTATION)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def release(obj: Obj) -> None:
    """Remove our marks (in place): the annotation and the label, and empty maps with them."""
    md = obj.setdefault("metadata", {})
    for key, name in (("annotations", ORIGINAL_ANNOTATION), ("labels", CANARY_LABEL)):
        values = md.get(key) or {}
        values.pop(name, None)
        if values:
            md[key] = values
        else:
            md.pop(key, None)


# --------------------------------------------------------------------------------------------
# Names and weights


@dataclass(frozen=True, slots=True)
class Services:
    """The three Service names of a Canary and how to recognise them in host strings."""

    namespace: str
    apex: str
    primary: str
    canary: str

    @classmethod
    def of(cls, spec: CanarySpec) -> Services:
        """The names for ``spec``."""
        s = spec.service
        return cls(spec.namespace, s.name, s.primary_name, s.canary_name)

    @property
    def all(self) -> frozenset[str]:
        """Apex, primary and canary."""
        return frozenset({self.apex, self.primary, self.canary})

    def short(self, host: str) -> str | None:
        """The Service name a host refers to in our namespace, in any of Kubernetes' forms
        (``n``, ``n.ns``, ``n.ns.svc``, ``n.ns.svc.<cluster domain>``); ``None`` otherwise."""
        parts = host.split(".")
        if len(parts) == 1:
            return parts[0]
        if parts[1] == self.namespace and (len(parts) == 2 or parts[2] == "svc"):  # noqa: PLR2004
            return parts[0]
        return None


def proportional(primary: int, canary: int) -> Weights | None:
    """The split two relative weights serve (Istio and Gateway API both treat weights as
    proportions), rounded to whole percent; ``None`` when both are zero or negative."""
    total = primary + canary
    if primary < 0 or canary < 0 or total <= 0:
        return None
    return Weights.for_canary(round(100 * canary / total))


def dedupe(items: Iterable[Any], key: Callable[[Any], Any]) -> list[Any]:
    """``items`` without later duplicates (by ``key``), order kept."""
    seen: set[Any] = set()
    out = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out


def int_or(value: Any, default: int) -> int:
    """``value`` if it is an integer (not a bool), else ``default``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


# --------------------------------------------------------------------------------------------
# I/O over custom resources


@dataclass(frozen=True, slots=True)
class CustomKind:
    """A custom resource type dabba writes as raw dicts."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        """``group/version``."""
        return f"{self.group}/{self.version}"

    @property
    def resource(self) -> str:
        """``plural.group``: the name of its copies in ``dabba.k8s.cache`` (and in metrics)."""
        return f"{self.plural}.{self.group}"


def get_custom(
    k: Clients, kind: CustomKind, namespace: str, name: str, *, fresh: bool = False
) -> Obj | None:
    """The object as a dict, or ``None``: from the watch-fed cache when it holds it (objects
    carrying our label), else (and always when ``fresh``) a GET."""

    def read() -> object:
        return k.custom.get_namespaced_custom_object(
            kind.group, kind.version, namespace, kind.plural, name, _preload_content=False
        )

    if fresh:
        resp = objects.or_none(read)
        return objects.raw_json(resp) if resp is not None else None
    return objects.read_through(k, kind.resource, namespace, name, read)


def delete_custom(k: Clients, kind: CustomKind, obj: Mapping[str, Any]) -> None:
    """Delete exactly this object (uid precondition: never a same-named successor)."""
    md = obj["metadata"]
    objects.forget(k, kind.resource, md["namespace"], md["name"])
    options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=md["uid"]))
    try:
        k.custom.delete_namespaced_custom_object(
            kind.group,
            kind.version,
            md["namespace"],
            kind.plural,
            md["name"],
            body=options,
            _preload_content=False,
        )
    except ApiException as exc:
        # 404: already gone; 409: the uid differs, i.e. someone else's object now.
        if exc.status not in (objects.NOT_FOUND, objects.CONFLICT):
            raise


def converge(
    k: Clients,
    kind: CustomKind,
    namespace: str,
    name: str,
    desired: Callable[[Obj | None], Obj | None],
) -> None:
    """Read the object, let ``desired`` compute what it should be, write only if different.

    ``desired`` gets a private copy of the live object (or ``None``) and returns the full
    object to write, or ``None`` to leave it alone. A create or a replace (carrying the
    ``resourceVersion`` just read) that loses a race gets a 409 and the whole read-compute-
    write runs again, so a concurrent edit by someone else is never overwritten.

    The read comes from the watch-fed cache (``dabba.k8s.cache``): nothing is read from the
    API when nothing needs writing. A copy the watch has not caught up with yet makes the
    replace fail with 409; the copy is then forgotten, and the next attempt GETs.
    """

    def attempt() -> None:
        live = get_custom(k, kind, namespace, name)
        want = desired(copy.deepcopy(live) if live is not None else None)
        if want is None or want == live:
            return
        try:
            if live is None:
                resp = k.custom.create_namespaced_custom_object(
                    kind.group, kind.version, namespace, kind.plural, want, _preload_content=False
                )
            else:
                resp = k.custom.replace_namespaced_custom_object(
                    kind.group,
                    kind.version,
                    namespace,
                    kind.plural,
                    name,
                    want,
                    _preload_content=False,
                )
        except ApiException as exc:
            if exc.status == objects.CONFLICT:
                objects.forget(k, kind.resource, namespace, name)
            raise
        objects.wrote(k, kind.resource, resp)

    objects.retry_on_conflict(attempt)


def restore_custom(k: Clients, kind: CustomKind, spec: CanarySpec, name: str) -> None:
    """Give an adopted object its original spec back without our marks, or delete one dabba
    created; leave anything else (missing, the user's) alone."""
    live = get_custom(k, kind, spec.namespace, name, fresh=True)
    if live is None:
        return
    who = ownership(live, spec, kind.kind)
    if who is Ownership.CREATED:
        delete_custom(k, kind, live)
    elif who is Ownership.ADOPTED:

        def desired(obj: Obj | None) -> Obj | None:
            if obj is None or ownership(obj, spec, kind.kind) is not Ownership.ADOPTED:
                return None
            saved = original(obj)
            if saved is not None:
                obj["spec"] = saved
            release(obj)
            return obj

        converge(k, kind, spec.namespace, name, desired)
