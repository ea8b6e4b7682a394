from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dabba.canary import weights
from dabba.canary.model import PRIMARY_ONLY, Weights
from tests.unit.canary.sim import make_spec


@pytest.mark.parametrize(
    ("analysis", "router", "expected"),
    [
        pytest.param(
            {}, "istio", (5, 10, 25, 50), id="neither stepWeights nor stepWeight gives the default"
        ),
        pytest.param(
            {"stepWeights": [1, 2, 10, 80]},
            "istio",
            (1, 2, 10, 80),
            id="explicit schedule as given",
        ),
        pytest.param(
            {"stepWeight": 10}, "istio", (10, 20, 30, 40, 50), id="linear up to the default max 50"
        ),
        pytest.param(
            {"stepWeight": 20, "maxWeight": 50},
            "istio",
            (20, 40, 50),
            id="last step clamped to maxWeight (Flagger reaches 60)",
        ),
        pytest.param(
            {"stepWeight": 25, "maxWeight": 100}, "istio", (25, 50, 75, 100), id="up to 100"
        ),
        pytest.param(
            {"stepWeight": 60}, "istio", (60,), id="a step above the default max raises the max"
        ),
        pytest.param({"stepWeight": 30, "maxWeight": 30}, "gatewayapi", (30,), id="one step"),
        pytest.param({"stepWeight": 1, "maxWeight": 3}, "istio", (1, 2, 3), id="smallest steps"),
        pytest.param(
            {"stepWeights": [5, 10]},
            "kubernetes",
            (100,),
            id="kubernetes router switches all at once",
        ),
    ],
)
def test_schedule(analysis: dict[str, Any], router: str, expected: tuple[int, ...]) -> None:
    spec = make_spec(router=router, analysis=analysis)
    assert weights.schedule(spec) == expected
    assert weights.max_weight(spec) == expected[-1]


@pytest.mark.parametrize(
    ("index", "following", "last"),
    [
        pytest.param(0, 10, False, id="first step leads to the second"),
        pytest.param(2, 50, False, id="third step leads to the last"),
        pytest.param(3, None, True, id="last step leads to promotion"),
        pytest.param(7, None, True, id="an index past the end is the last step"),
    ],
)
def test_next_weight(index: int, following: int | None, last: bool) -> None:
    steps = (5, 10, 25, 50)
    assert weights.next_weight(steps, index) == following
    assert weights.is_last_step(steps, index) is last


@pytest.mark.parametrize(
    ("weight", "maximum", "expected"),
    [
        pytest.param(60, 50, 50, id="above the maximum"),
        pytest.param(20, 50, 20, id="within"),
        pytest.param(-5, 50, 0, id="negative"),
        pytest.param(120, 150, 100, id="never above 100"),
    ],
)
def test_clamp(weight: int, maximum: int, expected: int) -> None:
    assert weights.clamp(weight, maximum) == expected


def test_weight_at_and_split() -> None:
    assert weights.weight_at((5, 10), 0) == 5
    assert weights.weight_at((5, 10), 9) == 10
    assert weights.split(25) == Weights(75, 25)
    assert weights.split(0) == PRIMARY_ONLY


def test_linear_schedule_refuses_a_zero_step() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        weights.linear_schedule(0, 50)


@settings(max_examples=100)
@given(step=st.integers(1, 100), maximum=st.none() | st.integers(1, 100))
def test_linear_schedule_never_exceeds_max_weight(step: int, maximum: int | None) -> None:
    if maximum is not None and maximum < step:
        maximum = step  # the CRD rejects maxWeight < stepWeight
    steps = weights.linear_schedule(step, maximum)
    top = maximum if maximum is not None else max(50, step)
    assert steps
    assert all(1 <= s <= top for s in steps)
    assert steps[-1] == top
    assert all(b > a for a, b in itertools.pairwise(steps))
