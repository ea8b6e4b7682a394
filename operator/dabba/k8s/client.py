"""The one place that builds the Kubernetes API client (in-cluster, else kubeconfig)."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kubernetes import client, config
from kubernetes.client import rest
from kubernetes.config.config_exception import ConfigException

from dabba.errors import ConfigError
from dabba.k8s.cache import ObjectCache

#: Called with ``(verb, resource)`` before every API request the clients make.
RequestObserver = Callable[[str, str], None]
_observers: list[RequestObserver] = []

#: Kubernetes verbs of the HTTP methods (GET is get, list or watch, DELETE delete or
#: deletecollection, decided by the path and query).
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}
#: Subresources of a Namespace (``namespaces/{name}/status``): not a namespaced resource.
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


def observe_requests(observer: RequestObserver) -> None:
    """Call ``observer(verb, resource)`` for every request made through :func:`clients`.

    Idempotent: registering the same observer twice counts once. ``dabba.telemetry``
    registers its ``dabba_api_requests_total`` counter here (this layer may not import it).
    """
    if observer not in _observers:
        _observers.append(observer)


def request_labels(method: str, url: str) -> tuple[str, str]:
    """The Kubernetes verb and resource of a request, as RBAC names them.

    The resource is the plural, qualified by its API group unless core, with the subresource
    after a slash: ``secrets``, ``deployments.apps``, ``meshcertificates.dabba.io/status``.
    Paths outside ``/api`` and ``/apis`` (``/version``) are ``nonresource``. The label values
    come from a closed set (the resources dabba touches), never from object names.
    """
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if segments[:1] == ["api"] and len(segments) >= 2:  # noqa: PLR2004 - /api/v1
        group, rest = "", segments[2:]
    elif segments[:1] == ["apis"] and len(segments) >= 3:  # noqa: PLR2004 - /apis/group/version
        group, rest = segments[1], segments[3:]
    else:
        return method.lower(), "nonresource"
    if not rest:  # discovery: /api/v1, /apis/apps/v1
        return method.lower(), "nonresource"
    if (
        rest[0] == "namespaces"
        and len(rest) >= 3  # noqa: PLR2004 - namespaces/{ns}/{resource}
        and rest[2] not in _NAMESPACE_SUBRESOURCES
    ):
        rest = rest[2:]
    resource = rest[0] + (f".{group}" if group else "")
    named = len(rest) >= 2  # noqa: PLR2004 - {resource}/{name}
    if len(rest) >= 3:  # noqa: PLR2004 - {resource}/{name}/{subresource}
        resource += "/" + rest[2]
    upper = method.upper()
    if upper == "GET":
        query = parse_qs(parts.query)
        if query.get("watch", [""])[0] in ("true", "1"):
            verb = "watch"
        else:
            verb = "get" if named else "list"
    elif upper == "DELETE":
        verb = "delete" if named else "deletecollection"
    else:
        verb = _VERBS.get(upper, method.lower())
    return verb, resource


def _streams(url: str) -> bool:
    """A watch or a log follow: the body arrives over time and must not be read up front."""
    if "watch=" not in url and "follow=" not in url:
        return False
    query = parse_qs(urlsplit(url).query)
    return any(query.get(key, [""])[0] in ("true", "1") for key in ("watch", "follow"))


class CountingApiClient(client.ApiClient):
    """The kubernetes ``ApiClient``, telling the observers about every request it makes, and
    returning every connection to the pool.

    ``call_api`` is the one method every typed API call goes through (raw
    ``_preload_content=False`` calls included), once per request.

    Why read the body here: with ``_preload_content=False`` the client hands back urllib3's
    response unread, and urllib3 returns a connection to its pool only once the body has been
    read. Calls whose answer nobody reads (a status patch, a create, an existence check) left
    their connection behind, and the next request paid a new TCP and TLS handshake: the
    canary-scale benchmark (issue 8) found one handshake per request. Reading it here is
    what ``.data`` does later anyway (urllib3 keeps the body), so callers see no difference.
    """

    def call_api(
        self,
        method: str,
        url: str,
        header_params: Any = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> rest.RESTResponse:
        if _observers:
            verb, resource = request_labels(method, url)
            for observer in _observers:
                observer(verb, resource)
        response = super().call_api(
            method,
            url,
            header_params=header_params,
            body=body,
            post_params=post_params,
            _request_timeout=_request_timeout,
        )
        if not _streams(url):
            response.read()
        return response


class GroupApi:
    """One named API group (``apps/v1``, ``autoscaling/v2``) through CustomObjectsApi, whose
    paths (``/apis/<group>/<version>/namespaces/<ns>/<plural>``) serve built-in kinds too.

    Why not AppsV1Api and AutoscalingV2Api: the generated classes import every model of their
    group and wrap every method in pydantic validation, ~6 MiB of the operator's idle memory
    (footprint benchmark, issue 8), and dabba sends and reads raw JSON anyway. Patches are
    JSON merge patches.
    """

    def __init__(self, custom: client.CustomObjectsApi, group: str, version: str) -> None:
        self._c, self.group, self.version = custom, group, version

    def get(self, plural: str, namespace: str, name: str, **kw: Any) -> Any:
        return self._c.get_namespaced_custom_object(
            self.group, self.version, namespace, plural, name, **kw
        )

    def list(self, plural: str, namespace: str, **kw: Any) -> Any:
        return self._c.list_namespaced_custom_object(
            self.group, self.version, namespace, plural, **kw
        )

    def create(self, plural: str, namespace: str, body: Mapping[str, Any], **kw: Any) -> Any:
        return self._c.create_namespaced_custom_object(
            self.group, self.version, namespace, plural, dict(body), **kw
        )

    def replace(
        self, plural: str, namespace: str, name: str, body: Mapping[str, Any], **kw: Any
    ) -> Any:
        return self._c.replace_namespaced_custom_object(
            self.group, self.version, namespace, plural, name, dict(body), **kw
        )

    def patch(
        self, plural: str, namespace: str, name: str, body: Mapping[str, Any], **kw: Any
    ) -> Any:
        return self._c.patch_namespaced_custom_object(
            self.group, self.version, namespace, plural, name, dict(body), **kw
        )

    def patch_scale(
        self, plural: str, namespace: str, name: str, body: Mapping[str, Any], **kw: Any
    ) -> Any:
        return self._c.patch_namespaced_custom_object_scale(
            self.group, self.version, namespace, plural, name, dict(body), **kw
        )


@dataclass(frozen=True)
class Clients:
    """API groups over one shared connection pool."""

    api: client.ApiClient
    core: client.CoreV1Api
    apps: GroupApi
    custom: client.CustomObjectsApi
    autoscaling: GroupApi
    #: Watch-fed copies of the objects the Canary controller reads (``dabba.k8s.cache``); only
    #: the operator has one (``with_cache``): without a watch feeding it, a copy would go stale.
    cache: ObjectCache | None = None


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
    api = CountingApiClient(_configuration(kubeconfig, context))
    custom = client.CustomObjectsApi(api)
    return Clients(
        api=api,
        core=client.CoreV1Api(api),
        apps=GroupApi(custom, "apps", "v1"),
        custom=custom,
        autoscaling=GroupApi(custom, "autoscaling", "v2"),
    )


def with_cache(k: Clients, cache: ObjectCache) -> Clients:
    """The same clients, reading through ``cache`` where a watch feeds it."""
    return dataclasses.replace(k, cache=cache)
