"""The e2e suite against a cluster someone else runs (kind, via ``e2e/kind/run.sh``).

The suite normally owns its control plane (``cluster.up()``). With ``DABBA_E2E_KUBECONFIG`` set
it uses that cluster instead, found through the variables ``e2e/kind/run.sh`` exports:

* ``DABBA_E2E_KUBECONFIG``     cluster-admin kubeconfig of the cluster;
* ``DABBA_E2E_PROMETHEUS_URL`` a Prometheus that scrapes the suite's exporters (required);
* ``DABBA_E2E_TARGETS_DIR``    where scrape targets go as file_sd JSON (required: the
                               Prometheus must discover them from there);
* ``DABBA_E2E_HOST_ADDRESS``   where the cluster's pods reach this host (default 127.0.0.1:
                               the operator runs here, as with the local control plane);
* ``DABBA_E2E_OPERATOR``       ``local`` (default: the suite runs ``dabba run`` itself) or
                               ``chart`` (the operator is the chart's Deployment in the cluster,
                               ``DABBA_E2E_OPERATOR_NAMESPACE`` / ``..._SELECTOR``).

kubectl and helm come from the binary cache when it has them, else from ``PATH`` (kind users
have their own). Nothing here starts or stops the cluster.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from localcluster.cluster import Binaries, Cluster, ClusterError, State, dabba_home, versions

KUBECONFIG_ENV = "DABBA_E2E_KUBECONFIG"


def configured() -> bool:
    """True when the suite is pointed at an external cluster."""
    return bool(os.environ.get(KUBECONFIG_ENV))


def host_address() -> str:
    """The address pods use to reach servers the tests start on this host."""
    return os.environ.get("DABBA_E2E_HOST_ADDRESS") or "127.0.0.1"


def bind_address() -> str:
    """Where tests' servers listen: loopback unless pods elsewhere must reach them."""
    return "127.0.0.1" if host_address() == "127.0.0.1" else "0.0.0.0"  # noqa: S104


def operator_mode() -> str:
    mode = os.environ.get("DABBA_E2E_OPERATOR", "local")
    if mode not in {"local", "chart"}:
        raise ClusterError(f"DABBA_E2E_OPERATOR must be 'local' or 'chart', not {mode!r}")
    if mode == "chart" and not configured():
        raise ClusterError(f"DABBA_E2E_OPERATOR=chart needs {KUBECONFIG_ENV} (e2e/kind/run.sh)")
    return mode


@dataclass(frozen=True)
class PathBinaries(Binaries):
    """kubectl and helm from the cache when built, else from PATH; no third-party CRDs."""

    def _tool(self, cached: Path, name: str) -> Path:
        if cached.exists():
            return cached
        found = shutil.which(name)
        if found is None:
            raise ClusterError(f"{name} is needed on PATH (or `make binaries`)")
        return Path(found)

    @property
    def kubectl(self) -> Path:
        return self._tool(super().kubectl, "kubectl")

    @property
    def helm(self) -> Path:
        return self._tool(super().helm, "helm")

    @property
    def third_party_crds(self) -> list[Path]:
        return []  # the cluster's owner installed Gateway API and the mesh


@dataclass(frozen=True)
class ExternalCluster(Cluster):
    """A cluster the suite does not own: same interface as the local one."""

    external_kubeconfig: Path
    external_prometheus: str
    external_targets: Path

    @property
    def kubeconfig(self) -> Path:
        return self.external_kubeconfig

    @property
    def apiserver_url(self) -> str:
        return _server(self.external_kubeconfig)

    @property
    def prometheus_url(self) -> str:
        return self.external_prometheus

    @property
    def targets_dir(self) -> Path:
        return self.external_targets

    def env(self) -> dict[str, str]:
        out = super().env()
        address = host_address()
        out["NO_PROXY"] = ",".join(dict.fromkeys(["127.0.0.1", "localhost", address]))
        return out


def from_env(workdir: Path) -> ExternalCluster:
    """The external cluster the environment names; a clear error for what is missing."""
    kubeconfig = Path(os.environ[KUBECONFIG_ENV])
    if not kubeconfig.is_file():
        raise ClusterError(f"{KUBECONFIG_ENV}={kubeconfig} is not a file")
    required = ("DABBA_E2E_PROMETHEUS_URL", "DABBA_E2E_TARGETS_DIR")
    missing = [name for name in required if not os.environ.get(name)]
    if missing:
        raise ClusterError(
            f"{KUBECONFIG_ENV} is set, so the suite uses that cluster; it also needs "
            + " and ".join(missing)
            + " (e2e/kind/run.sh sets them all)"
        )
    targets = Path(os.environ["DABBA_E2E_TARGETS_DIR"])
    targets.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    return ExternalCluster(
        dir=workdir,
        state=State(versions=versions(), ports={}),
        binaries=PathBinaries(dabba_home() / "bin", versions()),
        external_kubeconfig=kubeconfig,
        external_prometheus=os.environ["DABBA_E2E_PROMETHEUS_URL"].rstrip("/"),
        external_targets=targets,
    )


def _server(kubeconfig: Path) -> str:
    doc = yaml.safe_load(kubeconfig.read_text()) or {}
    contexts = {c["name"]: c["context"] for c in doc.get("contexts", [])}
    clusters = {c["name"]: c["cluster"] for c in doc.get("clusters", [])}
    context = contexts.get(doc.get("current-context", ""), {})
    server = clusters.get(context.get("cluster", ""), {}).get("server")
    if not server:
        raise ClusterError(f"{kubeconfig}: no server for the current context")
    return str(server)
