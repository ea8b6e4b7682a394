from __future__ import annotations

from typing import Any

import pytest

from dabba.canary.model import PRIMARY_ONLY, Weights
from dabba.canary.routers.kubernetes import CANARY_ONLY, merge_patch, selector_for, weights_of

TARGET = {"app": "podinfo", "tier": "web"}
PRIMARY = {"app": "podinfo-primary", "tier": "web-primary"}


def test_selector_for_the_two_blue_green_sides() -> None:
    assert selector_for(PRIMARY_ONLY, TARGET) == PRIMARY
    assert selector_for(CANARY_ONLY, TARGET) == TARGET


@pytest.mark.parametrize("canary", [1, 10, 50, 99])
def test_a_partial_split_is_refused(canary: int) -> None:
    with pytest.raises(ValueError, match=r"100/0 or 0/100.*istio or gatewayapi"):
        selector_for(Weights.for_canary(canary), TARGET)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (PRIMARY, PRIMARY_ONLY),
        (TARGET, CANARY_ONLY),
        ({"app": "podinfo-primary"}, None),
        ({**TARGET, "extra": "x"}, None),
        ({}, None),
    ],
)
def test_weights_of(selector: dict[str, str], expected: Weights | None) -> None:
    assert weights_of(selector, TARGET) == expected


def test_weights_of_without_a_target_selector_is_unknown() -> None:
    assert weights_of({}, {}) is None


@pytest.mark.parametrize(
    ("live", "want", "expected"),
    [
        pytest.param({"a": 1}, {"a": 1}, {}, id="equal"),
        pytest.param(
            {"spec": {"selector": {"app": "x", "tier": "y"}, "ports": [1]}},
            {"spec": {"selector": {"app": "x-primary"}, "ports": [1]}},
            {"spec": {"selector": {"app": "x-primary", "tier": None}}},
            id="a selector replaced whole: removed keys are nulled",
        ),
        pytest.param({"l": [1, 2]}, {"l": [2]}, {"l": [2]}, id="lists are replaced"),
        pytest.param({"m": {"a": 1}}, {}, {"m": None}, id="a removed map"),
        pytest.param({}, {"m": {"a": 1}}, {"m": {"a": 1}}, id="an added map"),
        pytest.param({"m": 1}, {"m": {"a": 1}}, {"m": {"a": 1}}, id="a scalar becomes a map"),
    ],
)
def test_merge_patch(live: dict[str, Any], want: dict[str, Any], expected: dict[str, Any]) -> None:
    assert merge_patch(live, want) == expected
