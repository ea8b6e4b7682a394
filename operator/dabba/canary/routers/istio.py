"""Istio router: a VirtualService ``<svc>`` splitting between ``<svc>-primary`` and
``<svc>-canary``, plus a minimal DestinationRule for each of the two hosts.

What dabba writes (a new object, canary at 10 %, one header cohort)::

    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: podinfo, labels: {dabba.io/canary: podinfo}, ownerReferences: [Canary]}
    spec:
      hosts: [podinfo, podinfo.example.com]      # the apex, then service.hosts
      gateways: [istio-system/public]            # service.gateways; absent = mesh only
      http:
      - name: dabba-cohort-0                      # one per analysis.match cohort, canary > 0 only
        match: [{headers: {canary-user: {exact: "true"}}}]
        route: [{destination: {host: podinfo-canary, port: {number: 9898}}, weight: 100}]
      - name: dabba-default
        route:
        - {destination: {host: podinfo-primary, port: {number: 9898}}, weight: 90}
        - {destination: {host: podinfo-canary, port: {number: 9898}}, weight: 10}

Decisions:

- Hosts are short Service names. Istio resolves them in the VirtualService's namespace, which
  is always the Canary's, and short names assume nothing about the cluster domain. Hosts in
  any Kubernetes form (``n.ns.svc.cluster.local`` ...) are recognised when reading.
- dabba owns ``hosts``, ``gateways`` and ``http`` only; every other field (``exportTo``,
  ``tcp``, ``tls``, future ones) and every other annotation or label stays as it is.
- Inside ``http``, a *service route* is one whose destinations all are the apex, primary or
  canary on ``service.port`` (or no port). Every service route gets the weighted pair,
  keeping its match, timeout, retries, rewrite, fault... (Flagger flattens them into one route,
  fluxcd/flagger#673). Other routes are kept untouched, in place. The *default route*, the one
  ``weights()`` reads, is the last service route; if there is none, ``dabba-default`` (a
  catch-all) is appended.
- Header cohorts: in front of each service route, while ``canary > 0``, one route per cohort
  with that route's settings, its matches ANDed with the cohort's headers, all to the canary.
  They are named ``dabba-cohort-<n>`` and rebuilt on every write. Header names are lower-cased
  (Istio requires it); a cohort header replaces a same-named one of the route's own match.
- Weights are read as proportions (Istio normalises them), so ``180/20`` reads as 90/10.
- Adoption (a ``<svc>`` VirtualService that is the user's): its spec is saved once in
  ``dabba.io/original-configuration``, it gets our label but no ownerReference, and dabba only
  widens it: ``hosts`` and ``gateways`` are the union of the Canary's and the original's
  (an original without gateways means ``mesh``, kept when the Canary adds gateways).
- ``restore``: an adopted VirtualService gets its original spec back and loses our marks; one
  dabba created is deleted, and so are the DestinationRules dabba created. A DestinationRule
  named ``<svc>-primary``/``-canary`` that the user already had is never touched.
- Istio's own status (``validationMessages``) is off by default, so ``weights`` trusts the spec.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from dabba.canary.model import PRIMARY_ONLY, CanarySpec, Cohort, Weights
from dabba.canary.routers._shared import (
    COHORT_PREFIX,
    DEFAULT_ROUTE_NAME,
    CustomKind,
    Obj,
    Ownership,
    RouteNotFoundError,
    Services,
    adopt,
    converge,
    created_metadata,
    dedupe,
    get_custom,
    int_or,
    mark,
    original,
    ownership,
    proportional,
    restore_custom,
)
from dabba.k8s.client import Clients

VIRTUAL_SERVICE: Final = CustomKind(
    "networking.istio.io", "v1", "virtualservices", "VirtualService"
)
DESTINATION_RULE: Final = CustomKind(
    "networking.istio.io", "v1", "destinationrules", "DestinationRule"
)
#: The gateway name that means "every sidecar", implied when ``gateways`` is absent.
MESH: Final = "mesh"

# --------------------------------------------------------------------------------------------
# Pure: the VirtualService spec from the Canary, the weights and what is live


def virtual_service_spec(
    spec: CanarySpec,
    weights: Weights,
    live: Mapping[str, Any] | None = None,
    saved: Mapping[str, Any] | None = None,
) -> Obj:
    """The VirtualService spec to write.

    Args:
        spec: the Canary.
        weights: the split of every service route.
        live: the current spec (its other fields and routes are kept), if any.
        saved: the original spec of an adopted object (its hosts and gateways are kept).
    """
    out: Obj = copy.deepcopy(dict(live or {}))
    out["hosts"] = hosts(spec, saved)
    gateways_ = gateways(spec, saved)
    if gateways_:
        out["gateways"] = gateways_
    else:
        out.pop("gateways", None)
    out["http"] = http_routes(out.get("http") or [], spec, weights)
    return out


def hosts(spec: CanarySpec, saved: Mapping[str, Any] | None = None) -> list[str]:
    """The apex, ``service.hosts``, then the original's other hosts (adopted objects)."""
    svc = Services.of(spec)
    theirs = [h for h in (saved or {}).get("hosts") or [] if isinstance(h, str)]
    return dedupe([svc.apex, *spec.service.hosts, *theirs], key=lambda h: svc.short(h) or h)


