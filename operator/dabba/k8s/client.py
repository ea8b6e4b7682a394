"""The one place that builds the Kubernetes API client (in-cluster, else kubeconfig)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from dabba.errors import ConfigError


@dataclass(frozen=True)
class Clients:
    """Typed API groups over one shared connection pool."""

    api: client.ApiClient
    core: client.CoreV1Api
    apps: client.AppsV1Api
    custom: client.CustomObjectsApi
    autoscaling: client.AutoscalingV2Api


def _configuration(kubeconfig: str | None, context: str | None) -> client.Configuration:
    cfg = client.Configuration()
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=cfg)
        else:
            config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=cfg
            )
    except (ConfigException, OSError) as exc:
        raise ConfigError(
            f"no usable Kubernetes credentials ({exc}); set KUBECONFIG or run in a cluster"
        ) from None
    # kopf runs sync handlers in a thread pool: give every worker a pooled connection.
    cfg.connection_pool_maxsize = 32
    return cfg


@functools.cache
def clients(kubeconfig: str | None = None, context: str | None = None) -> Clients:
    """Process-wide clients (cached: one connection pool per kubeconfig/context)."""
    api = client.ApiClient(_configuration(kubeconfig, context))
    return Clients(
        api=api,
        core=client.CoreV1Api(api),
        apps=client.AppsV1Api(api),
        custom=client.CustomObjectsApi(api),
        autoscaling=client.AutoscalingV2Api(api),
    )
