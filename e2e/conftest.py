"""e2e suite: the local cluster (``localcluster.fixtures``) plus a running operator."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator

import pytest

from e2ekit import DABBA, ChartOperator, Operator
from localcluster import cluster as lc
from localcluster import external, satoken


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """On an external cluster, skip what needs the local control plane's own processes."""
    if not external.configured():
        return
    for item in items:
        marker = item.get_closest_marker("local_only")
        if marker is not None:
            reason = marker.args[0] if marker.args else "needs the local control plane"
            item.add_marker(pytest.mark.skip(reason=f"external cluster: {reason}"))
        elif external.operator_mode() == "chart" and item.get_closest_marker("local_operator"):
            marker = item.get_closest_marker("local_operator")
            reason = marker.args[0] if marker and marker.args else "starts its own operator"
            item.add_marker(pytest.mark.skip(reason=f"operator from the chart: {reason}"))


@pytest.fixture(scope="session")
def operator(
    cluster: lc.Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator | ChartOperator]:
    """`dabba run -A` against the cluster for the whole session, JSON logs to a file.

    On an external cluster with ``DABBA_E2E_OPERATOR=chart`` (``e2e/kind/run.sh``) the operator
    is the chart's Deployment there instead, behind the same handle.
    """
    if external.operator_mode() == "chart":
        chart_op = ChartOperator(
            kubectl=cluster.binaries.kubectl,
            kubeconfig=cluster.kubeconfig,
            namespace=os.environ.get("DABBA_E2E_OPERATOR_NAMESPACE", "dabba-system"),
            selector=os.environ.get(
                "DABBA_E2E_OPERATOR_SELECTOR", "app.kubernetes.io/instance=dabba"
            ),
            port=int(os.environ.get("DABBA_E2E_OPERATOR_PORT", "8080")),
            workdir=tmp_path_factory.mktemp("chart-operator"),
        )
        chart_op.start()
        lc.wait_for("a Ready operator replica", chart_op.healthy, 120)
        yield chart_op
        return
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
    if os.environ.get("DABBA_E2E_AS_SERVICEACCOUNT", "1") != "0":
        # The chart's RBAC, proven by the real API server: the operator holds only its token
        # (DABBA_E2E_AS_SERVICEACCOUNT=0 runs it as the cluster admin instead, to tell an RBAC
        # failure from a logic one).
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
