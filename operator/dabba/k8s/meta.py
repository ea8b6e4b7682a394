"""Names dabba puts on the API: group, version, plurals, annotation and label keys. Pure."""

from __future__ import annotations

from typing import Final

GROUP: Final = "dabba.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

CANARY_KIND: Final = "Canary"
CANARY_PLURAL: Final = "canaries"
MESHCERT_KIND: Final = "MeshCertificate"
MESHCERT_PLURAL: Final = "meshcertificates"

#: Finalizer kopf puts on objects whose deletion needs cleanup (routing restore, owned objects).
FINALIZER: Final = f"{GROUP}/finalizer"
#: Prefix of kopf's own bookkeeping annotations (progress, diff-base), so they read as ours.
KOPF_ANNOTATION_PREFIX: Final = GROUP
#: Default name of the kopf peering object used for leader election between replicas.
PEERING_NAME: Final = "dabba"
