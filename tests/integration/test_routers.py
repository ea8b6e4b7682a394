"""The three traffic routers against a real kube-apiserver with the real Istio and Gateway API
CRD schemas (every object the routers write must pass them).

Nothing runs an Istio or Gateway API controller here, so the Gateway API tests play the
controller themselves by writing ``status.parents`` on the status subresource.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from dabba.canary.model import PRIMARY_ONLY, CanarySpec, Weights
from dabba.canary.naming import CANARY_LABEL
from dabba.canary.routers import ORIGINAL_ANNOTATION, router_for
from dabba.canary.routers import _shared as shared
from dabba.canary.routers._shared import RouteNotFoundError
from dabba.canary.routers.gatewayapi import DEFAULT_ACCEPT_GRACE, HTTP_ROUTE, GatewayAPIRouter
from dabba.canary.routers.istio import DESTINATION_RULE, VIRTUAL_SERVICE, IstioRouter
from dabba.canary.routers.kubernetes import KubernetesRouter
from dabba.clock import FrozenClock
from dabba.errors import SpecError
from dabba.k8s.client import Clients, clients
from localcluster import cluster as lc
from tests.unit.canary.routers.specs import COHORTS, canary_spec

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
MERGE = "application/merge-patch+json"


# --------------------------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture(scope="module")
def k(cluster: lc.Cluster) -> Clients:
    return clients(kubeconfig=str(cluster.kubeconfig))


@pytest.fixture
def owner(k: Clients, namespace: str) -> Obj:
    """The Canary that owns what the routers create. Its own target does not exist, so an
    operator that happens to run against this cluster leaves everything here alone."""
    body = {
        "apiVersion": "dabba.io/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": namespace},
        "spec": {"targetRef": {"name": "owner-only"}, "service": {"port": 9898}},
    }
    created = k.custom.create_namespaced_custom_object(
        "dabba.io", "v1alpha1", namespace, "canaries", body
    )
    return dict(created)  # type: ignore[arg-type]


def get(k: Clients, kind: shared.CustomKind, namespace: str, name: str) -> Obj | None:
    return shared.get_custom(k, kind, namespace, name)


def must_get(k: Clients, kind: shared.CustomKind, namespace: str, name: str) -> Obj:
    obj = get(k, kind, namespace, name)
    assert obj is not None, f"{kind.kind} {name} not found"
    return obj


def create(k: Clients, kind: shared.CustomKind, namespace: str, body: Obj) -> Obj:
    body = {"apiVersion": kind.api_version, "kind": kind.kind, **body}
    k.custom.create_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, body)
    return must_get(k, kind, namespace, body["metadata"]["name"])


def merge_patch(k: Clients, kind: shared.CustomKind, namespace: str, name: str, patch: Obj) -> None:
    k.custom.patch_namespaced_custom_object(
        kind.group, kind.version, namespace, kind.plural, name, patch, _content_type=MERGE
    )


def owned_by(obj: Obj, owner: Obj) -> bool:
    refs = obj["metadata"].get("ownerReferences") or []
    return [r["uid"] for r in refs] == [owner["metadata"]["uid"]]


def labels(obj: Obj) -> dict[str, str]:
    return dict(obj["metadata"].get("labels") or {})


def annotations(obj: Obj) -> dict[str, str]:
    return dict(obj["metadata"].get("annotations") or {})


def eventually(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


# --------------------------------------------------------------------------------------------
# Istio


def vs_routes(k: Clients, namespace: str) -> list[Obj]:
    return list(must_get(k, VIRTUAL_SERVICE, namespace, "podinfo")["spec"]["http"])


def route_names(routes: list[Obj]) -> list[str | None]:
    return [r.get("name") for r in routes]


def test_istio_creates_virtual_service_and_rules_at_100_0(
    k: Clients, namespace: str, owner: Obj
) -> None:
    spec = canary_spec(
        namespace, match=COHORTS, service={"hosts": ["podinfo.example.com"], "gateways": ["gw"]}
    )
    router = IstioRouter(k)
    router.ensure(spec, owner)

    vs = must_get(k, VIRTUAL_SERVICE, namespace, "podinfo")
    assert labels(vs) == {CANARY_LABEL: "podinfo"}
    assert owned_by(vs, owner)
    assert vs["spec"]["hosts"] == ["podinfo", "podinfo.example.com"]
    assert vs["spec"]["gateways"] == ["gw"]
    assert route_names(vs["spec"]["http"]) == ["dabba-default"], "no cohorts at canary 0"
    assert router.weights(spec) == PRIMARY_ONLY
    for name in ("podinfo-primary", "podinfo-canary"):
        rule = must_get(k, DESTINATION_RULE, namespace, name)
        assert rule["spec"] == {"host": name}
        assert labels(rule) == {CANARY_LABEL: "podinfo"}
        assert owned_by(rule, owner)


def test_istio_weights_read_back_and_cohorts_only_while_canary_has_traffic(
    k: Clients, namespace: str, owner: Obj
) -> None:
    spec = canary_spec(namespace, match=COHORTS)
    router = IstioRouter(k)
    router.ensure(spec, owner)

    router.set_weights(spec, Weights(90, 10))
    assert router.weights(spec) == Weights(90, 10)
    routes = vs_routes(k, namespace)
    assert route_names(routes) == ["dabba-cohort-0", "dabba-cohort-1", "dabba-default"]
    assert routes[0]["match"] == [{"headers": {"canary-user": {"exact": "true"}}}]
    assert routes[1]["match"] == [
        {"headers": {"x-build": {"prefix": "v2."}, "x-region": {"regex": "eu-.*"}}}
    ]
    assert routes[0]["route"] == [
        {"destination": {"host": "podinfo-canary", "port": {"number": 9898}}, "weight": 100}
    ]

    router.set_weights(spec, Weights(0, 100))
    assert router.weights(spec) == Weights(0, 100)
    assert len(vs_routes(k, namespace)) == 3

    router.set_weights(spec, PRIMARY_ONLY)
    assert router.weights(spec) == PRIMARY_ONLY
    assert route_names(vs_routes(k, namespace)) == ["dabba-default"]


def test_istio_is_idempotent(k: Clients, namespace: str, owner: Obj) -> None:
    spec = canary_spec(namespace, match=COHORTS)
    router = IstioRouter(k)
    router.ensure(spec, owner)
    version = must_get(k, VIRTUAL_SERVICE, namespace, "podinfo")["metadata"]["resourceVersion"]
    rule_version = must_get(k, DESTINATION_RULE, namespace, "podinfo-primary")["metadata"][
        "resourceVersion"
    ]
    router.ensure(spec, owner)
    assert must_get(k, VIRTUAL_SERVICE, namespace, "podinfo")["metadata"]["resourceVersion"] == (
        version
    )
    assert (
        must_get(k, DESTINATION_RULE, namespace, "podinfo-primary")["metadata"]["resourceVersion"]
        == rule_version
    )

    router.set_weights(spec, Weights(75, 25))
    version = must_get(k, VIRTUAL_SERVICE, namespace, "podinfo")["metadata"]["resourceVersion"]
    router.set_weights(spec, Weights(75, 25))
    router.ensure(spec, owner)  # keeps the split in place
    vs = must_get(k, VIRTUAL_SERVICE, namespace, "podinfo")
    assert vs["metadata"]["resourceVersion"] == version
    assert router.weights(spec) == Weights(75, 25)


def test_istio_sees_a_hand_edit_and_ensure_keeps_it(k: Clients, namespace: str, owner: Obj) -> None:
    spec = canary_spec(namespace)
    router = IstioRouter(k)
    router.ensure(spec, owner)
    router.set_weights(spec, Weights(90, 10))

    routes = vs_routes(k, namespace)
    routes[-1]["route"][0]["weight"] = 70
    routes[-1]["route"][1]["weight"] = 30
    merge_patch(k, VIRTUAL_SERVICE, namespace, "podinfo", {"spec": {"http": routes}})
    assert router.weights(spec) == Weights(70, 30)

    router.ensure(spec, owner)
    assert router.weights(spec) == Weights(70, 30), "ensure does not change the split"
    router.set_weights(spec, Weights(90, 10))
    assert router.weights(spec) == Weights(90, 10)


def user_virtual_service(namespace: str) -> Obj:
    return {
        "metadata": {
            "name": "podinfo",
            "labels": {"team": "payments"},
            "annotations": {"owner": "someone"},
        },
        "spec": {
            "hosts": ["podinfo", "podinfo.example.com"],
            "gateways": ["istio-system/public"],
            "exportTo": ["."],
            "http": [
                {
                    "name": "api",
                    "match": [{"uri": {"prefix": "/api"}}],
                    "route": [{"destination": {"host": "podinfo"}}],
                    "timeout": "5s",
                    "retries": {"attempts": 3, "perTryTimeout": "1s"},
                },
                {
                    "name": "legacy",
                    "match": [{"uri": {"prefix": "/legacy"}}],
                    "route": [{"destination": {"host": "legacy.other.svc.cluster.local"}}],
                },
                {"route": [{"destination": {"host": f"podinfo.{namespace}.svc.cluster.local"}}]},
            ],
            "tcp": [
                {
                    "match": [{"port": 31400}],
                    "route": [{"destination": {"host": "podinfo", "port": {"number": 31400}}}],
                }
            ],
        },
    }


def test_istio_adopts_a_user_virtual_service_and_restores_it_exactly(
    k: Clients, namespace: str, owner: Obj
) -> None:
    before = create(k, VIRTUAL_SERVICE, namespace, user_virtual_service(namespace))
    spec = canary_spec(namespace, match=COHORTS[:1])
    router = IstioRouter(k)
    assert router.weights(spec) is None, "not ours before ensure"

    router.ensure(spec, owner)
    vs = must_get(k, VIRTUAL_SERVICE, namespace, "podinfo")
    assert json.loads(annotations(vs)[ORIGINAL_ANNOTATION]) == before["spec"]
    assert labels(vs) == {"team": "payments", CANARY_LABEL: "podinfo"}
    assert not vs["metadata"].get("ownerReferences"), "adopted objects outlive the Canary"
    assert vs["spec"]["exportTo"] == ["."]
    assert vs["spec"]["tcp"] == before["spec"]["tcp"]
    assert vs["spec"]["gateways"] == ["istio-system/public"]
    api, legacy, default = vs["spec"]["http"]
    assert (api["name"], api["timeout"], api["retries"]) == (
        "api",
        "5s",
        before["spec"]["http"][0]["retries"],
    )
    assert [d["destination"]["host"] for d in api["route"]] == ["podinfo-primary", "podinfo-canary"]
    assert legacy == before["spec"]["http"][1]
    assert default == {
        "route": [
            {"destination": {"host": "podinfo-primary", "port": {"number": 9898}}, "weight": 100},
            {"destination": {"host": "podinfo-canary", "port": {"number": 9898}}, "weight": 0},
        ]
    }
    assert router.weights(spec) == PRIMARY_ONLY

    router.set_weights(spec, Weights(80, 20))
    assert router.weights(spec) == Weights(80, 20)
    routes = vs_routes(k, namespace)
    assert route_names(routes) == ["dabba-cohort-0", "api", "legacy", "dabba-cohort-1", None]
    assert routes[0]["match"] == [
        {"uri": {"prefix": "/api"}, "headers": {"canary-user": {"exact": "true"}}}
    ]
    assert routes[0]["timeout"] == "5s", "the cohort keeps its route's settings"
    assert routes[1]["route"][1]["weight"] == 20

    router.restore(spec)
    after = must_get(k, VIRTUAL_SERVICE, namespace, "podinfo")
    assert after["spec"] == before["spec"]
    assert after["metadata"].get("labels") == before["metadata"]["labels"]
    assert after["metadata"].get("annotations") == before["metadata"]["annotations"]
    assert get(k, DESTINATION_RULE, namespace, "podinfo-primary") is None
    assert get(k, DESTINATION_RULE, namespace, "podinfo-canary") is None


def test_istio_adopted_object_survives_the_canary_and_created_rules_do_not(
    k: Clients, namespace: str, owner: Obj
) -> None:
    create(k, VIRTUAL_SERVICE, namespace, user_virtual_service(namespace))
    spec = canary_spec(namespace)
    IstioRouter(k).ensure(spec, owner)

    k.custom.delete_namespaced_custom_object(
        "dabba.io", "v1alpha1", namespace, "canaries", "podinfo", propagation_policy="Background"
    )
    eventually(
        "the garbage collector to delete the DestinationRules",
        lambda: get(k, DESTINATION_RULE, namespace, "podinfo-primary") is None,
    )
    assert get(k, VIRTUAL_SERVICE, namespace, "podinfo") is not None


def test_istio_restore_deletes_what_it_created(k: Clients, namespace: str, owner: Obj) -> None:
    spec = canary_spec(namespace)
    router = IstioRouter(k)
    router.ensure(spec, owner)
    router.restore(spec)
    assert get(k, VIRTUAL_SERVICE, namespace, "podinfo") is None
    assert get(k, DESTINATION_RULE, namespace, "podinfo-primary") is None
    assert get(k, DESTINATION_RULE, namespace, "podinfo-canary") is None
    router.restore(spec)  # nothing left: still fine
    assert router.weights(spec) is None


def test_istio_leaves_a_user_destination_rule_alone(k: Clients, namespace: str, owner: Obj) -> None:
    before = create(
        k,
        DESTINATION_RULE,
        namespace,
        {
            "metadata": {"name": "podinfo-primary"},
            "spec": {
                "host": "podinfo-primary",
                "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 10}}},
            },
        },
    )
    spec = canary_spec(namespace)
    router = IstioRouter(k)
    router.ensure(spec, owner)
    router.restore(spec)
    after = must_get(k, DESTINATION_RULE, namespace, "podinfo-primary")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert get(k, DESTINATION_RULE, namespace, "podinfo-canary") is None


def test_istio_refuses_another_canarys_virtual_service(
    k: Clients, namespace: str, owner: Obj
) -> None:
    body = user_virtual_service(namespace)
    body["metadata"]["labels"] = {CANARY_LABEL: "someone-else"}
    create(k, VIRTUAL_SERVICE, namespace, body)
    with pytest.raises(SpecError, match="managed by Canary someone-else"):
        IstioRouter(k).ensure(canary_spec(namespace), owner)


def test_istio_set_weights_needs_ensure_first(k: Clients, namespace: str) -> None:
    with pytest.raises(RouteNotFoundError, match="ensure"):
        IstioRouter(k).set_weights(canary_spec(namespace), Weights(90, 10))


def test_a_concurrent_edit_is_retried_not_lost(
    k: Clients, namespace: str, owner: Obj, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = canary_spec(namespace)
    router = IstioRouter(k)
    router.ensure(spec, owner)
    real_get = shared.get_custom
    edits: list[int] = []

    def racing_get(*args: Any) -> Obj | None:
        obj = real_get(*args)
        if not edits:  # someone edits right after our first read
            edits.append(1)
            merge_patch(
                k, VIRTUAL_SERVICE, namespace, "podinfo", {"metadata": {"labels": {"x": "y"}}}
            )
        return obj

    monkeypatch.setattr(shared, "get_custom", racing_get)
    router.set_weights(spec, Weights(95, 5))
    monkeypatch.undo()
    vs = must_get(k, VIRTUAL_SERVICE, namespace, "podinfo")
    assert labels(vs)["x"] == "y"
    assert router.weights(spec) == Weights(95, 5)


# --------------------------------------------------------------------------------------------
# Gateway API


def later(delta: dt.timedelta) -> FrozenClock:
    return FrozenClock(dt.datetime.now(dt.UTC) + delta)


def accept(k: Clients, namespace: str, status: str = "True") -> Obj:
    """Play the controller: a verdict for every parent at the route's current generation."""
    route = must_get(k, HTTP_ROUTE, namespace, "podinfo")
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    parents = [
        {
            "parentRef": parent,
            "controllerName": "example.net/gateway-controller",
            "conditions": [
                {
                    "type": "Accepted",
                    "status": status,
                    "reason": "Accepted" if status == "True" else "NotAllowedByListeners",
                    "message": "",
                    "lastTransitionTime": now,
                    "observedGeneration": route["metadata"]["generation"],
                }
            ],
        }
        for parent in route["spec"]["parentRefs"]
    ]
    k.custom.patch_namespaced_custom_object_status(
        HTTP_ROUTE.group,
        HTTP_ROUTE.version,
        namespace,
        HTTP_ROUTE.plural,
        "podinfo",
        {"status": {"parents": parents}},
        _content_type=MERGE,
    )
    return route


