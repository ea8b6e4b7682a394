"""The Deployments and Services beside the user's target: read, create, scale, promote. I/O.

- revision: a hash of the target's pod template and of the ConfigMaps and Secrets it
  references, so a config change is a new revision too (Flagger hashes only the template
  plus tracked configs; Argo not at all).
- readiness: a Deployment is ready when its newest generation is fully rolled out and every
  replica is available (Flagger's ``deployment_ready.go``).
- the primary ``<target>-primary`` is created once from the target and then only changes by
  promotion (``copy_template_to_primary``), which copies only if the target still hashes to
  the revision that was analysed.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from dabba.canary.model import CanarySpec
from dabba.canary.naming import (
    CANARY_LABEL,
    REVISION_ANNOTATION,
    primary_labels,
    primary_selector,
)
from dabba.canary.state_machine import Readiness
from dabba.k8s import objects
from dabba.k8s.client import Clients

Obj = dict[str, Any]

#: Pod-template annotations that do not make a new revision: dabba's own certificate
#: restarts (restartOnRotation) must not start a canary analysis of the same code.
IGNORED_TEMPLATE_ANNOTATION_PREFIXES = ("dabba.io/certificate-", "dabba.io/restarted-at")

#: Cache names (``dabba.k8s.cache``) of the kinds read here, as ``dabba_api_requests_total``
#: spells them.
DEPLOYMENTS = "deployments.apps"
SERVICES = "services"


def read_deployment(k: Clients, namespace: str, name: str, *, fresh: bool = False) -> Obj | None:
    """The Deployment, from the watch-fed cache unless ``fresh`` (then always a GET)."""

    def read() -> object:
        return k.apps.get("deployments", namespace, name, _preload_content=False)

    if fresh:
        resp = objects.or_none(read)
        return objects.raw_json(resp) if resp is not None else None
    return objects.read_through(k, DEPLOYMENTS, namespace, name, read)


def target_selector(target: Mapping[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = target.get("spec", {}).get("selector", {}).get("matchLabels") or {}
    return dict(labels)


# --------------------------------------------------------------------------------------------
# Revision


def _referenced(template: Mapping[str, Any]) -> Iterator[tuple[str, str]]:  # noqa: PLR0912 - one branch per place a pod spec can name config
    """(kind, name) of every ConfigMap and Secret a pod template references."""
    spec = template.get("spec", {})
    for volume in spec.get("volumes") or []:
        if cm := volume.get("configMap"):
            yield "ConfigMap", cm.get("name", "")
        if secret := volume.get("secret"):
            yield "Secret", secret.get("secretName", "")
        for source in (volume.get("projected") or {}).get("sources") or []:
            if cm := source.get("configMap"):
                yield "ConfigMap", cm.get("name", "")
            if secret := source.get("secret"):
                yield "Secret", secret.get("name", "")
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for env_from in container.get("envFrom") or []:
            if ref := env_from.get("configMapRef"):
                yield "ConfigMap", ref.get("name", "")
            if ref := env_from.get("secretRef"):
                yield "Secret", ref.get("name", "")
        for env in container.get("env") or []:
            source = env.get("valueFrom") or {}
            if ref := source.get("configMapKeyRef"):
                yield "ConfigMap", ref.get("name", "")
            if ref := source.get("secretKeyRef"):
                yield "Secret", ref.get("name", "")


def _config_digest(k: Clients, namespace: str, kind: str, name: str) -> str:
    read: Any = (
        k.core.read_namespaced_config_map if kind == "ConfigMap" else k.core.read_namespaced_secret
    )
    resp = objects.or_none(lambda: read(name, namespace, _preload_content=False))
    if resp is None:
        return "missing"
    raw = objects.raw_json(resp)
    content = {"data": raw.get("data"), "binaryData": raw.get("binaryData")}
    # Only a digest leaves this function: Secret values are never kept or logged.
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def revision(k: Clients, target: Mapping[str, Any]) -> str:
    """Hash of the pod template and the content of the config it references (16 hex)."""
    template = copy.deepcopy(target.get("spec", {}).get("template", {}))
    annotations = template.get("metadata", {}).get("annotations") or {}
    for key in [a for a in annotations if a.startswith(IGNORED_TEMPLATE_ANNOTATION_PREFIXES)]:
        del annotations[key]
    namespace = target["metadata"]["namespace"]
    configs = {
        f"{kind}/{name}": _config_digest(k, namespace, kind, name)
        for kind, name in sorted(set(_referenced(template)))
        if name
    }
    doc = json.dumps({"template": template, "configs": configs}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Readiness


def readiness(
    deployment: Mapping[str, Any] | None, not_ready_since: dt.datetime | None
) -> Readiness:
    """Whether the Deployment's current template is fully rolled out and available."""
    if deployment is None:
        return Readiness(ready=False, not_ready_since=not_ready_since)
    spec, status = deployment.get("spec", {}), deployment.get("status", {})
    desired = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    ready_replicas = int(status.get("readyReplicas") or 0)
    total = int(status.get("replicas") or 0)
    current = int(status.get("observedGeneration") or 0) >= int(
        deployment.get("metadata", {}).get("generation") or 0
    )
    ready = current and updated >= desired and available >= desired and total <= desired
    return Readiness(
        ready=ready,
        ready_replicas=ready_replicas,
        desired_replicas=desired,
        not_ready_since=None if ready else not_ready_since,
        updated_replicas=updated,
        total_replicas=total,
        observed=current,
    )


