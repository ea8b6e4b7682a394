from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from dabba.canary.model import PRIMARY_ONLY, Weights
from dabba.canary.routers.istio import (
    destination_rule,
    gateways,
    hosts,
    http_routes,
    read_weights,
    virtual_service_spec,
)
from tests.unit.canary.routers.specs import COHORTS, canary_spec

SPEC = canary_spec(match=COHORTS)


def dest(host: str, weight: int) -> dict[str, Any]:
    return {"destination": {"host": host, "port": {"number": 9898}}, "weight": weight}


DEFAULT_90_10 = {
    "name": "dabba-default",
    "route": [dest("podinfo-primary", 90), dest("podinfo-canary", 10)],
}

#: A VirtualService as a user might have written it before dabba.
USER: dict[str, Any] = {
    "hosts": ["podinfo", "podinfo.example.com"],
    "gateways": ["istio-system/public"],
    "exportTo": ["."],
    "tls": [{"match": [{"port": 443, "sniHosts": ["podinfo.example.com"]}], "route": []}],
    "tcp": [{"match": [{"port": 31400}], "route": [{"destination": {"host": "podinfo"}}]}],
    "http": [
        {
            "name": "api",
            "match": [{"uri": {"prefix": "/api"}, "headers": {"canary-user": {"exact": "no"}}}],
            "route": [
                {"destination": {"host": "podinfo"}, "headers": {"request": {"set": {"a": "b"}}}}
            ],
            "timeout": "5s",
            "retries": {"attempts": 3},
        },
        {
            "name": "legacy",
            "match": [{"uri": {"prefix": "/legacy"}}],
            "route": [{"destination": {"host": "legacy.other.svc.cluster.local"}}],
        },
        {
            "name": "metrics-port",
            "match": [{"port": 9090}],
            "route": [{"destination": {"host": "podinfo", "port": {"number": 9090}}}],
        },
        {"route": [{"destination": {"host": "podinfo.test.svc.cluster.local"}}]},
    ],
}


def test_a_new_virtual_service_starts_at_100_0_without_cohorts() -> None:
    assert virtual_service_spec(SPEC, PRIMARY_ONLY) == {
        "hosts": ["podinfo"],
        "http": [
            {
                "name": "dabba-default",
                "route": [dest("podinfo-primary", 100), dest("podinfo-canary", 0)],
            }
        ],
    }


def test_cohorts_precede_the_default_route_while_the_canary_has_traffic() -> None:
    spec = canary_spec(
        match=COHORTS, service={"hosts": ["podinfo.example.com"], "gateways": ["gw"]}
    )
    assert virtual_service_spec(spec, Weights(90, 10)) == {
        "hosts": ["podinfo", "podinfo.example.com"],
        "gateways": ["gw"],
        "http": [
            {
                "name": "dabba-cohort-0",
                "match": [{"headers": {"canary-user": {"exact": "true"}}}],
                "route": [dest("podinfo-canary", 100)],
            },
            {
                "name": "dabba-cohort-1",
                "match": [
                    {"headers": {"x-build": {"prefix": "v2."}, "x-region": {"regex": "eu-.*"}}}
                ],
                "route": [dest("podinfo-canary", 100)],
            },
            DEFAULT_90_10,
        ],
    }


@pytest.mark.parametrize("canary", [1, 50, 100])
def test_cohorts_stay_at_any_canary_weight(canary: int) -> None:
    names = [r["name"] for r in http_routes([], SPEC, Weights.for_canary(canary))]
    assert names == ["dabba-cohort-0", "dabba-cohort-1", "dabba-default"]


def test_cohorts_go_at_zero() -> None:
    live = http_routes([], SPEC, Weights(90, 10))
    assert [r["name"] for r in http_routes(live, SPEC, PRIMARY_ONLY)] == ["dabba-default"]


@pytest.mark.parametrize("live", [[], USER["http"]], ids=["new", "adopted"])
def test_the_routes_depend_only_on_the_users_routes_and_the_last_split(
    live: list[dict[str, Any]],
) -> None:
    splits = [Weights.for_canary(c) for c in (0, 10, 50, 100)]
    for first, second in itertools.product(splits, repeat=2):
        assert http_routes(http_routes(live, SPEC, first), SPEC, second) == http_routes(
            live, SPEC, second
        )