def rules_of(k: Clients, namespace: str) -> list[Obj]:
    return list(must_get(k, HTTP_ROUTE, namespace, "podinfo")["spec"]["rules"])


def test_gatewayapi_creates_a_mesh_route_at_100_0(k: Clients, namespace: str, owner: Obj) -> None:
    spec = canary_spec(namespace, router="gatewayapi", match=COHORTS)
    router = GatewayAPIRouter(k)
    router.ensure(spec, owner)

    route = must_get(k, HTTP_ROUTE, namespace, "podinfo")
    assert owned_by(route, owner)
    assert labels(route) == {CANARY_LABEL: "podinfo"}
    assert route["spec"]["parentRefs"] == [
        {"group": "", "kind": "Service", "name": "podinfo", "port": 9898}
    ]
    assert "hostnames" not in route["spec"]
    assert [r["name"] for r in route["spec"]["rules"]] == ["dabba-default"]
    # Nothing writes status here: held for the grace period, then the spec is trusted.
    assert router.weights(spec) is None
    assert GatewayAPIRouter(k, clock=later(DEFAULT_ACCEPT_GRACE)).weights(spec) == PRIMARY_ONLY


def test_gatewayapi_trusts_weights_only_once_accepted_for_this_generation(
    k: Clients, namespace: str, owner: Obj
) -> None:
    spec = canary_spec(namespace, router="gatewayapi")
    router = GatewayAPIRouter(k)
    patient = GatewayAPIRouter(k, clock=later(DEFAULT_ACCEPT_GRACE + dt.timedelta(seconds=5)))
    router.ensure(spec, owner)
    router.set_weights(spec, Weights(90, 10))
    assert router.weights(spec) is None, "no verdict yet, within the grace period"
    assert patient.weights(spec) == Weights(90, 10), "nobody answered: the spec is trusted"

    accept(k, namespace)
    assert router.weights(spec) == Weights(90, 10)

    router.set_weights(spec, Weights(80, 20))
    assert router.weights(spec) is None, "the verdict is for the previous generation"
    accept(k, namespace, status="False")
    assert router.weights(spec) is None
    assert patient.weights(spec) is None, "a rejection holds past the grace period"
    accept(k, namespace)
    assert router.weights(spec) == Weights(80, 20)