# --------------------------------------------------------------------------------------------
# Writes


def _owned(spec: CanarySpec, owner: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "labels": {CANARY_LABEL: spec.name},
        "ownerReferences": [objects.owner_reference(owner)],
    }


def ensure_primary(
    k: Clients, spec: CanarySpec, target: Mapping[str, Any], rev: str, owner: Mapping[str, Any]
) -> bool:
    """Create ``<target>-primary`` from the target if missing; True if it was created."""
    if read_deployment(k, spec.namespace, spec.primary_name) is not None:
        return False
    selector = target_selector(target)
    tspec = copy.deepcopy(target.get("spec", {}))
    template = tspec.get("template", {})
    template.setdefault("metadata", {})["labels"] = primary_labels(
        template.get("metadata", {}).get("labels") or {}, selector
    )
    meta_ = _owned(spec, owner)
    meta_["annotations"] = {REVISION_ANNOTATION: rev}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": spec.primary_name, "namespace": spec.namespace, **meta_},
        "spec": {
            **{k_: v for k_, v in tspec.items() if k_ not in ("selector", "template", "paused")},
            "replicas": int(tspec.get("replicas", 1)),
            "selector": {"matchLabels": primary_selector(selector)},
            "template": template,
        },
    }
    try:
        resp = k.apps.create("deployments", spec.namespace, body, _preload_content=False)
    except ApiException as exc:
        if exc.status == objects.ALREADY_EXISTS:
            objects.forget(k, DEPLOYMENTS, spec.namespace, spec.primary_name)
            return False
        raise
    objects.wrote(k, DEPLOYMENTS, resp)
    mirror_hpa(k, spec, owner)
    return True


def mirror_hpa(k: Clients, spec: CanarySpec, owner: Mapping[str, Any]) -> None:
    """Give the primary a copy of the target's HorizontalPodAutoscaler, if it has one."""
    hpas = objects.raw_json(
        k.autoscaling.list("horizontalpodautoscalers", spec.namespace, _preload_content=False)
    )["items"]
    for hpa in hpas:
        ref = hpa.get("spec", {}).get("scaleTargetRef", {})
        if ref.get("kind") != "Deployment" or ref.get("name") != spec.target.name:
            continue
        body = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {
                "name": f"{spec.target.name}-primary",
                "namespace": spec.namespace,
                **_owned(spec, owner),
            },
            "spec": {**hpa["spec"], "scaleTargetRef": {**ref, "name": spec.primary_name}},
        }
        try:
            k.autoscaling.create(
                "horizontalpodautoscalers", spec.namespace, body, _preload_content=False
            )
        except ApiException as exc:
            if exc.status != objects.ALREADY_EXISTS:
                raise
        return


def _service_body(
    spec: CanarySpec, name: str, selector: Mapping[str, str], metadata: Mapping[str, Any]
) -> dict[str, Any]:
    port: dict[str, Any] = {
        "name": "http",
        "port": spec.service.port,
        "protocol": "TCP",
        "targetPort": spec.service.target_port or spec.service.port,
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": spec.namespace, **metadata},
        "spec": {"type": "ClusterIP", "selector": dict(selector), "ports": [port]},
    }


