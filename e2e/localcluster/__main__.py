"""``python -m localcluster up|down|status|env|build`` — what ``make cluster-up`` runs."""

from __future__ import annotations

import argparse
import json
import sys

from localcluster import cluster


def _usage(c: cluster.Cluster) -> str:
    return f"""
The local dabba cluster is up.
  apiserver   {c.apiserver_url}
  prometheus  {c.prometheus_url}
  kubeconfig  {c.kubeconfig}

Use it:
  source {c.env_file}
  kubectl get nodes                      # the cluster's own kubectl is first on PATH
  .venv/bin/dabba run -A                 # run the operator against it
  kubectl get dabba -A                   # Canaries and MeshCertificates
Stop it:  make cluster-down   (logs: {c.dir / "logs"})
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "env", "build"])
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            cluster.ensure_built()
        elif args.command == "up":
            print(_usage(cluster.up()))
        elif args.command == "down":
            stopped = cluster.down()
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        elif args.command == "status":
            c = cluster.attach()
            if c is None:
                print("not running")
                return 1
            print(
                json.dumps(
                    {
                        "apiserver": c.apiserver_url,
                        "prometheus": c.prometheus_url,
                        "kubeconfig": str(c.kubeconfig),
                        "pids": c.state.pids,
                    },
                    indent=2,
                )
            )
        else:
            current = cluster.attach()
            if current is None:
                print("not running: make cluster-up", file=sys.stderr)
                return 1
            print(current.env_file.read_text(), end="")
    except cluster.ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
