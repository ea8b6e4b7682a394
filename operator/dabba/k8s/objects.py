"""Small, idempotent helpers over the API: read-or-None, retry on conflict, status patches.

Every write dabba makes goes through here, so 404/409 handling is the same everywhere:
a missing object is ``None`` (never an exception the caller must remember), a write that lost
a race is re-read and retried (Flagger's ``RetryOnConflict``), and status is written with a
merge patch on the status subresource, last, after every other action succeeded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from kubernetes.client.exceptions import ApiException

from dabba.k8s import meta
from dabba.k8s.cache import ObjectCache
from dabba.k8s.client import Clients

T = TypeVar("T")

NOT_FOUND = 404
CONFLICT = 409
ALREADY_EXISTS = 409


def or_none(call: Callable[[], T]) -> T | None:
    """Run ``call``; a 404 becomes ``None``."""
    try:
        return call()
    except ApiException as exc:
        if exc.status == NOT_FOUND:
            return None
        raise


def retry_on_conflict(call: Callable[[], T], attempts: int = 5, delay: float = 0.05) -> T:
    """Run ``call`` (which must re-read what it writes) again after a 409, a few times."""
    for attempt in range(attempts):
        try:
            return call()
        except ApiException as exc:
            if exc.status != CONFLICT or attempt == attempts - 1:
                raise
            time.sleep(delay * (2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def get_custom(k: Clients, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    """A dabba custom object as a dict, or ``None``."""
    obj = or_none(
        lambda: k.custom.get_namespaced_custom_object(
            meta.GROUP, meta.VERSION, namespace, plural, name
        )
    )
    return cast("dict[str, Any]", obj) if obj is not None else None


def patch_status(
    k: Clients, plural: str, namespace: str, name: str, status: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Merge-patch ``status`` of a dabba object; ``None`` if the object is gone."""
    result = or_none(
        lambda: k.custom.patch_namespaced_custom_object_status(
            meta.GROUP, meta.VERSION, namespace, plural, name, {"status": dict(status)}
        )
    )
    return cast("dict[str, Any]", result) if result is not None else None


def raw_json(resp: object) -> dict[str, Any]:
    """The JSON body of a call made with ``_preload_content=False``.

    Raw JSON skips building the client's pydantic models, which is most of the CPU time of a
    read; the typed stubs do not know the call returned a raw response, hence the cast.
    """
    data = cast("Any", resp).data
    return cast("dict[str, Any]", json.loads(data))


def owner_reference(obj: Mapping[str, Any], *, controller: bool = True) -> dict[str, Any]:
    """An ownerReference to ``obj`` (a dict with apiVersion, kind, metadata)."""
    md = obj["metadata"]
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": md["name"],
        "uid": md["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


# --------------------------------------------------------------------------------------------
# Reads through the watch-fed cache (``dabba.k8s.cache``)


def cache_of(k: Clients | None) -> ObjectCache | None:
    """The clients' cache, if they have one (the operator's do; the CLI's and tests' not)."""
    return getattr(k, "cache", None)


def read_through(
    k: Clients, resource: str, namespace: str, name: str, read: Callable[[], object]
) -> dict[str, Any] | None:
    """The object from the cache when a watch keeps it there; else ``read()`` (a raw GET,
    404 is ``None``), whose answer the cache keeps for the next time."""
    cache = cache_of(k)
    if cache is not None and cache.serves(resource):
        hit = cache.get(resource, namespace, name)
        if hit is not None:
            return hit
    resp = or_none(read)
    if resp is None:
        return None
    obj = raw_json(resp)
    if cache is not None:
        cache.put(resource, obj)
    return obj


def wrote(k: Clients, resource: str, resp: object) -> dict[str, Any]:
    """Write-through: the object a create, replace or patch returned (raw response) replaces
    the cached copy, so the next read sees this write. Returns the object."""
    obj = raw_json(resp)
    cache = cache_of(k)
    if cache is not None:
        cache.put(resource, obj)
    return obj


def forget(
    k: Clients, resource: str, namespace: str, name: str, resource_version: str | None = None
) -> None:
    """Stop trusting the cached copy (after a write that lost a race, a scale, a delete)."""
    cache = cache_of(k)
    if cache is not None:
        cache.forget(resource, namespace, name, resource_version)
