"""charts/dabba against the real API server and the real Prometheus.

- ``helm lint --strict`` is clean for the default and the feature-complete values;
- the chart's CRDs are byte-identical copies of ``crds/``;
- ``helm template`` output is accepted by the API server (server-side dry run), including the
  ServiceMonitor and PrometheusRule against the Prometheus Operator's own CRDs;
- install into a namespace that enforces the "restricted" Pod Security Standard, upgrade with
  Canaries and MeshCertificates present (they survive), uninstall: no chart object is left.
  Helm never deletes what it installed from ``crds/``, so the CRDs and the custom resources
  outlive the release — by design, and stated in the README;
- the PrometheusRule passes ``promtool check rules`` and, loaded into Prometheus, fires for a
  certificate made to expire soon (and for an expired one, a failed canary, an operator gone),
  and stays quiet for healthy ones;
- the Grafana dashboard parses and every panel's query is valid PromQL in Prometheus.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from localcluster import cluster as lc

pytestmark = pytest.mark.integration

CHART = lc.REPO / "charts" / "dabba"
CRDS = lc.REPO / "crds"
#: The Prometheus Operator's CRDs (ServiceMonitor, PrometheusRule), from its Go module.
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
MONITORING_CRDS = ("servicemonitors", "prometheusrules")
EVERYTHING = {
    "prometheusUrl": "http://prometheus.monitoring:9090",
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
    "dashboard": {"enabled": True},
}


# --------------------------------------------------------------------------------------------
# helpers


def helm(
    cluster: lc.Cluster, *args: str, check: bool = True, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(  # noqa: PLW1510 - checked below with the output
        [str(cluster.binaries.helm), f"--kubeconfig={cluster.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **cluster.env()},
    )
    if check:
        assert proc.returncode == 0, f"helm {' '.join(args[:3])}:\n{proc.stderr}{proc.stdout}"
    return proc


def values_file(tmp_path: Path, values: dict[str, Any]) -> str:
    path = tmp_path / f"values-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(values))  # JSON is YAML
    return str(path)


def template(
    cluster: lc.Cluster, tmp_path: Path, namespace: str, values: dict[str, Any], *extra: str
) -> str:
    return helm(
        cluster,
        "template",
        "dabba",
        str(CHART),
        "--namespace",
        namespace,
        "--values",
        values_file(tmp_path, values),
        *extra,
    ).stdout


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def prometheus_get(cluster: lc.Cluster, path: str, **params: str) -> dict[str, Any]:
    url = f"{cluster.prometheus_url}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback Prometheus
        body: dict[str, Any] = json.load(resp)
    return body


def prometheus_reload(cluster: lc.Cluster) -> None:
    req = urllib.request.Request(f"{cluster.prometheus_url}/-/reload", method="POST")  # noqa: S310
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback Prometheus
        assert resp.status == 200


# --------------------------------------------------------------------------------------------
# lint, CRDs, dry run


@pytest.mark.parametrize(
    "values",
    [
        {},
        EVERYTHING,
        {**EVERYTHING, "watchNamespaces": ["a", "b"], "rbac": {"issuerNamespaces": ["c"]}},
        {"replicas": 1, "leaderElection": {"enabled": False}},
    ],
    ids=["defaults", "everything", "watchNamespaces", "standalone"],
)
def test_helm_lint_is_clean(cluster: lc.Cluster, tmp_path: Path, values: dict[str, Any]) -> None:
    out = helm(cluster, "lint", "--strict", str(CHART), "--values", values_file(tmp_path, values))
    assert "[WARNING]" not in out.stdout
    assert "[ERROR]" not in out.stdout
    assert "0 chart(s) failed" in out.stdout


def test_chart_refuses_two_replicas_without_leader_election(
    cluster: lc.Cluster, tmp_path: Path
) -> None:
    values = {"replicas": 2, "leaderElection": {"enabled": False}}
    proc = helm(
        cluster,
        "template",
        "dabba",
        str(CHART),
        "--values",
        values_file(tmp_path, values),
        check=False,
    )
    assert proc.returncode != 0
    assert "would both act" in proc.stderr


def test_chart_crds_are_byte_identical_to_the_crds_directory() -> None:
    ours = {p.name: p.read_bytes() for p in sorted(CRDS.glob("*.yaml"))}
    chart = {p.name: p.read_bytes() for p in sorted((CHART / "crds").iterdir())}
    assert ours, "no CRDs in crds/"
    assert chart.keys() == ours.keys(), "charts/dabba/crds/ must hold exactly the files of crds/"
    for name, content in ours.items():
        assert chart[name] == content, f"charts/dabba/crds/{name} differs from crds/{name}"


@pytest.fixture(scope="module")
def monitoring_crds(cluster: lc.Cluster, tmp_path_factory: pytest.TempPathFactory) -> None:
    """ServiceMonitor and PrometheusRule CRDs in the cluster, from the Prometheus Operator's Go
    module (fetched once through the Go module proxy, then cached like the control plane)."""
    go = shutil.which("go")
    assert go, "Go is needed to fetch the Prometheus Operator's CRDs (as for the control plane)"
    proc = subprocess.run(  # noqa: PLW1510 - checked below
        [go, "mod", "download", "-json", PROMETHEUS_OPERATOR],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path_factory.mktemp("gomod"),
        env={**os.environ, "GOFLAGS": "-mod=mod", "GOWORK": "off"},
    )
    assert proc.returncode == 0, proc.stderr
    module = Path(json.loads(proc.stdout)["Dir"])
    for plural in MONITORING_CRDS:
        crd = (
            module / "example" / "prometheus-operator-crd" / f"monitoring.coreos.com_{plural}.yaml"
        )
        cluster.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=dabba-chart-test",
            "-f",
            str(crd),
        )
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        *(f"crd/{p}.monitoring.coreos.com" for p in MONITORING_CRDS),
    )


@pytest.mark.parametrize("variant", ["defaults", "everything", "watchNamespaces", "standalone"])
@pytest.mark.usefixtures("monitoring_crds")
def test_rendered_chart_is_accepted_by_the_api_server(
    cluster: lc.Cluster, tmp_path: Path, namespace: str, variant: str
) -> None:
    values: dict[str, Any] = {
        "defaults": {},
        "everything": EVERYTHING,
        "watchNamespaces": {
            **EVERYTHING,
            "watchNamespaces": [namespace, "default"],
            "rbac": {"issuerNamespaces": ["kube-public"]},
        },
        "standalone": {"replicas": 1, "leaderElection": {"enabled": False}},
    }[variant]
    rendered = template(cluster, tmp_path, namespace, values, "--include-crds")
    kinds = sorted({d["kind"] for d in docs(rendered)})
    expected = {
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "Service",
        "ServiceAccount",
    }
    if variant != "standalone":
        expected.add("PodDisruptionBudget")
    if variant in ("everything", "watchNamespaces"):
        expected |= {"ServiceMonitor", "PrometheusRule", "ConfigMap"}
    if variant == "watchNamespaces":
        expected |= {"Role", "RoleBinding"}
    assert set(kinds) == expected
    out = cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "--field-manager=dabba-chart-test",
        "-f",
        "-",
        input_text=rendered,
    )
    accepted = [line for line in out.stdout.splitlines() if "(server dry run)" in line]
    assert len(accepted) == len(docs(rendered)), out.stdout


# --------------------------------------------------------------------------------------------
# install, upgrade, uninstall


def _custom_resources(namespace: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "dabba.io/v1alpha1",
            "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": namespace},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898},
                "suspend": True,
            },
        },
        {
            "apiVersion": "dabba.io/v1alpha1",
            "kind": "MeshCertificate",
            "metadata": {"name": "mesh-root", "namespace": namespace},
            "spec": {"secretName": "mesh-root-ca", "isCA": True, "commonName": "chart test"},
        },
    ]


def _uids(api: client.ApiClient, namespace: str) -> dict[str, str]:
    custom = client.CustomObjectsApi(api)
    return {
        plural: custom.get_namespaced_custom_object(
            "dabba.io", "v1alpha1", namespace, plural, name
        )["metadata"]["uid"]
        for plural, name in (("canaries", "podinfo"), ("meshcertificates", "mesh-root"))
    }


def _exists(cluster: lc.Cluster, obj: dict[str, Any]) -> bool:
    kind = obj["kind"]
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    resource = f"{kind.lower()}.{group}" if group else kind.lower()
    ns = obj["metadata"].get("namespace")
    args = ["get", resource, obj["metadata"]["name"], "--ignore-not-found", "-o", "name"]
    if ns:
        args += ["-n", ns]
    return bool(cluster.kubectl(*args).stdout.strip())


@pytest.mark.usefixtures("monitoring_crds")
def test_install_upgrade_uninstall(
    cluster: lc.Cluster, k8s_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    # The namespace enforces the restricted Pod Security Standard: the ReplicaSet controller
    # could not create the operator's pods if their securityContext fell short of it.
    cluster.kubectl(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    release = f"chart-{namespace}"
    selector = f"app.kubernetes.io/instance={release}"
    common = ["--namespace", namespace, "--wait", "--timeout", "120s"]
    helm(
        cluster,
        "install",
        release,
        str(CHART),
        *common,
        "--values",
        values_file(tmp_path, EVERYTHING),
    )
    try:
        apps = client.AppsV1Api(k8s_api)
        pods = client.CoreV1Api(k8s_api).list_namespaced_pod(namespace, label_selector=selector)
        assert len(pods.items) == 2, "the restricted namespace refused the operator's pods"
        for pod in pods.items:
            sc = pod.spec.containers[0].security_context
            assert sc.read_only_root_filesystem
            assert sc.run_as_non_root
            assert sc.capabilities.drop == ["ALL"]

        # Canaries and MeshCertificates exist; an upgrade changes the operator, not them.
        create = "\n---\n".join(json.dumps(d) for d in _custom_resources(namespace))
        cluster.kubectl("apply", "-f", "-", input_text=create)
        before = _uids(k8s_api, namespace)
        helm(
            cluster,
            "upgrade",
            release,
            str(CHART),
            *common,
            "--values",
            values_file(tmp_path, {**EVERYTHING, "logLevel": "debug"}),
        )
        env = {
            e.name: e.value
            for e in apps.read_namespaced_deployment(f"{release}-dabba", namespace)
            .spec.template.spec.containers[0]
            .env
        }
        assert env["DABBA_LOG_LEVEL"] == "debug"
        assert _uids(k8s_api, namespace) == before

        manifest = docs(helm(cluster, "get", "manifest", release, "--namespace", namespace).stdout)
        assert len(manifest) >= 10
    finally:
        helm(cluster, "uninstall", release, "--namespace", namespace, "--wait", check=False)

    leftovers = [f"{o['kind']}/{o['metadata']['name']}" for o in manifest if _exists(cluster, o)]
    assert not leftovers, f"left behind by helm uninstall: {leftovers}"
    lc.wait_for(
        "the operator's pods gone",
        lambda: (
            not client.CoreV1Api(k8s_api)
            .list_namespaced_pod(namespace, label_selector=selector)
            .items
        ),
        60,
    )
    # Helm leaves crds/ alone, so the custom resources outlive the release (README: Uninstall).
    assert _uids(k8s_api, namespace) == before
    cluster.kubectl("delete", "-f", "-", "--wait=false", input_text=create)


# --------------------------------------------------------------------------------------------
# alerts


class Exporter:
    """A loopback /metrics with fixed dabba_* series, as a replica of the operator shows them."""

    def __init__(self, text: str) -> None:
        body = text.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _series(namespace: str, now: float) -> str:
    """Certificates: one healthy, one whose renewals failed and that expires in two minutes,
    one expired; canaries: one failed, one progressing."""
    certs = {
        #            notBefore,    renewal time,  notAfter
        "healthy": (now - 600, now + 1800, now + 3600),
        "soon": (now - 900, now - 300, now + 120),
        "expired": (now - 900, now - 600, now - 10),
    }
    lines = []
    for name, (not_before, renewal, not_after) in certs.items():
        labels = f'namespace="{namespace}",name="{name}"'
        lines += [
            f"dabba_certificate_not_before_timestamp_seconds{{{labels}}} {not_before}",
            f"dabba_certificate_renewal_timestamp_seconds{{{labels}}} {renewal}",
            f"dabba_certificate_expiration_timestamp_seconds{{{labels}}} {not_after}",
            f"dabba_certificate_ready_status{{{labels}}} {1 if name == 'healthy' else 0}",
        ]
    for name, phase in (("web", "Failed"), ("shop", "Progressing")):
        for p in ("Progressing", "Failed"):
            lines.append(
                f'dabba_canary_phase{{namespace="{namespace}",name="{name}",phase="{p}"}} '
                f"{1 if p == phase else 0}"
            )
    return "\n".join(lines) + "\n"


def _firing(cluster: lc.Cluster, namespace: str) -> set[tuple[str, str]]:
    alerts = prometheus_get(cluster, "/api/v1/alerts")["data"]["alerts"]
    return {
        (a["labels"]["alertname"], a["labels"].get("name", ""))
        for a in alerts
        if a["state"] == "firing" and a["labels"].get("namespace") == namespace
    }


def test_prometheus_rules_pass_promtool_and_fire_in_prometheus(
    cluster: lc.Cluster, tmp_path: Path, namespace: str
) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with Debian's prometheus package (make deps)"
    job = f"dabba-rules-{uuid.uuid4().hex[:8]}"
    alerts = {
        a: {"for": "0s"}
        for a in (
            "certificateRenewalOverdue",
            "certificateExpiringSoon",
            "certificateExpired",
            "certificateIssuanceFailing",
            "canaryFailed",
            "canaryAnalysisErrors",
            "reconcileErrors",
            "operatorDown",
        )
    }
    for name, values in (
        ("defaults", {"prometheusRule": {"enabled": True}}),
        ("test", {"prometheusRule": {"enabled": True, "job": job, "alerts": alerts}}),
    ):
        (rule,) = docs(
            template(
                cluster,
                tmp_path,
                namespace,
                values,
                "--show-only",
                "templates/prometheusrule.yaml",
            )
        )
        rules = tmp_path / f"{name}.yml"
        rules.write_text(yaml.safe_dump(rule["spec"]))  # a PrometheusRule's spec is a rule file
        check = subprocess.run(  # noqa: PLW1510 - asserted below
            [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert "SUCCESS: 8 rules found" in check.stdout, check.stdout

    # Load the rules into the real Prometheus and show it the series of a sick fleet.
    exporter = Exporter(_series(namespace, time.time()))
    target = f"rules-{namespace}"
    loaded = cluster.rules_dir / f"dabba-chart-{namespace}.yml"
    cluster.register_scrape_target(target, exporter.address, labels={"job": job})
    try:
        lc.wait_for(
            "Prometheus to scrape the fake replica",
            lambda: bool(
                prometheus_get(cluster, "/api/v1/query", query=f'up{{job="{job}"}} == 1')["data"][
                    "result"
                ]
            ),
            60,
        )
        shutil.copy(tmp_path / "test.yml", loaded)
        prometheus_reload(cluster)
        expected = {
            ("DabbaCertificateExpiringSoon", "soon"),
            ("DabbaCertificateRenewalOverdue", "soon"),
            ("DabbaCertificateExpired", "expired"),
            ("DabbaCanaryFailed", "web"),
        }
        lc.wait_for(
            "the certificate and canary alerts to fire",
            lambda: expected <= _firing(cluster, namespace),
            60,
            on_fail=lambda: repr(_firing(cluster, namespace)),
        )
        firing = _firing(cluster, namespace)
        assert not {(a, n) for a, n in firing if n in ("healthy", "shop")}, firing
        assert ("DabbaCertificateExpiringSoon", "expired") not in firing
        assert ("DabbaOperatorDown", "") not in firing  # its job is scraped and up

        # The replicas disappear: DabbaOperatorDown (its namespace label is the release's).
        cluster.unregister_scrape_target(target)
        lc.wait_for(
            "DabbaOperatorDown to fire",
            lambda: ("DabbaOperatorDown", "") in _firing(cluster, namespace),
            60,
            on_fail=lambda: repr(_firing(cluster, namespace)),
        )
    finally:
        cluster.unregister_scrape_target(target)
        exporter.close()
        loaded.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            prometheus_reload(cluster)


# --------------------------------------------------------------------------------------------
# dashboard

#: What Grafana puts in for the dashboard's variables when "All" is selected.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "1h",
    "$__interval": "15s",
    "$namespace": ".*",
    "$job": ".*",
}


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def _promql(expr: str) -> str:
    for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown variable in {expr!r}"
    return expr


def test_dashboard_parses_and_every_query_is_valid_promql(
    cluster: lc.Cluster, tmp_path: Path
) -> None:
    source = json.loads((CHART / "dashboards" / "dabba.json").read_text())
    (configmap,) = docs(
        template(
            cluster,
            tmp_path,
            "default",
            {"dashboard": {"enabled": True}},
            "--show-only",
            "templates/dashboard-configmap.yaml",
        )
    )
    assert json.loads(configmap["data"]["dabba.json"]) == source  # embedded intact
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"

    panels = list(_panels(source["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = " ".join(p["title"].lower() for p in panels)
    for subject in ("weight", "phase", "analysis", "expiry timeline"):
        assert subject in titles, f"no panel about {subject}"

    queries = [t["expr"] for p in panels for t in p.get("targets", []) if t.get("expr")]
    for var in source["templating"]["list"]:
        if var["type"] == "query":  # label_values(<selector>, label): the selector is PromQL
            inner = var["definition"].removeprefix("label_values(").rsplit(",", 1)[0]
            queries.append(inner)
    assert len(queries) >= 20
    for expr in queries:
        answer = prometheus_get(cluster, "/api/v1/query", query=_promql(expr))
        assert answer["status"] == "success", (expr, answer)
