"""The chart's RBAC, judged by the real API server: enough for the operator, and no more.

The chart's ServiceAccount and (Cluster)Roles are rendered with ``helm template`` and applied;
``kubectl create token`` mints a token for the ServiceAccount, and ``dabba run`` runs with a
kubeconfig holding only that token. The operator then does real work on every resource its
rules name — issuing, re-issuing and replacing Secrets, rolling workloads, a whole Canary run
through Istio with an HPA and referenced config, a Gateway API route, revert on deletion, leader
election — and its log must show no 403. The same token is then refused what the operator does
not need: exec into pods, RBAC changes, namespace deletion, nodes, pods, CRD changes.

Secrets, honestly: kopf watches Secrets with a label selector, but RBAC cannot restrict list or
watch by label, so a cluster-wide install can read every Secret in the cluster. The tests show
that limit and show ``watchNamespaces`` confining it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from localcluster import cluster as lc
from localcluster import satoken

pytestmark = pytest.mark.integration

DABBA = Path(sys.executable).parent / "dabba"
GROUP, VERSION = "dabba.io", "v1alpha1"
FORBIDDEN = 403


# --------------------------------------------------------------------------------------------
# fixtures and helpers


@dataclass
class ChartRbac:
    """The chart's ServiceAccount and RBAC, installed, and a client authenticated as it."""

    kubeconfig: Path
    objects: list[dict[str, Any]]
    namespace: str
    name: str
    api: client.ApiClient


@contextlib.contextmanager
def chart_rbac(
    cluster: lc.Cluster, workdir: Path, namespace: str, values: dict[str, Any]
) -> Iterator[ChartRbac]:
    release = f"rbac-{namespace}"
    objects = satoken.render(
        cluster, release=release, namespace=namespace, values=values, workdir=workdir
    )
    satoken.apply(cluster, objects, namespace)
    sa_ns, sa_name = satoken.service_account(objects)
    token = satoken.create_token(cluster, sa_ns, sa_name, duration="1h")
    kubeconfig = satoken.write_kubeconfig(cluster, token, workdir / "sa.kubeconfig", sa_ns)
    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield ChartRbac(kubeconfig, objects, sa_ns, sa_name, api)
    finally:
        api.close()
        satoken.delete(cluster, objects)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
            return bool(resp.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def operator(cluster: lc.Cluster, kubeconfig: Path, log: Path, *scope: str) -> Iterator[Path]:
    """`dabba run` with nothing but the ServiceAccount's token; yields its JSON log file."""
    port = lc.free_port()
    env = {
        **os.environ,
        **cluster.env(),
        "KUBECONFIG": str(kubeconfig),
        "DABBA_PROMETHEUS_URL": cluster.prometheus_url,
    }
    argv = [
        str(DABBA),
        "run",
        *scope,
        "--listen-host=127.0.0.1",
        f"--metrics-port={port}",
        "--log-format=json",
        "--log-level=info",
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        lc.wait_for(
            "the operator's /healthz",
            lambda: _healthy(f"http://127.0.0.1:{port}/healthz"),
            60,
            on_fail=lambda: log.read_text()[-3000:],
        )
        yield log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def log_records(log: Path) -> list[dict[str, Any]]:
    records = []
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            doc = json.loads(line)
            if isinstance(doc, dict):
                records.append(doc)
    return records


#: The API server's RBAC refusal: 'User "system:serviceaccount:ns:sa" cannot list resource ...'.
RBAC_DENIAL = re.compile(r"cannot [a-z]+ resource")
#: An HTTP 403 as kopf, the kubernetes client and dabba's own log records spell it.
STATUS_403 = re.compile(r"\"status\": 403\b|\(403\)|[Cc]ode: 403\b|status=403\b|'code': 403\b")


def refusals(log: Path, namespace: str) -> list[str]:
    """Log lines where the API server refused the operator.

    RBAC refusals and kopf's "Not enough permissions" always count. A bare 403 counts unless it
    is NamespaceLifecycle's (writing into a namespace being deleted), or a dabba record about
    another namespace: an all-namespaces operator on a shared cluster meets other sessions'
    namespaces going away.
    """
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if "not enough permissions" in line.lower() or RBAC_DENIAL.search(line):
            found.append(line)
            continue
        if not STATUS_403.search(line) or "being terminated" in line:
            continue
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("namespace") not in (None, namespace):
                continue
        found.append(line)
    return found


def assert_never_forbidden(log: Path, namespace: str) -> None:
    """Nothing in the operator's log says the API server refused it."""
    lines = refusals(log, namespace)
    assert not lines, "refused by the API server:\n" + "\n".join(lines[:5])


def did(log: Path, namespace: str, name: str, event: str, **fields: str) -> bool:
    """This operator (not another one sharing the cluster) logged ``event`` for the object."""
    return any(
        r.get("event") == event
        and r.get("namespace") == namespace
        and r.get("name") == name
        and all(str(r.get(k)) == v for k, v in fields.items())
        for r in log_records(log)
    )


def require_own_work(log: Path, namespace: str, name: str, event: str, **fields: str) -> None:
    """The operator under test did this itself — not another dabba operator on the cluster.

    The local cluster is shared: a concurrent test session's operator (admin credentials) may
    act first, and then this run proves nothing about the chart's RBAC. That is a skip, never
    a pass; a refusal in our own log is a failure either way.
    """
    # The line may follow the status write the caller waited for (status is written last in
    # a reconcile, the log line after it): give it a moment before concluding anything.
    deadline = time.monotonic() + 15
    while not did(log, namespace, name, event, **fields):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    else:
        return
    assert_never_forbidden(log, namespace)
    pytest.skip(
        f"another dabba operator on this cluster did {event!r} for {namespace}/{name} first "
        "(a concurrent test session?); the RBAC proof needs this operator to do the work"
    )


def status_code(call: Callable[[], object]) -> int:
    """HTTP status of an API call: 2xx as 200, else the error's status."""
    try:
        call()
    except client.exceptions.ApiException as exc:
        return int(exc.status)
    return 200


def can_i(api: client.ApiClient, verb: str, resource: str, namespace: str = "", **kw: str) -> bool:
    """SelfSubjectAccessReview with the ServiceAccount's own token."""
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                verb=verb, resource=resource, namespace=namespace or None, **kw
            )
        )
    )
    result = client.AuthorizationV1Api(api).create_self_subject_access_review(review)
    return bool(result.status.allowed)


