"""``python -m bench``: run the benchmarks against the local control plane, print one line per
figure (``name: value unit (goal: …)``) and write ``bench/report/``.

Sizes come from flags, else ``BENCH_*`` environment variables, else the defaults (sized so a
full run takes under 20 minutes on 2 cores). ``--only`` picks scenarios.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import canaries, certs, footprint, report
from bench.common import (
    REPORT_DIR,
    Kube,
    Results,
    bring_up,
    e2e_sessions,
    environment,
    leftover_namespaces,
    say,
)
from localcluster import cluster as lc

SCENARIOS = ("issuance", "renewal", "canary-scale", "rollback", "footprint")


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--only", default=os.environ.get("BENCH_ONLY", ",".join(SCENARIOS)))
    p.add_argument("--threads", type=int, default=_env_int("BENCH_THREADS", 8))
    p.add_argument("--certs", type=int, default=_env_int("BENCH_CERTS", 1000))
    p.add_argument("--renew-duration", default=_env_str("BENCH_RENEW_DURATION", "2m"))
    p.add_argument("--canaries", type=int, default=_env_int("BENCH_CANARIES", 200))
    p.add_argument("--canary-window", type=int, default=_env_int("BENCH_CANARY_WINDOW", 90))
    p.add_argument("--canary-interval", type=int, default=_env_int("BENCH_CANARY_INTERVAL", 10))
    p.add_argument("--rollbacks", type=int, default=_env_int("BENCH_ROLLBACKS", 3))
    p.add_argument("--starts", type=int, default=_env_int("BENCH_STARTS", 3))
    p.add_argument("--many-certs", type=int, default=_env_int("BENCH_MANY_CERTS", 2000))
    p.add_argument(
        "--cluster-dir",
        type=Path,
        default=Path(os.environ["BENCH_CLUSTER_DIR"])
        if os.environ.get("BENCH_CLUSTER_DIR")
        else None,
        help="run on a control plane of the bench's own in this directory (started if needed, "
        "stopped at the end if the bench started it); default: the shared local cluster",
    )
    p.add_argument(
        "--keep-cluster",
        action="store_true",
        default=os.environ.get("BENCH_KEEP_CLUSTER") == "1",
        help="leave the --cluster-dir control plane running for the next run",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        default=os.environ.get("BENCH_PROFILE") == "1",
        help="sample the operator with py-spy during each measured phase (report dir)",
    )
    p.add_argument(
        "--experiment",
        default=os.environ.get("BENCH_EXPERIMENT", ""),
        help="comma-separated operator changes to try from the outside (bench/shim.py): "
        "ensure-on-drift, workers=N, quiet-initial-conditions; figures then describe the "
        "changed operator",
    )
    p.add_argument(
        "--report-dir", type=Path, default=Path(os.environ.get("BENCH_REPORT_DIR", REPORT_DIR))
    )
    args = p.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    only = args.only.split(",")
    started = time.monotonic()
    cluster, started_cluster = bring_up(args.cluster_dir)
    try:
        return _run(args, only, started, cluster)
    finally:
        if args.cluster_dir is not None and started_cluster and not args.keep_cluster:
            say(f"stopping the bench's own control plane in {args.cluster_dir}")
            lc.down(args.cluster_dir)


def _run(args: argparse.Namespace, only: list[str], started: float, cluster: lc.Cluster) -> int:
    kube = Kube.connect(cluster, args.threads + 4)
    results = Results(environment=environment())
    results.environment["cluster"] = (
        f"the bench's own ({args.cluster_dir})" if args.cluster_dir else "the shared local cluster"
    )
    results.sizes = {
        "threads": args.threads,
        "certs": args.certs,
        "renew_duration": args.renew_duration,
        "canaries": args.canaries,
        "canary_window_s": args.canary_window,
        "canary_interval_s": args.canary_interval,
        "rollbacks": args.rollbacks,
        "starts": args.starts,
        "many_certs": args.many_certs,
        "scenarios": only,
    }
    stale = leftover_namespaces(kube)
    if stale:
        say(f"namespaces left by an earlier bench run (delete them): {', '.join(stale)}")
    sessions = e2e_sessions(kube)
    if sessions:
        results.environment["e2e_namespaces_at_start"] = sessions
        say(
            "e2e tests are using this cluster now; their `dabba run -A` reconciles the bench's "
            "objects too (see the *_issued_by_this_operator figures). Set DABBA_CLUSTER_DIR to "
            "run the bench on a control plane of its own."
        )
    args.report_dir.mkdir(parents=True, exist_ok=True)
    for old in args.report_dir.glob("profile-*.raw"):
        old.unlink()
    if args.experiment:
        os.environ["DABBA_BENCH_EXPERIMENT"] = args.experiment
        results.environment["experiments"] = args.experiment
        say(f"EXPERIMENT: the operator runs with {args.experiment} (bench/shim.py)")
    workdir = Path(tempfile.mkdtemp(prefix="dabba-bench-"))
    results.environment["workdir"] = str(workdir)
    ctx = certs.Context(
        cluster, kube, results, workdir, args.threads, args.report_dir if args.profile else None
    )
    failed: list[str] = []
    steps = {
        "issuance": lambda: certs.issuance(ctx, args.certs),
        "renewal": lambda: certs.renewal(ctx, args.certs, args.renew_duration),
        "canary-scale": lambda: canaries.scale(
            ctx, args.canaries, args.canary_interval, args.canary_window
        ),
        "rollback": lambda: canaries.rollback(ctx, args.rollbacks, args.canary_interval),
        "footprint": lambda: footprint.run(ctx, args.starts, args.many_certs),
    }
    for name in SCENARIOS:
        if name not in only:
            continue
        t0 = time.monotonic()
        say(f"=== {name}")
        try:
            steps[name]()
        except Exception as exc:  # one broken scenario must not lose the others' figures
            failed.append(name)
            results.note(name, f"scenario failed: {exc!r}")
            say(f"{name} FAILED: {exc!r}")
        results.environment.setdefault("scenario_seconds", {})[name] = round(
            time.monotonic() - t0, 1
        )
    results.environment["loadavg_end"] = os.getloadavg()
    results.environment["total_seconds"] = round(time.monotonic() - started, 1)
    results.save(args.report_dir / "results.json")
    report.write(results, args.report_dir)
    say(
        f"done in {results.environment['total_seconds']:.0f}s; report in "
        f"{args.report_dir / 'report.md'} (operator logs in {workdir})"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
