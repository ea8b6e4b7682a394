"""The ``dabba`` command (also installed as the kubectl plugin ``kubectl-dabba``)."""