def test_gatewayapi_gateway_parents_and_hostnames(k: Clients, namespace: str, owner: Obj) -> None:
    spec = canary_spec(
        namespace,
        router="gatewayapi",
        service={
            "hosts": ["podinfo.example.com"],
            "gatewayRefs": [
                {"name": "public", "namespace": "infra", "sectionName": "https"},
                {"name": "internal"},
            ],
        },
    )
    router = GatewayAPIRouter(k)
    router.ensure(spec, owner)
    route = must_get(k, HTTP_ROUTE, namespace, "podinfo")
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "public",
            "namespace": "infra",
            "sectionName": "https",
        },
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "internal",
            "namespace": namespace,
        },
    ]
    assert route["spec"]["hostnames"] == ["podinfo.example.com"]
    accept(k, namespace)
    assert router.weights(spec) == PRIMARY_ONLY


def test_gatewayapi_cohorts_only_while_canary_has_traffic(
    k: Clients, namespace: str, owner: Obj
) -> None:
    spec = canary_spec(namespace, router="gatewayapi", match=COHORTS)
    router = GatewayAPIRouter(k, accept_grace=dt.timedelta(0))
    router.ensure(spec, owner)
    router.set_weights(spec, Weights(90, 10))
    rules = rules_of(k, namespace)
    assert [r["name"] for r in rules] == ["dabba-cohort-0", "dabba-cohort-1", "dabba-default"]
    assert rules[1]["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/"},
            "headers": [
                {"name": "x-build", "type": "RegularExpression", "value": r"^v2\..*"},
                {"name": "x-region", "type": "RegularExpression", "value": "eu-.*"},
            ],
        }
    ]
    assert [b["name"] for b in rules[0]["backendRefs"]] == ["podinfo-canary"]
    assert router.weights(spec) == Weights(90, 10)

    router.set_weights(spec, PRIMARY_ONLY)
    assert [r["name"] for r in rules_of(k, namespace)] == ["dabba-default"]
    assert router.weights(spec) == PRIMARY_ONLY