def gateways(spec: CanarySpec, saved: Mapping[str, Any] | None = None) -> list[str]:
    """``service.gateways``, widened by the original's on adopted objects (never narrowed:
    an original without gateways served the mesh, so ``mesh`` stays)."""
    ours = list(spec.service.gateways)
    if saved is None:
        return ours
    theirs = [g for g in saved.get("gateways") or [] if isinstance(g, str)]
    if not ours:
        return theirs
    return dedupe([*ours, *(theirs or [MESH])], key=lambda g: g)


def http_routes(live: Sequence[Mapping[str, Any]], spec: CanarySpec, weights: Weights) -> list[Obj]:
    """The ``http`` list: the live routes with every service route weighted and preceded by
    its cohort routes (``canary > 0`` only); a default route appended if none routes to us."""
    svc = Services.of(spec)
    kept = [copy.deepcopy(dict(r)) for r in live if not _is_cohort(r)]
    ours = [_is_service_route(r, spec, svc) or r.get("name") == DEFAULT_ROUTE_NAME for r in kept]
    if not any(ours):
        kept.append({"name": DEFAULT_ROUTE_NAME})
        ours.append(True)
    out: list[Obj] = []
    cohorts = 0
    for route, weigh in zip(kept, ours, strict=True):
        if not weigh:
            out.append(route)
            continue
        weighted = {**route, "route": _weighted(route.get("route") or [], spec, svc, weights)}
        if weights.canary > 0:
            for cohort in spec.analysis.match:
                out.append(_cohort_route(weighted, cohort, spec, f"{COHORT_PREFIX}{cohorts}"))
                cohorts += 1
        out.append(weighted)
    return out


def read_weights(vs_spec: Mapping[str, Any], spec: CanarySpec) -> Weights | None:
    """The split of the default route; ``None`` unless it has exactly the primary and the
    canary as destinations (with a positive total weight)."""
    svc = Services.of(spec)
    routes = [
        r
        for r in vs_spec.get("http") or []
        if not _is_cohort(r) and _is_service_route(r, spec, svc)
    ]
    if not routes:
        return None
    by_host: dict[str, int] = {}
    for entry in routes[-1].get("route") or []:
        name = _host(entry, svc)
        if name is None or name in by_host:
            return None
        by_host[name] = int_or(entry.get("weight"), 0)
    if set(by_host) != {svc.primary, svc.canary}:
        return None
    return proportional(by_host[svc.primary], by_host[svc.canary])


def destination_rule(spec: CanarySpec, owner: Mapping[str, Any], host: str) -> Obj:
    """A minimal DestinationRule named after, and for, one of our Services."""
    return {
        "apiVersion": DESTINATION_RULE.api_version,
        "kind": DESTINATION_RULE.kind,
        "metadata": created_metadata(spec, owner, host),
        "spec": {"host": host},
    }


def _host(entry: Mapping[str, Any], svc: Services) -> str | None:
    host = (entry.get("destination") or {}).get("host")
    return svc.short(host) if isinstance(host, str) else None


def _is_cohort(route: Mapping[str, Any]) -> bool:
    return str(route.get("name", "")).startswith(COHORT_PREFIX)


def _is_service_route(route: Mapping[str, Any], spec: CanarySpec, svc: Services) -> bool:
    destinations = route.get("route") or []
    if not destinations:
        return False
    for entry in destinations:
        if _host(entry, svc) not in svc.all:
            return False
        port = ((entry.get("destination") or {}).get("port") or {}).get("number")
        if port is not None and port != spec.service.port:
            return False
    return True


def _destination(name: str, weight: int, spec: CanarySpec, like: Mapping[str, Any]) -> Obj:
    # ``like``: the entry this one replaces; its other keys (``headers``) are kept.
    extra = {k: copy.deepcopy(v) for k, v in like.items() if k not in ("destination", "weight")}
    return {
        **extra,
        "destination": {"host": name, "port": {"number": spec.service.port}},
        "weight": weight,
    }


