from __future__ import annotations

import copy
import datetime as dt
import itertools
import re
from typing import Any

import pytest

from dabba.canary.model import PRIMARY_ONLY, StringMatch, Weights
from dabba.canary.routers.gatewayapi import (
    accepted,
    header_match,
    hostnames,
    last_change,
    parent_refs,
    quote_meta,
    read_weights,
    route_spec,
    rules,
)
from tests.unit.canary.routers.specs import COHORTS, canary_spec

SPEC = canary_spec(router="gatewayapi", match=COHORTS)
ROOT = {"path": {"type": "PathPrefix", "value": "/"}}
MESH_PARENT = {"group": "", "kind": "Service", "name": "podinfo", "port": 9898}


def backend(name: str, weight: int, **extra: Any) -> dict[str, Any]:
    return {**extra, "group": "", "kind": "Service", "name": name, "port": 9898, "weight": weight}


USER_RULES: list[dict[str, Any]] = [
    {
        "matches": [
            {
                "path": {"type": "PathPrefix", "value": "/api"},
                "headers": [{"name": "CANARY-USER", "type": "Exact", "value": "no"}],
            }
        ],
        "backendRefs": [
            {
                "group": "",
                "kind": "Service",
                "name": "podinfo",
                "port": 9898,
                "weight": 1,
                "filters": [
                    {
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": {"set": [{"name": "a", "value": "b"}]},
                    }
                ],
            }
        ],
        "timeouts": {"request": "5s"},
    },
    {
        "matches": [{"path": {"type": "PathPrefix", "value": "/legacy"}}],
        "backendRefs": [
            {"group": "", "kind": "Service", "name": "legacy", "port": 80, "weight": 1}
        ],
    },
    {
        "matches": [ROOT],
        "backendRefs": [{"name": "podinfo", "namespace": "elsewhere", "port": 9898}],
    },
    {
        "matches": [ROOT],
        "backendRefs": [
            {"group": "", "kind": "Service", "name": "podinfo", "port": 9898, "weight": 1}
        ],
    },
]


def test_a_new_route_is_a_gamma_route_at_100_0() -> None:
    assert route_spec(canary_spec(router="gatewayapi"), PRIMARY_ONLY) == {
        "parentRefs": [MESH_PARENT],
        "rules": [
            {
                "name": "dabba-default",
                "matches": [ROOT],
                "backendRefs": [backend("podinfo-primary", 100), backend("podinfo-canary", 0)],
            }
        ],
    }


def test_cohort_rules_precede_the_default_rule() -> None:
    assert rules([], SPEC, Weights(90, 10)) == [
        {
            "name": "dabba-cohort-0",
            "matches": [
                {**ROOT, "headers": [{"name": "Canary-User", "type": "Exact", "value": "true"}]}
            ],
            "backendRefs": [backend("podinfo-canary", 100)],
        },
        {
            "name": "dabba-cohort-1",
            "matches": [
                {
                    **ROOT,
                    "headers": [
                        {"name": "x-build", "type": "RegularExpression", "value": r"^v2\..*"},
                        {"name": "x-region", "type": "RegularExpression", "value": "eu-.*"},
                    ],
                }
            ],
            "backendRefs": [backend("podinfo-canary", 100)],
        },
        {
            "name": "dabba-default",
            "matches": [ROOT],
            "backendRefs": [backend("podinfo-primary", 90), backend("podinfo-canary", 10)],
        },
    ]


def test_cohort_rules_go_at_zero() -> None:
    live = rules([], SPEC, Weights(90, 10))
    assert [r["name"] for r in rules(live, SPEC, PRIMARY_ONLY)] == ["dabba-default"]


@pytest.mark.parametrize("live", [[], USER_RULES], ids=["new", "adopted"])
def test_the_rules_depend_only_on_the_users_rules_and_the_last_split(
    live: list[dict[str, Any]],
) -> None:
    splits = [Weights.for_canary(c) for c in (0, 10, 50, 100)]
    for first, second in itertools.product(splits, repeat=2):
        assert rules(rules(live, SPEC, first), SPEC, second) == rules(live, SPEC, second)


