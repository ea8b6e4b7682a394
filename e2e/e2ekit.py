"""Helpers shared by the e2e tests: the operator handle, reading Secrets and Events, PromQL,
a pair of local operator replicas, and the private-key leak scan."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from kubernetes import client

from localcluster import cluster as lc

DABBA = Path(sys.executable).parent / "dabba"


@dataclasses.dataclass
class Operator:
    """The operator under test: a `dabba run` process, restartable by the tests."""

    proc: subprocess.Popen[bytes]
    log: Path
    url: str
    argv: list[str] = dataclasses.field(default_factory=list)
    env: dict[str, str] = dataclasses.field(default_factory=dict)

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        """SIGKILL: no cleanup, no graceful shutdown — a crash."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as resp:  # noqa: S310
                return bool(resp.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as resp:  # noqa: S310
            return str(resp.read().decode())

    def metric(self, series: str, /, **labels: str) -> float | None:
        """The value of one sample on /metrics, or None."""
        for line in self.metrics().splitlines():
            if line.startswith(series + "{") and _labels_match(line, labels):
                return float(line.rsplit(" ", 1)[1])
            if not labels and line.startswith(series + " "):
                return float(line.rsplit(" ", 1)[1])
        return None


@dataclasses.dataclass
class ChartOperator:
    """The operator as the chart's Deployment in an external cluster (``e2e/kind/run.sh``).

    The same handle as :class:`Operator`: ``kill`` force-deletes every replica (a crash: no
    grace period), ``start`` waits for the Deployment to bring a Ready one back, ``metrics``
    goes through the API server's pod proxy and ``log`` is every replica's log so far.
    """

    kubectl: Path
    kubeconfig: Path
    namespace: str
    selector: str
    port: int
    workdir: Path

    def _kc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.kubectl), f"--kubeconfig={self.kubeconfig}", "-n", self.namespace, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=check,
        )

    def _pods(self, *, ready_only: bool = False) -> list[str]:
        out = self._kc("get", "pods", "-l", self.selector, "-o", "json").stdout
        names = []
        for pod in json.loads(out)["items"]:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            conditions = (pod.get("status") or {}).get("conditions") or []
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
            if ready or not ready_only:
                names.append(pod["metadata"]["name"])
        return names

    def start(self) -> None:
        self._kc("rollout", "status", "deployment", "-l", self.selector, "--timeout=120s")

    def kill(self) -> None:
        """Every replica gone at once, without a grace period (their logs kept first)."""
        with (self.workdir / "killed.log").open("a") as saved:
            saved.write(self._logs())
        self._kc(
            "delete", "pods", "-l", self.selector, "--grace-period=0", "--force", "--wait=true"
        )

    def healthy(self) -> bool:
        try:
            return bool(self._pods(ready_only=True))
        except (subprocess.SubprocessError, ValueError, KeyError):
            return False

    def _pod_metrics(self, pod: str) -> str:
        path = f"/api/v1/namespaces/{self.namespace}/pods/{pod}:{self.port}/proxy/metrics"
        return self._kc("get", "--raw", path).stdout

    def metrics(self) -> str:
        return "\n".join(self._pod_metrics(pod) for pod in self._pods(ready_only=True))

    def metric(self, series: str, /, **labels: str) -> float | None:
        """The first replica's sample that matches (only the leader has per-object series)."""
        for pod in self._pods(ready_only=True):
            for line in self._pod_metrics(pod).splitlines():
                if line.startswith(series + "{") and _labels_match(line, labels):
                    return float(line.rsplit(" ", 1)[1])
                if not labels and line.startswith(series + " "):
                    return float(line.rsplit(" ", 1)[1])
        return None

    @property
    def log(self) -> Path:
        """Every replica's log: those killed so far, then the live ones."""
        killed = self.workdir / "killed.log"
        path = self.workdir / "operator.log"
        path.write_text((killed.read_text() if killed.exists() else "") + self._logs())
        return path

    def _logs(self) -> str:
        return "".join(
            self._kc("logs", pod, "--all-containers", check=False).stdout for pod in self._pods()
        )


