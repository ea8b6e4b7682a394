"""The routers and workloads read through the watch-fed cache (issue 8): a steady tick reads
nothing from the API, a write goes through to the cache, a stale copy costs a 409 and a GET,
never a lost update."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from dabba.canary import handlers, workloads
from dabba.canary.model import PRIMARY_ONLY, Weights
from dabba.canary.naming import CANARY_LABEL
from dabba.canary.routers.gatewayapi import HTTP_ROUTE
from dabba.canary.routers.istio import DESTINATION_RULE, VIRTUAL_SERVICE, IstioRouter
from dabba.k8s.cache import ObjectCache, has_label
from dabba.k8s.client import Clients
from tests.unit.canary.routers.specs import canary_spec

SPEC = canary_spec()
OWNER = {
    "apiVersion": "dabba.io/v1alpha1",
    "kind": "Canary",
    "metadata": {"name": "podinfo", "namespace": SPEC.namespace, "uid": "u-1"},
}


@dataclass
class Raw:
    data: bytes


def raw(obj: dict[str, Any]) -> Raw:
    return Raw(json.dumps(obj).encode())


@dataclass
class FakeCustom:
    """An API server of custom objects that counts requests and checks resourceVersions."""

    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    rv: int = 100

    def _store(self, plural: str, ns: str, body: dict[str, Any]) -> Raw:
        self.rv += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.rv)
        body["metadata"].setdefault("uid", f"uid-{self.rv}")
        self.objects[plural, ns, body["metadata"]["name"]] = body
        return raw(body)

    def get_namespaced_custom_object(
        self, group: str, version: str, ns: str, plural: str, name: str, **_: Any
    ) -> Raw:
        self.calls.append(f"get {plural}")
        if (plural, ns, name) not in self.objects:
            raise ApiException(status=404)
        return raw(self.objects[plural, ns, name])

    def create_namespaced_custom_object(
        self, group: str, version: str, ns: str, plural: str, body: dict[str, Any], **_: Any
    ) -> Raw:
        self.calls.append(f"create {plural}")
        if (plural, ns, body["metadata"]["name"]) in self.objects:
            raise ApiException(status=409)
        return self._store(plural, ns, body)

    def replace_namespaced_custom_object(
        self,
        group: str,
        version: str,
        ns: str,
        plural: str,
        name: str,
        body: dict[str, Any],
        **_: Any,
    ) -> Raw:
        self.calls.append(f"update {plural}")
        live = self.objects[plural, ns, name]
        if body["metadata"].get("resourceVersion") != live["metadata"]["resourceVersion"]:
            raise ApiException(status=409)
        return self._store(plural, ns, body)

    def edit(self, plural: str, name: str, change: Any) -> dict[str, Any]:
        """Someone else changes the object (the watch has not told the cache yet)."""
        obj = copy.deepcopy(self.objects[plural, SPEC.namespace, name])
        change(obj)
        self._store(plural, SPEC.namespace, obj)
        return self.objects[plural, SPEC.namespace, name]


def clients(custom: FakeCustom, cache: ObjectCache | None) -> Clients:
    return Clients(
        api=None,  # type: ignore[arg-type]
        core=None,  # type: ignore[arg-type]
        apps=None,  # type: ignore[arg-type]
        custom=custom,  # type: ignore[arg-type]
        autoscaling=None,  # type: ignore[arg-type]
        cache=cache,
    )


def routing_cache() -> ObjectCache:
    cache = ObjectCache()
    for kind in (VIRTUAL_SERVICE, DESTINATION_RULE):
        cache.serve(kind.resource, has_label(CANARY_LABEL))
    return cache


def test_a_steady_tick_reads_nothing_from_the_api() -> None:
    custom = FakeCustom()
    router = IstioRouter(clients(custom, routing_cache()))
    router.ensure(SPEC, OWNER)  # first time: misses, then creates (written through)
    assert sorted(custom.calls) == sorted(
        ["get virtualservices", "create virtualservices"]
        + ["get destinationrules", "create destinationrules"] * 2
    )
    custom.calls.clear()
    for _ in range(3):
        assert router.weights(SPEC) == PRIMARY_ONLY
        router.ensure(SPEC, OWNER)
    assert custom.calls == []
    router.set_weights(SPEC, Weights.for_canary(10))
    assert custom.calls == ["update virtualservices"]
    assert router.weights(SPEC) == Weights.for_canary(10)  # its own write, no GET
    assert custom.calls == ["update virtualservices"]


def test_without_a_cache_every_read_is_a_get() -> None:
    custom = FakeCustom()
    router = IstioRouter(clients(custom, None))
    router.ensure(SPEC, OWNER)
    custom.calls.clear()
    router.weights(SPEC)
    router.ensure(SPEC, OWNER)
    assert custom.calls.count("get virtualservices") == 2
    assert custom.calls.count("get destinationrules") == 2


def test_drift_the_watch_delivered_is_seen_and_corrected() -> None:
    custom = FakeCustom()
    cache = routing_cache()
    router = IstioRouter(clients(custom, cache))
    router.ensure(SPEC, OWNER)
    router.set_weights(SPEC, Weights.for_canary(10))

    def drift(vs: dict[str, Any]) -> None:
        vs["spec"]["http"][-1]["route"][0]["weight"] = 50
        vs["spec"]["http"][-1]["route"][1]["weight"] = 50

    edited = custom.edit("virtualservices", "podinfo", drift)
    cache.put(VIRTUAL_SERVICE.resource, edited)  # the watch event
    custom.calls.clear()
    assert router.weights(SPEC) == Weights.for_canary(50)
    router.set_weights(SPEC, Weights.for_canary(10))
    assert custom.calls == ["update virtualservices"]
    assert router.weights(SPEC) == Weights.for_canary(10)


def test_a_stale_copy_costs_a_conflict_and_a_get_never_a_lost_update() -> None:
    custom = FakeCustom()
    router = IstioRouter(clients(custom, routing_cache()))
    router.ensure(SPEC, OWNER)

    def label(vs: dict[str, Any]) -> None:
        vs["metadata"]["labels"]["team"] = "payments"

    custom.edit("virtualservices", "podinfo", label)  # the watch has not delivered it yet
    custom.calls.clear()
    router.set_weights(SPEC, Weights.for_canary(25))
    assert custom.calls == [
        "update virtualservices",
        "get virtualservices",
        "update virtualservices",
    ]
    live = custom.objects["virtualservices", SPEC.namespace, "podinfo"]
    assert live["metadata"]["labels"]["team"] == "payments"
    assert router.weights(SPEC) == Weights.for_canary(25)


def test_a_deleted_routing_object_is_recreated() -> None:
    custom = FakeCustom()
    cache = routing_cache()
    router = IstioRouter(clients(custom, cache))
    router.ensure(SPEC, OWNER)
    gone = custom.objects.pop(("destinationrules", SPEC.namespace, "podinfo-canary"))
    cache.deleted(DESTINATION_RULE.resource, gone)  # the watch event
    custom.calls.clear()
    router.ensure(SPEC, OWNER)
    assert custom.calls == ["get destinationrules", "create destinationrules"]


@pytest.mark.parametrize(
    ("index", "kind"), [(0, VIRTUAL_SERVICE), (1, DESTINATION_RULE), (2, HTTP_ROUTE)]
)
def test_the_handlers_feed_the_caches_the_routers_read(index: int, kind: Any) -> None:
    group, version, plural = handlers.ROUTING_KINDS[index]
    assert (group, version, plural) == (kind.group, kind.version, kind.plural)
    assert f"{plural}.{group}" == kind.resource


def test_services_are_read_through_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    service = {
        "metadata": {
            "name": "podinfo-canary",
            "namespace": SPEC.namespace,
            "resourceVersion": "7",
            "labels": {CANARY_LABEL: "podinfo"},
        },
        "spec": {"selector": {"app": "podinfo"}},
    }

    class Core:
        def read_namespaced_service(self, name: str, namespace: str, **_: Any) -> Raw:
            reads.append(name)
            return raw(service)

    cache = ObjectCache()
    cache.serve(workloads.SERVICES, has_label(CANARY_LABEL))
    k = Clients(None, Core(), None, None, None, cache)  # type: ignore[arg-type]
    assert workloads.read_service(k, SPEC.namespace, "podinfo-canary") == service
    assert workloads.read_service(k, SPEC.namespace, "podinfo-canary") == service
    assert reads == ["podinfo-canary"]  # the GET's answer was kept
