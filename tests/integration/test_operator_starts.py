"""`dabba run` starts the kopf operator against the real API server and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from localcluster import cluster as lc

pytestmark = pytest.mark.integration

DABBA = Path(sys.executable).parent / "dabba"


def _healthz(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
        return bool(resp.status == 200)


@pytest.mark.parametrize("all_namespaces", [True, False], ids=["all namespaces", "one ns"])
def test_dabba_run_serves_healthz_and_exits_on_sigterm(
    cluster: lc.Cluster, tmp_path: Path, namespace: str, all_namespaces: bool
) -> None:
    # -A on a shared test cluster also handles other tests' deliberately broken objects, so
    # only the single-namespace run (an empty namespace) must log no error at all.
    scope = ["-A"] if all_namespaces else ["-n", namespace]
    port = lc.free_port()
    log = tmp_path / "operator.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                str(DABBA),
                "run",
                *scope,
                "--standalone",
                "--listen-host=127.0.0.1",
                f"--metrics-port={port}",
                "--log-format=json",
            ],
            env={**os.environ, **cluster.env()},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        lc.wait_for(
            "the operator's /healthz",
            lambda: _healthz(f"http://127.0.0.1:{port}/healthz"),
            timeout=60,
            on_fail=lambda: log.read_text()[-3000:],
        )
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("no exit 30 s after SIGTERM:\n" + log.read_text()[-4000:])
        assert code == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if not all_namespaces:
        # dabba's own errors and failed handlers count; kopf's retried requests (logged at
        # error level by kopf while it reconnects) are not failures of the operator.
        bad = [
            line
            for line in log.read_text().splitlines()
            if '"level": "error"' in line
            and ('"logger": "dabba' in line or "failed with an exception" in line)
        ]
        assert not bad, "\n".join(bad[-10:])
