from __future__ import annotations

import json
from typing import Any

import pytest

from dabba.canary.model import Weights
from dabba.canary.naming import CANARY_LABEL
from dabba.canary.routers import ORIGINAL_ANNOTATION
from dabba.canary.routers._shared import (
    Ownership,
    Services,
    adopt,
    created_metadata,
    dedupe,
    original,
    ownership,
    proportional,
    release,
)
from dabba.errors import SpecError
from tests.unit.canary.routers.specs import canary_spec

SPEC = canary_spec()
OWNER = {
    "apiVersion": "dabba.io/v1alpha1",
    "kind": "Canary",
    "metadata": {"name": "podinfo", "uid": "u-1"},
}


def obj(**metadata: Any) -> dict[str, Any]:
    return {"metadata": {"name": "podinfo", **metadata}, "spec": {"hosts": ["podinfo"]}}


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        pytest.param({}, Ownership.FOREIGN, id="no marks: the user's"),
        pytest.param({"labels": {"team": "a"}}, Ownership.FOREIGN, id="other labels only"),
        pytest.param({"labels": {CANARY_LABEL: "podinfo"}}, Ownership.CREATED, id="our label"),
        pytest.param(
            {"ownerReferences": [{**OWNER, "name": "podinfo", "uid": "u-1"}]},
            Ownership.CREATED,
            id="our ownerReference without the label",
        ),
        pytest.param(
            {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "Canary", "name": "podinfo"}]},
            Ownership.FOREIGN,
            id="an ownerReference to a same-named kind of another group",
        ),
        pytest.param(
            {"annotations": {ORIGINAL_ANNOTATION: "{}"}, "labels": {CANARY_LABEL: "podinfo"}},
            Ownership.ADOPTED,
            id="adopted",
        ),
        pytest.param(
            {"annotations": {ORIGINAL_ANNOTATION: "{}"}},
            Ownership.ADOPTED,
            id="adopted, label removed by hand",
        ),
    ],
)
def test_ownership(metadata: dict[str, Any], expected: Ownership) -> None:
    assert ownership(obj(**metadata), SPEC, "VirtualService") is expected
    assert expected.ours is (expected is not Ownership.FOREIGN)


def test_another_canarys_object_is_refused() -> None:
    with pytest.raises(SpecError, match="VirtualService podinfo is managed by Canary other"):
        ownership(obj(labels={CANARY_LABEL: "other"}), SPEC, "VirtualService")


def test_created_metadata_has_label_and_owner() -> None:
    assert created_metadata(SPEC, OWNER, "podinfo-primary") == {
        "name": "podinfo-primary",
        "namespace": "test",
        "labels": {CANARY_LABEL: "podinfo"},
        "ownerReferences": [
            {
                "apiVersion": "dabba.io/v1alpha1",
                "kind": "Canary",
                "name": "podinfo",
                "uid": "u-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def test_adopt_saves_the_original_once_and_release_removes_only_our_marks() -> None:
    o = obj(labels={"team": "a"}, annotations={"note": "x"})
    saved = {"hosts": ["podinfo"], "http": [{"route": []}]}
    adopt(o, SPEC, saved)
    assert json.loads(o["metadata"]["annotations"][ORIGINAL_ANNOTATION]) == saved
    assert o["metadata"]["labels"] == {"team": "a", CANARY_LABEL: "podinfo"}
    assert ownership(o, SPEC, "VirtualService") is Ownership.ADOPTED

    adopt(o, SPEC, {"hosts": ["changed by dabba"]})
    assert original(o) == saved, "a second adoption must not overwrite the original"

    release(o)
    assert o["metadata"] == {
        "name": "podinfo",
        "labels": {"team": "a"},
        "annotations": {"note": "x"},
    }


def test_release_drops_maps_it_emptied() -> None:
    o = obj()
    adopt(o, SPEC, {})
    release(o)
    assert o["metadata"] == {"name": "podinfo"}


@pytest.mark.parametrize("text", ["not json", "[1, 2]", ""])
def test_unreadable_original_is_none(text: str) -> None:
    assert original(obj(annotations={ORIGINAL_ANNOTATION: text})) is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("podinfo", "podinfo"),
        ("podinfo-canary", "podinfo-canary"),
        ("podinfo.test", "podinfo"),
        ("podinfo.test.svc", "podinfo"),
        ("podinfo.test.svc.cluster.local", "podinfo"),
        ("podinfo.test.svc.corp.internal", "podinfo"),
        ("podinfo.other.svc.cluster.local", None),
        ("podinfo.example.com", None),
        ("podinfo.test.example.com", None),
    ],
)
def test_host_forms(host: str, expected: str | None) -> None:
    assert Services.of(SPEC).short(host) == expected


def test_services_of_spec() -> None:
    svc = Services.of(canary_spec(service={"name": "web"}))
    assert (svc.apex, svc.primary, svc.canary) == ("web", "web-primary", "web-canary")
    assert svc.all == {"web", "web-primary", "web-canary"}


@pytest.mark.parametrize(
    ("primary", "canary", "expected"),
    [
        (90, 10, Weights(90, 10)),
        (100, 0, Weights(100, 0)),
        (0, 100, Weights(0, 100)),
        (180, 20, Weights(90, 10)),
        (1, 3, Weights(25, 75)),
        (1, 2, Weights(33, 67)),
        (0, 0, None),
        (-10, 110, None),
    ],
)
def test_weights_are_proportions(primary: int, canary: int, expected: Weights | None) -> None:
    assert proportional(primary, canary) == expected


def test_dedupe_keeps_first_by_key() -> None:
    assert dedupe(["a", "B", "b", "a", "c"], key=str.lower) == ["a", "B", "c"]
