"""Gateway API router: an HTTPRoute ``<svc>`` with weighted ``backendRefs`` to
``<svc>-primary`` and ``<svc>-canary`` (Linkerd, Envoy Gateway, Istio, Cilium, Contour...).

What dabba writes (a new object, no ``gatewayRefs``, canary at 10 %, one header cohort)::

    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: podinfo, labels: {dabba.io/canary: podinfo}, ownerReferences: [Canary]}
    spec:
      parentRefs: [{group: "", kind: Service, name: podinfo, port: 9898}]   # GAMMA (mesh)
      rules:
      - name: dabba-cohort-0                # one per analysis.match cohort, canary > 0 only
        matches:
        - path: {type: PathPrefix, value: /}
          headers: [{name: canary-user, type: Exact, value: "true"}]
        backendRefs: [{group: "", kind: Service, name: podinfo-canary, port: 9898, weight: 100}]
      - name: dabba-default
        matches: [{path: {type: PathPrefix, value: /}}]
        backendRefs:
        - {group: "", kind: Service, name: podinfo-primary, port: 9898, weight: 90}
        - {group: "", kind: Service, name: podinfo-canary, port: 9898, weight: 10}

With ``gatewayRefs`` the parents are ``{group: gateway.networking.k8s.io, kind: Gateway,
name, namespace, sectionName}``, the namespace defaulting to the Canary's, and ``hostnames``
are ``service.hosts``. Defaults the API server would add (group, kind, weight, the ``/``
path match, the ``Exact`` header type) are written explicitly, so what is read back equals
what was written and an unchanged route is never rewritten.

Decisions:

- No ``gatewayRefs``: the parent is the apex Service (GAMMA, the Gateway API mesh profile,
  standard since v1.1). An HTTPRoute without parents attaches to nothing and would be inert
  in every implementation; a producer route on the apex is what Linkerd, Istio and Cilium
  implement for east-west traffic. ``port`` restricts it to the Canary's port.
- A ``prefix`` header match has no Gateway API equivalent: it becomes ``RegularExpression``
  ``^<prefix with RE2 metacharacters escaped>.*``, which means the same under both full-match
  (Envoy) and partial-match implementations.
- Rules, cohorts, adoption and restore work as in the Istio router (see ``istio``): every
  *service rule* (all backends are the apex, primary or canary Service on ``service.port``) is
  weighted, a cohort rule per cohort precedes it while ``canary > 0``, other rules and fields
  are kept, ``parentRefs``/``hostnames`` of an adopted route are only ever widened (an
  original without ``hostnames`` matched every host and keeps doing so). Gateway API allows 16
  rules per route: service rules x (cohorts + 1) must fit.
- ``weights`` trusts the spec only once the data plane took it: every parent must report
  ``Accepted=True`` with ``observedGeneration`` equal to ``metadata.generation``; an
  ``Accepted=False`` (or ``Unknown``) for the current generation means ``None`` (hold) until
  someone fixes the route. When parents report nothing for the current generation (no
  controller for that parent, or it is down), ``None`` for at most ``accept_grace`` after
  the route last changed (the newest ``managedFields`` time), then the spec is trusted: the
  state machine treats ``None`` as "hold", and an unbounded hold would freeze a rollout
  (and a rollback) forever on a cluster where nothing writes route status. ``ResolvedRefs``
  is not required: it covers every rule, including the user's, and a broken user rule must
  not stall a canary.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from dabba.canary.model import PRIMARY_ONLY, CanarySpec, Cohort, GatewayRef, StringMatch, Weights
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
from dabba.clock import Clock, SystemClock
from dabba.k8s.client import Clients

HTTP_ROUTE: Final = CustomKind("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute")
GATEWAY_GROUP: Final = "gateway.networking.k8s.io"
#: How long a route change may go without any parent's verdict before the spec is trusted.
#: Why 30 s: controllers write status within about a second of a change, so this only
#: elapses when none is watching; half of the default 60 s interval bounds the stall.
DEFAULT_ACCEPT_GRACE: Final = dt.timedelta(seconds=30)
ROOT_MATCH: Final[Mapping[str, Any]] = {"path": {"type": "PathPrefix", "value": "/"}}

# --------------------------------------------------------------------------------------------
# Pure: the HTTPRoute spec from the Canary, the weights and what is live


def route_spec(
    spec: CanarySpec,
    weights: Weights,
    live: Mapping[str, Any] | None = None,
    saved: Mapping[str, Any] | None = None,
) -> Obj:
    """The HTTPRoute spec to write.

    Args:
        spec: the Canary.
        weights: the split of every service rule.
        live: the current spec (its other fields and rules are kept), if any.
        saved: the original spec of an adopted object (its parents and hostnames are kept).
    """
    out: Obj = copy.deepcopy(dict(live or {}))
    out["parentRefs"] = parent_refs(spec, saved)
    names = hostnames(spec, saved)
    if names:
        out["hostnames"] = names
    else:
        out.pop("hostnames", None)
    out["rules"] = rules(out.get("rules") or [], spec, weights)
    return out


def gateway_parent(ref: GatewayRef, namespace: str) -> Obj:
    """A Gateway parentRef from ``service.gatewayRefs[]``; namespace defaults to the Canary's."""
    parent: Obj = {
        "group": GATEWAY_GROUP,
        "kind": "Gateway",
        "name": ref.name,
        "namespace": ref.namespace or namespace,
    }
    if ref.section_name:
        parent["sectionName"] = ref.section_name
    return parent