def test_gatewayapi_is_idempotent_and_sees_hand_edits(
    k: Clients, namespace: str, owner: Obj
) -> None:
    spec = canary_spec(namespace, router="gatewayapi", match=COHORTS)
    router = GatewayAPIRouter(k, accept_grace=dt.timedelta(0))
    router.ensure(spec, owner)
    router.ensure(spec, owner)
    router.set_weights(spec, Weights(90, 10))
    version = must_get(k, HTTP_ROUTE, namespace, "podinfo")["metadata"]["resourceVersion"]
    router.set_weights(spec, Weights(90, 10))
    router.ensure(spec, owner)
    assert must_get(k, HTTP_ROUTE, namespace, "podinfo")["metadata"]["resourceVersion"] == version

    rules = rules_of(k, namespace)
    rules[-1]["backendRefs"][0]["weight"] = 1
    rules[-1]["backendRefs"][1]["weight"] = 3
    merge_patch(k, HTTP_ROUTE, namespace, "podinfo", {"spec": {"rules": rules}})
    assert router.weights(spec) == Weights(25, 75), "weights are proportions"


def test_gatewayapi_adopts_a_user_route_and_restores_it_exactly(
    k: Clients, namespace: str, owner: Obj
) -> None:
    before = create(
        k,
        HTTP_ROUTE,
        namespace,
        {
            "metadata": {"name": "podinfo", "annotations": {"note": "mine"}},
            "spec": {
                "parentRefs": [{"name": "public", "namespace": "infra"}],
                "hostnames": ["podinfo.example.com"],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                        "backendRefs": [{"name": "podinfo", "port": 9898}],
                        "timeouts": {"request": "5s"},
                    },
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/legacy"}}],
                        "backendRefs": [{"name": "legacy", "port": 80}],
                    },
                    {"backendRefs": [{"name": "podinfo", "port": 9898}]},
                ],
            },
        },
    )
    spec = canary_spec(
        namespace,
        router="gatewayapi",
        match=COHORTS[:1],
        service={"hosts": ["podinfo.internal"], "gatewayRefs": [{"name": "mesh-gw"}]},
    )
    router = GatewayAPIRouter(k, accept_grace=dt.timedelta(0))
    router.ensure(spec, owner)

    route = must_get(k, HTTP_ROUTE, namespace, "podinfo")
    assert json.loads(annotations(route)[ORIGINAL_ANNOTATION]) == before["spec"]
    assert not route["metadata"].get("ownerReferences")
    assert [p["name"] for p in route["spec"]["parentRefs"]] == ["mesh-gw", "public"]
    assert route["spec"]["hostnames"] == ["podinfo.internal", "podinfo.example.com"]
    api, legacy, default = route["spec"]["rules"]
    assert api["timeouts"] == {"request": "5s"}
    assert [b["name"] for b in api["backendRefs"]] == ["podinfo-primary", "podinfo-canary"]
    assert legacy == before["spec"]["rules"][1]
    assert [b["weight"] for b in default["backendRefs"]] == [100, 0]

    router.set_weights(spec, Weights(50, 50))
    assert router.weights(spec) == Weights(50, 50)
    assert len(rules_of(k, namespace)) == 5

    router.restore(spec)
    after = must_get(k, HTTP_ROUTE, namespace, "podinfo")
    assert after["spec"] == before["spec"]
    assert after["metadata"].get("annotations") == {"note": "mine"}
    assert not after["metadata"].get("labels")