def test_an_adopted_virtual_service_keeps_everything_dabba_does_not_own() -> None:
    out = virtual_service_spec(SPEC, Weights(80, 20), USER, saved=USER)
    assert {k: out[k] for k in ("exportTo", "tls", "tcp")} == {
        k: USER[k] for k in ("exportTo", "tls", "tcp")
    }
    assert out["hosts"] == ["podinfo", "podinfo.example.com"]
    assert out["gateways"] == ["istio-system/public"]
    names = [r.get("name") for r in out["http"]]
    assert names == [
        "dabba-cohort-0",
        "dabba-cohort-1",
        "api",
        "legacy",
        "metrics-port",
        "dabba-cohort-2",
        "dabba-cohort-3",
        None,
    ]
    by_name = {r.get("name"): r for r in out["http"]}
    assert by_name["legacy"] == USER["http"][1], "a route elsewhere is untouched"
    assert by_name["metrics-port"] == USER["http"][2], "another port of the apex is not split"
    api = by_name["api"]
    assert {k: api[k] for k in ("match", "timeout", "retries")} == {
        k: USER["http"][0][k] for k in ("match", "timeout", "retries")
    }
    kept_headers = {"request": {"set": {"a": "b"}}}
    assert api["route"] == [
        {**dest("podinfo-primary", 80), "headers": kept_headers},
        {**dest("podinfo-canary", 20), "headers": kept_headers},
    ]
    cohort = by_name["dabba-cohort-0"]
    assert cohort["match"] == [
        {"uri": {"prefix": "/api"}, "headers": {"canary-user": {"exact": "true"}}}
    ], "the cohort's header replaces the route's own, and names are lower-cased"
    assert (cohort["timeout"], cohort["retries"]) == ("5s", {"attempts": 3})
    assert cohort["route"] == [{**dest("podinfo-canary", 100), "headers": kept_headers}]
    assert by_name[None]["route"] == [dest("podinfo-primary", 80), dest("podinfo-canary", 20)]
    assert read_weights(out, SPEC) == Weights(80, 20)


def test_the_users_input_is_not_mutated() -> None:
    before = copy.deepcopy(USER)
    virtual_service_spec(SPEC, Weights(80, 20), USER, saved=USER)
    assert before == USER


def test_a_default_route_is_appended_when_nothing_routes_to_the_service() -> None:
    live = [USER["http"][1]]
    out = http_routes(live, canary_spec(), Weights(90, 10))
    assert out == [USER["http"][1], DEFAULT_90_10]


@pytest.mark.parametrize(
    ("extra_hosts", "saved", "expected"),
    [
        ([], None, ["podinfo"]),
        (["podinfo.test.svc.cluster.local", "a.example.com"], None, ["podinfo", "a.example.com"]),
        (
            ["a.example.com"],
            {"hosts": ["podinfo.test", "b.example.com"]},
            ["podinfo", "a.example.com", "b.example.com"],
        ),
    ],
)
def test_hosts(extra_hosts: list[str], saved: dict[str, Any] | None, expected: list[str]) -> None:
    assert hosts(canary_spec(service={"hosts": extra_hosts}), saved) == expected


@pytest.mark.parametrize(
    ("ours", "saved", "expected"),
    [
        pytest.param([], None, [], id="none: mesh"),
        pytest.param(["gw"], None, ["gw"], id="ours"),
        pytest.param([], {"gateways": ["public"]}, ["public"], id="adopted: theirs kept"),
        pytest.param([], {}, [], id="adopted mesh stays mesh"),
        pytest.param(["gw"], {}, ["gw", "mesh"], id="adopted mesh is not narrowed to gw"),
        pytest.param(["gw"], {"gateways": ["public", "gw"]}, ["gw", "public"], id="union"),
    ],
)
def test_gateways(ours: list[str], saved: dict[str, Any] | None, expected: list[str]) -> None:
    assert gateways(canary_spec(service={"gateways": ours}), saved) == expected


def default_route(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"http": [{"route": list(entries)}]}


@pytest.mark.parametrize(
    ("vs", "expected"),
    [
        pytest.param({}, None, id="no http"),
        pytest.param(default_route(dest("podinfo", 100)), None, id="apex only"),
        pytest.param(default_route(dest("podinfo-primary", 100)), None, id="primary only"),
        pytest.param(
            default_route(dest("podinfo-primary", 50), dest("podinfo-primary", 50)),
            None,
            id="primary twice",
        ),
        pytest.param(
            default_route(
                dest("podinfo-primary", 50), dest("podinfo-canary", 25), dest("podinfo", 25)
            ),
            None,
            id="three destinations",
        ),
        pytest.param(
            default_route(dest("podinfo-primary", 0), dest("podinfo-canary", 0)),
            None,
            id="no weight at all",
        ),
        pytest.param(
            default_route(dest("podinfo-canary", 30), dest("podinfo-primary", 70)),
            Weights(70, 30),
            id="any order",
        ),
        pytest.param(
            default_route(
                dest("podinfo-primary.test.svc.cluster.local", 180), dest("podinfo-canary.test", 20)
            ),
            Weights(90, 10),
            id="FQDNs and weights that do not sum to 100",
        ),
        pytest.param(
            {
                "http": [
                    {"route": [dest("podinfo-primary", 50), dest("podinfo-canary", 50)]},
                    {"route": [dest("legacy", 100)]},
                ]
            },
            Weights(50, 50),
            id="the last route to the service is the default",
        ),
        pytest.param(
            {"http": [{"name": "dabba-cohort-0", "route": [dest("podinfo-canary", 100)]}]},
            None,
            id="a cohort route is never the default",
        ),
    ],
)
def test_read_weights(vs: dict[str, Any], expected: Weights | None) -> None:
    assert read_weights(vs, canary_spec()) == expected


def test_destination_rule_is_minimal() -> None:
    owner = {
        "apiVersion": "dabba.io/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "uid": "u"},
    }
    rule = destination_rule(canary_spec(), owner, "podinfo-canary")
    assert rule["apiVersion"] == "networking.istio.io/v1"
    assert rule["kind"] == "DestinationRule"
    assert rule["metadata"]["name"] == "podinfo-canary"
    assert rule["spec"] == {"host": "podinfo-canary"}
