"""dabba: progressive delivery (Canary) and workload certificate rotation (MeshCertificate)."""

__version__ = "0.1.0"
