"""The watch-fed object cache: newer wins, writes go through, copies expire (issue 8)."""

from __future__ import annotations

from typing import Any

from dabba.k8s.cache import ObjectCache, has_label, without_managed_fields

R = "services"


def obj(name: str, rv: str | None, *, labels: dict[str, str] | None = None, **extra: Any) -> Any:
    md: dict[str, Any] = {
        "name": name,
        "namespace": "ns",
        "labels": labels or {"dabba.io/canary": "c"},
    }
    if rv is not None:
        md["resourceVersion"] = rv
    return {"metadata": md, **extra}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def cache(clock: Clock | None = None, max_age: float = 300.0) -> ObjectCache:
    c = ObjectCache(max_age=max_age, clock=clock or Clock())
    c.serve(R, has_label("dabba.io/canary"))
    return c


def test_unknown_objects_and_unserved_resources_are_misses() -> None:
    c = cache()
    assert c.get(R, "ns", "a") is None
    assert not c.put("deployments.apps", obj("a", "1"))  # nothing feeds it: never kept
    assert c.get("deployments.apps", "ns", "a") is None


def test_a_kept_object_is_returned_as_a_private_copy() -> None:
    c = cache()
    assert c.put(R, obj("a", "5", spec={"selector": {"app": "a"}}))
    first = c.get(R, "ns", "a")
    assert first is not None
    first["spec"]["selector"]["app"] = "changed"
    again = c.get(R, "ns", "a")
    assert again is not None
    assert again["spec"]["selector"] == {"app": "a"}


def test_an_older_version_never_replaces_a_newer_one() -> None:
    c = cache()
    c.put(R, obj("a", "10", spec={"v": "written"}))  # our write, through
    assert not c.put(R, obj("a", "9", spec={"v": "delayed event"}))
    hit = c.get(R, "ns", "a")
    assert hit is not None
    assert hit["spec"] == {"v": "written"}
    assert c.put(R, obj("a", "11", spec={"v": "someone else"}))
    hit = c.get(R, "ns", "a")
    assert hit is not None
    assert hit["spec"] == {"v": "someone else"}


def test_the_echo_of_our_own_write_is_not_news() -> None:
    c = cache()
    assert c.put(R, obj("a", "10"))
    assert not c.put(R, obj("a", "10"))


def test_resource_versions_that_are_not_integers_go_by_arrival() -> None:
    c = cache()
    c.put(R, obj("a", "b", spec={"v": 1}))
    c.put(R, obj("a", "a", spec={"v": 2}))
    hit = c.get(R, "ns", "a")
    assert hit is not None
    assert hit["spec"] == {"v": 2}


def test_a_deleted_object_is_a_miss_and_an_older_event_cannot_resurrect_it() -> None:
    c = cache()
    c.put(R, obj("a", "10"))
    c.deleted(R, obj("a", "12"))
    assert c.get(R, "ns", "a") is None
    assert not c.put(R, obj("a", "11"))
    assert c.get(R, "ns", "a") is None
    assert c.put(R, obj("a", "13"))  # re-created
    assert c.get(R, "ns", "a") is not None


def test_a_deletion_older_than_a_recreation_we_wrote_is_ignored() -> None:
    c = cache()
    c.put(R, obj("a", "20"))  # we re-created it (write-through)
    c.deleted(R, obj("a", "15"))  # the old object's deletion, delivered late
    assert c.get(R, "ns", "a") is not None


def test_forget_after_a_write_drops_events_older_than_that_write() -> None:
    c = cache()
    c.put(R, obj("a", "10"))
    c.forget(R, "ns", "a", "12")  # e.g. a scale answered with the Deployment's version 12
    assert c.get(R, "ns", "a") is None
    assert not c.put(R, obj("a", "11"))
    assert c.get(R, "ns", "a") is None
    assert c.put(R, obj("a", "12"))
    assert c.get(R, "ns", "a") is not None


def test_forget_without_a_version_makes_the_next_read_go_to_the_api() -> None:
    c = cache()
    c.put(R, obj("a", "10"))
    c.forget(R, "ns", "a")
    assert c.get(R, "ns", "a") is None
    assert c.put(R, obj("a", "10"))  # the GET's answer is kept again


def test_an_object_that_lost_our_label_is_forgotten() -> None:
    c = cache()
    c.put(R, obj("a", "10"))
    assert not c.put(R, obj("a", "11", labels={"app": "a"}))
    assert c.get(R, "ns", "a") is None


def test_copies_expire_after_max_age() -> None:
    clock = Clock()
    c = cache(clock, max_age=300)
    c.put(R, obj("a", "10"))
    clock.now = 299
    assert c.get(R, "ns", "a") is not None
    clock.now = 301
    assert c.get(R, "ns", "a") is None
    c.put(R, obj("a", "10"))  # confirmed by a GET: trusted again
    assert c.get(R, "ns", "a") is not None


def test_tombstones_are_pruned() -> None:
    clock = Clock()
    c = cache(clock, max_age=10)
    for i in range(600):
        c.put(R, obj(f"o{i}", "1"))
        c.deleted(R, obj(f"o{i}", "2"))
    clock.now = 100
    for i in range(1000):
        c.put(R, obj(f"n{i}", "1"))
    assert len(c) == 1000
    assert len(c._entries) < 1600  # the tombstones went


def test_without_managed_fields_slims_deployments() -> None:
    c = ObjectCache()
    c.serve("deployments.apps", slim=without_managed_fields)
    body = obj("d", "1")
    body["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    body["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
        "dabba.io/revision": "abc",
    }
    c.put("deployments.apps", body)
    hit = c.get("deployments.apps", "ns", "d")
    assert hit is not None
    assert "managedFields" not in hit["metadata"]
    assert hit["metadata"]["annotations"] == {"dabba.io/revision": "abc"}
    assert body["metadata"]["managedFields"]  # the caller's object is untouched