def mesh_parent(spec: CanarySpec) -> Obj:
    """The GAMMA parentRef: the apex Service, on the Canary's port."""
    return {"group": "", "kind": "Service", "name": spec.service.name, "port": spec.service.port}


def parent_key(parent: Mapping[str, Any], namespace: str) -> tuple[Any, ...]:
    """What identifies a parent, with the API's defaults applied (for dedupe and status)."""
    return (
        parent.get("group", GATEWAY_GROUP),
        parent.get("kind", "Gateway"),
        parent.get("namespace") or namespace,
        parent.get("name"),
        parent.get("sectionName") or None,
        parent.get("port"),
    )


def parent_refs(spec: CanarySpec, saved: Mapping[str, Any] | None = None) -> list[Obj]:
    """``gatewayRefs`` (or the GAMMA apex parent), widened by an adopted original's."""
    ours = [gateway_parent(r, spec.namespace) for r in spec.service.gateway_refs]
    theirs = [copy.deepcopy(p) for p in (saved or {}).get("parentRefs") or []]
    if not ours and not theirs:
        ours = [mesh_parent(spec)]
    return dedupe([*ours, *theirs], key=lambda p: parent_key(p, spec.namespace))


def hostnames(spec: CanarySpec, saved: Mapping[str, Any] | None = None) -> list[str]:
    """``service.hosts``; on an adopted route, the union with the original's, except that
    an original matching every host (no hostnames) keeps doing so."""
    ours = list(spec.service.hosts)
    if saved is None:
        return ours
    theirs = [h for h in saved.get("hostnames") or [] if isinstance(h, str)]
    if not ours or not theirs:
        return theirs
    return dedupe([*ours, *theirs], key=lambda h: h)


def rules(live: Sequence[Mapping[str, Any]], spec: CanarySpec, weights: Weights) -> list[Obj]:
    """The ``rules`` list: the live rules with every service rule weighted and preceded by
    its cohort rules (``canary > 0`` only); a default rule appended if none routes to us."""
    svc = Services.of(spec)
    kept = [copy.deepcopy(dict(r)) for r in live if not _is_cohort(r)]
    ours = [_is_service_rule(r, spec, svc) or r.get("name") == DEFAULT_ROUTE_NAME for r in kept]
    if not any(ours):
        kept.append({"name": DEFAULT_ROUTE_NAME, "matches": [copy.deepcopy(dict(ROOT_MATCH))]})
        ours.append(True)
    out: list[Obj] = []
    cohorts = 0
    for rule, weigh in zip(kept, ours, strict=True):
        if not weigh:
            out.append(rule)
            continue
        weighted = {**rule, "backendRefs": _weighted(rule.get("backendRefs") or [], spec, weights)}
        if weights.canary > 0:
            for cohort in spec.analysis.match:
                out.append(_cohort_rule(weighted, cohort, spec, f"{COHORT_PREFIX}{cohorts}"))
                cohorts += 1
        out.append(weighted)
    return out


