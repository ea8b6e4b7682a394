"""`make demo`: apply a sample Deployment, Canary and MeshCertificates to the local cluster.

The controllers that act on them arrive with the Canary and MeshCertificate work; today the demo
shows the API: defaults filled in by the schema, and `kubectl get dabba` listing both kinds.
"""

from __future__ import annotations

import sys
from pathlib import Path

from localcluster import cluster as lc

NAMESPACE = "dabba-demo"
HERE = Path(__file__).resolve().parent / "demo"


def main() -> int:
    c = lc.attach()
    if c is None:
        print("the local cluster is not running: make cluster-up", file=sys.stderr)
        return 1
    c.kubectl("create", "namespace", NAMESPACE, check=False)
    for name in ("podinfo.yaml", "canary.yaml", "meshcertificate.yaml"):
        out = c.kubectl("apply", "-n", NAMESPACE, "-f", str(HERE / name))
        print(out.stdout, end="")
    lc.wait_for(
        "podinfo to be available",
        lambda: (
            c.kubectl(
                "get",
                "deployment",
                "podinfo",
                "-n",
                NAMESPACE,
                "-o",
                "jsonpath={.status.availableReplicas}",
            ).stdout
            == "2"
        ),
        timeout=60,
    )
    print(f"\n$ kubectl get deployments,pods -n {NAMESPACE}")
    print(c.kubectl("get", "deployments,pods", "-n", NAMESPACE).stdout)
    print(f"$ kubectl get dabba -n {NAMESPACE}")
    print(c.kubectl("get", "dabba", "-n", NAMESPACE).stdout)
    print("$ kubectl get canary podinfo -o jsonpath={.spec.analysis}   # defaults from the schema")
    print(
        c.kubectl(
            "get", "canary", "podinfo", "-n", NAMESPACE, "-o", "jsonpath={.spec.analysis}"
        ).stdout
    )
    print(f"\nNext: source {c.env_file} && .venv/bin/dabba run -A")
    return 0


if __name__ == "__main__":
    sys.exit(main())
