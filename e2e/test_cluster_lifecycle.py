"""`make cluster-up` is idempotent and `make cluster-down` leaves no process behind.

Runs a second, private cluster in a temporary directory (same binary cache), so the shared
session cluster other tests use is never disturbed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from localcluster import cluster as lc

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.local_only("starts and stops a private local control plane"),
]

REPO = Path(__file__).resolve().parent.parent


def _cli(cdir: Path, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localcluster", command],
        env={**_env(), "DABBA_CLUSTER_DIR": str(cdir)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )


def _env() -> dict[str, str]:
    import os  # noqa: PLC0415

    return {**os.environ, "PYTHONPATH": str(REPO / "e2e")}


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in argv and "pytest" not in argv:
            found.append(argv)
    return found


def test_up_is_idempotent_and_down_leaves_nothing(tmp_path: Path) -> None:
    cdir = tmp_path / "cluster"
    first = _cli(cdir, "up")
    assert first.returncode == 0, first.stderr
    state = lc.load_state(cdir)
    assert state is not None
    pids = dict(state.pids)
    assert set(pids) == {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        "prometheus",
        "simulator",
    }

    second = _cli(cdir, "up")
    assert second.returncode == 0, second.stderr
    assert "nothing to do" in second.stderr
    again = lc.load_state(cdir)
    assert again is not None
    assert again.pids == pids, "a second cluster-up must not restart anything"

    nodes = subprocess.run(
        [
            str(lc.Binaries(lc.dabba_home() / "bin", lc.versions()).kubectl),
            f"--kubeconfig={cdir / 'kubeconfig'}",
            "get",
            "nodes",
            "--no-headers",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert len(nodes) == lc.NODE_COUNT
    assert all(" Ready " in line for line in nodes), nodes

    down = _cli(cdir, "down")
    assert down.returncode == 0, down.stderr
    assert not any(lc.alive(pid) for pid in pids.values())
    assert _processes_mentioning(str(cdir)) == []
    assert lc.load_state(cdir) is None
