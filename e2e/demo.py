"""`make demo`: a real canary rollout (good, then bad release) and a certificate rotation.

Runs against the local cluster: starts `dabba run` in the background (its JSON log goes to
``$DABBA_HOME/cluster/logs/demo-operator.log``), applies the sample Deployment, Canary and
MeshCertificates from ``e2e/demo/``, then releases two versions of the workload — one good,
one returning 10 % errors — and shows the weights and the verdicts as dabba moves traffic.
The traffic simulator plays the mesh; Prometheus is real.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from localcluster import cluster as lc

NAMESPACE = "dabba-demo"
HERE = Path(__file__).resolve().parent / "demo"
DABBA = Path(sys.executable).parent / "dabba"
TTY = sys.stdout.isatty()


def bold(text: str) -> str:
    return f"\033[1m{text}\033[0m" if TTY else text


def colour(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if TTY else text


def get(c: lc.Cluster, *args: str) -> dict[str, Any]:
    out = c.kubectl("get", *args, "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def bar(weight: int, width: int = 30) -> str:
    filled = round(width * weight / 100)
    return colour("█" * filled, "33") + colour("░" * (width - filled), "32")


def follow_canary(c: lc.Cluster, until: set[str], timeout: float = 240) -> dict[str, Any]:
    """Print a line whenever phase, weight or the analysis changes."""
    last = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = get(c, "canary", "podinfo").get("status", {})
        analysis = ", ".join(
            f"{a['metric']}={a['value'] if a.get('value') is None else round(a['value'], 2)}"
            f" {a['result']}"
            for a in st.get("lastAnalysis") or []
        )
        line = (st.get("phase"), st.get("canaryWeight"), analysis)
        if line != last and st.get("phase"):
            weight = int(st.get("canaryWeight") or 0)
            print(f"  {st['phase']:<17} {bar(weight)} canary {weight:>3}%  {analysis}")
            last = line
        if st.get("phase") in until:
            return st
        time.sleep(0.5)
    raise SystemExit("the canary did not finish in time; see kubectl describe canary podinfo")


def release(c: lc.Cluster, image: str, error_rate: str) -> None:
    patch = {
        "spec": {
            "template": {
                "metadata": {"annotations": {"simulator.dabba.io/error-rate": error_rate}},
                "spec": {"containers": [{"name": "podinfo", "image": image}]},
            }
        }
    }
    c.kubectl(
        "patch",
        "deployment",
        "podinfo",
        "-n",
        NAMESPACE,
        "--type=strategic",
        "-p",
        json.dumps(patch),
    )


def wait_phase_change(c: lc.Cluster, old_revision: str | None) -> None:
    lc.wait_for(
        "the new revision to be picked up",
        lambda: (
            get(c, "canary", "podinfo").get("status", {}).get("revision")
            not in (None, old_revision)
        ),
        60,
    )


def main() -> int:
    c = lc.attach()
    if c is None:
        print("the local cluster is not running: make cluster-up", file=sys.stderr)
        return 1
    log = c.dir / "logs" / "demo-operator.log"
    port = lc.free_port()
    env = {**os.environ, **c.env()}
    print(bold("Starting the operator"), f"(dabba run -A; log: {log})")
    with log.open("ab") as out:
        operator = subprocess.Popen(
            [
                str(DABBA),
                "run",
                "-A",
                "--standalone",
                "--listen-host=127.0.0.1",
                f"--metrics-port={port}",
                "--log-format=json",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        return demo(c, port)
    finally:
        operator.send_signal(signal.SIGTERM)
        operator.wait(timeout=30)


def demo(c: lc.Cluster, port: int) -> int:
    c.kubectl(
        "delete", "namespace", NAMESPACE, "--wait=true", "--timeout=60s", check=False, timeout=90
    )
    c.kubectl("create", "namespace", NAMESPACE)
    for name in ("podinfo.yaml", "canary.yaml", "meshcertificate.yaml"):
        print(c.kubectl("apply", "-n", NAMESPACE, "-f", str(HERE / name)).stdout, end="")

    print(bold("\n1. Certificates: a root CA and a 2-minute workload certificate"))
    lc.wait_for(
        "podinfo-mtls Ready",
        lambda: any(
            cond.get("type") == "Ready" and cond.get("status") == "True"
            for cond in get(c, "meshcertificate", "podinfo-mtls")
            .get("status", {})
            .get("conditions", [])
        ),
        60,
    )
    print(c.kubectl("get", "meshcertificates", "-n", NAMESPACE).stdout)

    print(bold("2. Canary: waiting for the primary to take over the traffic"))
    lc.wait_for(
        "Canary initialized",
        lambda: (
            get(c, "canary", "podinfo").get("status", {}).get("phase")
            in ("Initialized", "Succeeded")
        ),
        90,
    )
    print(c.kubectl("get", "canary,deployments", "-n", NAMESPACE).stdout)

    revision = get(c, "canary", "podinfo").get("status", {}).get("revision")
    print(bold("3. A good release (podinfo 6.7.1): traffic moves step by step"))
    release(c, "ghcr.io/stefanprodan/podinfo:6.7.1", "0")
    wait_phase_change(c, revision)
    st = follow_canary(c, {"Succeeded", "Failed"})
    print(f"  → {colour(st['phase'], '32' if st['phase'] == 'Succeeded' else '31')}\n")

    revision = st.get("revision")
    print(bold("4. A bad release (podinfo 6.7.2, 10 % of requests fail): rolled back"))
    release(c, "ghcr.io/stefanprodan/podinfo:6.7.2", "0.1")
    wait_phase_change(c, revision)
    st = follow_canary(c, {"Failed", "Succeeded"})
    print(f"  → {colour(st['phase'], '31' if st['phase'] == 'Failed' else '32')}")
    print(
        c.kubectl(
            "get",
            "events",
            "-n",
            NAMESPACE,
            "--field-selector",
            "involvedObject.kind=Canary",
            "--sort-by=.lastTimestamp",
        ).stdout
    )

    print(bold("5. Certificate rotation: the 2-minute certificate renews by itself"))
    cert = get(c, "meshcertificate", "podinfo-mtls")["status"]
    print(
        f"  serial {cert['serialNumber'][:16]}…  expires {cert['notAfter']}  "
        f"renews {cert['renewalTime']}"
    )
    renew_at = dt.datetime.fromisoformat(cert["renewalTime"].replace("Z", "+00:00"))
    wait = max((renew_at - dt.datetime.now(dt.UTC)).total_seconds(), 0)
    print(f"  waiting {wait:.0f}s for the renewal…")
    lc.wait_for(
        "the rotation",
        lambda: (
            get(c, "meshcertificate", "podinfo-mtls")["status"]["serialNumber"]
            != cert["serialNumber"]
        ),
        wait + 30,
    )
    new = get(c, "meshcertificate", "podinfo-mtls")["status"]
    print(
        f"  serial {new['serialNumber'][:16]}…  expires {new['notAfter']}  "
        f"renews {new['renewalTime']}  (revision {new['revision']})"
    )
    metrics = subprocess.run(
        ["curl", "-s", f"http://127.0.0.1:{port}/metrics"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    print(
        "\n".join(
            line
            for line in metrics.splitlines()
            if line.startswith(("dabba_certificate_expiration", "dabba_canary_weight"))
            and NAMESPACE in line
        )
    )
    print(bold("\nDone."), f"Explore: source {c.env_file}; kubectl get dabba -n {NAMESPACE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