def custom_get(api: client.ApiClient, plural: str, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, name
    )
    return obj


def condition(obj: dict[str, Any], type_: str) -> str | None:
    for c in obj.get("status", {}).get("conditions") or []:
        if c.get("type") == type_:
            return str(c.get("status"))
    return None


def exists(call: Callable[[], object]) -> bool:
    return status_code(call) == 200


# --------------------------------------------------------------------------------------------
# the work: one object per rule in the chart


def workload(kind: str, name: str, **template_spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    spec: dict[str, Any] = {
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "containers": [{"name": "app", "image": f"registry.invalid/{name}:1"}],
                **template_spec,
            },
        },
    }
    if kind == "Deployment":
        spec["replicas"] = 1
    if kind == "StatefulSet":
        spec |= {"replicas": 1, "serviceName": name}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def behaviour(image: str) -> dict[str, Any]:
    """Target template: how the traffic simulator makes this version behave, plus config refs."""
    return {
        "metadata": {
            "annotations": {
                "simulator.dabba.io/error-rate": "0",
                "simulator.dabba.io/latency-ms": "20",
                "simulator.dabba.io/rps": "50",
            }
        },
        "spec": {"containers": [{"name": "app", "image": f"registry.invalid/{image}"}]},
    }


def canary(name: str, router: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Canary",
        "metadata": {"name": name},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "router": router,
            "service": {"port": 9898},
            "progressDeadlineSeconds": 60,
            "revertOnDeletion": True,
            "analysis": {
                "interval": "5s",
                "threshold": 1,
                "stepWeights": [50],
                "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}],
            },
        },
    }


def meshcert(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MeshCertificate",
        "metadata": {"name": name},
        "spec": spec,
    }


def create_all(cluster: lc.Cluster, namespace: str, docs: list[dict[str, Any]]) -> None:
    text = "\n---\n".join(json.dumps(d) for d in docs)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input_text=text)


