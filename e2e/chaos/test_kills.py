"""SIGKILL the operator at random moments while canaries run and certificates rotate.

The kill moments come from the seeded ``rng`` (printed; ``DABBA_CHAOS_SEED`` replays them):
the operator is killed a random 1.5-8 s after it answered /healthz, i.e. anywhere in its
start-up, in a tick, in an issuance. Restarts alternate the JSON and console log formats so the
leak scanner reads both. Afterwards: every good release Succeeded, every bad one Failed with
weights 100/0, no run promoted twice or repeated a step, nothing stuck past its deadline, no
certificate ever expired (sampled every second), no Secret lost, and the rotations happened.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography import x509
from kubernetes import client

from chaos.kit import CERT_LABEL, CERTS, EVIDENCE, GROUP, MARKS, SCALE, VERSION, canary, pick
from chaos.kit import SafeWatcher as Watcher
from e2ekit import Operator, custom
from localcluster import cluster as lc

pytestmark = [
    *MARKS,
    pytest.mark.local_operator("SIGKILLs and restarts the local operator process"),
]

#: A run (two 5 s steps and promotion) takes about 30 s; this long means stuck.
RUN_DEADLINE = 240


# --------------------------------------------------------------------------------------------
# certificates: a sampler that sees every second whether anything expired or went missing


@dataclass
class CertSampler:
    api: client.ApiClient
    namespace: str
    violations: list[str] = field(default_factory=list)
    samples: int = 0
    serials: dict[str, set[str]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.sample()
            except Exception:  # noqa: S112 - a failed read is not evidence; try again
                continue

    def sample(self) -> None:
        now = dt.datetime.now(dt.UTC)
        certs = custom(self.api).list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, CERTS
        )["items"]
        secrets = {
            s.metadata.name: s
            for s in client.CoreV1Api(self.api)
            .list_namespaced_secret(self.namespace, label_selector=CERT_LABEL)
            .items
        }
        for c in certs:
            name, st = c["metadata"]["name"], c.get("status") or {}
            for cond in st.get("conditions") or []:
                if cond["type"] == "Expired" and cond["status"] == "True":
                    self.violations.append(f"{now:%T} {name}: Expired condition")
            if not st.get("serialNumber"):
                continue
            self.serials.setdefault(name, set()).add(st["serialNumber"])
            secret = secrets.get(c["spec"]["secretName"])
            if secret is None:
                self.violations.append(f"{now:%T} {name}: Secret {c['spec']['secretName']} lost")
                continue
            pem = base64.b64decode((secret.data or {}).get("tls.crt", ""))
            leaf = x509.load_pem_x509_certificates(pem)[0]
            if leaf.not_valid_after_utc <= now:
                self.violations.append(f"{now:%T} {name}: served an expired certificate")
        self.samples += 1


def rotations(api: client.ApiClient, namespace: str) -> int:
    """Issuances beyond the first, over every leaf (``status.revision`` counts issuances)."""
    items = custom(api).list_namespaced_custom_object(GROUP, VERSION, namespace, CERTS)["items"]
    return sum(
        max(int((o.get("status") or {}).get("revision") or 0) - 1, 0)
        for o in items
        if o["metadata"]["name"] != "root"
    )


def request_renewal(api: client.ApiClient, namespace: str, name: str) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    custom(api).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        CERTS,
        name,
        {"metadata": {"annotations": {"dabba.io/renew-requested-at": now}}},
    )


# --------------------------------------------------------------------------------------------
# canaries: lanes of releases, good and bad mixed


@dataclass
class Run:
    lane: str
    image: str
    good: bool
    phase: str = ""
    weights: list[tuple[int, int]] = field(default_factory=list)
    error: str = ""


def _lane(
    api: client.ApiClient,
    namespace: str,
    name: str,
    plan: list[bool],
    runs: list[Run],
    more: threading.Event,
) -> None:
    """Release one version after another; keep going while the kill loop wants more runs."""
    i = 0
    while i < len(plan) or more.is_set():
        good = plan[i] if i < len(plan) else (i % 2 == 0)
        i += 1
        run = Run(name, f"{name}:{i + 1}", good)
        runs.append(run)
        watch = Watcher(api, "istio", namespace, name)
        try:
            behaviour = {} if good else {"error_rate": "0.1"}
            canary.release(api, namespace, name, run.image, **behaviour)
            final = canary.wait_phase(
                api, namespace, name, "Succeeded", "Failed", timeout=RUN_DEADLINE
            )
            run.phase = final["phase"]
        except Exception as exc:  # recorded and asserted on by the test
            run.error = f"{type(exc).__name__}: {str(exc)[:1500]}"
            return
        finally:
            run.weights = [w for _, w in watch.stop() if w is not None]


def _check_run(api: client.ApiClient, namespace: str, run: Run) -> list[str]:
    problems = []
    want = "Succeeded" if run.good else "Failed"
    if run.error:
        return [f"{run.image}: {run.error}"]
    if run.phase != want:
        problems.append(f"{run.image} ({'good' if run.good else 'bad'}) ended {run.phase}")
    shares = [c for _, c in run.weights]
    steps = [s for s in shares if s > 0]
    if steps != sorted(set(steps)):
        problems.append(f"{run.image}: a step was repeated or went back: {run.weights}")
    return problems


def test_sigkill_at_random_moments_loses_nothing(  # noqa: PLR0912, PLR0915 - one story
    k8s_api: client.ApiClient,
    namespace: str,
    operator: Operator,
    rng: random.Random,
) -> None:
    kills_wanted = pick(3, 50)
    runs_wanted = pick(2, 20)
    lanes = pick(2, 4)
    leaves = pick(4, 40)
    rotations_wanted = pick(8, 500)
    ns = namespace
    started = time.monotonic()

    # Certificates: a root and short-lived leaves (60 s: renewal every ~40 s by itself).
    custom(k8s_api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        ns,
        CERTS,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MeshCertificate",
            "metadata": {"name": "root"},
            "spec": {"secretName": "root-ca", "isCA": True, "duration": "2h"},
        },
    )
    for i in range(leaves):
        custom(k8s_api).create_namespaced_custom_object(
            GROUP,
            VERSION,
            ns,
            CERTS,
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "MeshCertificate",
                "metadata": {"name": f"leaf-{i:02d}"},
                "spec": {
                    "secretName": f"leaf-{i:02d}-tls",
                    "serviceAccountName": f"sa-{i:02d}",
                    "duration": "60s",
                    "issuerRef": {"kind": "MeshCertificate", "name": "root"},
                },
            },
        )
    # Canaries: one per lane, each at its first revision.
    names = [f"lane-{i}" for i in range(lanes)]
    for name in names:
        client.AppsV1Api(k8s_api).create_namespaced_deployment(ns, canary.deployment(name))
        body = canary.canary_body(name, "istio")
        body["spec"]["progressDeadlineSeconds"] = 60
        custom(k8s_api).create_namespaced_custom_object(GROUP, VERSION, ns, "canaries", body)
    for name in names:
        canary.wait_phase(k8s_api, ns, name, "Initialized", timeout=90)

    def all_issued() -> bool:
        items = custom(k8s_api).list_namespaced_custom_object(GROUP, VERSION, ns, CERTS)["items"]
        return all((o.get("status") or {}).get("serialNumber") for o in items)

    lc.wait_for("every certificate issued", all_issued, 120)
    sampler = CertSampler(k8s_api, ns)
    sampler.start()

    # Good and bad mixed: the first lane starts good, the second bad, then the seed decides.
    per_lane = -(-runs_wanted // lanes)
    plans = [[rng.random() < 0.6 for _ in range(per_lane)] for _ in names]
    plans[0][0] = True
    plans[1][0] = False
    runs: list[Run] = []
    more = threading.Event()
    more.set()
    threads = [
        threading.Thread(
            target=_lane, args=(k8s_api, ns, name, plan, runs, more), daemon=True, name=name
        )
        for name, plan in zip(names, plans, strict=True)
    ]
    for t in threads:
        t.start()

    json_argv = list(operator.argv)
    kills: list[str] = []
    try:
        while len(kills) < kills_wanted or any(t.is_alive() for t in threads):
            if len(kills) >= kills_wanted:
                more.clear()  # enough kills: let the lanes finish their planned runs
            alive = [t for t in threads if t.is_alive()]
            if not alive and len(kills) >= kills_wanted:
                break
            uptime = rng.uniform(1.5, 8.0)
            # The kill moment is the fault injected, not a synchronisation: wait it out.
            threading.Event().wait(uptime)
            for name in rng.sample(
                [f"leaf-{i:02d}" for i in range(leaves)], k=min(leaves, pick(2, 8))
            ):
                with contextlib.suppress(client.exceptions.ApiException):
                    request_renewal(k8s_api, ns, name)
            operator.kill()
            kills.append(f"kill {len(kills) + 1} after {uptime:.2f}s up")
            print(
                f"[chaos] SIGKILL #{len(kills)} at +{time.monotonic() - started:.1f}s "
                f"({uptime:.2f}s after /healthz; {len(runs)} runs started)"
            )
            console = len(kills) % 2 == 1
            EVIDENCE.console_restarts += console
            operator.argv = [
                a
                if not a.startswith("--log-format=")
                else f"--log-format={'console' if console else 'json'}"
                for a in json_argv
            ]
            operator.start()
            lc.wait_for("the operator back after SIGKILL", operator.healthy, 60)
    finally:
        more.clear()
        if operator.argv != json_argv:
            operator.kill()
            operator.argv = json_argv
            operator.start()
            lc.wait_for("the operator back in JSON", operator.healthy, 60)
    for t in threads:
        t.join(timeout=RUN_DEADLINE + 60)

    # Rotations: keep asking (the operator is alive now) until the count is reached.
    def rotated_enough() -> bool:
        if rotations(k8s_api, ns) >= rotations_wanted:
            return True
        for i in range(leaves):
            request_renewal(k8s_api, ns, f"leaf-{i:02d}")
        return False

    lc.wait_for(
        f"{rotations_wanted} certificate rotations",
        rotated_enough,
        pick(120, 900),
        interval=5,
    )
    lc.wait_for("every certificate Ready", lambda: _all_ready(k8s_api, ns), 120)
    sampler.stop()

    # ---- final state
    problems = [p for run in runs for p in _check_run(k8s_api, ns, run)]
    assert not problems, "\n".join(problems)
    assert len(kills) >= kills_wanted
    assert len(runs) >= runs_wanted
    assert any(r.good for r in runs)
    assert any(not r.good for r in runs)
    for name in names:
        last = [r for r in runs if r.lane == name][-1]
        st = canary.status(k8s_api, ns, name)
        assert canary.live_weights(k8s_api, "istio", ns, name) == (100, 0), name
        promoted = [r for r in runs if r.lane == name and r.good]
        if promoted:
            assert canary.primary_image(k8s_api, ns, name).endswith(promoted[-1].image), name
        revisions = [h["revision"] for h in st.get("history") or []]
        assert len(revisions) == len(set(revisions)), f"{name}: a run recorded twice {revisions}"
        assert st["phase"] == ("Succeeded" if last.good else "Failed"), st
    assert not sampler.violations, "\n".join(sampler.violations[:30])
    assert sampler.samples > 0
    for i in range(leaves):
        secret = client.CoreV1Api(k8s_api).read_namespaced_secret(f"leaf-{i:02d}-tls", ns)
        assert secret.data, f"leaf-{i:02d}: data lost"
        assert secret.data.get("tls.key"), f"leaf-{i:02d}: key lost"
    total = rotations(k8s_api, ns)
    assert operator.healthy()
    print(
        f"[chaos] {SCALE}: {len(kills)} SIGKILLs, {len(runs)} canary runs "
        f"({sum(r.good for r in runs)} good, {sum(not r.good for r in runs)} bad), "
        f"{total} certificate rotations over {leaves} leaves, {sampler.samples} samples, "
        f"{time.monotonic() - started:.0f}s"
    )
    print(json.dumps([(r.image, r.good, r.phase) for r in runs]))


def _all_ready(api: client.ApiClient, namespace: str) -> bool:
    items: list[dict[str, Any]] = custom(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, CERTS
    )["items"]
    return all(
        any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (o.get("status") or {}).get("conditions") or []
        )
        for o in items
    )
