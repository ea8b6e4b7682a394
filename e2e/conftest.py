"""e2e suite: the local cluster (``localcluster.fixtures``) plus a running operator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2ekit import Operator
from localcluster import cluster as lc

DABBA = Path(sys.executable).parent / "dabba"


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
        return bool(resp.status == 200)


@pytest.fixture(scope="session")
def operator(cluster: lc.Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    """`dabba run -A` against the local cluster for the whole session, JSON logs to a file."""
    port = lc.free_port()
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    argv = [
        str(DABBA),
        "run",
        "-A",
        "--standalone",
        "--listen-host=127.0.0.1",
        f"--metrics-port={port}",
        "--log-format=json",
        "--log-level=info",
    ]
    env = {**os.environ, **cluster.env(), "DABBA_PROMETHEUS_URL": cluster.prometheus_url}
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    op = Operator(proc=proc, log=log, url=f"http://127.0.0.1:{port}")
    try:
        lc.wait_for(
            "the operator's /healthz",
            lambda: _healthy(f"{op.url}/healthz"),
            60,
            on_fail=lambda: log.read_text()[-4000:],
        )
        yield op
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
