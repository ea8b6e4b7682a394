"""pytest fixtures over the local control plane (the same code as ``make cluster-up``).

``cluster`` reuses a running cluster or starts one, and stops only what it started itself.
Set ``DABBA_KEEP_CLUSTER=1`` to leave a cluster started by the tests running afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, config

from localcluster import cluster as lc


@pytest.fixture(scope="session")
def cluster() -> Iterator[lc.Cluster]:
    running = lc.attach()
    c = running or lc.up()
    lc.install_crds(c)  # the CRDs in the work tree may be newer than the running cluster's
    yield c
    if running is None and os.environ.get("DABBA_KEEP_CLUSTER") != "1":
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