def header_match(name: str, match: StringMatch) -> Obj:
    """A Gateway API header match for one cohort header (``prefix`` as a regex)."""
    if match.kind == "exact":
        return {"name": name, "type": "Exact", "value": match.value}
    if match.kind == "prefix":
        return {"name": name, "type": "RegularExpression", "value": f"^{quote_meta(match.value)}.*"}
    return {"name": name, "type": "RegularExpression", "value": match.value}


def quote_meta(text: str) -> str:
    """Escape RE2's metacharacters (Go's ``regexp.QuoteMeta``); nothing else is touched,
    since RE2 rejects some escapes Python's ``re.escape`` produces."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def read_weights(spec_: Mapping[str, Any], spec: CanarySpec) -> Weights | None:
    """The split of the default rule; ``None`` unless it has exactly the primary and the
    canary as backends (with a positive total weight; an absent weight is 1)."""
    svc = Services.of(spec)
    weighted = [
        r for r in spec_.get("rules") or [] if not _is_cohort(r) and _is_service_rule(r, spec, svc)
    ]
    if not weighted:
        return None
    by_name: dict[str, int] = {}
    for ref in weighted[-1].get("backendRefs") or []:
        name = ref.get("name")
        if not isinstance(name, str) or name in by_name:
            return None
        by_name[name] = int_or(ref.get("weight"), 1)
    if set(by_name) != {svc.primary, svc.canary}:
        return None
    return proportional(by_name[svc.primary], by_name[svc.canary])


def accepted(route: Mapping[str, Any], now: dt.datetime, grace: dt.timedelta) -> bool:
    """Whether the data plane may be assumed to serve the route's current spec.

    True when every parent reports ``Accepted=True`` for ``metadata.generation``, or when no
    parent answered anything else for this generation (``False`` or ``Unknown`` hold) and
    some stayed silent for ``grace`` since the route last changed. A route without parents
    is trusted.
    """
    md = route.get("metadata") or {}
    namespace = str(md.get("namespace", ""))
    parents = (route.get("spec") or {}).get("parentRefs") or []
    if not parents:
        return True
    generation = md.get("generation")
    statuses = (route.get("status") or {}).get("parents") or []
    verdicts: list[bool] = []
    for parent in parents:
        key = parent_key(parent, namespace)
        current = [
            c
            for s in statuses
            if parent_key(s.get("parentRef") or {}, namespace) == key
            for c in s.get("conditions") or []
            if c.get("type") == "Accepted" and c.get("observedGeneration") == generation
        ]
        if any(c.get("status") != "True" for c in current):
            return False
        verdicts.append(bool(current))
    return all(verdicts) or now - last_change(route) >= grace


def last_change(route: Mapping[str, Any]) -> dt.datetime:
    """When the route (not its status) last changed: the newest ``managedFields`` time of
    the main resource, else its creation time."""
    md = route.get("metadata") or {}
    stamps = [md.get("creationTimestamp")] + [
        f.get("time") for f in md.get("managedFields") or [] if not f.get("subresource")
    ]
    parsed = [_parse_time(t) for t in stamps if isinstance(t, str)]
    return max(parsed) if parsed else dt.datetime.min.replace(tzinfo=dt.UTC)


def _parse_time(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _is_cohort(rule: Mapping[str, Any]) -> bool:
    return str(rule.get("name", "")).startswith(COHORT_PREFIX)


def _is_service_rule(rule: Mapping[str, Any], spec: CanarySpec, svc: Services) -> bool:
    refs = rule.get("backendRefs") or []
    return bool(refs) and all(
        ref.get("group", "") == ""
        and ref.get("kind", "Service") == "Service"
        and ref.get("namespace", spec.namespace) == spec.namespace
        and ref.get("name") in svc.all
        and ref.get("port", spec.service.port) == spec.service.port
        for ref in refs
    )


def _backend(name: str, weight: int, spec: CanarySpec, like: Mapping[str, Any]) -> Obj:
    # ``like``: the backendRef this one replaces; its other keys (``filters``) are kept.
    identity = ("group", "kind", "name", "namespace", "port", "weight")
    extra = {k: copy.deepcopy(v) for k, v in like.items() if k not in identity}
    return {
        **extra,
        "group": "",
        "kind": "Service",
        "name": name,
        "port": spec.service.port,
        "weight": weight,
    }


def _weighted(refs: Sequence[Mapping[str, Any]], spec: CanarySpec, weights: Weights) -> list[Obj]:
    def like(name: str) -> Mapping[str, Any]:
        same = [r for r in refs if r.get("name") == name]
        return same[0] if same else (refs[0] if refs else {})

    primary, canary = spec.service.primary_name, spec.service.canary_name
    return [
        _backend(primary, weights.primary, spec, like(primary)),
        _backend(canary, weights.canary, spec, like(canary)),
    ]


def _cohort_rule(rule: Mapping[str, Any], cohort: Cohort, spec: CanarySpec, name: str) -> Obj:
    # The rule's own filters and timeouts apply to its cohort too.
    settings = {
        k: copy.deepcopy(v) for k, v in rule.items() if k not in ("name", "matches", "backendRefs")
    }
    return {
        **settings,
        "name": name,
        "matches": [_with_cohort(m, cohort) for m in rule.get("matches") or [ROOT_MATCH]],
        "backendRefs": [_backend(spec.service.canary_name, 100, spec, rule["backendRefs"][1])],
    }


def _with_cohort(match: Mapping[str, Any], cohort: Cohort) -> Obj:
    names = {name.lower() for name, _ in cohort.headers}
    headers = [h for h in match.get("headers") or [] if str(h.get("name", "")).lower() not in names]
    headers += [header_match(name, value) for name, value in cohort.headers]
    return {**copy.deepcopy(dict(match)), "headers": headers}


# --------------------------------------------------------------------------------------------
# I/O


class GatewayAPIRouter:
    """``TrafficRouter`` over one HTTPRoute."""

    def __init__(
        self,
        clients: Clients,
        *,
        clock: Clock | None = None,
        accept_grace: dt.timedelta = DEFAULT_ACCEPT_GRACE,
    ) -> None:
        self._k = clients
        self._clock: Clock = clock or SystemClock()
        self._grace = accept_grace

    def ensure(self, spec: CanarySpec, owner: Mapping[str, Any]) -> None:
        """Create or adopt ``<svc>``, keeping a split that is in place."""

        def desired(live: Obj | None) -> Obj:
            if live is None:
                return {
                    "apiVersion": HTTP_ROUTE.api_version,
                    "kind": HTTP_ROUTE.kind,
                    "metadata": created_metadata(spec, owner, spec.service.name),
                    "spec": route_spec(spec, PRIMARY_ONLY),
                }
            live_spec = live.get("spec") or {}
            if ownership(live, spec, HTTP_ROUTE.kind) is Ownership.FOREIGN:
                adopt(live, spec, live_spec)
            else:
                mark(live, spec)
            current = read_weights(live_spec, spec) or PRIMARY_ONLY
            live["spec"] = route_spec(spec, current, live_spec, original(live))
            return live

        converge(self._k, HTTP_ROUTE, spec.namespace, spec.service.name, desired)

    def weights(self, spec: CanarySpec) -> Weights | None:
        """The default rule's split once accepted (see the module docstring); else ``None``."""
        live = get_custom(self._k, HTTP_ROUTE, spec.namespace, spec.service.name)
        if live is None or not ownership(live, spec, HTTP_ROUTE.kind).ours:
            return None
        split = read_weights(live.get("spec") or {}, spec)
        if split is None or not accepted(live, self._clock.now(), self._grace):
            return None
        return split

    def set_weights(self, spec: CanarySpec, weights: Weights) -> None:
        """Weigh every service rule; cohort rules only while the canary gets traffic."""

        def desired(live: Obj | None) -> Obj:
            if live is None or not ownership(live, spec, HTTP_ROUTE.kind).ours:
                raise RouteNotFoundError(
                    f"HTTPRoute {spec.namespace}/{spec.service.name} is missing or not managed "
                    "by this Canary: ensure() it first"
                )
            live["spec"] = route_spec(spec, weights, live.get("spec") or {}, original(live))
            return live

        converge(self._k, HTTP_ROUTE, spec.namespace, spec.service.name, desired)

    def restore(self, spec: CanarySpec) -> None:
        """Original spec back on an adopted HTTPRoute; delete one dabba created."""
        restore_custom(self._k, HTTP_ROUTE, spec, spec.service.name)