def certificates(cluster: lc.Cluster, api: client.ApiClient, ns: str, log: Path) -> None:
    """A self-signed CA, and a leaf it signs into a Secret that exists with the wrong type,
    rolling a Deployment, a StatefulSet and a DaemonSet; then a manual renewal."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespaced_secret(
        ns, client.V1Secret(metadata=client.V1ObjectMeta(name="api-tls"), string_data={"a": "b"})
    )
    create_all(
        cluster,
        ns,
        [
            workload("Deployment", "api"),
            workload("StatefulSet", "api-sts"),
            workload("DaemonSet", "api-ds"),
            meshcert("root", {"secretName": "root-ca", "isCA": True, "commonName": "rbac root"}),
            meshcert(
                "api",
                {
                    "secretName": "api-tls",
                    "service": "api",
                    "issuerRef": {"kind": "MeshCertificate", "name": "root"},
                    "restartOnRotation": [
                        {"kind": "Deployment", "name": "api"},
                        {"kind": "StatefulSet", "name": "api-sts"},
                        {"kind": "DaemonSet", "name": "api-ds"},
                    ],
                },
            ),
        ],
    )

    def ready(name: str, serial_not: str | None = None) -> bool:
        obj = custom_get(api, "meshcertificates", ns, name)
        return condition(obj, "Ready") == "True" and obj["status"].get("serialNumber") not in (
            None,
            serial_not,
        )

    lc.wait_for("the leaf certificate Ready", lambda: ready("api"), 60)
    require_own_work(log, ns, "root", "new signing CA")
    require_own_work(log, ns, "api", "issued")
    secret = core.read_namespaced_secret("api-tls", ns)
    assert secret.type == "kubernetes.io/tls"  # the Opaque one was deleted and replaced
    assert {"tls.crt", "tls.key", "ca.crt"} <= set(secret.data)
    assert (secret.metadata.labels or {}).get("dabba.io/meshcertificate") == "api"

    fingerprint = custom_get(api, "meshcertificates", ns, "api")["status"]["fingerprintSHA256"]
    reads = {
        "api": apps.read_namespaced_deployment,
        "api-sts": apps.read_namespaced_stateful_set,
        "api-ds": apps.read_namespaced_daemon_set,
    }
    for name, read in reads.items():
        lc.wait_for(
            f"{name} rolled for the new certificate",
            lambda read=read, name=name: (  # type: ignore[misc]
                (read(name, ns).spec.template.metadata.annotations or {}).get(
                    "dabba.io/certificate-api"
                )
                == fingerprint[:16]
            ),
            30,
        )

    # `dabba cert renew`: a new certificate into the same Secret (a replace). A request is
    # served by a certificate issued after it, and both stamps have whole seconds.
    issued = custom_get(api, "meshcertificates", ns, "api")["status"]
    serial = issued["serialNumber"]
    not_before = dt.datetime.fromisoformat(issued["notBefore"].replace("Z", "+00:00"))
    lc.wait_for(
        "a clock second after the issuance",
        lambda: dt.datetime.now(dt.UTC) >= not_before + dt.timedelta(seconds=1),
        10,
    )
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        ns,
        "meshcertificates",
        "api",
        {"metadata": {"annotations": {"dabba.io/renew-requested-at": now}}},
    )
    lc.wait_for("the renewed certificate", lambda: ready("api", serial_not=serial), 60)


def canaries(cluster: lc.Cluster, api: client.ApiClient, ns: str, log: Path) -> None:
    """An Istio Canary with an HPA and referenced config through a whole run, a Gateway API
    Canary to Initialized, then both deleted with revertOnDeletion."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    custom = client.CustomObjectsApi(api)
    env_from = [{"configMapRef": {"name": "web-config"}}, {"secretRef": {"name": "web-secret"}}]
    web = workload("Deployment", "web")
    web["spec"]["template"] = behaviour("web:1")
    web["spec"]["template"]["metadata"]["labels"] = {"app": "web"}
    web["spec"]["template"]["spec"]["containers"][0]["envFrom"] = env_from
    create_all(
        cluster,
        ns,
        [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config"}},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-secret"}},
            web,
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "web"},
                "spec": {
                    "scaleTargetRef": {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "web",
                    },
                    "minReplicas": 1,
                    "maxReplicas": 3,
                },
            },
            workload("Deployment", "shop"),
            canary("web", "istio"),
            canary("shop", "gatewayapi"),
        ],
    )

    def phase(name: str) -> str | None:
        return custom_get(api, "canaries", ns, name).get("status", {}).get("phase")

    lc.wait_for(
        "both Canaries Initialized", lambda: {phase("web"), phase("shop")} == {"Initialized"}, 90
    )
    require_own_work(log, ns, "web", "canary progressed", phase="Initialized")
    require_own_work(log, ns, "shop", "canary progressed", phase="Initialized")
    assert apps.read_namespaced_deployment("web-primary", ns)
    assert client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler("web-primary", ns)
    for svc in ("web", "web-primary", "web-canary", "shop", "shop-primary", "shop-canary"):
        assert core.read_namespaced_service(svc, ns)
    istio = ("networking.istio.io", "v1", ns)
    assert custom.get_namespaced_custom_object(*istio, "virtualservices", "web")
    for dr in ("web-primary", "web-canary"):
        assert custom.get_namespaced_custom_object(*istio, "destinationrules", dr)
    gwapi = ("gateway.networking.k8s.io", "v1", ns)
    assert custom.get_namespaced_custom_object(*gwapi, "httproutes", "shop")

    # A release: scale the target up, shift weight, analyse, promote, scale it down.
    apps.patch_namespaced_deployment("web", ns, {"spec": {"template": behaviour("web:2")}})
    lc.wait_for("the release promoted", lambda: phase("web") == "Succeeded", 120)
    require_own_work(log, ns, "web", "canary progressed", phase="Succeeded")
    primary = apps.read_namespaced_deployment("web-primary", ns)
    assert primary.spec.template.spec.containers[0].image == "registry.invalid/web:2"

    # revertOnDeletion: the routing objects dabba created go, then the finalizer.
    for name in ("web", "shop"):
        custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "canaries", name)
    gone = [
        lambda: custom.get_namespaced_custom_object(*istio, "virtualservices", "web"),
        lambda: custom.get_namespaced_custom_object(*gwapi, "httproutes", "shop"),
        lambda: custom_get(api, "canaries", ns, "web"),
        lambda: custom_get(api, "canaries", ns, "shop"),
    ]
    lc.wait_for("routing reverted and the Canaries gone", lambda: not any(map(exists, gone)), 60)


