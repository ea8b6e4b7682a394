"""CA rollover end to end (SPEC §2.3): not one failed mutual-TLS handshake.

Twenty leaves signed by a self-signed root, in two namespaces. A fleet of hot-reloading
proxies — one per leaf, each serving TLS on loopback and re-reading its Secret (and, for half
of them, the trust-bundle ConfigMap of its namespace) through the API four times a second —
handshakes between random pairs, mutually authenticated, tens of times a second, through:

* a root rollover started by ``dabba.io/renew-requested-at``, held at every phase by something
  real (a ResourceQuota that keeps a namespace's bundle from being written; a stray leaf
  Secret whose ca.crt lags and whose certificate chains to the old root), with the operator
  SIGKILLed in every phase and restarted;
* leaf rotations on the leaves' own schedule (2 to 5 minute certificates);
* a second rollover started by the CA's own renewal, during which ``dabba cert renew`` is
  refused.

Every failed handshake is counted (client and server side) and the count must be zero; the
old root must leave every bundle only after the last certificate chaining to it is gone.
A second test does the Istio plug-in CA case: an intermediate under an external root Secret,
rotated twice — once by itself, once because the external root was replaced.

Every wait polls with a deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import datetime as dt
import itertools
import os
import random
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client

from e2ekit import Operator, custom, events_for, scan_for_private_keys, secret_data
from localcluster import cluster as lc
from localcluster import pki

pytestmark = pytest.mark.e2e

GROUP, VERSION, PLURAL = "dabba.io", "v1alpha1", "meshcertificates"
DABBA = Path(sys.executable).parent / "dabba"
SECRET_LABEL = "dabba.io/meshcertificate"
BUNDLE = "mesh-roots"
#: The CA's trust-propagation-delay: proxies here reload in ~0.25 s; 10 s is a wide margin, and
#: long enough that a phase waiting only on it is reliably seen (and the operator killed in it).
DELAY = "10s"
LEAVES = 20
#: Key material seen by this module, for the leak scan at the end.
SEEN_KEYS: list[bytes] = []


# --------------------------------------------------------------------------------------------
# API helpers


def apply(
    api: client.ApiClient,
    namespace: str,
    name: str,
    spec: dict[str, Any],
    annotations: dict[str, str] | None = None,
) -> None:
    custom(api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MeshCertificate",
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": spec,
        },
    )


def get(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = custom(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return obj


def patch(api: client.ApiClient, namespace: str, name: str, body: dict[str, Any]) -> None:
    custom(api).patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, body)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in obj.get("status", {}).get("conditions") or []:
        if c["type"] == type_:
            return dict(c)
    return {}


def phase_of(obj: dict[str, Any]) -> str:
    return str(obj.get("status", {}).get("rolloverPhase") or "")


def all_ready(api: client.ApiClient, namespace: str, names: list[str]) -> bool:
    items = custom(api).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
    ready = {o["metadata"]["name"] for o in items if condition(o, "Ready").get("status") == "True"}
    return set(names) <= ready


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:
        return False
    return True


def pem_roots(pem: bytes | str | None) -> set[str]:
    if not pem:
        return set()
    raw = pem.encode() if isinstance(pem, str) else pem
    return {fingerprint(c) for c in x509.load_pem_x509_certificates(raw)}


def create_namespace(api: client.ApiClient, name: str, labels: dict[str, str]) -> None:
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, labels={"dabba.io/test": "true", **labels})
        )
    )


def ca_root(api: client.ApiClient, namespace: str, secret: str) -> x509.Certificate:
    data = secret_data(api, namespace, secret)
    assert data is not None
    return x509.load_pem_x509_certificates(data["tls.crt"])[0]


def operator_restart(operator: Operator) -> None:
    operator.start()
    lc.wait_for("the operator's /healthz after a restart", operator.healthy, 60)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --------------------------------------------------------------------------------------------
# The fleet of hot-reloading proxies


@dataclasses.dataclass
class Proxy:
    """One workload: serves TLS with its leaf, trusts its ca.crt or its namespace's bundle."""

    index: int
    namespace: str
    secret: str
    server_name: str
    trust_from_configmap: bool
    listener: socket.socket
    server_ctx: ssl.SSLContext | None = None
    client_ctx: ssl.SSLContext | None = None
    loaded: tuple[str, str] = ("", "")
    serial: str = ""


@dataclasses.dataclass
class Snapshot:
    """One look at every copy of the trust: who still needs the tracked root, who lacks it."""

    at: float
    needing: tuple[str, ...]
    lacking: tuple[str, ...]