def _weighted(
    entries: Sequence[Mapping[str, Any]], spec: CanarySpec, svc: Services, weights: Weights
) -> list[Obj]:
    def like(name: str) -> Mapping[str, Any]:
        same = [e for e in entries if _host(e, svc) == name]
        return same[0] if same else (entries[0] if entries else {})

    return [
        _destination(svc.primary, weights.primary, spec, like(svc.primary)),
        _destination(svc.canary, weights.canary, spec, like(svc.canary)),
    ]


def _cohort_route(route: Mapping[str, Any], cohort: Cohort, spec: CanarySpec, name: str) -> Obj:
    # The route's own settings (timeout, retries, rewrite...) apply to its cohort too.
    settings = {
        k: copy.deepcopy(v) for k, v in route.items() if k not in ("name", "match", "route")
    }
    canary_entry = route["route"][1]  # _weighted puts the canary second
    return {
        **settings,
        "name": name,
        "match": [_with_cohort(m, cohort) for m in route.get("match") or [{}]],
        "route": [_destination(spec.service.canary_name, 100, spec, canary_entry)],
    }


def _with_cohort(match: Mapping[str, Any], cohort: Cohort) -> Obj:
    headers = dict(match.get("headers") or {})
    for name, value in cohort.headers:
        headers[name.lower()] = {value.kind: value.value}
    return {**copy.deepcopy(dict(match)), "headers": headers}


def _desired_rule(
    spec: CanarySpec, owner: Mapping[str, Any], host: str
) -> Callable[[Obj | None], Obj | None]:
    def desired(live: Obj | None) -> Obj | None:
        if live is None:
            return destination_rule(spec, owner, host)
        if ownership(live, spec, DESTINATION_RULE.kind) is not Ownership.CREATED:
            return None  # the user's own DestinationRule: theirs to configure
        live["spec"] = {**(live.get("spec") or {}), "host": host}
        mark(live, spec)
        return live

    return desired


# --------------------------------------------------------------------------------------------
# I/O


class IstioRouter:
    """``TrafficRouter`` over a VirtualService and two DestinationRules."""

    def __init__(self, clients: Clients) -> None:
        self._k = clients

    def ensure(self, spec: CanarySpec, owner: Mapping[str, Any]) -> None:
        """Create or adopt ``<svc>`` (keeping a split in place) and the DestinationRules."""
        svc = Services.of(spec)

        def desired(live: Obj | None) -> Obj:
            if live is None:
                return {
                    "apiVersion": VIRTUAL_SERVICE.api_version,
                    "kind": VIRTUAL_SERVICE.kind,
                    "metadata": created_metadata(spec, owner, svc.apex),
                    "spec": virtual_service_spec(spec, PRIMARY_ONLY),
                }
            live_spec = live.get("spec") or {}
            if ownership(live, spec, VIRTUAL_SERVICE.kind) is Ownership.FOREIGN:
                adopt(live, spec, live_spec)
            else:
                mark(live, spec)
            current = read_weights(live_spec, spec) or PRIMARY_ONLY
            live["spec"] = virtual_service_spec(spec, current, live_spec, original(live))
            return live

        converge(self._k, VIRTUAL_SERVICE, spec.namespace, svc.apex, desired)
        for host in (svc.primary, svc.canary):
            converge(
                self._k, DESTINATION_RULE, spec.namespace, host, _desired_rule(spec, owner, host)
            )

    def weights(self, spec: CanarySpec) -> Weights | None:
        """The default route's split; ``None`` if missing, not ours, or not our two hosts."""
        live = get_custom(self._k, VIRTUAL_SERVICE, spec.namespace, spec.service.name)
        if live is None or not ownership(live, spec, VIRTUAL_SERVICE.kind).ours:
            return None
        return read_weights(live.get("spec") or {}, spec)

    def set_weights(self, spec: CanarySpec, weights: Weights) -> None:
        """Weigh every service route; cohort routes only while the canary gets traffic."""

        def desired(live: Obj | None) -> Obj:
            if live is None or not ownership(live, spec, VIRTUAL_SERVICE.kind).ours:
                raise RouteNotFoundError(
                    f"VirtualService {spec.namespace}/{spec.service.name} is missing or not "
                    "managed by this Canary: ensure() it first"
                )
            live["spec"] = virtual_service_spec(
                spec, weights, live.get("spec") or {}, original(live)
            )
            return live

        converge(self._k, VIRTUAL_SERVICE, spec.namespace, spec.service.name, desired)

    def restore(self, spec: CanarySpec) -> None:
        """Original spec back on an adopted VirtualService; delete what dabba created."""
        svc = Services.of(spec)
        restore_custom(self._k, VIRTUAL_SERVICE, spec, svc.apex)
        for host in (svc.primary, svc.canary):
            restore_custom(self._k, DESTINATION_RULE, spec, host)
