"""e2e suite: the local cluster (``localcluster.fixtures``) plus a running operator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2ekit import Operator
from localcluster import cluster as lc
from localcluster import satoken

DABBA = Path(sys.executable).parent / "dabba"


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
    if os.environ.get("DABBA_E2E_AS_SERVICEACCOUNT") == "1":
        # The chart's RBAC, proven by the real API server: the operator holds only its token.
        env["KUBECONFIG"] = str(
            satoken.kubeconfig_for_chart(cluster, tmp_path_factory.mktemp("serviceaccount"))
        )
    op = Operator(
        proc=None,
        log=log,
        url=f"http://127.0.0.1:{port}",  # type: ignore[arg-type]
        argv=argv,
        env=env,
    )
    op.start()
    try:
        lc.wait_for(
            "the operator's /healthz", op.healthy, 60, on_fail=lambda: log.read_text()[-4000:]
        )
        yield op
    finally:
        op.proc.send_signal(signal.SIGTERM)
        try:
            op.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            op.proc.kill()
            op.proc.wait()