def events_posted(api: client.ApiClient, ns: str) -> set[tuple[str, str, str]]:
    """(kind, name, reason) of the Events dabba posted in ``ns``."""
    items = client.CoreV1Api(api).list_namespaced_event(ns).items
    return {
        (e.involved_object.kind, e.involved_object.name, e.reason)
        for e in items
        if (e.source and e.source.component) == "dabba"
    }


# --------------------------------------------------------------------------------------------
# tests


def test_cluster_wide_chart_rbac_is_enough_for_the_operators_work(
    cluster: lc.Cluster, k8s_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    peering = f"rbac-{uuid.uuid4().hex[:8]}"
    values = {"leaderElection": {"peeringName": peering}}
    with (
        chart_rbac(cluster, tmp_path, namespace, values) as sa,
        operator(cluster, sa.kubeconfig, tmp_path / "op.log", "-A", f"--peering={peering}") as log,
    ):
        try:
            # Leader election: dabba created the ClusterKopfPeering, kopf keeps itself alive
            # in it (patch) and, alone in it, leads.
            lc.wait_for(
                "the operator's keep-alive in its ClusterKopfPeering",
                lambda: bool(
                    client.CustomObjectsApi(k8s_api)
                    .get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", peering)
                    .get("status")
                ),
                30,
            )
            certificates(cluster, k8s_api, namespace, log)
            canaries(cluster, k8s_api, namespace, log)
            posted = events_posted(k8s_api, namespace)
            assert ("MeshCertificate", "api", "Issued") in posted, posted
            assert any(kind == "Canary" and name == "web" for kind, name, _ in posted), posted
        finally:
            cluster.kubectl("delete", "clusterkopfpeering", peering, "--ignore-not-found")
    assert_never_forbidden(log, namespace)


def test_the_token_cannot_do_what_the_operator_does_not_need(
    cluster: lc.Cluster, k8s_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    with chart_rbac(cluster, tmp_path, namespace, {}) as sa:
        core = client.CoreV1Api(sa.api)
        rbac = client.RbacAuthorizationV1Api(sa.api)
        apps = client.AppsV1Api(sa.api)
        ext = client.ApiextensionsV1Api(sa.api)
        admission = client.AdmissionregistrationV1Api(sa.api)
        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(name="p"),
            spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="x")]),
        )
        admin_binding = client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=f"escalate-{namespace}"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="cluster-admin"
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name=sa.name, namespace=sa.namespace)
            ],
        )
        refused: dict[str, Callable[[], object]] = {
            # An authorised exec answers 400 (no upgrade) or 404, never 403.
            "exec into a pod": lambda: core.connect_post_namespaced_pod_exec(
                "any", namespace, command=["sh"]
            ),
            "create a pod": lambda: core.create_namespaced_pod(namespace, pod),
            "list pods": core.list_pod_for_all_namespaces,
            "bind itself to cluster-admin": lambda: rbac.create_cluster_role_binding(admin_binding),
            "create a Role": lambda: rbac.create_namespaced_role(
                namespace, client.V1Role(metadata=client.V1ObjectMeta(name="r"))
            ),
            "delete a namespace": lambda: core.delete_namespace(namespace),
            "list nodes": core.list_node,
            "read a node": lambda: core.read_node("kwok-node-0"),
            "mint a token for another ServiceAccount": lambda: (
                core.create_namespaced_service_account_token(
                    "default",
                    "kube-system",
                    client.AuthenticationV1TokenRequest(
                        spec=client.V1TokenRequestSpec(audiences=[])
                    ),
                )
            ),
            "delete a Deployment": lambda: apps.delete_namespaced_deployment("any", namespace),
            "delete a Service": lambda: core.delete_namespaced_service("any", namespace),
            "list ConfigMaps": lambda: core.list_namespaced_config_map(namespace),
            "delete a CRD": lambda: ext.delete_custom_resource_definition("canaries.dabba.io"),
            "change a CRD": lambda: ext.patch_custom_resource_definition(
                "canaries.dabba.io", {"metadata": {"labels": {"x": "y"}}}
            ),
            "register an admission webhook": lambda: (
                admission.create_validating_webhook_configuration(
                    client.V1ValidatingWebhookConfiguration(metadata=client.V1ObjectMeta(name="w"))
                )
            ),
            "create a Canary": lambda: client.CustomObjectsApi(
                sa.api
            ).create_namespaced_custom_object(
                GROUP, VERSION, namespace, "canaries", {"metadata": {"name": "c"}}
            ),
        }
        codes = {what: status_code(call) for what, call in refused.items()}
        assert codes == dict.fromkeys(refused, FORBIDDEN)
        for verb, resource in (("impersonate", "users"), ("escalate", "clusterroles")):
            assert not can_i(sa.api, verb, resource, group="rbac.authorization.k8s.io")
        assert not can_i(sa.api, "patch", "clusterkopfpeerings", group="kopf.dev", name="other")
        assert not can_i(sa.api, "get", "clusterkopfpeerings", group="kopf.dev", name="other")

        # The limit RBAC cannot draw: the label-selected Secret watch needs list and watch on
        # every Secret, and issuers may live in any namespace — cluster-wide, Secrets are open.
        assert can_i(sa.api, "get", "secrets", "kube-system")
        assert can_i(sa.api, "list", "secrets")


