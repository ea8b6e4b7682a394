"""What every scenario shares: the cluster, API clients, namespaces, the operator process,
its /metrics and /proc, watches, and the figures printed at the end."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from localcluster import cluster as lc

REPO = Path(__file__).resolve().parent.parent
REPORT_DIR = REPO / "bench" / "report"
BENCH_LABEL = "dabba.io/bench"
GROUP, VERSION = "dabba.io", "v1alpha1"
NOT_FOUND, GONE = 404, 410
CLK_TCK = os.sysconf("SC_CLK_TCK")


# The goals of issue 8, in one place (bytes are decimal megabytes, as the issue says MB).
GOAL_ISSUANCE_VS_BASELINE = 1.5  # x the Secret-writing baseline's time
GOAL_ISSUANCE_RATE = 100.0  # certificates per second
GOAL_TICK_LATENESS_P99 = 1.0  # seconds
GOAL_REQUESTS_PER_TICK = 4.0
GOAL_CANARY_PEAK_RSS = 300e6
GOAL_ROLLBACK_SLACK = 2.0  # seconds beyond one interval
GOAL_IDLE_RSS = 120e6
GOAL_START_TO_READY = 5.0  # seconds
GOAL_RSS_10K_CERTIFICATES = 400e6
MANY_CERTIFICATES = 10_000


def say(message: str) -> None:
    """Progress goes to stderr; stdout carries only the figures."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# figures


@dataclasses.dataclass
class Figure:
    """One reported number: ``name: value unit (goal: …)``."""

    scenario: str
    name: str
    value: float
    unit: str
    goal: str = "none, reported"
    met: bool | None = None
    note: str = ""

    def line(self) -> str:
        verdict = "" if self.met is None else (", met" if self.met else ", MISSED")
        return f"{self.name}: {fmt(self.value)} {self.unit} (goal: {self.goal}{verdict})"


def fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if value == int(value) and abs(value) < 1e9:  # noqa: PLR2004 - plain integers
        return str(int(value))
    magnitude = abs(value)
    digits = 3 if magnitude < 1 else 2 if magnitude < 100 else 1  # noqa: PLR2004
    return f"{value:.{digits}f}"


@dataclasses.dataclass
class Results:
    """Everything a run produced: figures, sizes, notes, series for the plots."""

    figures: list[Figure] = dataclasses.field(default_factory=list)
    sizes: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    series: dict[str, Any] = dataclasses.field(default_factory=dict)
    environment: dict[str, Any] = dataclasses.field(default_factory=dict)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        print(figure.line(), flush=True)
        return figure

    def note(self, scenario: str, text: str) -> None:
        self.notes.setdefault(scenario, []).append(text)
        say(f"note ({scenario}): {text}")

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "figures": [dataclasses.asdict(f) for f in self.figures],
            "sizes": self.sizes,
            "notes": self.notes,
            "series": self.series,
            "environment": self.environment,
        }
        path.write_text(json.dumps(doc, indent=1, default=str))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


# --------------------------------------------------------------------------------------------
# cluster and clients


class _PooledApiClient(client.ApiClient):
    """Reads every non-streaming body at once, so urllib3 returns the connection to its pool.

    Without it each ``_preload_content=False`` call whose body is never read (the baseline's
    creates) leaves its connection behind and the next one pays a TLS handshake: the baseline
    would measure handshakes. The operator's client does the same (``dabba.k8s.client``).
    """

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        response = super().call_api(method, url, *args, **kwargs)
        if "watch=true" not in url:
            response.read()
        return response


@dataclasses.dataclass(frozen=True)
class Kube:
    """API clients for the bench's own requests (one pool sized to the thread count)."""

    cluster: lc.Cluster
    api: client.ApiClient
    core: client.CoreV1Api
    apps: client.AppsV1Api
    custom: client.CustomObjectsApi

    @classmethod
    def connect(cls, cluster: lc.Cluster, pool: int) -> Kube:
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=cfg)
        cfg.connection_pool_maxsize = max(pool, 4)
        api = _PooledApiClient(cfg)
        return cls(
            cluster, api, client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
        )


def bring_up(cluster_dir: Path | None = None) -> tuple[lc.Cluster, bool]:
    """The local cluster, and whether the bench started it.

    Without ``cluster_dir``: the shared one (``$DABBA_CLUSTER_DIR`` or ``$DABBA_HOME/cluster``),
    reused if running, never stopped by the bench. With it: a control plane of the bench's
    own in that directory, stopped at the end if the bench started it.
    """
    running = lc.attach(cluster_dir)
    cluster = running or lc.up(cluster_dir)
    lc.install_crds(cluster)
    return cluster, running is None


