"""Where requests go: a pure function from a snapshot of API objects to traffic flows.

Resolution follows what a mesh does:

- a VirtualService (Istio) or HTTPRoute (Gateway API) splits its service's traffic between
  destinations by weight; header-match routes send their cohort to their destination;
- a destination names a Service; the Service's selector picks the Deployments whose pod
  template labels match; a Deployment with no ready replica receives nothing (the destination
  reporter never sees requests that had no endpoint);
- a Service that no routing object covers (the ``kubernetes`` router, or no canary at all)
  sends all its traffic to what its selector matches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ANNOTATION_PREFIX = "simulator.dabba.io/"
DEFAULTS = {"error-rate": 0.0, "latency-ms": 20.0, "rps": 50.0, "header-rps": 5.0}

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Flow:
    """Requests per second from one service to one Deployment, and how they behave."""

    namespace: str
    service: str  # the apex service (routing object name)
    backend: str  # the Service the requests were routed to
    port: int
    deployment: str
    rps: float
    error_rate: float
    latency_ms: float


def behaviour(deployment: Obj) -> dict[str, float]:
    """The simulator annotations of a Deployment's pod template, with defaults."""
    annotations = (
        deployment.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
    )
    out = dict(DEFAULTS)
    for key in DEFAULTS:
        raw = annotations.get(ANNOTATION_PREFIX + key)
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            continue
        if value >= 0:
            out[key] = value
    out["error-rate"] = min(out["error-rate"], 1.0)
    return out


def _ready(deployment: Obj) -> int:
    return int(deployment.get("status", {}).get("readyReplicas") or 0)


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _host_to_service(host: str, namespace: str) -> tuple[str, str]:
    # "svc", "svc.ns", "svc.ns.svc", "svc.ns.svc.cluster.local"
    parts = host.split(".")
    return (parts[1] if len(parts) > 1 else namespace), parts[0]


@dataclass(frozen=True)
class Snapshot:
    deployments: Sequence[Obj]
    services: Sequence[Obj]
    virtualservices: Sequence[Obj] = ()
    httproutes: Sequence[Obj] = ()


def _index(objs: Sequence[Obj]) -> dict[tuple[str, str], Obj]:
    return {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs}


class _Resolver:
    def __init__(self, snap: Snapshot) -> None:
        self.services = _index(snap.services)
        self.deployments_by_ns: dict[str, list[Obj]] = {}
        for d in snap.deployments:
            self.deployments_by_ns.setdefault(d["metadata"]["namespace"], []).append(d)

    def backends(self, namespace: str, service: str) -> list[tuple[Obj, float]]:
        """Ready Deployments behind a Service, with their share of its endpoints."""
        svc = self.services.get((namespace, service))
        if svc is None:
            return []
        selector = svc.get("spec", {}).get("selector") or {}
        matched = [
            d
            for d in self.deployments_by_ns.get(namespace, [])
            if _matches(
                selector,
                d.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {},
            )
            and _ready(d) > 0
        ]
        total = sum(_ready(d) for d in matched)
        return [(d, _ready(d) / total) for d in matched]

    def port(self, namespace: str, service: str, default: int = 80) -> int:
        svc = self.services.get((namespace, service))
        ports = (svc or {}).get("spec", {}).get("ports") or []
        return int(ports[0].get("port", default)) if ports else default


def _flows_to(
    res: _Resolver, namespace: str, apex: str, backend: str, weight: float, *, cohort: bool = False
) -> list[Flow]:
    out = []
    port = res.port(namespace, backend)
    for deployment, share in res.backends(namespace, backend):
        b = behaviour(deployment)
        rps = (b["header-rps"] if cohort else b["rps"]) * weight / 100.0 * share
        if rps <= 0:
            continue
        out.append(
            Flow(
                namespace,
                apex,
                backend,
                port,
                deployment["metadata"]["name"],
                rps,
                b["error-rate"],
                b["latency-ms"],
            )
        )
    return out


def _istio(res: _Resolver, vs: Obj) -> list[Flow]:
    ns, name = vs["metadata"]["namespace"], vs["metadata"]["name"]
    out: list[Flow] = []
    for route in vs.get("spec", {}).get("http") or []:
        destinations = route.get("route") or []
        explicit = any("weight" in d for d in destinations)
        for i, dest in enumerate(destinations):
            # Istio: without weights the single destination takes everything.
            weight = float(dest.get("weight", 0) if explicit else (100 if i == 0 else 0))
            dns, svc = _host_to_service(dest.get("destination", {}).get("host", ""), ns)
            if dns == ns and weight > 0:
                out += _flows_to(res, ns, name, svc, weight, cohort=bool(route.get("match")))
    return out


def _gateway(res: _Resolver, route: Obj) -> list[Flow]:
    ns, name = route["metadata"]["namespace"], route["metadata"]["name"]
    out: list[Flow] = []
    for rule in route.get("spec", {}).get("rules") or []:
        refs = [r for r in rule.get("backendRefs") or [] if r.get("kind", "Service") == "Service"]
        cohort = bool(rule.get("matches")) and any(
            m.get("headers") for m in rule.get("matches") or []
        )
        total = sum(int(r.get("weight", 1)) for r in refs)
        if total <= 0:
            continue
        for ref in refs:
            if ref.get("namespace", ns) != ns:
                continue
            w = 100.0 * int(ref.get("weight", 1)) / total
            if w <= 0:
                continue
            out += _flows_to(res, ns, name, ref["name"], w, cohort=cohort)
    return out


def flows(snap: Snapshot) -> list[Flow]:
    """Every flow of requests in the cluster right now."""
    res = _Resolver(snap)
    out: list[Flow] = []
    covered: set[tuple[str, str]] = set()
    for vs in snap.virtualservices:
        ns = vs["metadata"]["namespace"]
        covered.add((ns, vs["metadata"]["name"]))
        for route in vs.get("spec", {}).get("http") or []:
            for dest in route.get("route") or []:
                covered.add(_host_to_service(dest.get("destination", {}).get("host", ""), ns))
        out += _istio(res, vs)
    for route in snap.httproutes:
        ns = route["metadata"]["namespace"]
        covered.add((ns, route["metadata"]["name"]))
        for rule in route.get("spec", {}).get("rules") or []:
            for ref in rule.get("backendRefs") or []:
                covered.add((ref.get("namespace", ns), ref.get("name", "")))
        out += _gateway(res, route)
    names = set(res.services)
    for ns, name in sorted(names):
        if (ns, name) in covered:
            continue
        # <svc>-primary / <svc>-canary beside an apex <svc> are its backends, not services.
        base = name.removesuffix("-primary").removesuffix("-canary")
        if base != name and (ns, base) in names:
            continue
        out += _flows_to(res, ns, name, name, 100.0)
    return out