def ensure_services(
    k: Clients, spec: CanarySpec, target: Mapping[str, Any], owner: Mapping[str, Any]
) -> None:
    """Create the ``-primary`` and ``-canary`` Services (owned) and the apex (not owned: it
    must outlive the Canary). An existing apex keeps its selector: routers decide it."""
    selector = target_selector(target)
    wanted = [
        (spec.service.primary_name, primary_selector(selector), _owned(spec, owner)),
        (spec.service.canary_name, selector, _owned(spec, owner)),
        (spec.service.name, primary_selector(selector), {"labels": {CANARY_LABEL: spec.name}}),
    ]
    for name, sel, metadata in wanted:
        existing = read_service(k, spec.namespace, name)
        body = _service_body(spec, name, sel, metadata)
        if existing is None:
            try:
                resp = k.core.create_namespaced_service(
                    spec.namespace, client.V1Service.model_validate(body), _preload_content=False
                )
            except ApiException as exc:
                if exc.status != objects.ALREADY_EXISTS:
                    raise
                objects.forget(k, SERVICES, spec.namespace, name)
            else:
                objects.wrote(k, SERVICES, resp)
        elif name != spec.service.name:
            # Repair the selector of the Services dabba owns if someone changed it.
            current = existing.get("spec", {}).get("selector") or {}
            if current != sel:
                resp = k.core.patch_namespaced_service(
                    name, spec.namespace, {"spec": {"selector": sel}}, _preload_content=False
                )
                objects.wrote(k, SERVICES, resp)


def read_service(k: Clients, namespace: str, name: str) -> Obj | None:
    """The Service, from the watch-fed cache when it carries our label, else a GET."""
    return objects.read_through(
        k,
        SERVICES,
        namespace,
        name,
        lambda: k.core.read_namespaced_service(name, namespace, _preload_content=False),
    )


def scale(k: Clients, namespace: str, name: str, replicas: int) -> bool:
    """Set ``spec.replicas``; False when the Deployment does not exist."""
    resp = objects.or_none(
        lambda: k.apps.patch_scale(
            "deployments", namespace, name, {"spec": {"replicas": replicas}}, _preload_content=False
        )
    )
    # The answer is a Scale, not the Deployment: the next read waits for the watch (or GETs),
    # never an older copy (the Scale's resourceVersion is the Deployment's).
    rv = (objects.raw_json(resp).get("metadata") or {}).get("resourceVersion") if resp else None
    objects.forget(k, DEPLOYMENTS, namespace, name, rv)
    return resp is not None


def copy_template_to_primary(k: Clients, spec: CanarySpec, rev: str) -> bool:
    """Promote: the target's template onto the primary, if the target is still ``rev``.

    Returns False (and changes nothing) when the target moved on to another revision since
    the analysis: promoting an unanalysed template would defeat the point.
    """
    # Fresh reads: promotion is rare, and must not copy a template the cache has not caught
    # up with.
    target = read_deployment(k, spec.namespace, spec.target.name, fresh=True)
    if target is None or revision(k, target) != rev:
        return False

    def write() -> bool:
        primary = read_deployment(k, spec.namespace, spec.primary_name, fresh=True)
        if primary is None:
            return False
        selector = target_selector(target)
        template = copy.deepcopy(target["spec"]["template"])
        template.setdefault("metadata", {})["labels"] = primary_labels(
            template.get("metadata", {}).get("labels") or {}, selector
        )
        primary["spec"]["template"] = template
        primary["metadata"].setdefault("annotations", {})[REVISION_ANNOTATION] = rev
        resp = k.apps.replace(
            "deployments", spec.namespace, spec.primary_name, primary, _preload_content=False
        )
        objects.wrote(k, DEPLOYMENTS, resp)
        return True

    return objects.retry_on_conflict(write)


def primary_revision(primary: Mapping[str, Any] | None) -> str | None:
    if primary is None:
        return None
    annotations = primary.get("metadata", {}).get("annotations") or {}
    value = annotations.get(REVISION_ANNOTATION)
    return str(value) if value else None


def point_apex_at_target(k: Clients, spec: CanarySpec, target: Mapping[str, Any]) -> None:
    """Revert: the apex Service selects the target's own pods again."""
    resp = objects.or_none(
        lambda: k.core.patch_namespaced_service(
            spec.service.name,
            spec.namespace,
            {"spec": {"selector": target_selector(target)}},
            _preload_content=False,
        )
    )
    if resp is not None:
        objects.wrote(k, SERVICES, resp)