def _labels_match(line: str, labels: dict[str, str]) -> bool:
    return all(f'{k}="{v}"' in line for k, v in labels.items())


def secret_data(api: client.ApiClient, namespace: str, name: str) -> dict[str, bytes] | None:
    try:
        secret = client.CoreV1Api(api).read_namespaced_secret(name, namespace)
    except client.exceptions.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


def events_for(api: client.ApiClient, namespace: str, name: str) -> list[dict[str, Any]]:
    resp = client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}", _preload_content=False
    )
    items: list[dict[str, Any]] = json.loads(_raw(resp))["items"]
    return items


def _raw(resp: Any) -> bytes:
    """The body of a call made with ``_preload_content=False`` (not what the client's types say)."""
    return bytes(resp.data)


def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def prom_value(prometheus: str, promql: str) -> float | None:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback Prometheus
        result = json.load(resp)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


# --------------------------------------------------------------------------------------------
# Two local replicas in one kopf peering (leader election)


def start_replica(cluster: lc.Cluster, peering: str, log: Path, priority: int) -> Operator:
    """A started `dabba run -A` replica in the kopf peering ``peering``, JSON logs to ``log``."""
    port = lc.free_port()
    op = Operator(
        proc=None,  # type: ignore[arg-type]
        log=log,
        url=f"http://127.0.0.1:{port}",
        argv=[
            str(DABBA),
            "run",
            "-A",
            f"--peering={peering}",
            "--listen-host=127.0.0.1",
            f"--metrics-port={port}",
            "--log-format=json",
            f"--priority={priority}",
        ],
        env={**os.environ, **cluster.env(), "DABBA_PROMETHEUS_URL": cluster.prometheus_url},
    )
    op.start()
    return op


@contextlib.contextmanager
def replica_pair(
    cluster: lc.Cluster,
    operator: Operator,
    workdir: Path,
    peering_prefix: str,
    on_start: Callable[[Operator], None] | None = None,
) -> Iterator[list[Operator]]:
    """Two replicas in a new peering, priorities 100 and 101 (the second leads), both healthy.

    The session's standalone ``operator`` is stopped first (it must not act beside the pair)
    and started again at the end, after the replicas still alive are SIGKILLed and the
    peering deleted. Logs: ``workdir/replica-<i>.log``; ``on_start`` sees each replica as
    soon as it is started.
    """
    operator.kill()
    peering = f"{peering_prefix}-{uuid.uuid4().hex[:8]}"
    pair = []
    for i in range(2):
        op = start_replica(cluster, peering, workdir / f"replica-{i}.log", 100 + i)
        if on_start is not None:
            on_start(op)
        pair.append(op)
    try:
        for op in pair:
            lc.wait_for("a replica's /healthz", op.healthy, 60)
        yield pair
    finally:
        for op in pair:
            if op.proc.poll() is None:
                op.kill()
        cluster.kubectl("delete", "clusterkopfpeering", peering, check=False)
        operator.start()
        lc.wait_for("the session operator back", operator.healthy, 60)