def test_an_adopted_route_keeps_other_rules_and_the_settings_of_its_own() -> None:
    before = copy.deepcopy(USER_RULES)
    out = rules(USER_RULES, SPEC, Weights(80, 20))
    assert before == USER_RULES, "input not mutated"
    names = [r.get("name") for r in out]
    assert names == [
        "dabba-cohort-0",
        "dabba-cohort-1",
        None,
        None,
        None,
        "dabba-cohort-2",
        "dabba-cohort-3",
        None,
    ]
    api, legacy, elsewhere, default = (r for r in out if r.get("name") is None)
    assert legacy == USER_RULES[1]
    assert elsewhere == USER_RULES[2], "a Service in another namespace is not ours"
    filters = USER_RULES[0]["backendRefs"][0]["filters"]
    assert api["backendRefs"] == [
        backend("podinfo-primary", 80, filters=filters),
        backend("podinfo-canary", 20, filters=filters),
    ]
    assert api["timeouts"] == {"request": "5s"}
    cohort = out[0]
    assert cohort["timeouts"] == {"request": "5s"}
    assert cohort["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/api"},
            "headers": [{"name": "Canary-User", "type": "Exact", "value": "true"}],
        }
    ], "the cohort's header replaces the rule's own, whatever its case"
    assert default["backendRefs"] == [backend("podinfo-primary", 80), backend("podinfo-canary", 20)]
    assert read_weights({"rules": out}, SPEC) == Weights(80, 20)


def test_a_default_rule_is_appended_when_nothing_routes_to_the_service() -> None:
    out = rules([USER_RULES[1]], canary_spec(router="gatewayapi"), PRIMARY_ONLY)
    assert [r.get("name") for r in out] == [None, "dabba-default"]


def test_gateway_parents_default_to_the_canarys_namespace() -> None:
    spec = canary_spec(
        router="gatewayapi",
        service={
            "gatewayRefs": [
                {"name": "public", "namespace": "infra", "sectionName": "https"},
                {"name": "internal"},
            ]
        },
    )
    assert parent_refs(spec) == [
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
            "namespace": "test",
        },
    ]


@pytest.mark.parametrize(
    ("refs", "saved", "expected_names"),
    [
        pytest.param([], None, ["podinfo"], id="GAMMA apex parent"),
        pytest.param([], {"parentRefs": [{"name": "public"}]}, ["public"], id="adopted: theirs"),
        pytest.param(
            [{"name": "internal"}],
            {"parentRefs": [{"name": "internal"}, {"name": "public", "namespace": "infra"}]},
            ["internal", "public"],
            id="union, duplicates by defaulted key",
        ),
    ],
)
def test_parent_refs(
    refs: list[dict[str, Any]], saved: dict[str, Any] | None, expected_names: list[str]
) -> None:
    spec = canary_spec(router="gatewayapi", service={"gatewayRefs": refs})
    assert [p["name"] for p in parent_refs(spec, saved)] == expected_names


@pytest.mark.parametrize(
    ("ours", "saved", "expected"),
    [
        pytest.param([], None, [], id="none: every host"),
        pytest.param(["a.example.com"], None, ["a.example.com"], id="ours"),
        pytest.param([], {"hostnames": ["b.example.com"]}, ["b.example.com"], id="adopted: theirs"),
        pytest.param(
            ["a.example.com"], {}, [], id="an original matching every host keeps doing so"
        ),
        pytest.param(
            ["a.example.com"],
            {"hostnames": ["b.example.com", "a.example.com"]},
            ["a.example.com", "b.example.com"],
            id="union",
        ),
    ],
)
def test_hostnames(ours: list[str], saved: dict[str, Any] | None, expected: list[str]) -> None:
    assert hostnames(canary_spec(router="gatewayapi", service={"hosts": ours}), saved) == expected


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        (StringMatch("exact", "true"), {"name": "h", "type": "Exact", "value": "true"}),
        (StringMatch("regex", "a|b"), {"name": "h", "type": "RegularExpression", "value": "a|b"}),
        (
            StringMatch("prefix", "v2.0+"),
            {"name": "h", "type": "RegularExpression", "value": r"^v2\.0\+.*"},
        ),
    ],
)
def test_header_match(match: StringMatch, expected: dict[str, Any]) -> None:
    assert header_match("h", match) == expected


@pytest.mark.parametrize(
    "prefix", ["v2.", "a+b", "(x)[y]{z}", "^$|*?", "back\\slash", "plain-text_1 2"]
)
def test_a_prefix_regex_matches_exactly_the_values_with_that_prefix(prefix: str) -> None:
    pattern = re.compile(header_match("h", StringMatch("prefix", prefix))["value"])
    assert pattern.fullmatch(prefix)
    assert pattern.fullmatch(prefix + "anything")
    assert not pattern.fullmatch("x" + prefix)
    assert not pattern.fullmatch(prefix[:-1])


