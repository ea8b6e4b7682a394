"""The CLI's only door to the cluster: kubeconfig like kubectl, reads and the few writes.

Commands stay thin: they ask a :class:`Cluster` for dicts (``_preload_content=False`` + JSON,
which skips the client's model classes) and never see ``ApiException`` or urllib3 errors —
every failure becomes a :class:`~dabba.cli.errors.Failure` naming the object and what to do,
or a :class:`~dabba.cli.errors.ConfigProblem` for an unusable kubeconfig.

Connection rules follow kubectl: ``--kubeconfig``, else ``$KUBECONFIG`` (several paths joined
with ``:``), else ``~/.kube/config``; with no kubeconfig at all inside a pod, the in-cluster
service account. The namespace is ``-n``, else the context's, else ``default``; ``-A`` lists
every namespace and, for a single named object, finds it wherever it is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar

import click
import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from dabba.cli.errors import ConfigProblem, Failure, NotFound
from dabba.k8s import meta
from dabba.k8s.objects import raw_json

F = TypeVar("F", bound=Callable[..., Any])
#: An API object as the server returns it.
Obj = dict[str, Any]

#: (connect, read) seconds: a CLI must never hang on a dead API server.
REQUEST_TIMEOUT: Final = (5.0, 30.0)
_NOT_FOUND: Final = 404
_UNAUTHORIZED: Final = 401
_FORBIDDEN: Final = 403
_SA_NAMESPACE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclasses.dataclass(frozen=True, slots=True)
class Kind:
    """A dabba kind and its REST plural."""

    kind: str
    plural: str


CANARY: Final = Kind(meta.CANARY_KIND, meta.CANARY_PLURAL)
MESHCERT: Final = Kind(meta.MESHCERT_KIND, meta.MESHCERT_PLURAL)


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """Where the commands point: resolved like kubectl does."""

    #: ``-n``, else the context's namespace, else ``default``.
    namespace: str
    #: ``-A``: list every namespace; find a named object wherever it is.
    all_namespaces: bool
    #: Context name (None in-cluster), for messages.
    context: str | None
    #: API server URL, for messages.
    server: str

    def where(self) -> str:
        """``namespace shop`` or ``all namespaces``, for messages."""
        return "all namespaces" if self.all_namespaces else f"namespace {self.namespace}"


# ---------------------------------------------------------------------------------------------
# kubeconfig


def _kubeconfig_paths(explicit: str | None) -> list[Path]:
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigProblem(f"kubeconfig {explicit} does not exist")
        return [path]
    env = os.environ.get("KUBECONFIG", "")
    candidates = [p for p in env.split(os.pathsep) if p] if env else ["~/.kube/config"]
    return [p for p in (Path(c).expanduser() for c in candidates) if p.is_file()]


def _read_contexts(paths: list[Path]) -> tuple[dict[str, Mapping[str, Any]], str | None]:
    """Contexts by name and the current context, merged as kubectl merges (first wins)."""
    contexts: dict[str, Mapping[str, Any]] = {}
    current: str | None = None
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigProblem(f"cannot read kubeconfig {path}: {exc}") from None
        if not isinstance(doc, Mapping):
            raise ConfigProblem(f"kubeconfig {path} is not a kubeconfig document")
        for entry in doc.get("contexts") or ():
            if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
                ctx = entry.get("context")
                contexts.setdefault(entry["name"], ctx if isinstance(ctx, Mapping) else {})
        if current is None and doc.get("current-context"):
            current = str(doc["current-context"])
    return contexts, current


def connect(
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    all_namespaces: bool,
) -> Cluster:
    """A :class:`Cluster` for the given kubectl-style options.

    Raises:
        ConfigProblem: no kubeconfig, unknown context, or credentials that do not load.
    """
    cfg = client.Configuration()
    paths = _kubeconfig_paths(kubeconfig)
    if not paths and not context and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config(client_configuration=cfg)
        except ConfigException as exc:
            raise ConfigProblem(f"in-cluster configuration failed: {exc}") from None
        ns = namespace or _service_account_namespace()
        target = Target(ns, all_namespaces, None, str(cfg.host))
        return Cluster(client.ApiClient(cfg), target)
    if not paths:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise ConfigProblem(f"no kubeconfig found at {where}; set KUBECONFIG or pass --kubeconfig")
    contexts, current = _read_contexts(paths)
    name = context or current
    if not name:
        raise ConfigProblem(
            "the kubeconfig has no current context; pass --context "
            f"(available: {', '.join(sorted(contexts)) or 'none'})"
        )
    if name not in contexts:
        raise ConfigProblem(
            f"context {name} not found in the kubeconfig "
            f"(available: {', '.join(sorted(contexts)) or 'none'})"
        )
    try:
        config.load_kube_config(
            config_file=os.pathsep.join(str(p) for p in paths),
            context=name,
            client_configuration=cfg,
            persist_config=False,
        )
    except (ConfigException, OSError, ValueError) as exc:
        raise ConfigProblem(f"cannot use context {name} from the kubeconfig: {exc}") from None
    ns = namespace or str(contexts[name].get("namespace") or "") or "default"
    return Cluster(client.ApiClient(cfg), Target(ns, all_namespaces, name, str(cfg.host)))


def _service_account_namespace() -> str:
    try:
        return _SA_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def cluster_options(*, all_namespaces: bool = True) -> Callable[[F], F]:
    """Add kubectl's ``--kubeconfig --context -n [-A]`` and pass ``cluster=`` to the command.

    The connection is made when the command runs, so ``--help`` needs no cluster.
    """

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(
            *args: Any,
            kubeconfig: str | None,
            context: str | None,
            namespace: str | None,
            all_namespaces: bool = False,
            **kwargs: Any,
        ) -> Any:
            cluster = connect(kubeconfig, context, namespace, all_namespaces)
            click.get_current_context().call_on_close(cluster.close)
            return command(*args, cluster=cluster, **kwargs)

        options = [
            click.option(
                "--kubeconfig",
                metavar="PATH",
                help="Kubeconfig file. Default: $KUBECONFIG, else ~/.kube/config.",
            ),
            click.option("--context", help="Kubeconfig context. Default: the current context."),
            click.option(
                "-n",
                "--namespace",
                help="Namespace. Default: the context's namespace, else default.",
            ),
        ]
        if all_namespaces:
            options.append(
                click.option(
                    "-A",
                    "--all-namespaces",
                    "all_namespaces",
                    is_flag=True,
                    help="All namespaces (a named object is looked up in all of them).",
                )
            )
        decorated: Callable[..., Any] = wrapper
        for option in reversed(options):
            decorated = option(decorated)
        return decorated  # type: ignore[return-value]  # same callable, click-wrapped

    return decorate


# ---------------------------------------------------------------------------------------------
# reads and writes


class Cluster:
    """Reads and writes for the CLI; every method raises only ``Failure``/``NotFound``."""

    def __init__(self, api: client.ApiClient, target: Target) -> None:
        self.target = target
        self._api = api
        self._custom = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)

    def close(self) -> None:
        """Release the connection pool (sockets would otherwise linger until exit)."""
        self._api.close()
        self._api.rest_client.pool_manager.clear()

    # -- custom objects -------------------------------------------------------------------

    def list_objects(self, kind: Kind) -> list[Obj]:
        """Every object of ``kind`` in the target namespace (or all with ``-A``)."""
        with self._errors(f"list {kind.plural}", kind=kind):
            if self.target.all_namespaces:
                resp = self._custom.list_cluster_custom_object(
                    meta.GROUP,
                    meta.VERSION,
                    kind.plural,
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT,
                )
            else:
                resp = self._custom.list_namespaced_custom_object(
                    meta.GROUP,
                    meta.VERSION,
                    self.target.namespace,
                    kind.plural,
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT,
                )
        return _items(resp)

    def read(self, kind: Kind, namespace: str, name: str) -> Obj | None:
        """One object, or None when it does not exist."""
        try:
            with self._errors(f"read {kind.kind} {namespace}/{name}", kind=kind, missing_ok=True):
                resp = self._custom.get_namespaced_custom_object(
                    meta.GROUP,
                    meta.VERSION,
                    namespace,
                    kind.plural,
                    name,
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT,
                )
        except _MissingError:
            return None
        return raw_json(resp)

    def get(self, kind: Kind, name: str) -> Obj:
        """The object named ``name`` in the target namespace; with ``-A``, wherever it is.

        Raises:
            NotFound: with a hint where it does exist, when it does.
            ConfigProblem: ``-A`` and the name exists in several namespaces.
        """
        if self.target.all_namespaces:
            found = self._everywhere(kind, name)
            if len(found) == 1:
                return found[0]
            if not found:
                raise NotFound(f"{kind.kind} {name} not found in any namespace")
            spaces = ", ".join(sorted(_namespace(o) for o in found))
            raise ConfigProblem(
                f"{kind.kind} {name} exists in several namespaces ({spaces}); choose one with -n"
            )
        obj = self.read(kind, self.target.namespace, name)
        if obj is None:
            raise NotFound(self._not_found_message(kind, name))
        return obj

    def annotate(self, obj: Obj, changes: Mapping[str, str | None]) -> Obj:
        """Merge-patch annotations of a dabba object (``None`` removes one)."""
        kind = CANARY if obj.get("kind") == CANARY.kind else MESHCERT
        namespace, name = _namespace(obj), obj["metadata"]["name"]
        body = {"metadata": {"annotations": dict(changes)}}
        try:
            with self._errors(
                f"annotate {kind.kind} {namespace}/{name}", kind=kind, missing_ok=True
            ):
                resp = self._custom.patch_namespaced_custom_object(
                    meta.GROUP,
                    meta.VERSION,
                    namespace,
                    kind.plural,
                    name,
                    body,
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT,
                )
        except _MissingError:
            raise NotFound(f"{kind.kind} {name} was deleted from namespace {namespace}") from None
        return raw_json(resp)

    # -- core objects ---------------------------------------------------------------------

    def read_secret(self, namespace: str, name: str) -> Obj | None:
        """A Secret (data still base64), or None. Callers must never print ``data``."""
        try:
            with self._errors(f"read Secret {namespace}/{name}", missing_ok=True):
                resp = self._core.read_namespaced_secret(
                    name, namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
                )
        except _MissingError:
            return None
        return raw_json(resp)

    def events(self, obj: Obj) -> list[Obj]:
        """Events about ``obj`` (this incarnation: same UID), oldest first."""
        md = obj.get("metadata") or {}
        selector = f"involvedObject.kind={obj.get('kind')},involvedObject.name={md.get('name')}"
        with self._errors(f"list Events of {obj.get('kind')} {md.get('name')}"):
            resp = self._core.list_namespaced_event(
                _namespace(obj),
                field_selector=selector,
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
        uid = md.get("uid")
        events = [
            e
            for e in _items(resp)
            if not uid or (e.get("involvedObject") or {}).get("uid") in (None, "", uid)
        ]
        return sorted(events, key=event_order)

    # -- helpers --------------------------------------------------------------------------

    def _everywhere(self, kind: Kind, name: str) -> list[Obj]:
        with self._errors(f"find {kind.kind} {name}", kind=kind):
            resp = self._custom.list_cluster_custom_object(
                meta.GROUP,
                meta.VERSION,
                kind.plural,
                field_selector=f"metadata.name={name}",
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
        return _items(resp)

    def _not_found_message(self, kind: Kind, name: str) -> str:
        base = f"{kind.kind} {name} not found in namespace {self.target.namespace}"
        try:
            elsewhere = sorted(_namespace(o) for o in self._everywhere(kind, name))
        except Failure:  # why: listing cluster-wide may be forbidden; the plain hint remains
            return f"{base} (try -A or -n NAMESPACE)"
        if len(elsewhere) == 1:
            return f"{base}; it exists in namespace {elsewhere[0]} (use -n {elsewhere[0]})"
        if elsewhere:
            return f"{base}; it exists in namespaces {', '.join(elsewhere)} (use -n NAMESPACE)"
        return f"{base}, nor in any other namespace (try `dabba status -A`)"

    @contextlib.contextmanager
    def _errors(
        self, action: str, *, kind: Kind | None = None, missing_ok: bool = False
    ) -> Iterator[None]:
        """Turn client exceptions into messages a person can act on."""
        try:
            yield
        except ApiException as exc:
            if exc.status == _NOT_FOUND and missing_ok and _is_object_not_found(exc):
                raise _MissingError from None
            self._api_failure(exc, action, kind)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            where = self.target.server + (
                f" (context {self.target.context})" if self.target.context else ""
            )
            raise Failure(
                f"cannot reach the Kubernetes API server at {where}: {_reason(exc)}"
            ) from None

    def _api_failure(self, exc: ApiException, action: str, kind: Kind | None) -> NoReturn:
        message = _status_message(exc)
        if exc.status == _NOT_FOUND and kind is not None:
            raise Failure(
                f"cannot {action}: the API server does not serve {kind.plural}.{meta.GROUP}/"
                f"{meta.VERSION}; install the dabba CRDs (kubectl apply -f crds/) "
                "or check the context"
            )
        if exc.status == _UNAUTHORIZED:
            raise Failure(
                f"cannot {action}: the API server rejected the credentials of context "
                f"{self.target.context or 'in-cluster'} (401); log in again"
            )
        if exc.status == _FORBIDDEN:
            raise Failure(f"cannot {action}: forbidden: {message}")
        raise Failure(f"cannot {action}: {exc.status} {message}")


class _MissingError(Exception):
    """Internal: a 404 for an object (not for the whole resource type)."""


def _status_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "")
    except ValueError:
        return str(exc.reason or "error")
    return str(body.get("message") or exc.reason) if isinstance(body, dict) else str(exc.reason)


def _is_object_not_found(exc: ApiException) -> bool:
    """A 404 naming an object, rather than the whole resource type missing (no CRD)."""
    try:
        body = json.loads(exc.body or "")
    except ValueError:
        return False
    return isinstance(body, dict) and bool((body.get("details") or {}).get("name"))


def _reason(exc: BaseException) -> str:
    # why: urllib3's MaxRetryError buries the useful part ("Connection refused") in .reason.
    inner = getattr(exc, "reason", None)
    return str(inner or exc) or type(exc).__name__


def _items(resp: object) -> list[Obj]:
    items = raw_json(resp).get("items") or []
    return [i for i in items if isinstance(i, dict)]


def _namespace(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")


def event_order(event: Obj) -> tuple[str, int]:
    """Sort key: when it last happened, then the order the API server stored it in.

    The operator often posts several Events in the same second (phase and weight change
    together); their timestamps tie, and resourceVersion (etcd's revision) breaks the tie.
    """
    version = str((event.get("metadata") or {}).get("resourceVersion") or "")
    return (event_time(event), int(version) if version.isdigit() else 0)


def event_time(event: Obj) -> str:
    """When an event last happened (RFC 3339 text sorts chronologically)."""
    return str(
        event.get("lastTimestamp")
        or (event.get("series") or {}).get("lastObservedTime")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )
