"""Helpers shared by the e2e tests: the operator handle, reading Secrets and Events, PromQL."""

from __future__ import annotations

import base64
import dataclasses
import json
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes import client


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
    items: list[dict[str, Any]] = json.loads(resp.data)["items"]
    return items


def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def prom_value(prometheus: str, promql: str) -> float | None:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback Prometheus
        result = json.load(resp)["data"]["result"]
    return float(result[0]["value"][1]) if result else None