def test_quote_meta_escapes_only_re2_metacharacters() -> None:
    assert (
        quote_meta(r"a.b+c*d?e(f)g|h[i]j{k}l^m$n\o-p q")
        == r"a\.b\+c\*d\?e\(f\)g\|h\[i\]j\{k\}l\^m\$n\\o-p q"
    )


@pytest.mark.parametrize(
    ("refs", "expected"),
    [
        pytest.param([], None, id="no backends"),
        pytest.param([backend("podinfo", 1)], None, id="apex only"),
        pytest.param(
            [backend("podinfo-primary", 1), backend("podinfo-primary", 1)], None, id="twice"
        ),
        pytest.param(
            [backend("podinfo-primary", 0), backend("podinfo-canary", 0)], None, id="all zero"
        ),
        pytest.param(
            [backend("podinfo-canary", 10), backend("podinfo-primary", 90)],
            Weights(90, 10),
            id="any order",
        ),
        pytest.param(
            [{"name": "podinfo-primary", "port": 9898}, {"name": "podinfo-canary", "port": 9898}],
            Weights(50, 50),
            id="absent weights are 1",
        ),
    ],
)
def test_read_weights(refs: list[dict[str, Any]], expected: Weights | None) -> None:
    assert (
        read_weights(
            {"rules": [{"matches": [ROOT], "backendRefs": refs}]}, canary_spec(router="gatewayapi")
        )
        == expected
    )


T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
GRACE = dt.timedelta(seconds=30)
GW = {
    "group": "gateway.networking.k8s.io",
    "kind": "Gateway",
    "name": "public",
    "namespace": "test",
}


def route(
    parents: list[dict[str, Any]], statuses: list[dict[str, Any]], generation: int = 3
) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "test",
            "generation": generation,
            "creationTimestamp": "2026-03-01T11:00:00Z",
            "managedFields": [
                {"manager": "dabba", "operation": "Update", "time": "2026-03-01T12:00:00Z"},
                {
                    "manager": "gw",
                    "operation": "Update",
                    "subresource": "status",
                    "time": "2026-03-01T12:00:20Z",
                },
            ],
        },
        "spec": {"parentRefs": parents},
        "status": {"parents": statuses},
    }


def verdict(parent: dict[str, Any], status: str = "True", generation: int = 3) -> dict[str, Any]:
    return {
        "parentRef": parent,
        "controllerName": "example.net/gw",
        "conditions": [
            {"type": "ResolvedRefs", "status": "False", "observedGeneration": generation},
            {"type": "Accepted", "status": status, "observedGeneration": generation},
        ],
    }


@pytest.mark.parametrize(
    ("r", "seconds_later", "expected"),
    [
        pytest.param(route([], []), 0, True, id="no parents: the spec is all there is"),
        pytest.param(route([GW], [verdict(GW)]), 0, True, id="accepted for this generation"),
        pytest.param(
            route([GW], [verdict({"name": "public"})]),
            0,
            True,
            id="status parentRef with defaults omitted",
        ),
        pytest.param(
            route([GW], [verdict(GW, generation=2)]), 0, False, id="stale verdict, in grace"
        ),
        pytest.param(
            route([GW], [verdict(GW, generation=2)]), 30, True, id="stale verdict, grace over"
        ),
        pytest.param(route([GW], []), 29, False, id="no status, in grace"),
        pytest.param(route([GW], []), 30, True, id="no status, grace over"),
        pytest.param(route([GW], [verdict(GW, "False")]), 0, False, id="rejected"),
        pytest.param(
            route([GW], [verdict(GW, "False")]), 3600, False, id="rejected holds past the grace"
        ),
        pytest.param(route([GW], [verdict(GW, "Unknown")]), 0, False, id="undecided"),
        pytest.param(
            route([GW, MESH_PARENT], [verdict(GW)]), 0, False, id="one of two parents answered"
        ),
        pytest.param(
            route([GW, MESH_PARENT], [verdict(GW), verdict(MESH_PARENT)]),
            0,
            True,
            id="both answered",
        ),
        pytest.param(
            route([{**GW, "sectionName": "https"}], [verdict(GW)]),
            0,
            False,
            id="another listener's verdict",
        ),
    ],
)
def test_accepted(r: dict[str, Any], seconds_later: int, expected: bool) -> None:
    assert accepted(r, T0 + dt.timedelta(seconds=seconds_later), GRACE) is expected


def test_last_change_ignores_status_writes() -> None:
    assert last_change(route([], [])) == T0


def test_last_change_falls_back_to_creation() -> None:
    r = route([], [])
    del r["metadata"]["managedFields"]
    assert last_change(r) == T0 - dt.timedelta(hours=1)