def test_gatewayapi_restore_deletes_what_it_created(k: Clients, namespace: str, owner: Obj) -> None:
    spec = canary_spec(namespace, router="gatewayapi")
    router = router_for(spec, k)
    assert isinstance(router, GatewayAPIRouter)
    router.ensure(spec, owner)
    router.restore(spec)
    assert get(k, HTTP_ROUTE, namespace, "podinfo") is None
    router.restore(spec)


# --------------------------------------------------------------------------------------------
# Kubernetes


def service(name: str, selector: dict[str, str], labels_: dict[str, str] | None = None) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels_ or {}},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": 9898}]},
    }


def read_service(k: Clients, namespace: str, name: str) -> Obj:
    return dict(
        json.loads(k.core.read_namespaced_service(name, namespace, _preload_content=False).data)
    )


def selector(k: Clients, namespace: str) -> dict[str, str]:
    return dict(read_service(k, namespace, "podinfo")["spec"]["selector"])


@pytest.fixture
def workloads(k: Clients, namespace: str) -> None:
    """The target Deployment and the -primary/-canary Services, as the executor makes them."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "podinfo"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {
                "metadata": {"labels": {"app": "podinfo"}},
                "spec": {"containers": [{"name": "app", "image": "podinfo:6"}]},
            },
        },
    }
    k.apps.create("deployments", namespace, deployment, _preload_content=False)
    for name, sel in (
        ("podinfo-primary", {"app": "podinfo-primary"}),
        ("podinfo-canary", {"app": "podinfo"}),
    ):
        k.core.create_namespaced_service(
            namespace, client.V1Service.model_validate(service(name, sel)), _preload_content=False
        )


def create_apex(k: Clients, namespace: str, sel: dict[str, str], *, ours: bool) -> None:
    body = service("podinfo", sel, {CANARY_LABEL: "podinfo"} if ours else {"team": "payments"})
    k.core.create_namespaced_service(
        namespace, client.V1Service.model_validate(body), _preload_content=False
    )


@pytest.mark.usefixtures("workloads")
def test_kubernetes_switches_the_apex_selector(k: Clients, namespace: str, owner: Obj) -> None:
    create_apex(k, namespace, {"app": "podinfo-primary"}, ours=True)
    spec = canary_spec(namespace, router="kubernetes")
    router = KubernetesRouter(k)
    router.ensure(spec, owner)
    assert router.weights(spec) == PRIMARY_ONLY

    router.set_weights(spec, Weights(0, 100))
    assert selector(k, namespace) == {"app": "podinfo"}
    assert router.weights(spec) == Weights(0, 100)
    version = read_service(k, namespace, "podinfo")["metadata"]["resourceVersion"]
    router.set_weights(spec, Weights(0, 100))
    router.ensure(spec, owner)  # keeps the blue/green side in place
    assert read_service(k, namespace, "podinfo")["metadata"]["resourceVersion"] == version

    with pytest.raises(ValueError, match="100/0 or 0/100"):
        router.set_weights(spec, Weights(50, 50))
    assert read_service(k, namespace, "podinfo")["metadata"]["resourceVersion"] == version

    router.set_weights(spec, PRIMARY_ONLY)
    assert selector(k, namespace) == {"app": "podinfo-primary"}

    router.restore(spec)  # the executor's apex is not the router's to give back
    assert selector(k, namespace) == {"app": "podinfo-primary"}
    assert labels(read_service(k, namespace, "podinfo")) == {CANARY_LABEL: "podinfo"}


@pytest.mark.usefixtures("workloads")
def test_kubernetes_hand_edit_is_seen_and_ensure_repairs_it(
    k: Clients, namespace: str, owner: Obj
) -> None:
    create_apex(k, namespace, {"app": "podinfo-primary"}, ours=True)
    spec = canary_spec(namespace, router="kubernetes")
    router = KubernetesRouter(k)
    k.core.patch_namespaced_service(
        "podinfo", namespace, {"spec": {"selector": {"app": "podinfo"}}}, _content_type=MERGE
    )
    assert router.weights(spec) == Weights(0, 100)
    k.core.patch_namespaced_service(
        "podinfo", namespace, {"spec": {"selector": {"tier": "web"}}}, _content_type=MERGE
    )
    assert router.weights(spec) is None, "a selector that is neither side"
    router.ensure(spec, owner)
    assert selector(k, namespace) == {"app": "podinfo-primary"}
    assert router.weights(spec) == PRIMARY_ONLY


@pytest.mark.usefixtures("workloads")
def test_kubernetes_adopts_a_user_apex_and_restores_its_selector(
    k: Clients, namespace: str, owner: Obj
) -> None:
    create_apex(k, namespace, {"app": "podinfo"}, ours=False)
    before = read_service(k, namespace, "podinfo")
    spec = canary_spec(namespace, router="kubernetes")
    router = KubernetesRouter(k)
    assert router.weights(spec) is None, "not ours before ensure"

    router.ensure(spec, owner)
    apex = read_service(k, namespace, "podinfo")
    assert json.loads(annotations(apex)[ORIGINAL_ANNOTATION]) == {"selector": {"app": "podinfo"}}
    assert labels(apex) == {"team": "payments", CANARY_LABEL: "podinfo"}
    assert router.weights(spec) == Weights(0, 100), "the user's selector is the target's pods"

    router.set_weights(spec, PRIMARY_ONLY)
    router.restore(spec)
    after = read_service(k, namespace, "podinfo")
    assert after["spec"] == before["spec"]
    assert labels(after) == {"team": "payments"}
    assert not annotations(after)


def test_kubernetes_needs_the_apex(k: Clients, namespace: str, owner: Obj) -> None:
    spec = canary_spec(namespace, router="kubernetes")
    router = KubernetesRouter(k)
    with pytest.raises(RouteNotFoundError, match="apex Service"):
        router.ensure(spec, owner)
    assert router.weights(spec) is None
    router.restore(spec)


def test_router_for_builds_each_router(k: Clients) -> None:
    kinds = {
        "istio": IstioRouter,
        "gatewayapi": GatewayAPIRouter,
        "kubernetes": KubernetesRouter,
    }
    for name, cls in kinds.items():
        spec: CanarySpec = canary_spec(router=name)
        assert isinstance(router_for(spec, k), cls)
