"""e2e suite: runs against the local cluster (the fixtures come from ``localcluster.fixtures``)."""
