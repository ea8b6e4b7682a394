"""Start, reuse and stop the local control plane.

State lives in ``$DABBA_HOME/cluster``: ``state.json`` (PIDs, ports, versions), the PKI, the
kubeconfig, the shell ``env`` file, data dirs and one log per component under ``logs/``.
``up()`` is idempotent: if every recorded process is alive and the apiserver answers, it only
re-applies the CRDs. ``down()`` stops exactly the process groups it recorded.

Readiness is always polled against a deadline; a component that dies on start is reported with
the tail of its log, which is what one needs at 3 a.m.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from localcluster import pki

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VERSIONS_FILE = HERE / "versions.env"
NODE_COUNT = 3
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
PROMETHEUS_BINARY = "prometheus"


class ClusterError(RuntimeError):
    """The local control plane could not be built, started or reached."""


def versions() -> dict[str, str]:
    """The pinned component versions from ``versions.env``."""
    out: dict[str, str] = {}
    for raw in VERSIONS_FILE.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def dabba_home() -> Path:
    return Path(os.environ.get("DABBA_HOME") or Path.home() / ".cache" / "dabba")


@dataclass(frozen=True)
class Binaries:
    """Where ``build.sh`` leaves each binary for the pinned versions."""

    root: Path
    v: dict[str, str]

    def _p(self, component: str, version_key: str, name: str) -> Path:
        return self.root / component / self.v[version_key] / name

    @property
    def etcd(self) -> Path:
        return self._p("etcd", "ETCD_VERSION", "etcd")

    @property
    def kube_apiserver(self) -> Path:
        return self._p("k8s", "K8S_VERSION", "kube-apiserver")

    @property
    def kube_controller_manager(self) -> Path:
        return self._p("k8s", "K8S_VERSION", "kube-controller-manager")

    @property
    def kube_scheduler(self) -> Path:
        return self._p("k8s", "K8S_VERSION", "kube-scheduler")

    @property
    def kubectl(self) -> Path:
        return self._p("k8s", "K8S_VERSION", "kubectl")

    @property
    def kwok(self) -> Path:
        return self._p("kwok", "KWOK_VERSION", "kwok")

    @property
    def kwok_stages(self) -> Path:
        return self._p("kwok", "KWOK_VERSION", "stages.yaml")

    @property
    def helm(self) -> Path:
        return self._p("helm", "HELM_VERSION", "helm")

    @property
    def third_party_crds(self) -> list[Path]:
        d = (
            self.root
            / "crds"
            / (f"istio-{self.v['ISTIO_API_VERSION']}-gwapi-{self.v['GATEWAY_API_VERSION']}")
        )
        return [d / "gateway-api.yaml", d / "istio.yaml"]

    def missing(self) -> list[Path]:
        wanted = [
            self.etcd,
            self.kube_apiserver,
            self.kube_controller_manager,
            self.kube_scheduler,
            self.kubectl,
            self.kwok,
            self.kwok_stages,
            self.helm,
            *self.third_party_crds,
        ]
        return [p for p in wanted if not p.exists()]

    @property
    def path_dirs(self) -> list[Path]:
        return [self.kubectl.parent, self.helm.parent]


@dataclass
class State:
    """What ``up()`` started; persisted so another process can reuse or stop it."""

    versions: dict[str, str]
    ports: dict[str, int]
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['prometheus']}"


@dataclass(frozen=True)
class Cluster:
    """A running local cluster, as the tests and the demo see it."""

    dir: Path
    state: State
    binaries: Binaries

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def env_file(self) -> Path:
        return self.dir / "env"

    @property
    def apiserver_url(self) -> str:
        return self.state.apiserver_url

    @property
    def prometheus_url(self) -> str:
        return self.state.prometheus_url

    @property
    def targets_dir(self) -> Path:
        return self.dir / "prometheus" / "targets"

    @property
    def rules_dir(self) -> Path:
        return self.dir / "prometheus" / "rules"

    def register_scrape_target(
        self, name: str, address: str, labels: dict[str, str] | None = None
    ) -> None:
        """Ask Prometheus to scrape ``address`` (host:port on loopback) every second."""
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        doc = [{"targets": [address], "labels": {"dabba_target": name, **(labels or {})}}]
        tmp = self.targets_dir / f".{name}.json.tmp"
        tmp.write_text(json.dumps(doc))
        tmp.replace(self.targets_dir / f"{name}.json")

    def unregister_scrape_target(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.targets_dir / f"{name}.json").unlink()

    def kubectl(
        self, *args: str, input_text: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the cluster's own kubectl (the Debian one is far too old for 1.36)."""
        return _run(
            [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            input_text=input_text,
            check=check,
            timeout=timeout,
        )

    def env(self) -> dict[str, str]:
        """The exports written to the env file, as a mapping."""
        path = os.pathsep.join(str(p) for p in self.binaries.path_dirs)
        return {
            "DABBA_HOME": str(self.binaries.root.parent),
            "KUBECONFIG": str(self.kubeconfig),
            "DABBA_PROMETHEUS_URL": self.prometheus_url,
            "DABBA_KUBECTL": str(self.binaries.kubectl),
            "DABBA_HELM": str(self.binaries.helm),
            "DABBA_CLUSTER_BIN": path,
            "NO_PROXY": "127.0.0.1,localhost",
        }


# --------------------------------------------------------------------------------------------
# small helpers


def _run(
    argv: Sequence[str],
    *,
    input_text: str | None = None,
    check: bool = True,
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(  # noqa: PLW1510 - checked below with a useful message
        list(argv),
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if check and proc.returncode != 0:
        raise ClusterError(
            f"command failed ({proc.returncode}): {' '.join(argv[:4])} ...\n"
            f"{proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); read its state so a crashed child counts as dead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    on_fail: Callable[[], str] | None = None,
    interval: float = 0.25,
) -> None:
    """Poll ``check`` until it returns true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: S110 - a failing probe just means "not yet"
            pass
        if time.monotonic() > deadline:
            detail = on_fail() if on_fail else ""
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}\n{detail}")
        time.sleep(interval)


def _say(msg: str) -> None:
    bold = "\033[1m" if sys.stderr.isatty() else ""
    reset = "\033[0m" if bold else ""
    print(f"{bold}[dabba cluster]{reset} {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One ``up``/``down`` at a time (make and a pytest fixture may race)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return f"--- last lines of {path} ---\n" + "\n".join(text[-lines:])


# --------------------------------------------------------------------------------------------
# build


def ensure_built() -> Binaries:
    """Build whatever binary is missing (once per machine and version), check Prometheus."""
    home = dabba_home()
    bins = Binaries(home / "bin", versions())
    if bins.missing():
        _say("building the local control plane from Go modules (cached after the first time)")
        env = {**os.environ, "DABBA_HOME": str(home)}
        proc = subprocess.run(  # noqa: PLW1510 - exit code checked below
            ["bash", str(HERE / "build.sh"), "all"],
            env=env,
            timeout=7200,
        )
        if proc.returncode != 0 or bins.missing():
            raise ClusterError(
                "building the control plane failed; see the output above. Still missing: "
                + ", ".join(str(p) for p in bins.missing())
            )
    if shutil.which(PROMETHEUS_BINARY) is None:
        raise ClusterError(
            "prometheus is not installed: run `make deps` (apt-get install prometheus)"
        )
    return bins


# --------------------------------------------------------------------------------------------
# start / stop


def _state_path(cdir: Path) -> Path:
    return cdir / "state.json"


def default_dir() -> Path:
    """``$DABBA_CLUSTER_DIR``, else ``$DABBA_HOME/cluster``."""
    explicit = os.environ.get("DABBA_CLUSTER_DIR")
    return Path(explicit) if explicit else dabba_home() / "cluster"


def load_state(cdir: Path) -> State | None:
    path = _state_path(cdir)
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return State(versions=raw["versions"], ports=raw["ports"], pids=raw.get("pids", {}))


def _save_state(cdir: Path, state: State) -> None:
    tmp = cdir / "state.json.tmp"
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(_state_path(cdir))


def _ssl_context(cdir: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cdir / "pki" / "ca.crt"))
    ctx.load_cert_chain(str(cdir / "pki" / "admin.crt"), str(cdir / "pki" / "admin.key"))
    return ctx


def _https_ok(url: str, ctx: ssl.SSLContext) -> bool:
    with urllib.request.urlopen(url, context=ctx, timeout=3) as resp:  # noqa: S310 - https only
        return bool(resp.status == 200)


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310 - loopback only
        return bool(resp.status == 200)


def _insecure_ok(url: str) -> bool:
    # Controller-manager and scheduler serve /healthz with a self-signed cert of their own.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return _https_ok(url, ctx)


def _healthy(cdir: Path, state: State) -> bool:
    if not state.pids or not all(alive(pid) for pid in state.pids.values()):
        return False
    try:
        return _https_ok(f"{state.apiserver_url}/readyz", _ssl_context(cdir)) and _http_ok(
            f"{state.prometheus_url}/-/ready"
        )
    except (OSError, urllib.error.URLError, ssl.SSLError):
        return False


# Popen handles of the daemons this process started: kept so they are not garbage-collected
# while running (a ResourceWarning) and so _stop() can reap them.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _spawn(
    name: str, argv: list[str], cdir: Path, state: State, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    logs = cdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = (logs / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # own process group: down() kills the group, nothing leaks
        cwd=cdir,
        env={**os.environ, "NO_PROXY": "127.0.0.1,localhost", **(env or {})},
    )
    log.close()
    _CHILDREN[proc.pid] = proc
    state.pids[name] = proc.pid
    _save_state(cdir, state)
    return proc


def _write_kubeconfig(cdir: Path, server: str) -> Path:
    p = pki.Pki(cdir / "pki")
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "dabba-local",
                "cluster": {"server": server, "certificate-authority": str(p.ca_crt)},
            }
        ],
        "users": [
            {
                "name": "dabba-admin",
                "user": {"client-certificate": str(p.admin_crt), "client-key": str(p.admin_key)},
            }
        ],
        "contexts": [
            {
                "name": "dabba-local",
                "context": {
                    "cluster": "dabba-local",
                    "user": "dabba-admin",
                    "namespace": "default",
                },
            }
        ],
        "current-context": "dabba-local",
    }
    path = cdir / "kubeconfig"
    path.write_text(json.dumps(doc, indent=2))  # JSON is valid YAML; no yaml import needed here
    path.chmod(0o600)
    return path


def _prometheus_config(cdir: Path) -> Path:
    pdir = cdir / "prometheus"
    (pdir / "targets").mkdir(parents=True, exist_ok=True)
    (pdir / "rules").mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(pdir / "rules" / "*.yml"), str(pdir / "rules" / "*.yaml")],
        "scrape_configs": [
            {
                "job_name": "dabba",
                # Exporters (the traffic simulator, the operator) set mesh labels themselves.
                "honor_labels": True,
                "file_sd_configs": [
                    {"files": [str(pdir / "targets" / "*.json")], "refresh_interval": "1s"}
                ],
            }
        ],
    }
    path = pdir / "prometheus.yml"
    path.write_text(json.dumps(config, indent=2))
    return path


def _node_manifest(i: int) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": f"kwok-node-{i}",
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": f"kwok-node-{i}",
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
            },
        },
        "spec": {},
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
        },
    }


def up(cdir: Path | None = None, *, quiet: bool = False) -> Cluster:
    """Start the local cluster in ``cdir``, or reuse the one running there. Idempotent."""
    cdir = cdir or default_dir()
    bins = ensure_built()
    with _locked(cdir):
        state = load_state(cdir)
        if state is not None and state.versions == bins.v and _healthy(cdir, state):
            cluster = Cluster(cdir, state, bins)
            install_crds(cluster)
            if not quiet:
                _say(f"already running (apiserver {state.apiserver_url}); nothing to do")
            return cluster
        if state is not None:
            _say("a previous cluster is half-dead or from other versions: stopping it first")
            _stop(cdir, state)
        return _start(cdir, bins, quiet=quiet)


def _start(cdir: Path, bins: Binaries, *, quiet: bool) -> Cluster:
    t0 = time.monotonic()
    for sub in ("etcd", "pki", "logs", "prometheus", "kwok"):
        shutil.rmtree(cdir / sub, ignore_errors=True)
    ports = {
        n: free_port()
        for n in (
            "etcd",
            "etcd_peer",
            "apiserver",
            "controller_manager",
            "scheduler",
            "prometheus",
            "simulator",
        )
    }
    state = State(versions=dict(bins.v), ports=ports)
    _save_state(cdir, state)
    p = pki.create(cdir / "pki")
    kubeconfig = _write_kubeconfig(cdir, state.apiserver_url)
    cluster = Cluster(cdir, state, bins)
    logs = cdir / "logs"

    def started(name: str, check: Callable[[], bool], timeout: float) -> None:
        def detail() -> str:
            return _log_tail(logs / f"{name}.log")

        def probe() -> bool:
            if not alive(state.pids[name]):
                raise ClusterError(f"{name} exited during start\n{detail()}")
            return check()

        try:
            wait_for(name, probe, timeout, on_fail=detail)
        except ClusterError:
            _stop(cdir, state)
            raise
        if not quiet:
            _say(f"  {name} ready ({time.monotonic() - t0:.1f}s)")

    if not quiet:
        _say(
            f"starting etcd {bins.v['ETCD_VERSION']}, kubernetes {bins.v['K8S_VERSION']}, "
            f"kwok {bins.v['KWOK_VERSION']}, prometheus on 127.0.0.1"
        )

    e = ports["etcd"]
    _spawn(
        "etcd",
        [
            str(bins.etcd),
            "--name=dabba",
            f"--data-dir={cdir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{e}",
            f"--advertise-client-urls=http://127.0.0.1:{e}",
            f"--listen-peer-urls=http://127.0.0.1:{ports['etcd_peer']}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{ports['etcd_peer']}",
            f"--initial-cluster=dabba=http://127.0.0.1:{ports['etcd_peer']}",
            "--unsafe-no-fsync=true",  # test data: durability across power loss is not a goal
            "--quota-backend-bytes=4294967296",
            "--log-level=warn",
        ],
        cdir,
        state,
    )
    started("etcd", lambda: _http_ok(f"http://127.0.0.1:{e}/health"), 60)

    _spawn(
        "kube-apiserver",
        [
            str(bins.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{e}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports['apiserver']}",
            f"--cert-dir={cdir / 'pki'}",
            f"--tls-cert-file={p.serving_crt}",
            f"--tls-private-key-file={p.serving_key}",
            f"--client-ca-file={p.ca_crt}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p.sa_pub}",
            f"--service-account-signing-key-file={p.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            # The apiserver listens on loopback only; the `kubernetes` Service endpoint cannot be a
            # loopback address, so skip reconciling it rather than log an error every 10s.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
        ],
        cdir,
        state,
    )
    ctx = _ssl_context(cdir)
    started("kube-apiserver", lambda: _https_ok(f"{state.apiserver_url}/readyz", ctx), 120)

    common = [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        "--leader-elect=false",
    ]
    _spawn(
        "kube-controller-manager",
        [
            str(bins.kube_controller_manager),
            *common,
            f"--secure-port={ports['controller_manager']}",
            f"--cert-dir={cdir / 'pki' / 'kcm'}",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={p.sa_key}",
            f"--root-ca-file={p.ca_crt}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--cluster-signing-cert-file={p.ca_crt}",
            f"--cluster-signing-key-file={p.ca_key}",
        ],
        cdir,
        state,
    )
    _spawn(
        "kube-scheduler",
        [
            str(bins.kube_scheduler),
            *common,
            f"--secure-port={ports['scheduler']}",
            f"--cert-dir={cdir / 'pki' / 'scheduler'}",
        ],
        cdir,
        state,
    )
    kwok_dir = cdir / "kwok"
    kwok_dir.mkdir(parents=True, exist_ok=True)
    _spawn(
        "kwok",
        [
            str(bins.kwok),
            f"--kubeconfig={kubeconfig}",
            f"--config={bins.kwok_stages}",
            "--manage-all-nodes=true",
            "--node-lease-duration-seconds=40",
            f"--cidr={POD_CIDR}",
            "--node-ip=10.0.0.1",
        ],
        cdir,
        state,
        env={"KWOK_WORKDIR": str(kwok_dir), "HOME": str(kwok_dir)},
    )
    _spawn(
        "prometheus",
        [
            PROMETHEUS_BINARY,
            f"--config.file={_prometheus_config(cdir)}",
            f"--storage.tsdb.path={cdir / 'prometheus' / 'data'}",
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            "--storage.tsdb.retention.time=6h",
            "--web.enable-lifecycle",
            "--web.enable-admin-api",
            "--log.level=warn",
        ],
        cdir,
        state,
    )
    started(
        "kube-controller-manager",
        lambda: _insecure_ok(f"https://127.0.0.1:{ports['controller_manager']}/healthz"),
        90,
    )
    started(
        "kube-scheduler",
        lambda: _insecure_ok(f"https://127.0.0.1:{ports['scheduler']}/healthz"),
        90,
    )
    started("prometheus", lambda: _http_ok(f"{state.prometheus_url}/-/ready"), 90)

    # The traffic simulator plays the mesh data plane (see e2e/simulator); Prometheus scrapes it.
    _spawn(
        "simulator",
        [
            sys.executable,
            "-m",
            "simulator",
            f"--kubeconfig={kubeconfig}",
            f"--port={ports['simulator']}",
        ],
        cdir,
        state,
        env={"PYTHONPATH": str(HERE.parent)},
    )
    cluster.register_scrape_target("simulator", f"127.0.0.1:{ports['simulator']}")
    started("simulator", lambda: _http_ok(f"http://127.0.0.1:{ports['simulator']}/metrics"), 30)

    nodes = "\n---\n".join(json.dumps(_node_manifest(i)) for i in range(NODE_COUNT))
    cluster.kubectl("apply", "-f", "-", input_text=nodes)
    started("kwok", lambda: _nodes_ready(cluster), 90)
    # Pods need the `default` ServiceAccount (ServiceAccount admission), made by a controller.
    wait_for(
        "the default ServiceAccount",
        lambda: (
            cluster.kubectl(
                "get", "serviceaccount", "default", "-n", "default", check=False
            ).returncode
            == 0
        ),
        60,
    )

    install_crds(cluster)
    _write_env(cluster)
    if not quiet:
        _say(f"cluster up in {time.monotonic() - t0:.1f}s")
    return cluster


def _nodes_ready(cluster: Cluster) -> bool:
    out = cluster.kubectl("get", "nodes", "-o", "json", check=False)
    if out.returncode != 0:
        return False
    items = json.loads(out.stdout)["items"]
    ready = [
        n
        for n in items
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in n.get("status", {}).get("conditions", [])
        )
        and not any(
            t.get("key") == "node.kubernetes.io/not-ready"
            for t in n.get("spec", {}).get("taints", []) or []
        )
    ]
    return len(ready) >= NODE_COUNT


def install_crds(cluster: Cluster) -> None:
    """Apply the third-party router CRDs and dabba's own, then wait until Established."""
    files = [*cluster.binaries.third_party_crds, *sorted((REPO / "crds").glob("*.yaml"))]
    for f in files:
        # Server-side apply: the Istio CRDs are too large for the last-applied annotation.
        cluster.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=dabba-localcluster",
            "-f",
            str(f),
        )
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")


def _write_env(cluster: Cluster) -> None:
    env = cluster.env()
    lines = [
        "# Written by `make cluster-up`. Use: source this file, then `.venv/bin/dabba run -A`."
    ]
    lines += [f"export {k}={json.dumps(v)}" for k, v in env.items() if k != "DABBA_CLUSTER_BIN"]
    lines.append(f'export PATH={json.dumps(env["DABBA_CLUSTER_BIN"])}:"$PATH"')
    cluster.env_file.write_text("\n".join(lines) + "\n")


def attach(cdir: Path | None = None) -> Cluster | None:
    """The running cluster, if there is a healthy one (never starts anything)."""
    cdir = cdir or default_dir()
    state = load_state(cdir)
    if state is None or not _healthy(cdir, state):
        return None
    return Cluster(cdir, state, Binaries(dabba_home() / "bin", state.versions))


def _stop(cdir: Path, state: State) -> list[str]:
    stopped = []
    # Reverse start order: the apiserver should not outlive etcd by much, but must go first.
    for name, pid in reversed(list(state.pids.items())):
        if not alive(pid):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        stopped.append(name)
    deadline = time.monotonic() + 20
    for pid in state.pids.values():
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            # SIGKILL is delivered asynchronously: wait until the kernel has really ended it.
            kill_deadline = time.monotonic() + 10
            while alive(pid) and time.monotonic() < kill_deadline:
                time.sleep(0.05)
        # Reap our own children (when up() and down() run in one process, e.g. pytest).
        child = _CHILDREN.pop(pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)
    with contextlib.suppress(FileNotFoundError):
        _state_path(cdir).unlink()
    return stopped


@contextlib.contextmanager
def component_stopped(cluster: Cluster, name: str, *, ready_timeout: float = 120) -> Iterator[None]:
    """Stop one running component (e.g. ``kube-apiserver``) and start it again on exit.

    For fault injection: the component is stopped like ``down()`` stops it (SIGTERM to its
    process group, SIGKILL after 20 s) and started again with the command line, environment
    and working directory it ran with, so it comes back on the same ports with the same data
    (etcd keeps running). Its new PID is recorded in ``state.json``. The cluster directory
    stays locked meanwhile, so a concurrent ``up()`` cannot take the gap for a dead cluster.
    On exit waits until the apiserver answers ``/readyz`` again (any component: ``alive``).
    """
    pid = cluster.state.pids[name]
    argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]]
    raw_env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    env = dict(e.decode(errors="replace").partition("=")[::2] for e in raw_env if b"=" in e)
    with _locked(cluster.dir):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            wait_for(f"{name} to end", lambda: not alive(pid), 10)
        child = _CHILDREN.pop(pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)
        try:
            yield
        finally:
            proc = _spawn(name, argv, cluster.dir, cluster.state, env=env)
            ctx = _ssl_context(cluster.dir)

            def ready() -> bool:
                if name == "kube-apiserver":
                    return proc.poll() is None and _https_ok(f"{cluster.apiserver_url}/readyz", ctx)
                return alive(proc.pid)

            wait_for(
                f"{name} back",
                ready,
                ready_timeout,
                on_fail=lambda: _log_tail(cluster.dir / "logs" / f"{name}.log"),
            )


def down(cdir: Path | None = None) -> list[str]:
    """Stop every process ``up()`` started (by recorded PID); keep the binary cache."""
    cdir = cdir or default_dir()
    with _locked(cdir):
        state = load_state(cdir)
        if state is None:
            return []
        return _stop(cdir, state)
