"""Run the operator as the Helm chart's ServiceAccount against the local control plane.

``kubeconfig_for_chart(cluster, directory)`` renders the chart's ServiceAccount and RBAC
(``helm template --show-only``), applies them, mints a token for the ServiceAccount with
``kubectl create token`` and writes a kubeconfig that authenticates with it. An operator started
with that kubeconfig has exactly the chart's permissions, so the real API server's RBAC proves
that they are enough (nothing answers 403) — the local cluster has no pods that could mount the
token themselves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from localcluster.cluster import REPO, Cluster, _run

CHART = REPO / "charts" / "dabba"
#: Release and namespace used for the e2e suite's operator (unless DABBA_E2E_AS_SERVICEACCOUNT=0).
E2E_RELEASE = "dabba-e2e-sa"
E2E_NAMESPACE = "dabba-system"
FIELD_MANAGER = "dabba-satoken"
RBAC_TEMPLATES = ("templates/serviceaccount.yaml", "templates/rbac.yaml")


def render(
    cluster: Cluster,
    *,
    release: str,
    namespace: str,
    values: Mapping[str, Any] | None = None,
    templates: tuple[str, ...] = RBAC_TEMPLATES,
    workdir: Path,
) -> list[dict[str, Any]]:
    """``helm template`` of ``templates`` (default: ServiceAccount and RBAC) as objects."""
    argv = [str(cluster.binaries.helm), "template", release, str(CHART), "--namespace", namespace]
    if values:
        values_file = workdir / f"{release}-values.json"
        values_file.write_text(json.dumps(dict(values)))  # JSON is YAML
        argv += ["--values", str(values_file)]
    for template in templates:
        argv += ["--show-only", template]
    out = _run(argv).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def service_account(objects: list[dict[str, Any]]) -> tuple[str, str]:
    """(namespace, name) of the one ServiceAccount among ``objects``."""
    found = [o["metadata"] for o in objects if o.get("kind") == "ServiceAccount"]
    if len(found) != 1:
        raise ValueError(f"expected one ServiceAccount in the chart's output, got {len(found)}")
    return found[0]["namespace"], found[0]["name"]


def apply(cluster: Cluster, objects: list[dict[str, Any]], namespace: str) -> None:
    """Create ``namespace`` if needed and server-side apply ``objects`` (idempotent)."""
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    docs = "\n---\n".join(json.dumps(o) for o in [ns, *objects])
    cluster.kubectl(
        "apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", "-", input_text=docs
    )


def delete(cluster: Cluster, objects: list[dict[str, Any]]) -> None:
    """Delete what ``apply`` created (not the namespace, which may hold other things)."""
    docs = "\n---\n".join(json.dumps(o) for o in objects)
    cluster.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input_text=docs)


def create_token(cluster: Cluster, namespace: str, name: str, duration: str = "4h") -> str:
    """A bound token for the ServiceAccount (TokenRequest API, as a kubelet would get one)."""
    out = cluster.kubectl("create", "token", name, "-n", namespace, f"--duration={duration}")
    return out.stdout.strip()


def write_kubeconfig(cluster: Cluster, token: str, path: Path, namespace: str) -> Path:
    """A kubeconfig for the cluster's server and CA that authenticates with ``token``."""
    admin = yaml.safe_load(cluster.kubeconfig.read_text())  # JSON locally, YAML from kind
    server = admin["clusters"][0]["cluster"]
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "dabba-local", "cluster": dict(server)}],
        "users": [{"name": "dabba-operator", "user": {"token": token}}],
        "contexts": [
            {
                "name": "dabba-operator",
                "context": {
                    "cluster": "dabba-local",
                    "user": "dabba-operator",
                    "namespace": namespace,
                },
            }
        ],
        "current-context": "dabba-operator",
    }
    path.write_text(json.dumps(doc, indent=2))
    path.chmod(0o600)
    return path


def kubeconfig_for_chart(
    cluster: Cluster,
    directory: Path,
    *,
    release: str = E2E_RELEASE,
    namespace: str = E2E_NAMESPACE,
    values: Mapping[str, Any] | None = None,
    duration: str = "4h",
) -> Path:
    """Install the chart's ServiceAccount and RBAC; return a kubeconfig with its token."""
    directory.mkdir(parents=True, exist_ok=True)
    objects = render(
        cluster, release=release, namespace=namespace, values=values, workdir=directory
    )
    apply(cluster, objects, namespace)
    sa_namespace, sa_name = service_account(objects)
    token = create_token(cluster, sa_namespace, sa_name, duration)
    return write_kubeconfig(cluster, token, directory / f"{release}.kubeconfig", sa_namespace)