def test_watch_namespaces_confines_the_operator_to_them(
    cluster: lc.Cluster, k8s_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core_admin = client.CoreV1Api(k8s_api)
    other = f"{namespace}-other"
    core_admin.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=other, labels={"dabba.io/test": "true"})
        )
    )
    peering = "dabba-ns"
    values = {"watchNamespaces": [namespace], "leaderElection": {"peeringName": peering}}
    try:
        with (
            chart_rbac(cluster, tmp_path, namespace, values) as sa,
            operator(
                cluster, sa.kubeconfig, tmp_path / "op.log", "-n", namespace, f"--peering={peering}"
            ) as log,
        ):
            # Leader election through a KopfPeering in the watched namespace.
            lc.wait_for(
                "the operator's keep-alive in its KopfPeering",
                lambda: bool(
                    client.CustomObjectsApi(k8s_api)
                    .get_namespaced_custom_object(
                        "kopf.dev", "v1", namespace, "kopfpeerings", peering
                    )
                    .get("status")
                ),
                30,
            )
            create_all(
                cluster,
                namespace,
                [
                    meshcert(
                        "root", {"secretName": "root-ca", "isCA": True, "commonName": "ns root"}
                    ),
                    workload("Deployment", "web"),
                    canary("web", "istio"),
                ],
            )
            lc.wait_for(
                "the CA certificate Ready and the Canary Initialized",
                lambda: (
                    condition(custom_get(k8s_api, "meshcertificates", namespace, "root"), "Ready")
                    == "True"
                    and custom_get(k8s_api, "canaries", namespace, "web")
                    .get("status", {})
                    .get("phase")
                    == "Initialized"
                ),
                60,
            )
            require_own_work(log, namespace, "root", "new signing CA")
            require_own_work(log, namespace, "web", "canary progressed", phase="Initialized")
            assert ("MeshCertificate", "root", "Issued") in events_posted(k8s_api, namespace)
            assert (
                core_admin.read_namespaced_secret("root-ca", namespace).type == "kubernetes.io/tls"
            )

            core = client.CoreV1Api(sa.api)
            assert status_code(lambda: core.read_namespaced_secret("root-ca", namespace)) == 200
            for ns in (other, "kube-system"):
                assert status_code(lambda ns=ns: core.list_namespaced_secret(ns)) == FORBIDDEN  # type: ignore[misc]
                assert not can_i(sa.api, "get", "secrets", ns)
                assert not can_i(sa.api, "patch", "deployments", ns, group="apps")
            assert status_code(core.list_secret_for_all_namespaces) == FORBIDDEN
            assert not can_i(sa.api, "list", "canaries", group=GROUP)  # cluster-wide
        assert_never_forbidden(log, namespace)
    finally:
        core_admin.delete_namespace(other, propagation_policy="Background")