def create_namespace(kube: Kube, prefix: str) -> str:
    name = f"bench-{prefix}-{uuid.uuid4().hex[:6]}"
    kube.core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={BENCH_LABEL: "true"}))
    )
    return name


def delete_namespace(kube: Kube, name: str, timeout: float = 600) -> None:
    """Delete and wait until it is gone (the operator must still run: finalizers)."""
    try:
        kube.core.delete_namespace(name, propagation_policy="Background")
    except ApiException as exc:
        if exc.status != NOT_FOUND:
            raise

    def gone() -> bool:
        try:
            kube.core.read_namespace(name)
        except ApiException as exc:
            return bool(exc.status == NOT_FOUND)
        return False

    lc.wait_for(f"namespace {name} to be deleted", gone, timeout, interval=1.0)


def _namespaces(kube: Kube, selector: str) -> list[dict[str, Any]]:
    doc = raw(kube.core.list_namespace(label_selector=selector, _preload_content=False))
    return cast("list[dict[str, Any]]", doc["items"])


def leftover_namespaces(kube: Kube) -> list[str]:
    return [str(ns["metadata"]["name"]) for ns in _namespaces(kube, BENCH_LABEL)]


def e2e_sessions(kube: Kube) -> list[str]:
    """Namespaces of e2e tests running now: their `dabba run -A` also sees the bench's objects."""
    return [
        str(ns["metadata"]["name"])
        for ns in _namespaces(kube, "dabba.io/test=true")
        if ns.get("status", {}).get("phase") == "Active"
    ]


def raw(resp: object) -> dict[str, Any]:
    """The JSON body of a call made with ``_preload_content=False``."""
    return cast("dict[str, Any]", json.loads(cast("Any", resp).data))


def custom_objects(kube: Kube, namespace: str, plural: str) -> list[dict[str, Any]]:
    """Every dabba object of one kind in a namespace, as dicts."""
    resp = kube.custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, _preload_content=False
    )
    return cast("list[dict[str, Any]]", raw(resp)["items"])


def run_parallel(threads: int, items: Sequence[Any], fn: Callable[[Any], None]) -> float:
    """Call ``fn`` on every item from ``threads`` threads; seconds from first call to last."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(fn, item) for item in items]:
            future.result()
    return time.monotonic() - t0


# --------------------------------------------------------------------------------------------
# the operator process


@dataclasses.dataclass(frozen=True)
class ProcStats:
    rss: int  # bytes
    peak_rss: int  # bytes (VmHWM)
    cpu: float  # seconds, user + system, all threads


def proc_stats(pid: int) -> ProcStats:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = {
        line.split(":", 1)[0]: line.split(":", 1)[1].split()
        for line in status.splitlines()
        if ":" in line
    }
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of /proc/pid/stat (utime, stime); index 11/12 after the ")".
    cpu = (int(stat[11]) + int(stat[12])) / CLK_TCK
    return ProcStats(int(fields["VmRSS"][0]) * 1024, int(fields["VmHWM"][0]) * 1024, cpu)


Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse_metrics(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return out


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of every sample of ``name`` whose labels include ``labels``."""
    return sum(
        v
        for lbl, v in samples.get(name, [])
        if all(lbl.get(k) == want for k, want in labels.items())
    )


def by_label(samples: Samples, name: str, *keys: str) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for lbl, v in samples.get(name, []):
        key = tuple(lbl.get(k, "") for k in keys)
        out[key] = out.get(key, 0.0) + v
    return out


def delta(after: Mapping[Any, float], before: Mapping[Any, float]) -> dict[Any, float]:
    keys = set(after) | set(before)
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in keys}


def breakdown(counts: Mapping[tuple[str, ...], float], per: float) -> str:
    """``"get secrets 2.07, patch ... 1"``: requests by (verb, resource) per unit, largest first."""
    top = sorted(((v, k) for k, v in counts.items() if v > 0), reverse=True)
    return ", ".join(f"{k[0]} {k[1]} {fmt(v / max(per, 1))}" for v, k in top)


def writes(counts: Mapping[tuple[str, ...], float]) -> float:
    """Requests that change something (create, update, patch, delete)."""
    return sum(v for k, v in counts.items() if k[0] in ("create", "update", "patch", "delete"))


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The operator's counters, CPU and memory at one moment (deltas make the figures)."""

    at: float
    metrics: Samples
    dabba_requests: dict[tuple[str, ...], float]
    kopf_requests: dict[tuple[str, ...], float]
    cpu: float
    rss: int
    peak_rss: int

    def counter(self, name: str) -> float:
        return total(self.metrics, name)

    def buckets(self, name: str) -> dict[float, float]:
        return {float(lbl["le"]): v for lbl, v in self.metrics.get(name, [])}