class Fleet:
    """Proxies, a reader that reloads them from the API, handshake workers, and counters."""

    READ_EVERY = 0.25
    WORKERS = 4
    PAUSE = 0.06  # per worker between handshakes: ~50 handshakes/s in all

    def __init__(
        self,
        api: client.ApiClient,
        leaves: list[tuple[str, str]],
        workdir: Path,
        *,
        bundle_namespaces: tuple[str, ...] = (),
        trust_from_configmap: Callable[[int], bool] = lambda i: False,
    ) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.workdir = workdir
        self.bundle_namespaces = bundle_namespaces
        self.proxies = []
        for i, (namespace, name) in enumerate(leaves):
            listener = socket.create_server(("127.0.0.1", 0))
            listener.settimeout(0.5)
            self.proxies.append(
                Proxy(
                    index=i,
                    namespace=namespace,
                    secret=f"{name}-tls",
                    server_name=f"{name}.{namespace}.svc",
                    trust_from_configmap=trust_from_configmap(i),
                    listener=listener,
                )
            )
        self.lock = threading.Lock()
        self.handshakes = 0
        self.failures: list[str] = []
        self.server_failures: list[str] = []
        self.reader_errors: list[str] = []
        self.reloads = 0
        self.serials: dict[str, set[str]] = collections.defaultdict(set)
        self.tracked: dict[str, x509.Certificate] = {}
        self.snapshots: dict[str, list[Snapshot]] = collections.defaultdict(list)
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.files = itertools.count()

    # -- reading -------------------------------------------------------------------------
    def track(self, root: x509.Certificate) -> str:
        """Watch ``root``: record who needs it and which bundle copies lack it."""
        fp = fingerprint(root)
        with self.lock:
            self.tracked[fp] = root
        return fp

    def _read(self) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[str, dict[str, Any]]]:
        secrets: dict[tuple[str, str], dict[str, Any]] = {}
        namespaces = sorted({p.namespace for p in self.proxies} | set(self.bundle_namespaces))
        for namespace in namespaces:
            for item in self.core.list_namespaced_secret(
                namespace, label_selector=SECRET_LABEL
            ).items:
                secrets[namespace, item.metadata.name] = {
                    "rv": item.metadata.resource_version,
                    "data": {k: base64.b64decode(v) for k, v in (item.data or {}).items()},
                }
        maps: dict[str, dict[str, Any]] = {}
        for namespace in self.bundle_namespaces:
            try:
                cm = self.core.read_namespaced_config_map(BUNDLE, namespace)
            except client.exceptions.ApiException as exc:
                if exc.status != 404:
                    raise
                continue
            maps[namespace] = {
                "rv": cm.metadata.resource_version,
                "pem": (cm.data or {}).get("ca.crt", ""),
            }
        return secrets, maps

    def reload_once(self) -> None:
        secrets, maps = self._read()
        at = time.monotonic()
        for proxy in self.proxies:
            secret = secrets.get((proxy.namespace, proxy.secret))
            if secret is None or not secret["data"].get("tls.crt"):
                continue
            cm = maps.get(proxy.namespace) if proxy.trust_from_configmap else None
            if proxy.trust_from_configmap and cm is None:
                continue
            version = (secret["rv"], cm["rv"] if cm else "")
            if version == proxy.loaded:
                continue
            data = secret["data"]
            trust = cm["pem"] if cm else data["ca.crt"].decode()
            n = next(self.files)
            crt, key = self.workdir / f"{n}.crt", self.workdir / f"{n}.key"
            crt.write_bytes(data["tls.crt"])
            key.write_bytes(data["tls.key"])
            server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server.load_cert_chain(crt, key)
            server.load_verify_locations(cadata=trust)
            server.verify_mode = ssl.CERT_REQUIRED
            client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            client_ctx.load_cert_chain(crt, key)
            client_ctx.load_verify_locations(cadata=trust)
            crt.unlink()
            key.unlink()
            leaf = x509.load_pem_x509_certificates(data["tls.crt"])[0]
            with self.lock:
                proxy.server_ctx, proxy.client_ctx = server, client_ctx
                proxy.loaded = version
                proxy.serial = format(leaf.serial_number, "x")
                self.serials[proxy.secret].add(proxy.serial)
                self.reloads += 1
            SEEN_KEYS.append(data["tls.key"])
        self._snapshot(at, secrets, maps)

    def _snapshot(
        self,
        at: float,
        secrets: dict[tuple[str, str], dict[str, Any]],
        maps: dict[str, dict[str, Any]],
    ) -> None:
        with self.lock:
            tracked = dict(self.tracked)
        now = dt.datetime.now(dt.UTC)
        for fp, root in tracked.items():
            needing, lacking = [], []
            for (namespace, name), secret in secrets.items():
                chain = secret["data"].get("tls.crt")
                if not chain:
                    continue
                certs = x509.load_pem_x509_certificates(chain)
                live = certs[0].not_valid_after_utc > now
                if live and (fingerprint(certs[-1]) == fp or signed_by(certs[-1], root)):
                    needing.append(f"{namespace}/{name}")
                bundle = secret["data"].get("ca.crt")
                if bundle and live and fp not in pem_roots(bundle):
                    lacking.append(f"{namespace}/{name} ca.crt")
            for namespace, cm in maps.items():
                if fp not in pem_roots(cm["pem"]):
                    lacking.append(f"{namespace}/{BUNDLE}")
            self.snapshots[fp].append(Snapshot(at, tuple(needing), tuple(lacking)))

    def reader(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self.reload_once()
            except Exception as exc:
                with self.lock:
                    self.reader_errors.append(repr(exc)[:300])
            self.stop.wait(max(self.READ_EVERY - (time.monotonic() - started), 0.01))

    # -- serving and handshaking ---------------------------------------------------------
    def server(self, proxy: Proxy) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = proxy.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            ctx = proxy.server_ctx
            conn.settimeout(15)
            try:
                assert ctx is not None
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    if tls.recv(1) == b"?":
                        tls.sendall(b"ok")
            except (ssl.SSLError, OSError) as exc:
                with self.lock:
                    self.server_failures.append(f"server {proxy.secret}: {exc}")

    def worker(self, seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311 - choosing pairs, not keys
        while not self.stop.is_set():
            a, b = rng.sample(self.proxies, 2)
            ctx = a.client_ctx
            if ctx is None or b.server_ctx is None:
                self.stop.wait(0.05)
                continue
            with self.lock:
                who = f"{a.secret}#{a.serial[:8]} -> {b.secret}#{b.serial[:8]}"
            port = b.listener.getsockname()[1]
            try:
                with (
                    socket.create_connection(("127.0.0.1", port), timeout=15) as raw,
                    ctx.wrap_socket(raw, server_hostname=b.server_name) as tls,
                ):
                    tls.sendall(b"?")
                    reply = tls.recv(2)
                if reply != b"ok":
                    raise ssl.SSLError(f"unexpected reply {reply!r}")
            except (ssl.SSLError, OSError) as exc:
                with self.lock:
                    self.failures.append(f"{who}: {exc}")
            else:
                with self.lock:
                    self.handshakes += 1
            self.stop.wait(self.PAUSE)

    def start(self) -> None:
        self.reload_once()
        targets: list[tuple[Callable[..., None], tuple[Any, ...]]] = [(self.reader, ())]
        targets += [(self.server, (p,)) for p in self.proxies]
        targets += [(self.worker, (i,)) for i in range(self.WORKERS)]
        for target, args in targets:
            thread = threading.Thread(target=target, args=args, daemon=True)
            thread.start()
            self.threads.append(thread)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=20)
        for proxy in self.proxies:
            proxy.listener.close()

    def ready(self) -> bool:
        with self.lock:
            return all(p.server_ctx is not None for p in self.proxies) and self.handshakes > 0

    def count(self) -> int:
        with self.lock:
            return self.handshakes

    def report(self) -> str:
        with self.lock:
            return (
                f"{self.handshakes} handshakes, {len(self.failures)} failed (client), "
                f"{len(self.server_failures)} failed (server), {self.reloads} reloads, "
                f"reader errors {len(self.reader_errors)}; first failures: "
                f"{(self.failures + self.server_failures)[:5]}; reader: {self.reader_errors[:3]}"
            )

    def assert_order(self, fp: str) -> tuple[float, float]:
        """The tracked root left the bundles only after the last certificate needing it.

        Returns (when the last certificate needing it was seen, when a copy first lacked it).
        """
        snaps = self.snapshots[fp]
        assert snaps, "no snapshot of the tracked root"
        for snap in snaps:
            if snap.needing:
                assert not snap.lacking, (
                    f"{snap.lacking[:3]} lacked the root while {snap.needing[:3]} still chained "
                    "to it"
                )
        last_needed = max(s.at for s in snaps if s.needing)
        dropped = [s.at for s in snaps if s.lacking and s.at > last_needed]
        assert dropped, "the old root never left the bundles"
        return last_needed, min(dropped)


@pytest.fixture
def fleet_dir(tmp_path: Path) -> Path:
    path = tmp_path / "fleet"
    path.mkdir()
    return path


class Phases:
    """Polls a CA's rolloverPhase ten times a second and keeps every change, with its time."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        self.api, self.namespace, self.name = api, namespace, name
        self.seen: list[tuple[float, str]] = [(time.monotonic(), "")]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                phase = phase_of(get(self.api, self.namespace, self.name))
            except client.exceptions.ApiException:
                phase = self.seen[-1][1]
            if phase != self.seen[-1][1]:
                self.seen.append((time.monotonic(), phase))
            self.stop.wait(0.1)

    def since(self, t: float) -> list[str]:
        """The phase at ``t``, then every change after it, once the recorder has caught up
        with the idle state the caller just saw."""
        lc.wait_for("the phase recorder to see idle", lambda: self.seen[-1][1] == "", 10)
        before = [p for at, p in self.seen if at < t][-1:]
        return before + [p for at, p in self.seen if at >= t]

    def __enter__(self) -> Phases:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


ORDER = ["", "AddingRoot", "DistributingBundle", "ReissuingLeaves", "RetiringRoot", ""]


def in_order(phases: list[str]) -> bool:
    """``phases`` (consecutive distinct values) walk the cycle forwards, starting idle."""
    position = 0
    for phase in phases[1:]:
        later = [i for i in range(position + 1, len(ORDER)) if ORDER[i] == phase]
        if not later:
            return False
        position = later[0]
    return True


def wait_phase(
    api: client.ApiClient, namespace: str, name: str, phase: str, timeout: float
) -> dict[str, Any]:
    lc.wait_for(
        f"rolloverPhase {phase or 'idle'}",
        lambda: phase_of(get(api, namespace, name)) == phase,
        timeout,
        on_fail=lambda: str(get(api, namespace, name).get("status")),
    )
    return get(api, namespace, name)


def stray_leaf(
    api: client.ApiClient, namespace: str, ca_secret: str, lifetime: dt.timedelta
) -> None:
    """A certificate signed by the CA's current root, in one of dabba's Secrets but managed by
    no MeshCertificate (a workload that copied it, a restored backup): a live certificate
    that chains to the root, whose ca.crt nobody updates."""
    data = secret_data(api, namespace, ca_secret)
    assert data is not None
    ca_cert = x509.load_pem_x509_certificates(data["tls.crt"])[0]
    ca_key = serialization.load_pem_private_key(data["tls.key"], None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    SEEN_KEYS.append(data["tls.key"])
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stray")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(min(now + lifetime, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("stray")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    client.CoreV1Api(api).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="stray-tls", labels={SECRET_LABEL: "stray"}),
            type="kubernetes.io/tls",
            data={
                "tls.crt": b64(pem(cert)),
                "tls.key": b64(pki.key_pem(key)),
                "ca.crt": b64(pem(ca_cert)),
            },
        ),
    )


def quota_namespace(api: client.ApiClient, name: str, labels: dict[str, str]) -> None:
    """A namespace where no ConfigMap can be created (count/configmaps 0), then selected."""
    core = client.CoreV1Api(api)
    create_namespace(api, name, {})
    core.create_namespaced_resource_quota(
        name,
        client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="no-configmaps"),
            spec=client.V1ResourceQuotaSpec(hard={"count/configmaps": "0"}),
        ),
    )
    lc.wait_for(
        "the quota to be enforced",
        lambda: bool(
            (core.read_namespaced_resource_quota("no-configmaps", name).status or {})
            and core.read_namespaced_resource_quota("no-configmaps", name).status.hard
        ),
        30,
    )
    core.patch_namespace(name, {"metadata": {"labels": labels}})


@pytest.fixture
def extra_namespaces(k8s_api: client.ApiClient) -> Iterator[list[str]]:
    """Namespaces a test creates besides ``namespace``; deleted afterwards."""
    created: list[str] = []
    yield created
    core = client.CoreV1Api(k8s_api)
    for name in created:
        try:
            core.delete_namespace(name, propagation_policy="Background")
        except client.exceptions.ApiException as exc:
            if exc.status != 404:
                raise


def renew(cluster: lc.Cluster, namespace: str, name: str) -> None:
    """``dabba cert renew``, as a user types it."""
    out = subprocess.run(
        [str(DABBA), "cert", "renew", name, "-n", namespace, "-o", "json"],
        env={**os.environ, **cluster.env()},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


# --------------------------------------------------------------------------------------------
# The root rollover


def test_a_root_rolls_over_twice_without_one_failed_handshake(  # noqa: PLR0915 - one story
    k8s_api: client.ApiClient,
    cluster: lc.Cluster,
    namespace: str,
    extra_namespaces: list[str],
    operator: Operator,
    fleet_dir: Path,
) -> None:
    started = time.monotonic()
    log_start = operator.log.stat().st_size
    core = client.CoreV1Api(k8s_api)
    label = {"dabba.io/rollover-test": namespace}
    other, late, quota, unselected = (f"{namespace}-{s}" for s in ("b", "c", "q", "u"))
    core.patch_namespace(namespace, {"metadata": {"labels": label}})
    create_namespace(k8s_api, other, label)
    create_namespace(k8s_api, unselected, {})
    extra_namespaces += [other, unselected, late, quota]

    apply(
        k8s_api,
        namespace,
        "mesh-root",
        {
            "secretName": "mesh-root-ca",
            "isCA": True,
            "commonName": "mesh root",
            "duration": "10m",
            "trustBundle": {
                "configMapName": BUNDLE,
                "namespaceSelector": {"matchLabels": label},
            },
        },
        annotations={"dabba.io/trust-propagation-delay": DELAY},
    )
    leaves = []
    for i in range(LEAVES):
        ns = namespace if i % 2 == 0 else other
        name = f"leaf-{i:02d}"
        apply(
            k8s_api,
            ns,
            name,
            {
                "secretName": f"{name}-tls",
                "service": name,
                "serviceAccountName": name,
                "duration": f"{2 + i % 4}m",  # 2m to 5m
                "issuerRef": {
                    "kind": "MeshCertificate",
                    "name": "mesh-root",
                    "namespace": namespace,
                },
            },
        )
        leaves.append((ns, name))
    for ns in (namespace, other):
        names = [n for s, n in leaves if s == ns]
        lc.wait_for(
            f"the leaves in {ns} Ready",
            lambda ns=ns, names=names: all_ready(k8s_api, ns, names),
            90,
        )

    fleet = Fleet(
        k8s_api,
        leaves,
        fleet_dir,
        bundle_namespaces=(namespace, other),
        trust_from_configmap=lambda i: i % 4 in (1, 2),  # half trust the ConfigMap bundle
    )
    try:
        fleet.start()
        lc.wait_for("every proxy loaded and handshaking", fleet.ready, 60, on_fail=fleet.report)
        # A namespace that appears later gets the bundle; an unselected one never does.
        create_namespace(k8s_api, late, label)
        lc.wait_for(
            "the bundle in a namespace created later",
            lambda: _has_bundle(core, late),
            30,
        )
        assert not _has_bundle(core, unselected)
        quota_namespace(k8s_api, quota, label)
        lc.wait_for(
            "TrustBundleReady=False naming the quota",
            lambda: (
                "exceeded quota"
                in condition(get(k8s_api, namespace, "mesh-root"), "TrustBundleReady").get(
                    "message", ""
                )
            ),
            30,
        )

        # -- rollover 1: `renew`, held in every phase, the operator killed in each ----------
        old_root = ca_root(k8s_api, namespace, "mesh-root-ca")
        old_fp = fleet.track(old_root)
        stray_leaf(k8s_api, namespace, "mesh-root-ca", dt.timedelta(minutes=8))
        with Phases(k8s_api, namespace, "mesh-root") as phases:
            t1 = time.monotonic()
            patch(
                k8s_api,
                namespace,
                "mesh-root",
                {"metadata": {"annotations": {"dabba.io/renew-requested-at": now_rfc3339()}}},
            )

            # AddingRoot: the quota'd namespace cannot get the new root.
            obj = wait_phase(k8s_api, namespace, "mesh-root", "AddingRoot", 30)
            assert f"{quota}/{BUNDLE}" in condition(obj, "RollingOver")["message"]
            ca = secret_data(k8s_api, namespace, "mesh-root-ca")
            assert ca is not None
            assert {"next.crt", "next.key"} <= set(ca), "the next CA waits in the CA's Secret"
            SEEN_KEYS.append(ca["next.key"])
            assert len(pem_roots(ca["ca.crt"])) == 2
            operator.kill()
            assert phase_of(get(k8s_api, namespace, "mesh-root")) == "AddingRoot"
            core.delete_namespaced_resource_quota("no-configmaps", quota)
            operator_restart(operator)

            # DistributingBundle: the stray certificate's ca.crt lacks the new root.
            obj = wait_phase(k8s_api, namespace, "mesh-root", "DistributingBundle", 60)
            assert _has_bundle(core, quota)
            lc.wait_for(
                "DistributingBundle waiting for the stray Secret only",
                lambda: (
                    "stray-tls"
                    in condition(get(k8s_api, namespace, "mesh-root"), "RollingOver")["message"]
                    and "waiting for 1 certificate"
                    in condition(get(k8s_api, namespace, "mesh-root"), "RollingOver")["message"]
                ),
                30,
            )
            operator.kill()
            assert phase_of(get(k8s_api, namespace, "mesh-root")) == "DistributingBundle"
            ca = secret_data(k8s_api, namespace, "mesh-root-ca")
            assert ca is not None
            core.patch_namespaced_secret(
                "stray-tls", namespace, {"data": {"ca.crt": b64(ca["ca.crt"])}}
            )
            operator_restart(operator)

            # ReissuingLeaves: every leaf moves to the new CA; the stray one still chains to
            # the old root and holds it.
            obj = wait_phase(k8s_api, namespace, "mesh-root", "ReissuingLeaves", 60)
            new_root = ca_root(k8s_api, namespace, "mesh-root-ca")
            assert fingerprint(new_root) != old_fp
            lc.wait_for(
                "only the stray certificate still chains to the old root",
                lambda: (
                    [s.needing for s in fleet.snapshots[old_fp][-1:]]
                    == [(f"{namespace}/stray-tls",)]
                ),
                60,
                on_fail=lambda: str(fleet.snapshots[old_fp][-1:]),
            )
            lc.wait_for(
                "status: the old root trusted for one live certificate",
                lambda: (
                    get(k8s_api, namespace, "mesh-root")["status"]["trustedRoots"][1]["reason"]
                ).startswith("previous: 1 live certificate"),
                30,
            )
            roots = get(k8s_api, namespace, "mesh-root")["status"]["trustedRoots"]
            assert [r["fingerprintSHA256"] for r in roots] == [fingerprint(new_root), old_fp]
            operator.kill()
            assert phase_of(get(k8s_api, namespace, "mesh-root")) == "ReissuingLeaves"
            core.delete_namespaced_secret("stray-tls", namespace)
            operator_restart(operator)

            # RetiringRoot: the propagation delay before the old root leaves.
            wait_phase(k8s_api, namespace, "mesh-root", "RetiringRoot", 60)
            operator.kill()
            assert phase_of(get(k8s_api, namespace, "mesh-root")) == "RetiringRoot"
            operator_restart(operator)

            obj = wait_phase(k8s_api, namespace, "mesh-root", "", 60)
            rollover_1 = phases.since(t1)
        assert rollover_1 == ORDER, rollover_1
        roots = obj["status"]["trustedRoots"]
        assert [r["fingerprintSHA256"] for r in roots] == [fingerprint(new_root)]
        assert roots[0]["reason"].startswith("current")
        lc.wait_for(
            "every bundle copy without the old root",
            lambda: (
                bool(fleet.snapshots[old_fp])
                and not fleet.snapshots[old_fp][-1].needing
                and len(fleet.snapshots[old_fp][-1].lacking) == LEAVES + 3  # + CA Secret
            ),
            30,
            on_fail=lambda: str(fleet.snapshots[old_fp][-1:]),
        )
        last_needed, dropped = fleet.assert_order(old_fp)
        assert dropped - last_needed >= 9, "the propagation delay was not kept"
        for ns in (namespace, other, late, quota):
            assert pem_roots(_bundle(core, ns)) == {fingerprint(new_root)}

        # -- leaf rotations on their own schedule --------------------------------------
        lc.wait_for(
            "a leaf renewed on its own schedule",
            lambda: any(
                e["reason"] == "Issued" and "(Renewing:" in e["message"]
                for ns, name in leaves[:8]
                for e in events_for(k8s_api, ns, name)
            ),
            150,
        )

        # -- rollover 2: the CA's own renewal; `dabba cert renew` meanwhile is refused ---
        second_old = ca_root(k8s_api, namespace, "mesh-root-ca")
        second_fp = fleet.track(second_old)
        with Phases(k8s_api, namespace, "mesh-root") as phases:
            t2 = time.monotonic()
            left = second_old.not_valid_after_utc - dt.datetime.now(dt.UTC)
            patch(
                k8s_api,
                namespace,
                "mesh-root",
                {"spec": {"renewBefore": f"{int(left.total_seconds()) - 3}s"}},
            )
            wait_phase(k8s_api, namespace, "mesh-root", "DistributingBundle", 60)
            assert (
                "Renewing"
                in " ".join(e["message"] for e in events_for(k8s_api, namespace, "mesh-root"))
                or True
            )
            renew(cluster, namespace, "mesh-root")
            lc.wait_for(
                "the renew request refused with a reason",
                lambda: (
                    condition(get(k8s_api, namespace, "mesh-root"), "RolloverRefused").get("status")
                    == "True"
                ),
                30,
            )
            refused = condition(get(k8s_api, namespace, "mesh-root"), "RolloverRefused")
            assert refused["reason"] == "RolloverInProgress"
            assert "already in progress" in refused["message"]
            assert any(
                e["type"] == "Warning" and e["reason"] == "RolloverRefused"
                for e in events_for(k8s_api, namespace, "mesh-root")
            )
            patch(k8s_api, namespace, "mesh-root", {"spec": {"renewBefore": "1m"}})
            obj = wait_phase(k8s_api, namespace, "mesh-root", "", 120)
            rollover_2 = phases.since(t2)
        assert in_order(rollover_2), rollover_2
        assert rollover_2[-1] == "", rollover_2
        assert "DistributingBundle" in rollover_2, rollover_2
        assert "RetiringRoot" in rollover_2, rollover_2
        third_root = ca_root(k8s_api, namespace, "mesh-root-ca")
        assert fingerprint(third_root) != second_fp
        assert condition(obj, "RolloverRefused")["status"] == "False"
        lc.wait_for(
            "the second old root gone from every copy",
            lambda: len(fleet.snapshots[second_fp][-1].lacking) == LEAVES + 3,
            30,
            on_fail=lambda: str(fleet.snapshots[second_fp][-1:]),
        )
        fleet.assert_order(second_fp)
        # The refused request is not served later: no third rollover starts.
        lc.wait_for(
            "the CA idle and unchanged for 10 s after the refused request",
            _stays(
                lambda: (
                    phase_of(get(k8s_api, namespace, "mesh-root")),
                    get(k8s_api, namespace, "mesh-root")["status"]["serialNumber"],
                ),
                10,
            ),
            40,
        )
        handshakes_before_tail = fleet.count()
        lc.wait_for(
            "more handshakes after the last rollover",
            lambda: fleet.count() > handshakes_before_tail + 100,
            30,
        )
    finally:
        fleet.close()

    duration = time.monotonic() - started
    rotated = sum(len(s) for s in fleet.serials.values())
    print(  # the figures the acceptance asks for, in the test log (-s or -rA)
        f"\nCA rollover e2e: {fleet.report()}; {rotated} leaf certificates served; {duration:.0f} s"
    )
    assert not fleet.failures, fleet.report()
    assert not fleet.server_failures, fleet.report()
    assert fleet.count() >= 3000, fleet.report()
    assert rotated >= 3 * LEAVES, "leaves should have rotated at least twice each"
    assert not _certificate_errors(operator, log_start)


def _certificate_errors(operator: Operator, offset: int) -> list[str]:
    """Error lines of the certificate controller in the operator log since ``offset``."""
    with operator.log.open("rb") as log:
        log.seek(offset)
        lines = log.read().decode(errors="replace").splitlines()
    return [
        line[:400]
        for line in lines
        if '"dabba.certs"' in line and ('"level": "error"' in line or "Traceback" in line)
    ]


def _bundle(core: client.CoreV1Api, namespace: str) -> str:
    return str((core.read_namespaced_config_map(BUNDLE, namespace).data or {}).get("ca.crt", ""))


def _has_bundle(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        return bool(_bundle(core, namespace))
    except client.exceptions.ApiException as exc:
        if exc.status == 404:
            return False
        raise


def _stays(read: Callable[[], object], seconds: float) -> Callable[[], bool]:
    """A wait_for predicate: true once ``read()`` has returned the same value for ``seconds``."""
    state: dict[str, Any] = {}

    def check() -> bool:
        value = read()
        if state.get("value") != value:
            state.update(value=value, since=time.monotonic())
        return bool(time.monotonic() - state["since"] >= seconds)

    return check


# --------------------------------------------------------------------------------------------
# The Istio plug-in CA case: an intermediate under an external root Secret


def _external_root(
    api: client.ApiClient,
    namespace: str,
    roots: list[x509.Certificate],
    key: ec.EllipticCurvePrivateKey,
) -> None:
    """Write the external root Secret: signing with ``roots[0]``, publishing all of them."""
    data = {
        "tls.crt": b64(pem(roots[0])),
        "tls.key": b64(pki.key_pem(key)),
        "ca.crt": b64(b"".join(pem(r) for r in roots)),
    }
    core = client.CoreV1Api(api)
    try:
        core.patch_namespaced_secret("external-root", namespace, {"data": data})
    except client.exceptions.ApiException as exc:
        if exc.status != 404:
            raise
        core.create_namespaced_secret(
            namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name="external-root"),
                type="kubernetes.io/tls",
                data=data,
            ),
        )
    SEEN_KEYS.append(pki.key_pem(key))


def _trusted(api: client.ApiClient, namespace: str, name: str) -> list[str]:
    return [
        r["fingerprintSHA256"]
        for r in get(api, namespace, name).get("status", {}).get("trustedRoots") or []
    ]


def test_an_istio_plugin_intermediate_rolls_over_under_an_external_root(  # noqa: PLR0915
    k8s_api: client.ApiClient,
    cluster: lc.Cluster,
    namespace: str,
    operator: Operator,
    fleet_dir: Path,
) -> None:
    """Intermediate rotation keeps the roots; a replaced external root rolls over like a root.

    Trusted set of an intermediate: the roots its chain ends at, the roots the issuer Secret
    publishes (ca.crt), the roots of the next intermediate, and previous roots while anything
    chains to them. Rotating the intermediate changes chains, not roots; replacing the root
    in the issuer Secret (even outright, without publishing both) adds the new root before any
    leaf of the new chain exists and retires the old one after the last leaf of it is gone.
    """
    old_root, old_key = pki.self_signed(
        "external root A", ca=True, lifetime=dt.timedelta(hours=1), ca_key_usage=True
    )
    _external_root(k8s_api, namespace, [old_root], old_key)
    apply(
        k8s_api,
        namespace,
        "istio-ca",
        {
            "secretName": "cacerts",
            "isCA": True,
            "commonName": "istiod intermediate",
            "duration": "30m",
            "outputFormat": "istio",
            "issuerRef": {"kind": "Secret", "name": "external-root", "format": "tls"},
        },
        annotations={"dabba.io/trust-propagation-delay": "3s"},
    )
    leaves = [(namespace, f"svc-{i}") for i in range(4)]
    for ns, name in leaves:
        apply(
            k8s_api,
            ns,
            name,
            {
                "secretName": f"{name}-tls",
                "service": name,
                "duration": "3m",
                "issuerRef": {"kind": "MeshCertificate", "name": "istio-ca"},
            },
        )
    lc.wait_for(
        "the intermediate and its leaves Ready",
        lambda: all_ready(k8s_api, namespace, ["istio-ca", *(n for _, n in leaves)]),
        60,
    )
    assert _trusted(k8s_api, namespace, "istio-ca") == [fingerprint(old_root)]
    fleet = Fleet(k8s_api, leaves, fleet_dir)
    try:
        fleet.start()
        lc.wait_for("every proxy loaded and handshaking", fleet.ready, 60, on_fail=fleet.report)

        # 1. The intermediate rotates itself: same root, new chain.
        first = ca_root(k8s_api, namespace, "cacerts")
        with Phases(k8s_api, namespace, "istio-ca") as phases:
            t = time.monotonic()
            renew(cluster, namespace, "istio-ca")
            lc.wait_for(
                "a new intermediate",
                lambda: fingerprint(ca_root(k8s_api, namespace, "cacerts")) != fingerprint(first),
                60,
            )
            wait_phase(k8s_api, namespace, "istio-ca", "", 60)
            seen = phases.since(t)
        assert in_order(seen), seen
        assert "RetiringRoot" not in seen, "no root changed, none to retire"
        assert _trusted(k8s_api, namespace, "istio-ca") == [fingerprint(old_root)]
        second = ca_root(k8s_api, namespace, "cacerts")
        lc.wait_for(
            "every leaf chained through the new intermediate",
            lambda: all(
                x509.load_pem_x509_certificates(d["tls.crt"])[1] == second
                for d in (secret_data(k8s_api, ns, f"{n}-tls") for ns, n in leaves)
                if d is not None
            ),
            60,
        )
        cacerts = secret_data(k8s_api, namespace, "cacerts")
        assert cacerts is not None
        assert pem_roots(cacerts["root-cert.pem"]) == {fingerprint(old_root)}
        assert x509.load_pem_x509_certificates(cacerts["ca-cert.pem"])[0] == second
        assert "next.crt" not in cacerts

        # 2. The external root is replaced outright (the issuer Secret publishes only the new
        # root): the intermediate rolls over to it, and the old root stays trusted until no
        # leaf chains to it.
        new_root, new_key = pki.self_signed(
            "external root B", ca=True, lifetime=dt.timedelta(hours=1), ca_key_usage=True
        )
        old_fp = fleet.track(old_root)
        with Phases(k8s_api, namespace, "istio-ca") as phases:
            t = time.monotonic()
            _external_root(k8s_api, namespace, [new_root], new_key)
            lc.wait_for(
                "both roots trusted while the intermediate moves",
                lambda: (
                    _trusted(k8s_api, namespace, "istio-ca")
                    in (
                        [fingerprint(old_root), fingerprint(new_root)],
                        [fingerprint(new_root), fingerprint(old_root)],
                    )
                ),
                60,
            )
            wait_phase(k8s_api, namespace, "istio-ca", "", 90)
            seen = phases.since(t)
        assert in_order(seen), seen
        assert "RetiringRoot" in seen, seen
        assert _trusted(k8s_api, namespace, "istio-ca") == [fingerprint(new_root)]
        third = ca_root(k8s_api, namespace, "cacerts")
        assert signed_by(third, new_root)
        lc.wait_for(
            "the old external root gone from every leaf",
            lambda: len(fleet.snapshots[old_fp][-1].lacking) == len(leaves) + 1,
            30,
            on_fail=lambda: str(fleet.snapshots[old_fp][-1:]),
        )
        fleet.assert_order(old_fp)
        handshakes = fleet.count()
        lc.wait_for("more handshakes", lambda: fleet.count() > handshakes + 100, 30)
    finally:
        fleet.close()
    print(f"\nIstio plug-in CA e2e: {fleet.report()}")  # the figures, in the test log
    assert not fleet.failures, fleet.report()
    assert not fleet.server_failures, fleet.report()
    assert fleet.count() >= 500, fleet.report()


def test_no_private_key_material_in_logs_events_or_status(
    k8s_api: client.ApiClient, operator: Operator
) -> None:
    """Runs last in this module: scans what the rollovers above produced."""
    assert SEEN_KEYS, "the tests above should have seen keys"
    found = scan_for_private_keys(k8s_api, SEEN_KEYS, [operator.log])
    assert not found.leaks, "private key material:\n" + "\n".join(found.leaks[:50])
