"""Write what a certificate decision produced: the Secret, and rolling restarts. I/O.

The Secret is replaced with its ``resourceVersion`` (optimistic concurrency): if someone
changed it since we read it, the write fails with 409 and the next reconcile decides again
from what is really there. Labels and annotations that others put on the Secret (Reloader,
Argo CD) are kept; ours are overwritten.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from kubernetes import client

from dabba.certs import gather
from dabba.certs.gather import SecretObject
from dabba.certs.issuer import SecretData
from dabba.certs.model import SECRET_TYPE_TLS, WorkloadRef, format_time
from dabba.k8s import meta, objects
from dabba.k8s.client import Clients

#: Label on every Secret dabba writes: the operator watches Secrets by this label only.
SECRET_LABEL = gather.SECRET_LABEL
_WORKLOAD_PLURALS = {
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
}
#: Pod-template annotation changed to roll workloads after a rotation.
RESTART_ANNOTATION_PREFIX = f"{meta.GROUP}/certificate-"


def write_secret(
    k: Clients,
    *,
    namespace: str,
    name: str,
    certificate_name: str,
    data: SecretData,
    annotations: Mapping[str, str],
    labels: Mapping[str, str],
    owner: Mapping[str, Any],
    existing: SecretObject | None,
) -> str:
    """Create or replace the Secret; returns the new resourceVersion."""
    all_labels = {**(existing.labels if existing else {}), **labels, SECRET_LABEL: certificate_name}
    all_annotations = {**(existing.annotations if existing else {}), **annotations}
    owners = [
        dict(o)
        for o in (existing.owner_references if existing else ())
        if o.get("uid") != owner["metadata"]["uid"]
    ]
    owners.append(objects.owner_reference(owner))
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE_TLS,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": all_labels,
            "annotations": all_annotations,
            "ownerReferences": owners,
        },
        "data": data.to_base64(),
    }
    if existing is not None and existing.type != SECRET_TYPE_TLS:
        # A Secret's type is immutable: replace a wrong-typed one (its data is ours to own).
        k.core.delete_namespaced_secret(name, namespace)
        existing = None
    if existing is None:
        created = k.core.create_namespaced_secret(
            namespace, client.V1Secret.model_validate(body), _preload_content=False
        )
        return _resource_version(created)
    body["metadata"]["resourceVersion"] = existing.resource_version
    replaced = k.core.replace_namespaced_secret(
        name, namespace, client.V1Secret.model_validate(body), _preload_content=False
    )
    return _resource_version(replaced)


def _resource_version(resp: object) -> str:
    return str(objects.raw_json(resp)["metadata"]["resourceVersion"])


def restart_workload(
    k: Clients,
    namespace: str,
    ref: WorkloadRef,
    certificate_name: str,
    fingerprint: str,
    now: dt.datetime,
) -> bool:
    """Roll a workload by stamping the new certificate's fingerprint on its pod template.

    Returns False when the workload does not exist (reported, not retried).
    """
    patch = {
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {
                        RESTART_ANNOTATION_PREFIX + certificate_name: fingerprint[:16],
                        f"{meta.GROUP}/restarted-at": format_time(now),
                    }
                }
            }
        }
    }
    plural = _WORKLOAD_PLURALS[ref.kind]
    patched = objects.or_none(
        lambda: k.apps.patch(plural, namespace, ref.name, patch, _preload_content=False)
    )
    return patched is not None
