"""Footprint: start-to-ready and idle RSS of a plain ``dabba run``, against the cost of merely
importing the operator in the same interpreter; then RSS with many certificates."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from bench import certs
from bench.certs import Context
from bench.common import (
    GOAL_IDLE_RSS,
    GOAL_START_TO_READY,
    REPO,
    Figure,
    Operator,
    create_namespace,
    delete_namespace,
    percentile,
    say,
)

#: Import what ``dabba run`` imports, then report RSS and the import time (the floor).
_IMPORT_FLOOR = """
import time, json
t0 = time.monotonic()
import dabba.cli.app, dabba.main  # noqa
elapsed = time.monotonic() - t0
rss = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmRSS"))
print(json.dumps({"seconds": elapsed, "rss": rss}))
"""
IDLE_SETTLE = 15.0


def _import_floor() -> tuple[float, float, int]:
    """(process start to imports done, the imports alone, RSS after them)."""
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_FLOOR],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO / "operator"), "PATH": "/usr/bin:/bin"},
    )
    wall = time.monotonic() - t0
    doc = json.loads(out.stdout)
    return wall, float(doc["seconds"]), int(doc["rss"])


def run(ctx: Context, starts: int, many: int) -> None:
    r = ctx.results
    s = "footprint"
    floors = [_import_floor() for _ in range(starts)]
    floor_wall = percentile([f[0] for f in floors], 50)
    floor_rss = percentile([f[2] for f in floors], 50)
    ns = create_namespace(ctx.kube, "idle")
    ready_times = []
    idle_rss = 0
    try:
        for i in range(starts):
            op = Operator(ctx.cluster, [ns], ctx.workdir, f"idle-{i}", instrumented=False)
            op.start()
            try:
                ready_times.append(op.wait_ready(timeout=60, interval=0.01))
                if i == starts - 1:
                    say(f"footprint: idle for {IDLE_SETTLE:.0f}s")
                    time.sleep(IDLE_SETTLE)
                    idle_rss = op.stats().rss
            finally:
                op.stop()
    finally:
        delete_namespace(ctx.kube, ns)
    ready = percentile(ready_times, 50)
    r.add(
        Figure(
            s,
            "start_to_ready",
            ready,
            "s",
            "<= 5 s",
            ready <= GOAL_START_TO_READY,
            note="median of " + ", ".join(f"{t:.2f}" for t in ready_times),
        )
    )
    r.add(
        Figure(
            s, "python_import_floor_seconds", floor_wall, "s", note="python -c 'import dabba.main'"
        )
    )
    r.add(Figure(s, "start_to_ready_vs_import_floor", ready / floor_wall, "x"))
    r.add(
        Figure(
            s,
            "idle_rss",
            idle_rss / 2**20,
            "MiB",
            "<= 120 MB (114 MiB)",
            idle_rss <= GOAL_IDLE_RSS,
        )
    )
    r.add(Figure(s, "import_floor_rss", floor_rss / 2**20, "MiB"))
    r.add(Figure(s, "idle_rss_vs_import_floor", idle_rss / floor_rss, "x"))
    if many > 0:
        certs.many(ctx, many)