class Operator:
    """One ``dabba run -n <namespaces> --standalone`` process, JSON logs to a file."""

    def __init__(
        self,
        cluster: lc.Cluster,
        namespaces: Sequence[str],
        workdir: Path,
        name: str,
        *,
        instrumented: bool = True,
    ) -> None:
        self.cluster = cluster
        self.namespaces = list(namespaces)
        self.workdir = workdir
        self.name = name
        self.instrumented = instrumented
        self.log = workdir / f"{name}.log"
        self.trace = workdir / f"{name}.trace"
        self.port = lc.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.rss_samples: list[tuple[float, int]] = []
        self._sampler: threading.Thread | None = None
        self._stop_sampling = threading.Event()

    def argv(self) -> list[str]:
        head = (
            [sys.executable, "-m", "bench.shim"]
            if self.instrumented
            else [str(Path(sys.executable).parent / "dabba")]
        )
        ns_flags = [f"--namespace={n}" for n in self.namespaces]
        return [
            *head,
            "run",
            *ns_flags,
            "--standalone",
            "--listen-host=127.0.0.1",
            f"--metrics-port={self.port}",
            "--log-format=json",
            "--log-level=info",
        ]

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            **self.cluster.env(),
            "DABBA_PROMETHEUS_URL": self.cluster.prometheus_url,
            "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "operator")]),
        }
        if self.instrumented:
            env["DABBA_BENCH_TRACE"] = str(self.trace)
        return env

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"  # noqa: S101 - programming error
        return self.proc.pid

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.trace.unlink(missing_ok=True)
        with self.log.open("ab") as out:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                self.argv(), env=self.env(), stdout=out, stderr=subprocess.STDOUT, cwd=REPO
            )

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as resp:  # noqa: S310
                return bool(resp.status == 200)  # noqa: PLR2004
        except OSError:
            return False

    def wait_ready(self, timeout: float = 60, interval: float = 0.02) -> float:
        """Seconds from process start to the first /healthz 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"operator exited:\n{self.tail()}")
            if self.healthy():
                return time.monotonic() - self.started_at
            time.sleep(interval)
        raise RuntimeError(f"operator not ready after {timeout}s:\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def metrics(self) -> Samples:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=30) as resp:  # noqa: S310
            return parse_metrics(resp.read().decode())

    def stats(self) -> ProcStats:
        return proc_stats(self.pid)

    def sample_rss(self, every: float = 1.0) -> None:
        """Record RSS in the background until stop()."""

        def run() -> None:
            while not self._stop_sampling.wait(every):
                with contextlib.suppress(OSError, ValueError, KeyError):
                    self.rss_samples.append((time.time(), self.stats().rss))

        self._sampler = threading.Thread(target=run, daemon=True)
        self._sampler.start()

    @contextlib.contextmanager
    def profiled(self, out: Path | None) -> Iterator[None]:
        """py-spy (the ``bench`` extra) samples the operator while the block runs and writes
        collapsed stacks to ``out`` (``None``: no profiling); see :func:`profile_summary`."""
        spy = Path(sys.executable).parent / "py-spy"
        if out is None or not spy.exists():
            yield
            return
        proc = subprocess.Popen(
            [
                str(spy),
                "record",
                "--pid",
                str(self.pid),
                "--rate",
                "50",
                "--nonblocking",
                "--output",
                str(out),
                "--format",
                "raw",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            yield
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                _, err = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            if proc.returncode not in (0, -signal.SIGINT) and not out.exists():
                say(f"py-spy failed: {err.decode(errors='replace')[-500:]}")

    def snapshot(self) -> Snapshot:
        m = self.metrics()
        st = self.stats()
        return Snapshot(
            at=time.time(),
            metrics=m,
            dabba_requests=by_label(m, "dabba_api_requests_total", "verb", "resource"),
            kopf_requests=by_label(m, "dabba_bench_kopf_requests_total", "verb", "resource"),
            cpu=st.cpu,
            rss=st.rss,
            peak_rss=st.peak_rss,
        )

    def lateness_trace(self) -> list[tuple[float, float]]:
        try:
            lines = self.trace.read_text().splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            parts = line.split()
            if len(parts) == 2:  # noqa: PLR2004 - "<time> <value>"
                out.append((float(parts[0]), float(parts[1])))
        return out

    def log_lines(self) -> Iterator[dict[str, Any]]:
        with self.log.open(errors="replace") as fh:
            for line in fh:
                if line.startswith("{"):
                    with contextlib.suppress(ValueError):
                        yield json.loads(line)

    def stop(self) -> None:
        self._stop_sampling.set()
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def running(op: Operator, timeout: float = 60) -> Iterator[Operator]:
    op.start()
    try:
        op.wait_ready(timeout)
        yield op
    finally:
        op.stop()


# --------------------------------------------------------------------------------------------
# watches


class Watch:
    """Streams the events of one list call in a thread: ``on_event(type, obj, unix_time)``.

    Starts with a list (every existing object arrives as ADDED), then watches from its
    resourceVersion; a 410 re-lists. ``stop()`` returns within a few seconds.
    """

    def __init__(
        self,
        list_fn: Callable[..., Any],
        args: Sequence[Any],
        on_event: Callable[[str, dict[str, Any], float], None],
    ) -> None:
        self._list, self._args, self._on_event = list_fn, list(args), on_event
        self._stop = threading.Event()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        rv: str | None = None
        try:
            while not self._stop.is_set():
                if rv is None:
                    resp = self._list(*self._args, _preload_content=False)
                    doc = json.loads(resp.data)
                    now = time.time()
                    for obj in doc.get("items") or []:
                        self._on_event("ADDED", obj, now)
                    rv = doc["metadata"]["resourceVersion"]
                    self.ready.set()
                w = watch.Watch()
                try:
                    for event in w.stream(
                        self._list,
                        *self._args,
                        resource_version=rv,
                        timeout_seconds=5,
                        allow_watch_bookmarks=True,
                    ):
                        now = time.time()
                        obj = event["raw_object"] if "raw_object" in event else event["object"]
                        rv = obj.get("metadata", {}).get("resourceVersion") or rv
                        if event["type"] != "BOOKMARK":
                            self._on_event(event["type"], obj, now)
                        if self._stop.is_set():
                            w.stop()
                            break
                except ApiException as exc:
                    if exc.status != GONE:
                        raise
                    rv = None
                except ValueError as exc:  # the client's "expired" for a 410 inside the stream
                    if "Expired" not in str(exc) and "too old" not in str(exc):
                        raise
                    rv = None
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            raise

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


# --------------------------------------------------------------------------------------------
# Prometheus


def prom_query(url: str, promql: str) -> list[dict[str, Any]]:
    q = urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=10) as resp:  # noqa: S310
        result: list[dict[str, Any]] = json.load(resp)["data"]["result"]
    return result


def prom_scalar(url: str, promql: str) -> float | None:
    result = prom_query(url, promql)
    return float(result[0]["value"][1]) if result else None


def prometheus_query_requests(url: str) -> float:
    """Prometheus's own count of /api/v1/query requests (every client's), from its /metrics
    (the local Prometheus does not scrape itself)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:  # noqa: S310
        samples = parse_metrics(resp.read().decode())
    return total(samples, "prometheus_http_requests_total", handler="/api/v1/query")


