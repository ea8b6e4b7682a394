from __future__ import annotations

import datetime as dt

import pytest

from dabba.k8s.conditions import find, is_true, rfc3339, set_condition

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)


def test_adding_a_condition_stamps_the_transition_time() -> None:
    out = set_condition([], "Ready", "True", "Issued", "ok", T0, observed_generation=3)
    assert out == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Issued",
            "message": "ok",
            "lastTransitionTime": "2026-03-01T12:00:00Z",
            "observedGeneration": 3,
        }
    ]


def test_same_status_keeps_the_old_transition_time_but_new_reason() -> None:
    first = set_condition([], "Ready", "True", "Issued", "ok", T0)
    second = set_condition(first, "Ready", "True", "Renewed", "renewed", T1)
    assert second[0]["lastTransitionTime"] == rfc3339(T0)
    assert second[0]["reason"] == "Renewed"


def test_status_change_moves_the_transition_time() -> None:
    first = set_condition([], "Ready", "True", "Issued", "ok", T0)
    second = set_condition(first, "Ready", "False", "Expired", "expired", T1)
    assert second[0]["lastTransitionTime"] == rfc3339(T1)
    assert not is_true(second, "Ready")


def test_other_conditions_keep_their_place_and_input_is_not_mutated() -> None:
    conds = [{"type": "A", "status": "True"}, {"type": "B", "status": "False"}]
    out = set_condition(conds, "A", "False", "r", "m", T0)
    assert [c["type"] for c in out] == ["A", "B"]
    assert conds[0]["status"] == "True"
    assert find(out, "B") == {"type": "B", "status": "False"}
    assert find(out, "C") is None


@pytest.mark.parametrize(
    ("conds", "expected"),
    [
        pytest.param(None, False, id="no conditions at all"),
        pytest.param([{"type": "Ready", "status": "Unknown"}], False, id="unknown is not true"),
        pytest.param([{"type": "Ready", "status": "True"}], True, id="true is true"),
    ],
)
def test_is_true(conds: list[dict[str, str]] | None, expected: bool) -> None:
    assert is_true(conds, "Ready") is expected


def test_rfc3339_converts_to_utc() -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert rfc3339(dt.datetime(2026, 1, 1, 2, 0, tzinfo=plus_two)) == "2026-01-01T00:00:00Z"
