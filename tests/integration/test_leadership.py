"""dabba.leadership against a real KopfPeering object on the API server.

The certificate runner is not a kopf daemon, so kopf's pause does not reach it; it asks
Leadership before acting. Here the peering object is written by hand (as kopf's keep-alives
would) and the answer is read back through the API.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from kubernetes import client

from dabba.config import OperatorConfig
from dabba.k8s.client import clients
from dabba.leadership import Leadership
from localcluster import cluster as lc

pytestmark = pytest.mark.integration

NAME = "dabba-leadership-test"


def _config(namespace: str, *, standalone: bool = False) -> OperatorConfig:
    return OperatorConfig(
        clusterwide=False,
        namespaces=(namespace,),
        prometheus_url=None,
        listen_host="127.0.0.1",
        metrics_port=0,
        log_format="json",
        log_level="info",
        peering_name=NAME,
        standalone=standalone,
        priority=100,
        identity="me",
    )


def _peer(priority: int, seconds_ago: float) -> dict[str, Any]:
    seen = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds_ago)
    return {"priority": priority, "lifetime": 20, "lastseen": seen.isoformat()}


def _write(api: client.ApiClient, namespace: str, status: dict[str, Any]) -> None:
    custom = client.CustomObjectsApi(api)
    body: dict[str, Any] = {
        "apiVersion": "kopf.dev/v1",
        "kind": "KopfPeering",
        "metadata": {"name": NAME},
        "status": status,
    }
    existing = custom.list_namespaced_custom_object("kopf.dev", "v1", namespace, "kopfpeerings")
    current = next((o for o in existing["items"] if o["metadata"]["name"] == NAME), None)
    if current is None:
        custom.create_namespaced_custom_object("kopf.dev", "v1", namespace, "kopfpeerings", body)
        return
    body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    custom.replace_namespaced_custom_object("kopf.dev", "v1", namespace, "kopfpeerings", NAME, body)


def test_follows_the_peering_object(
    cluster: lc.Cluster, k8s_api: client.ApiClient, namespace: str
) -> None:
    ticks = [0.0]
    leadership = Leadership(
        clients(str(cluster.kubeconfig)),
        _config(namespace),
        lambda: dt.datetime.now(dt.UTC),
        monotonic=lambda: ticks[0],
    )

    # No peering object yet: nobody else is there.
    assert leadership.active() is True

    _write(k8s_api, namespace, {"me": _peer(100, 1), "other": _peer(101, 1)})
    assert leadership.cached() is True, "the last answer is reused within the TTL"
    ticks[0] += 2
    assert leadership.cached() is None, "a stale answer is not reused"
    assert leadership.active() is False, "a live peer with a higher priority leads"

    _write(k8s_api, namespace, {"me": _peer(100, 1), "other": _peer(101, 60)})
    ticks[0] += 2
    assert leadership.active() is True, "the higher peer's keep-alive expired: we lead"

    _write(k8s_api, namespace, {"me": _peer(100, 1), "other": _peer(99, 1)})
    ticks[0] += 2
    assert leadership.active() is True, "a lower peer does not pause us"


def test_standalone_always_leads_without_reading(
    cluster: lc.Cluster, k8s_api: client.ApiClient, namespace: str
) -> None:
    _write(k8s_api, namespace, {"other": _peer(1000, 1)})
    leadership = Leadership(
        clients(str(cluster.kubeconfig)),
        _config(namespace, standalone=True),
        lambda: dt.datetime.now(dt.UTC),
    )
    assert leadership.cached() is True
    assert leadership.active() is True
