"""pytest fixtures over the local control plane (the same code as ``make cluster-up``).

``cluster`` reuses a running cluster or starts one (or, with ``DABBA_E2E_KUBECONFIG``, uses
an external one: ``localcluster.external``). A cluster the tests started is stopped at
the end on CI (``CI`` set) or with ``DABBA_STOP_CLUSTER=1``; on a developer's machine it keeps
running, so the next run starts in seconds and two test sessions never pull the cluster from
under each other (``make cluster-down`` stops it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, config

from localcluster import cluster as lc
from localcluster import external


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[lc.Cluster]:
    if external.configured():  # e2e/kind/run.sh: someone else's cluster, never started here
        c: lc.Cluster = external.from_env(tmp_path_factory.mktemp("external-cluster"))
        lc.install_crds(c)
        yield c
        return
    running = lc.attach()
    c = running or lc.up()
    lc.install_crds(c)  # the CRDs in the work tree may be newer than the running cluster's
    yield c
    stop = os.environ.get("DABBA_STOP_CLUSTER") == "1" or bool(os.environ.get("CI"))
    if running is None and stop:
        lc.down()


@pytest.fixture(scope="session")
def k8s_api(cluster: lc.Cluster) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield api
    api.close()


@pytest.fixture
def namespace(k8s_api: client.ApiClient) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(k8s_api)
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, labels={"dabba.io/test": "true"})
        )
    )
    yield name
    core.delete_namespace(name, propagation_policy="Background")
