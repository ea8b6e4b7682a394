"""Root conftest: the local-cluster fixtures are shared by tests/ and e2e/."""

pytest_plugins = ["localcluster.fixtures"]