def logged(op: Operator, event: str, namespace: str) -> list[dict[str, Any]]:
    """The JSON lines ``op`` logged with this ``event`` for ``namespace``, over every start."""
    out = []
    for line in op.log.read_text(errors="replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("event") == event and doc.get("namespace") == namespace:
            out.append(doc)
    return out


def canary_decisions(op: Operator, namespace: str) -> list[dict[str, Any]]:
    """The canary decisions ``op`` logged (JSON) for ``namespace``, over every start of it."""
    return logged(op, "canary progressed", namespace)


# --------------------------------------------------------------------------------------------
# The private-key leak scan

#: The PEM marker of every private key; never in a log, an Event or a status.
PRIVATE_KEY_MARKER = b"PRIVATE KEY"


def key_needles(pem: bytes) -> list[bytes]:
    """What would show that the private key ``pem`` leaked.

    40-byte pieces of its base64 body (the lines between the first and the last, joined) and,
    for a key that loads, each base64 line and its private number in decimal and hex
    (Ed25519: the raw key in hex). Empty for a single line that is no key (``b"garbage"``).
    """
    body = b"".join(pem.strip().splitlines()[1:-1])
    out = [body[i : i + 40] for i in range(0, max(len(body) - 40, 1), 40)] if body else []
    try:
        key = serialization.load_pem_private_key(pem, None)
    except (ValueError, TypeError):
        return out
    out += [
        line.strip()
        for line in pem.splitlines()
        if len(line.strip()) >= 32 and not line.startswith(b"-----")
    ]
    number: int | None = None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        number = key.private_numbers().private_value
    elif isinstance(key, rsa.RSAPrivateKey):
        number = key.private_numbers().d
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        out.append(raw.hex().encode())
    if number is not None:
        out += [str(number).encode(), format(number, "x").encode()]
    return out


def tracebacks(text: bytes) -> list[bytes]:
    """Traceback blocks in JSON (escaped) and console logs."""
    found: list[bytes] = re.findall(rb'"exception": "(Traceback.*?)"[,}]', text)
    found += re.findall(rb"(Traceback \(most recent call last\).*?)(?:\n\S|\Z)", text, re.S)
    found += re.findall(rb"(\xe2\x94\x82.*?Traceback.*?\xe2\x95\xb0[^\n]*)", text, re.S)
    return found


def find_leaks(haystacks: Mapping[str, bytes], needles: Iterable[bytes]) -> list[str]:
    """Where the private-key marker or any needle occurs, one line for each finding."""
    wanted = list(needles)
    leaks = []
    for where, text in haystacks.items():
        if PRIVATE_KEY_MARKER in text:
            leaks.append(f"{where}: contains {PRIVATE_KEY_MARKER.decode()!r}")
        for needle in wanted:
            if needle in text:
                leaks.append(f"{where}: contains key material {needle[:12]!r}…")
    return leaks


@dataclasses.dataclass
class LeakScan:
    """What :func:`scan_for_private_keys` read and found."""

    keys: int
    needles: int
    haystacks: dict[str, bytes]
    leaks: list[str]
    json_lines: int = 0
    console_lines: int = 0
    tracebacks: int = 0


def scan_for_private_keys(
    api: client.ApiClient,
    keys: Iterable[bytes],
    logs: Iterable[Path],
    documents: Mapping[str, bytes] | None = None,
) -> LeakScan:
    """Look for the private keys ``keys`` (PEM) in everything the operator wrote.

    Haystacks: each of ``logs`` (all must exist) and every traceback in it, ``documents``
    (under their own names), and the Events, Canaries and MeshCertificates (status included)
    alive now in every namespace. Needles: :func:`key_needles` of each key, and the marker
    ``PRIVATE KEY`` anywhere.
    """
    pems = set(keys)
    needles = sorted({n for pem in pems for n in key_needles(pem)})
    haystacks: dict[str, bytes] = {}
    json_lines = console_lines = n_tracebacks = 0
    for path in logs:
        text = path.read_bytes()
        haystacks[f"log {path}"] = text
        for line in text.splitlines():
            if line.startswith(b"{"):
                json_lines += 1
            elif line.strip():
                console_lines += 1
        for i, tb in enumerate(tracebacks(text)):
            haystacks[f"traceback {i} in {path}"] = tb
            n_tracebacks += 1
    haystacks.update(documents or {})
    core = client.CoreV1Api(api)
    haystacks["live events"] = _raw(core.list_event_for_all_namespaces(_preload_content=False))
    for plural in ("canaries", "meshcertificates"):
        haystacks[f"live {plural}"] = _raw(
            custom(api).list_cluster_custom_object(
                "dabba.io", "v1alpha1", plural, _preload_content=False
            )
        )
    return LeakScan(
        keys=len(pems),
        needles=len(needles),
        haystacks=haystacks,
        leaks=find_leaks(haystacks, needles),
        json_lines=json_lines,
        console_lines=console_lines,
        tracebacks=n_tracebacks,
    )
