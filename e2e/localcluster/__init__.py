"""A real Kubernetes control plane as local processes, for tests and the demo.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (fake nodes whose pods
become Running and Ready), plus Prometheus from Debian, all on 127.0.0.1. Binaries are built
from Go modules by ``build.sh`` and cached under ``$DABBA_HOME`` (default ``~/.cache/dabba``).

``python -m localcluster up|down|status|env`` is the command line; ``make cluster-up`` and the
pytest session fixtures call the same :func:`localcluster.cluster.up`.
"""