# --------------------------------------------------------------------------------------------
# the machine


def git_state() -> str:
    """The commit and whether the work tree differs (the operator measured is the work tree)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "operator"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' + uncommitted changes in operator/' if dirty else ''}"


def environment() -> dict[str, Any]:
    apiservers = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if b"kube-apiserver" in cmdline.read_bytes().split(b"\0", 1)[0]:
                apiservers += 1
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "loadavg_start": os.getloadavg(),
        "kube_apiservers_on_machine": apiservers,
        "python": sys.version.split()[0],
        "git": git_state(),
    }


# --------------------------------------------------------------------------------------------
# profiles


def profile_summary(raw: Path, top: int = 25) -> str:
    """The functions where the operator spent its samples: inclusive and self, in percent.

    ``raw`` is py-spy's collapsed-stack output: ``frame;frame;frame count`` per line.
    """
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = [_short_frame(f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count
    if not samples:
        return "(no samples)"
    lines = [f"{samples} samples", "", "inclusive %  self %  function"]
    for frame, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(
            f"{100 * count / samples:10.1f}  {100 * own.get(frame, 0) / samples:6.1f}  {frame}"
        )
    lines += ["", "self %  function (hottest leaves)"]
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * count / samples:6.1f}  {frame}")
    return "\n".join(lines)


def _short_frame(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    marker = "site-packages/"
    if marker in path:
        path = path.split(marker, 1)[1]
    elif "/operator/" in path:
        path = path.split("/operator/", 1)[1]
    return f"{name} ({path})"
