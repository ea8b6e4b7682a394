"""Kubernetes router: no weights, blue/green by switching the apex Service's selector.

The apex ``<svc>`` selects the primary's pods (``naming.primary_selector`` of the target's
``spec.selector.matchLabels``, e.g. ``app: podinfo-primary``) for 100/0, and the target's own
pods (``app: podinfo``) for 0/100. Nothing in between exists: ``set_weights`` refuses any
other split with ``ValueError``, so a Canary using this router needs a schedule that jumps
straight to 100 (the state machine's business, not the router's)::

    apiVersion: v1
    kind: Service
    metadata: {name: podinfo, labels: {dabba.io/canary: podinfo}}
    spec:
      selector: {app: podinfo-primary}     # 100/0;  {app: podinfo} is 0/100
      ports: [{name: http, port: 9898, targetPort: http}]

Decisions:

- ``ensure`` creates nothing: the executor owns the three Services (``EnsureServices`` runs
  first). It checks that the apex and the target exist (``RouteNotFoundError`` otherwise),
  adopts an apex that is the user's (its original selector is saved in
  ``dabba.io/original-configuration`` as ``{"selector": ...}``: only the selector is ever
  changed, so only the selector is restored; ports, clusterIP and the rest are the user's
  throughout), and points an apex whose selector is neither of ours at the primary (100/0,
  the safe side). A selector that already is one of ours is kept.
- ``weights`` maps the selector back, ``None`` when it is neither of ours.
- Writes are JSON merge patches carrying the ``resourceVersion`` just read, so a concurrent
  edit to the Service makes the patch fail with 409 and the read-modify-write run again.
- ``restore``: an adopted apex gets its original selector back and loses our marks. An apex
  the executor created is left alone: it is not the router's (it has no ownerReference, it
  must outlive the Canary), and on deletion the executor points it at the target's pods
  right after ``restore``, because the primary is about to be garbage-collected.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from kubernetes.client.exceptions import ApiException

from dabba.canary.model import PRIMARY_ONLY, CanarySpec, Weights
from dabba.canary.naming import primary_selector
from dabba.canary.routers._shared import (
    Obj,
    Ownership,
    RouteNotFoundError,
    adopt,
    mark,
    original,
    ownership,
    release,
)
from dabba.canary.workloads import DEPLOYMENTS, SERVICES
from dabba.errors import SpecError
from dabba.k8s import objects
from dabba.k8s.client import Clients

CANARY_ONLY: Final = Weights(primary=0, canary=100)
MERGE_PATCH: Final = "application/merge-patch+json"

# --------------------------------------------------------------------------------------------
# Pure


def selector_for(weights: Weights, target_selector: Mapping[str, str]) -> dict[str, str]:
    """The apex selector for a split.

    Raises:
        ValueError: ``weights`` is neither 100/0 nor 0/100.
    """
    check_blue_green(weights)
    return primary_selector(target_selector) if weights == PRIMARY_ONLY else dict(target_selector)


def check_blue_green(weights: Weights) -> None:
    """Raise ``ValueError`` unless ``weights`` is 100/0 or 0/100."""
    if weights not in (PRIMARY_ONLY, CANARY_ONLY):
        raise ValueError(
            f"the kubernetes router switches all traffic at once (100/0 or 0/100), it cannot "
            f"serve {weights}; use the istio or gatewayapi router for weighted steps"
        )


def weights_of(selector: Mapping[str, Any], target_selector: Mapping[str, str]) -> Weights | None:
    """The split an apex selector serves; ``None`` when it is neither of ours."""
    if not target_selector:
        return None
    if dict(selector) == primary_selector(target_selector):
        return PRIMARY_ONLY
    if dict(selector) == dict(target_selector):
        return CANARY_ONLY
    return None


def merge_patch(live: Mapping[str, Any], want: Mapping[str, Any]) -> Obj:
    """The RFC 7386 JSON merge patch that turns ``live`` into ``want`` (``{}``: equal).

    Maps are diffed key by key (``None`` deletes a key), anything else is replaced whole.
    """
    patch: Obj = {}
    for key in sorted(set(live) | set(want)):
        if key not in want:
            patch[key] = None
        elif key not in live:
            patch[key] = copy.deepcopy(want[key])
        elif isinstance(live[key], Mapping) and isinstance(want[key], Mapping):
            sub = merge_patch(live[key], want[key])
            if sub:
                patch[key] = sub
        elif live[key] != want[key]:
            patch[key] = copy.deepcopy(want[key])
    return patch


def _selector(service: Mapping[str, Any]) -> dict[str, Any]:
    return dict((service.get("spec") or {}).get("selector") or {})


# --------------------------------------------------------------------------------------------
# I/O


class KubernetesRouter:
    """``TrafficRouter`` over the apex Service's selector."""

    def __init__(self, clients: Clients) -> None:
        self._k = clients

    def ensure(self, spec: CanarySpec, owner: Mapping[str, Any]) -> None:
        """Check the apex and the target exist; adopt the apex; repair a foreign selector."""

        def attempt() -> None:
            live = self._apex(spec)
            if live is None:
                raise RouteNotFoundError(
                    f"apex Service {spec.namespace}/{spec.service.name} not found: it is "
                    "created with the primary and canary Services, before routing"
                )
            target = self._target_selector(spec)
            want = copy.deepcopy(live)
            if ownership(live, spec, "Service") is Ownership.FOREIGN:
                adopt(want, spec, {"selector": _selector(live)})
            else:
                mark(want, spec)
            if weights_of(_selector(live), target) is None:
                want.setdefault("spec", {})["selector"] = selector_for(PRIMARY_ONLY, target)
            self._patch(live, want)

        objects.retry_on_conflict(attempt)

    def weights(self, spec: CanarySpec) -> Weights | None:
        """100/0 or 0/100 from the apex selector; ``None`` if missing, not ours, or neither."""
        live = self._apex(spec)
        if live is None or not ownership(live, spec, "Service").ours:
            return None
        target = self._read_target_selector(spec)
        return weights_of(_selector(live), target) if target is not None else None

    def set_weights(self, spec: CanarySpec, weights: Weights) -> None:
        """Point the apex at the primary (100/0) or the target (0/100); anything else raises
        ``ValueError`` before any write."""
        check_blue_green(weights)

        def attempt() -> None:
            live = self._apex(spec)
            if live is None or not ownership(live, spec, "Service").ours:
                raise RouteNotFoundError(
                    f"apex Service {spec.namespace}/{spec.service.name} is missing or not "
                    "managed by this Canary: ensure() it first"
                )
            want = copy.deepcopy(live)
            want.setdefault("spec", {})["selector"] = selector_for(
                weights, self._target_selector(spec)
            )
            self._patch(live, want)

        objects.retry_on_conflict(attempt)

    def restore(self, spec: CanarySpec) -> None:
        """Give an adopted apex its original selector back; leave any other apex alone."""

        def attempt() -> None:
            live = self._apex(spec)
            if live is None or ownership(live, spec, "Service") is not Ownership.ADOPTED:
                return
            want = copy.deepcopy(live)
            saved = original(want)
            if saved is not None and isinstance(saved.get("selector"), dict):
                want.setdefault("spec", {})["selector"] = saved["selector"]
            release(want)
            self._patch(live, want)

        objects.retry_on_conflict(attempt)

    # -- helpers ------------------------------------------------------------------------------

    def _apex(self, spec: CanarySpec) -> Obj | None:
        # From the watch-fed cache once it carries our label (adopted or created), else a GET.
        return objects.read_through(
            self._k,
            SERVICES,
            spec.namespace,
            spec.service.name,
            lambda: self._k.core.read_namespaced_service(
                spec.service.name, spec.namespace, _preload_content=False
            ),
        )

    def _read_target_selector(self, spec: CanarySpec) -> dict[str, str] | None:
        target = objects.read_through(
            self._k,
            DEPLOYMENTS,
            spec.namespace,
            spec.target.name,
            lambda: self._k.apps.get(
                "deployments", spec.namespace, spec.target.name, _preload_content=False
            ),
        )
        if target is None:
            return None
        labels = (target.get("spec") or {}).get("selector", {}).get("matchLabels")
        return {str(k): str(v) for k, v in (labels or {}).items()}

    def _target_selector(self, spec: CanarySpec) -> dict[str, str]:
        selector = self._read_target_selector(spec)
        if selector is None:
            raise RouteNotFoundError(
                f"target Deployment {spec.namespace}/{spec.target.name} not found: the apex "
                "selector is derived from its selector"
            )
        if not selector:
            raise SpecError(
                f"Deployment {spec.target.name} selects its pods without matchLabels; the "
                "kubernetes router switches the apex Service by those labels"
            )
        return selector

    def _patch(self, live: Mapping[str, Any], want: Mapping[str, Any]) -> None:
        patch = merge_patch(live, want)
        if not patch:
            return
        # The resourceVersion turns the merge patch into a compare-and-swap (409 if stale).
        patch.setdefault("metadata", {})["resourceVersion"] = live["metadata"]["resourceVersion"]
        md = live["metadata"]
        try:
            resp = self._k.core.patch_namespaced_service(
                md["name"],
                md["namespace"],
                patch,
                _content_type=MERGE_PATCH,
                _preload_content=False,
            )
        except ApiException as exc:
            if exc.status == objects.CONFLICT:  # a stale copy: the retry reads the API
                objects.forget(self._k, SERVICES, md["namespace"], md["name"])
            raise
        objects.wrote(self._k, SERVICES, resp)
