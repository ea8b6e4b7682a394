"""The ``dabba`` CLI against the real API server: documents, annotations, exit codes, watch.

Canaries and MeshCertificates are created directly and their status is patched with what the
operator would write, so these tests check the CLI alone. Commands run in-process through
click's CliRunner (piped, so plain text) with ``KUBECONFIG`` set, and as real processes where
the process matters: exit codes, ``kubectl dabba``, Ctrl-C, and the live view in a pty.
"""

from __future__ import annotations

import base64
import datetime as dt
import errno
import fcntl
import ipaddress
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes import client

from dabba.cli.app import cli
from dabba.k8s import meta
from localcluster import cluster as lc

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
DABBA = BIN / "dabba"
GROUP, VERSION = meta.GROUP, meta.VERSION
ANSI = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|\][^\x07]*\x07|[()][A-Z0-9])")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _ts(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# fixtures and helpers


class Kube:
    """Creates objects the way the operator and users would, for one test namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.ns = namespace
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)

    def canary(
        self,
        name: str,
        status: Mapping[str, Any] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Canary",
            "metadata": {"name": name, "annotations": dict(annotations or {})},
            "spec": {
                "targetRef": {"name": name},
                "service": {"port": 9898},
                "analysis": {"stepWeights": [10, 25, 50], "threshold": 3},
            },
        }
        created = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.ns, "canaries", body
        )
        if status is not None:
            return self.status("canaries", name, status)
        return cast("dict[str, Any]", created)

    def cert(
        self,
        name: str,
        spec: Mapping[str, Any] | None = None,
        status: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MeshCertificate",
            "metadata": {"name": name},
            "spec": dict(
                spec
                or {
                    "secretName": f"{name}-tls",
                    "issuerRef": {"name": "mesh-root"},
                    "serviceAccountName": name,
                }
            ),
        }
        created = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.ns, "meshcertificates", body
        )
        if status is not None:
            return self.status("meshcertificates", name, status)
        return cast("dict[str, Any]", created)

    def status(self, plural: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        return cast(
            "dict[str, Any]",
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, self.ns, plural, name, {"status": dict(status)}
            ),
        )

    def get(self, plural: str, name: str) -> dict[str, Any]:
        obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, plural, name)
        return cast("dict[str, Any]", obj)

    def annotations(self, plural: str, name: str) -> dict[str, str]:
        return dict(self.get(plural, name)["metadata"].get("annotations") or {})

    def event(
        self, obj: Mapping[str, Any], reason: str, message: str, type_: str = "Normal"
    ) -> None:
        md = obj["metadata"]
        now = _ts(_now())
        body = {
            "metadata": {"generateName": f"{md['name']}."},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": obj["kind"],
                "name": md["name"],
                "namespace": self.ns,
                "uid": md["uid"],
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": "dabba"},
        }
        self.core.create_namespaced_event(self.ns, client.CoreV1Event.model_validate(body))

    def secret(self, name: str, data: Mapping[str, bytes]) -> None:
        body = {
            "metadata": {"name": name},
            "type": "kubernetes.io/tls",
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }
        self.core.create_namespaced_secret(self.ns, client.V1Secret.model_validate(body))


@pytest.fixture
def kube(k8s_api: client.ApiClient, namespace: str) -> Kube:
    return Kube(k8s_api, namespace)


Run = Callable[..., Result]


@pytest.fixture
def dabba(cluster: lc.Cluster) -> Run:
    """Run the CLI in-process as a piped command would (KUBECONFIG from the cluster)."""
    runner = CliRunner()

    def run(*args: str, env: Mapping[str, str] | None = None) -> Result:
        return runner.invoke(
            cli,
            list(args),
            env={"KUBECONFIG": str(cluster.kubeconfig), **(env or {})},
            catch_exceptions=False,
        )

    return run


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


PROGRESSING: dict[str, Any] = {
    "phase": "Progressing",
    "canaryWeight": 10,
    "stepIndex": 0,
    "failedChecks": 1,
    "inconclusiveChecks": 0,
    "revision": "7c9f0a1b2c3d4e5f",
    "lastPromotedRevision": "1a2b3c4d5e6f",
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Ready",
            "message": "analysis running at 10%",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
    ],
    "lastAnalysis": [
        {
            "metric": "request-success-rate",
            "query": 'sum(rate(istio_requests_total{reporter="destination"}[1m]))',
            "value": 99.5,
            "threshold": ">= 99",
            "result": "Successful",
            "message": "",
            "time": "2026-01-01T00:00:00Z",
        },
        {
            "metric": "request-duration",
            "query": "histogram_quantile(0.99, ...)",
            "value": 612.5,
            "threshold": "<= 500",
            "result": "Failed",
            "message": "p99 above 500 ms",
            "time": "2026-01-01T00:00:00Z",
        },
    ],
    "history": [
        {
            "revision": "1a2b3c4d5e6f",
            "result": "Succeeded",
            "started": "2025-12-31T00:00:00Z",
            "finished": "2025-12-31T00:12:00Z",
            "reason": "promoted",
        }
    ],
}


def _cert_status(
    not_after: dt.datetime | None,
    renewal: dt.datetime | None = None,
    ready: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "reason": "UpToDate" if ready else "DoesNotExist",
                "message": "certificate is valid" if ready else "Secret does not exist",
                "lastTransitionTime": _ts(_now()),
            }
        ],
        **extra,
    }
    if not_after is not None:
        status["notBefore"] = _ts(not_after - dt.timedelta(hours=24))
        status["notAfter"] = _ts(not_after)
    if renewal is not None:
        status["renewalTime"] = _ts(renewal)
    return status


# ---------------------------------------------------------------------------------------------
# dabba status


def test_status_json_and_yaml_match_the_cluster(dabba: Run, kube: Kube) -> None:
    kube.canary("podinfo", PROGRESSING)
    kube.canary("fresh")
    expires = _now() + dt.timedelta(hours=2)
    kube.cert("payments", status=_cert_status(expires, expires - dt.timedelta(hours=1)))
    kube.cert("orders")

    doc = _json(dabba("status", "-n", kube.ns, "-o", "json"))
    items = {(i["kind"], i["name"]): i for i in doc["items"]}
    assert set(items) == {
        ("Canary", "podinfo"),
        ("Canary", "fresh"),
        ("MeshCertificate", "payments"),
        ("MeshCertificate", "orders"),
    }
    assert all(i["namespace"] == kube.ns for i in doc["items"])
    podinfo = items["Canary", "podinfo"]
    assert (podinfo["phase"], podinfo["weight"], podinfo["ready"]) == ("Progressing", 10, True)
    assert podinfo["message"] == "analysis running at 10%"
    assert items["Canary", "fresh"]["state"] == "Pending"
    payments = items["MeshCertificate", "payments"]
    assert (payments["state"], payments["ready"], payments["notAfter"]) == (
        "Ready",
        True,
        _ts(expires),
    )
    assert 7000 < payments["secondsLeft"] <= 7200
    assert items["MeshCertificate", "orders"]["state"] == "Pending"

    # The same document as YAML; secondsLeft counts down between the two calls.
    as_yaml = yaml.safe_load(dabba("status", "-n", kube.ns, "-o", "yaml").stdout)
    yaml_left = {(i["kind"], i["name"]): i.pop("secondsLeft") for i in as_yaml["items"]}
    json_left = {(i["kind"], i["name"]): i.pop("secondsLeft") for i in doc["items"]}
    assert as_yaml == doc
    assert yaml_left.keys() == json_left.keys()
    for key, left in json_left.items():
        assert (left is None) == (yaml_left[key] is None), key
        if left is not None:
            assert 0 <= left - yaml_left[key] <= 5, key  # seconds between the two calls

    table = dabba("status", "-n", kube.ns)
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["KIND", "NAME", "STATE"]
    assert any(line.split()[:4] == ["Canary", "podinfo", "Progressing", "10%"] for line in lines)
    assert "\x1b[" not in table.stdout, "no colour when piped"


def test_status_all_namespaces_and_the_context_namespace(
    dabba: Run, kube: Kube, cluster: lc.Cluster, tmp_path: Path
) -> None:
    kube.canary("podinfo", PROGRESSING)
    everywhere = _json(dabba("status", "-A", "-o", "json"))
    assert {"kind": "Canary", "namespace": kube.ns, "name": "podinfo"}.items() <= next(
        i for i in everywhere["items"] if i["namespace"] == kube.ns
    ).items()
    assert "NAMESPACE" in dabba("status", "-A").stdout.splitlines()[0]

    # Like kubectl: without -n, the current context's namespace.
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for ctx in config["contexts"]:
        ctx["context"]["namespace"] = kube.ns
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    scoped = _json(dabba("status", "-o", "json", env={"KUBECONFIG": str(kubeconfig)}))
    assert [(i["kind"], i["name"]) for i in scoped["items"]] == [("Canary", "podinfo")]
    explicit = _json(dabba("status", "--kubeconfig", str(kubeconfig), "-o", "json"))
    assert explicit == scoped


def test_kubeconfig_problems_are_usage_errors(dabba: Run, tmp_path: Path) -> None:
    result = dabba("status", "--context", "no-such-context")
    assert result.exit_code == 2
    assert "context no-such-context not found in the kubeconfig" in result.stderr
    missing = dabba("status", "--kubeconfig", str(tmp_path / "none"))
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr
    bad = dabba("cert", "list", "--expiring-within", "1.5h")
    assert bad.exit_code == 2
    assert "invalid duration" in bad.stderr


# ---------------------------------------------------------------------------------------------
# dabba canary


def test_canary_get_json_has_status_events_and_history(dabba: Run, kube: Kube) -> None:
    obj = kube.canary("podinfo", PROGRESSING)
    kube.event(obj, "CanaryWeight", "weight 0 -> 10")
    kube.event(obj, "AnalysisFailed", "request-duration 612.5 > 500", "Warning")

    doc = _json(dabba("canary", "get", "podinfo", "-n", kube.ns, "-o", "json"))
    assert (doc["namespace"], doc["name"], doc["phase"]) == (kube.ns, "podinfo", "Progressing")
    assert (doc["weight"], doc["steps"], doc["stepIndex"]) == (10, [10, 25, 50], 0)
    assert (doc["failedChecks"], doc["threshold"]) == (1, 3)
    assert doc["revision"] == "7c9f0a1b2c3d4e5f"
    assert [(a["metric"], a["value"], a["threshold"], a["result"]) for a in doc["analysis"]] == [
        ("request-success-rate", 99.5, ">= 99", "Successful"),
        ("request-duration", 612.5, "<= 500", "Failed"),
    ]
    assert [(e["type"], e["reason"]) for e in doc["events"]] == [
        ("Normal", "CanaryWeight"),
        ("Warning", "AnalysisFailed"),
    ]
    assert doc["history"][0]["revision"] == "1a2b3c4d5e6f"

    text = dabba("canary", "get", "podinfo", "-n", kube.ns)
    assert text.exit_code == 0
    assert "[##..................] 10%   step 1/3: 10 → 25 → 50" in text.stdout
    duration = next(line for line in text.stdout.splitlines() if "request-duration" in line)
    assert duration.split()[:5] == ["request-duration", "612.5", "<=", "500", "Failed"]
    assert "AnalysisFailed" in text.stdout


def test_canary_controls_set_exactly_their_annotation(dabba: Run, kube: Kube) -> None:
    kube.canary("podinfo", PROGRESSING, annotations={"team": "payments"})
    before = _now()

    for action, key in (
        ("promote", meta.CANARY_PROMOTE_ANNOTATION),
        ("abort", meta.CANARY_ABORT_ANNOTATION),
    ):
        result = dabba("canary", action, "podinfo", "-n", kube.ns)
        assert result.exit_code == 0, result.output
        value = kube.annotations("canaries", "podinfo")[key]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value)
        assert before - dt.timedelta(seconds=1) <= dt.datetime.fromisoformat(value) <= _now()
        assert f"{key}={value}" in result.stdout
        assert "next evaluation" in result.stdout
    assert set(kube.annotations("canaries", "podinfo")) == {
        "team",
        meta.CANARY_PROMOTE_ANNOTATION,
        meta.CANARY_ABORT_ANNOTATION,
    }

    paused = _json(dabba("canary", "pause", "podinfo", "-n", kube.ns, "-o", "json"))
    assert paused["changed"] is True
    assert kube.annotations("canaries", "podinfo")[meta.CANARY_PAUSE_ANNOTATION] == paused["value"]
    again = _json(dabba("canary", "pause", "podinfo", "-n", kube.ns, "-o", "json"))
    assert (again["changed"], again["value"]) == (False, paused["value"])

    resumed = dabba("canary", "resume", "podinfo", "-n", kube.ns)
    assert resumed.exit_code == 0
    assert meta.CANARY_PAUSE_ANNOTATION not in kube.annotations("canaries", "podinfo")
    idle = dabba("canary", "resume", "podinfo", "-n", kube.ns)
    assert (idle.exit_code, "not paused" in idle.stdout) == (0, True)
    assert kube.annotations("canaries", "podinfo")["team"] == "payments"


def test_canary_controls_refuse_what_makes_no_sense(dabba: Run, kube: Kube) -> None:
    kube.canary("running", PROGRESSING)
    kube.canary("done", {**PROGRESSING, "phase": "Succeeded", "canaryWeight": 0})
    kube.canary("broken", {**PROGRESSING, "phase": "Failed", "canaryWeight": 0})

    retry = dabba("canary", "retry", "running", "-n", kube.ns)
    assert retry.exit_code == 1
    assert "not Failed" in retry.stderr
    assert meta.CANARY_RETRY_ANNOTATION not in kube.annotations("canaries", "running")

    promote = dabba("canary", "promote", "done", "-n", kube.ns)
    assert promote.exit_code == 1
    assert "already promoted" in promote.stderr
    assert meta.CANARY_PROMOTE_ANNOTATION not in kube.annotations("canaries", "done")

    assert dabba("canary", "retry", "broken", "-n", kube.ns).exit_code == 0
    assert meta.CANARY_RETRY_ANNOTATION in kube.annotations("canaries", "broken")

    forced = dabba("canary", "promote", "done", "-n", kube.ns, "--force")
    assert forced.exit_code == 0
    assert meta.CANARY_PROMOTE_ANNOTATION in kube.annotations("canaries", "done")


def test_not_found_exits_1_and_says_where_to_look(
    dabba: Run, kube: Kube, cluster: lc.Cluster
) -> None:
    name = f"only-in-{kube.ns}"  # unique: namespaces of earlier tests may still be terminating
    kube.cert(name)
    missing = dabba("canary", "get", "nope", "-n", kube.ns)
    assert missing.exit_code == 1
    assert f"Canary nope not found in namespace {kube.ns}" in missing.stderr
    elsewhere = dabba("cert", "inspect", name, "-n", "default")
    assert elsewhere.exit_code == 1
    assert (
        f"MeshCertificate {name} not found in namespace default; it exists in namespace "
        f"{kube.ns} (use -n {kube.ns})"
    ) in elsewhere.stderr
    found = _json(dabba("cert", "renew", name, "-A", "-o", "json"))  # -A finds it anywhere
    assert (found["namespace"], found["name"]) == (kube.ns, name)
    assert dabba("canary", "promote", "nope", "-n", kube.ns).exit_code == 1
    assert dabba("cert", "renew", "nope", "-n", kube.ns).exit_code == 1

    # The real process: exit codes as a shell script sees them.
    env = {**os.environ, **cluster.env()}
    proc = subprocess.run(
        [str(DABBA), "canary", "get", "nope", "-n", kube.ns],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "Canary nope not found" in proc.stderr
    usage = subprocess.run(
        [str(DABBA), "canary", "get"], env=env, capture_output=True, timeout=60, check=False
    )
    assert usage.returncode == 2


# ---------------------------------------------------------------------------------------------
# dabba cert


def test_cert_list_filters_by_expiry(dabba: Run, kube: Kube) -> None:
    now = _now()
    kube.cert("soon", status=_cert_status(now + dt.timedelta(hours=2), now + dt.timedelta(hours=1)))
    kube.cert("later", status=_cert_status(now + dt.timedelta(days=3), now + dt.timedelta(days=2)))
    kube.cert("dead", status=_cert_status(now - dt.timedelta(hours=1), ready=False))
    kube.cert("never")

    every = _json(dabba("cert", "list", "-n", kube.ns, "-o", "json"))
    assert [i["name"] for i in every["items"]] == ["dead", "later", "never", "soon"]
    day = _json(dabba("cert", "list", "-n", kube.ns, "--expiring-within", "24h", "-o", "json"))
    assert sorted(i["name"] for i in day["items"]) == ["dead", "soon"]
    short = _json(dabba("cert", "list", "-n", kube.ns, "--expiring-within", "90m", "-o", "json"))
    assert [i["name"] for i in short["items"]] == ["dead"]
    week = _json(dabba("cert", "list", "-n", kube.ns, "--expiring-within", "7d", "-o", "json"))
    assert sorted(i["name"] for i in week["items"]) == ["dead", "later", "soon"]
    soon = next(i for i in every["items"] if i["name"] == "soon")
    assert (soon["secretName"], soon["issuer"]) == (
        "soon-tls",
        f"MeshCertificate {kube.ns}/mesh-root",
    )

    table = dabba("cert", "list", "-n", kube.ns, "--expiring-within", "24h")
    assert table.exit_code == 0
    assert table.stdout.splitlines()[0].split()[:4] == ["NAME", "READY", "SECRET", "NOT"]
    assert "expired" in next(line for line in table.stdout.splitlines() if line.startswith("dead"))
    none = dabba("cert", "list", "-n", kube.ns, "--expiring-within", "1s", "-o", "json")
    assert sorted(i["name"] for i in _json(none)["items"]) == ["dead"]


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], namespace: str
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    sans = [
        x509.DNSName("payments"),
        x509.DNSName(f"payments.{namespace}.svc"),
        x509.IPAddress(ipaddress.ip_address("10.0.0.7")),
        x509.UniformResourceIdentifier(f"spiffe://cluster.local/ns/{namespace}/sa/payments"),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca[1].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=24))
        .add_extension(x509.SubjectAlternativeName(sans), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca[0], hashes.SHA256())
    )
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_cert_inspect_decodes_verifies_and_never_shows_the_key(dabba: Run, kube: Kube) -> None:
    ca = _ca("mesh root")
    key, leaf = _leaf(ca, kube.ns)
    kube.secret(
        "payments-tls", {"tls.crt": _pem(leaf), "tls.key": _key_pem(key), "ca.crt": _pem(ca[1])}
    )
    kube.cert(
        "payments",
        {
            "secretName": "payments-tls",
            "issuerRef": {"name": "mesh-root"},
            "serviceAccountName": "payments",
        },
        _cert_status(leaf.not_valid_after_utc, serialNumber=format(leaf.serial_number, "x")),
    )

    result = dabba("cert", "inspect", "payments", "-n", kube.ns, "-o", "json")
    assert "PRIVATE KEY" not in result.output
    doc = _json(result)
    chain = doc["chain"]
    assert len(chain) == 1
    assert chain[0]["dnsNames"] == ["payments", f"payments.{kube.ns}.svc"]
    assert chain[0]["ipAddresses"] == ["10.0.0.7"]
    assert chain[0]["uris"] == [f"spiffe://cluster.local/ns/{kube.ns}/sa/payments"]
    assert chain[0]["serialNumber"] == format(leaf.serial_number, "x")
    assert chain[0]["issuer"] == "CN=mesh root"
    assert doc["verification"]["verified"] is True
    assert doc["privateKey"] == {
        "present": True,
        "algorithm": "ECDSA-256",
        "expected": "ECDSA-256",
        "matchesCertificate": True,
        "error": None,
    }
    assert doc["statusMatchesSecret"] is True
    assert doc["secret"]["keys"] == ["ca.crt", "tls.crt", "tls.key"]

    text = dabba("cert", "inspect", "payments", "-n", kube.ns)
    assert text.exit_code == 0
    assert "PRIVATE KEY" not in text.output
    assert _key_pem(key).decode().splitlines()[1] not in text.output
    assert f"spiffe://cluster.local/ns/{kube.ns}/sa/payments" in text.stdout
    assert "OK: the certificate chains to ca.crt (1 root)" in text.stdout
    assert "ECDSA-256, matches the certificate" in text.stdout
    yaml_doc = yaml.safe_load(
        dabba("cert", "inspect", "payments", "-n", kube.ns, "-o", "yaml").stdout
    )
    assert yaml_doc["verification"]["verified"] is True


def test_cert_inspect_reports_a_failed_verification(dabba: Run, kube: Kube) -> None:
    key, leaf = _leaf(_ca("mesh root"), kube.ns)
    rolled = _ca("mesh root")  # same name, new key: the Secret's ca.crt is not the signer
    kube.secret(
        "payments-tls", {"tls.crt": _pem(leaf), "tls.key": _key_pem(key), "ca.crt": _pem(rolled[1])}
    )
    kube.cert("payments", status=_cert_status(leaf.not_valid_after_utc))
    doc = _json(dabba("cert", "inspect", "payments", "-n", kube.ns, "-o", "json"))
    assert doc["verification"]["verified"] is False
    assert "does not verify" in doc["verification"]["problem"]
    assert "FAILED:" in dabba("cert", "inspect", "payments", "-n", kube.ns).stdout


def test_cert_inspect_without_secret_exits_1(dabba: Run, kube: Kube) -> None:
    kube.cert("orders")
    result = dabba("cert", "inspect", "orders", "-n", kube.ns)
    assert result.exit_code == 1
    assert f"Secret orders-tls of MeshCertificate orders not found in namespace {kube.ns}" in (
        result.stderr
    )
    assert "(not found)" in result.stdout


def test_cert_renew_sets_the_request_time(dabba: Run, kube: Kube) -> None:
    kube.cert("payments")
    before = _now()
    result = dabba("cert", "renew", "payments", "-n", kube.ns)
    assert result.exit_code == 0, result.output
    value = kube.annotations("meshcertificates", "payments")[meta.CERT_RENEW_ANNOTATION]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value)
    assert before - dt.timedelta(seconds=1) <= dt.datetime.fromisoformat(value) <= _now()
    assert f"{meta.CERT_RENEW_ANNOTATION}={value}" in result.stdout
    doc = _json(dabba("cert", "renew", "payments", "-n", kube.ns, "-o", "json"))
    assert doc["annotation"] == meta.CERT_RENEW_ANNOTATION
    assert (
        kube.annotations("meshcertificates", "payments")[meta.CERT_RENEW_ANNOTATION] == doc["value"]
    )


def test_cert_plan_is_in_time_order_with_the_ca_timeline(dabba: Run, kube: Kube) -> None:
    now = _now()
    h = dt.timedelta(hours=1)
    root = {"kind": "MeshCertificate", "name": "mesh-root"}
    kube.cert(
        "mesh-root",
        {"secretName": "mesh-root-ca", "isCA": True, "commonName": "mesh root"},
        _cert_status(
            now + 700 * h,
            now + 500 * h,
            rolloverPhase="WaitForBundles",
            trustedRoots=[
                {
                    "fingerprintSHA256": "ab" * 32,
                    "notAfter": _ts(now + 700 * h),
                    "reason": "current",
                }
            ],
        ),
    )
    leaf = {"issuerRef": root, "serviceAccountName": "x"}
    kube.cert(
        "later", {"secretName": "later-tls", **leaf}, _cert_status(now + 30 * h, now + 20 * h)
    )
    kube.cert("soon", {"secretName": "soon-tls", **leaf}, _cert_status(now + 9 * h, now + 3 * h))
    kube.cert("overdue", {"secretName": "overdue-tls", **leaf}, _cert_status(now + 2 * h, now - h))
    kube.cert("dead", {"secretName": "dead-tls", **leaf}, _cert_status(now - h, now - 9 * h))
    kube.cert("new", {"secretName": "new-tls", **leaf})
    kube.cert(
        "orphan",
        {
            "secretName": "o-tls",
            "issuerRef": {"name": "gone", "namespace": "dabba-system"},
            "dnsNames": ["o"],
        },
        _cert_status(now + 40 * h, now + 30 * h),
    )

    doc = _json(dabba("cert", "plan", "-n", kube.ns, "-o", "json"))
    assert [(e["name"], e["action"]) for e in doc["items"]] == [
        ("dead", "expired"),
        ("overdue", "overdue"),
        ("new", "issue"),
        ("soon", "renew"),
        ("later", "renew"),
        ("orphan", "renew"),
        ("mesh-root", "renew"),
    ]
    ca = next(c for c in doc["cas"] if c["name"] == "mesh-root")
    assert (ca["leaves"], ca["rolloverPhase"], ca["notAfter"]) == (
        5,
        "WaitForBundles",
        _ts(now + 700 * h),
    )
    assert ca["trustedRoots"][0]["reason"] == "current"
    gone = next(c for c in doc["cas"] if c["name"] == "gone")
    assert (gone["namespace"], gone["found"], gone["leaves"]) == ("dabba-system", False, 1)

    text = dabba("cert", "plan", "-n", kube.ns)
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    names = ["dead", "overdue", "new", "soon", "later", "orphan", "mesh-root"]
    rows = lines[2 : 2 + len(names)]  # after the section title and the header
    assert [next(t for t in row.split() if t in names) for row in rows] == names
    assert "CA timeline:" in text.stdout


# ---------------------------------------------------------------------------------------------
# kubectl plugin, --watch


def _plugin_env(cluster: lc.Cluster) -> dict[str, str]:
    env = {**os.environ, **cluster.env()}
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    return env


def test_kubectl_dabba_status_through_the_plugin_mechanism(cluster: lc.Cluster, kube: Kube) -> None:
    kube.canary("podinfo", PROGRESSING)
    env = _plugin_env(cluster)
    kubectl = env["DABBA_KUBECTL"]
    plugins = subprocess.run(
        [kubectl, "plugin", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert str(BIN / "kubectl-dabba") in plugins.stdout
    proc = subprocess.run(
        [kubectl, "dabba", "status", "-n", kube.ns, "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert [(i["kind"], i["name"], i["weight"]) for i in json.loads(proc.stdout)["items"]] == [
        ("Canary", "podinfo", 10)
    ]
    helped = subprocess.run(
        [kubectl, "dabba", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Usage: kubectl dabba" in helped.stdout
    missing = subprocess.run(
        [kubectl, "dabba", "canary", "get", "nope", "-n", kube.ns],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1


def _wait_for_line(proc: subprocess.Popen[str], pattern: str, timeout: float = 30) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if re.search(pattern, line):
                return line
    raise AssertionError(f"no line matching {pattern!r} in {seen!r}")


def test_watch_piped_prints_a_line_per_change_and_exits_0_on_ctrl_c(
    cluster: lc.Cluster, kube: Kube
) -> None:
    obj = kube.canary("podinfo", PROGRESSING)
    with subprocess.Popen(
        [str(DABBA), "canary", "get", "podinfo", "-n", kube.ns, "--watch"],
        env={**os.environ, **cluster.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            first = _wait_for_line(proc, r"phase=Progressing weight=10%")
            assert "request-duration=612.5:Failed" in first
            kube.status("canaries", "podinfo", {"canaryWeight": 25, "stepIndex": 1})
            _wait_for_line(proc, r"weight=25%")
            kube.event(obj, "CanaryWeight", "weight 10 -> 25")
            line = _wait_for_line(proc, "CanaryWeight")
            assert "event Normal CanaryWeight: weight 10 -> 25" in line
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


class Terminal:
    """A pseudo-terminal running one command; reads what it draws."""

    def __init__(self, argv: list[str], env: Mapping[str, str]) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: exec at once (no Python state of the test survives)
            os.execve(argv[0], argv, dict(env))  # noqa: S606 - our own binary, no shell
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 140, 0, 0))
        self.screen = ""

    def read_until(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError as exc:  # EIO: the child closed the terminal
                    if exc.errno != errno.EIO:
                        raise
                    break
                self.screen += ANSI.sub("", chunk.decode(errors="replace"))
                if text in self.screen:
                    return self.screen
        raise AssertionError(f"{text!r} never appeared on the screen:\n{self.screen[-3000:]}")

    def wait(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with_status = os.waitpid(self.pid, os.WNOHANG)
            if with_status[0]:
                return os.waitstatus_to_exitcode(with_status[1])
            try:
                select.select([self.fd], [], [], 0.2)
                os.read(self.fd, 65536)  # keep draining so the child never blocks on output
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the watch did not exit")

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


@pytest.fixture
def terminal() -> Iterator[Callable[[list[str], Mapping[str, str]], Terminal]]:
    opened: list[Terminal] = []

    def open_(argv: list[str], env: Mapping[str, str]) -> Terminal:
        opened.append(Terminal(argv, env))
        return opened[-1]

    yield open_
    for t in opened:
        t.close()


def test_watch_live_view_in_a_terminal(
    cluster: lc.Cluster,
    kube: Kube,
    terminal: Callable[[list[str], Mapping[str, str]], Terminal],
) -> None:
    kube.canary("podinfo", PROGRESSING)
    env = {**os.environ, **cluster.env(), "TERM": "xterm-256color", "COLUMNS": "140", "LINES": "50"}
    env.pop("NO_COLOR", None)
    term = terminal([str(DABBA), "canary", "get", "podinfo", "-n", kube.ns, "--watch"], env)
    screen = term.read_until("Ctrl-C to stop")
    assert f"Canary {kube.ns}/podinfo" in screen
    assert "Progressing" in screen
    assert "10%" in screen
    assert "█" in screen  # the weight bar, drawn with blocks on a terminal
    assert "request-duration" in screen
    assert "612.5" in screen

    kube.status(
        "canaries", "podinfo", {"canaryWeight": 50, "stepIndex": 2, "phase": "WaitingPromotion"}
    )
    term.read_until("WaitingPromotion")
    assert "50%" in term.screen
    os.write(term.fd, b"\x03")  # Ctrl-C, through the terminal's line discipline
    assert term.wait() == 0
