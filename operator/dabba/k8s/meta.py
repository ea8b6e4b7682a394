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

# -- manual controls set by the CLI (`dabba canary promote|abort|retry|pause|resume`) ------
#: Request ids: the value (an RFC 3339 time) identifies one request, acted on once.
CANARY_PROMOTE_ANNOTATION: Final = f"{GROUP}/promote"
CANARY_ABORT_ANNOTATION: Final = f"{GROUP}/abort"
CANARY_RETRY_ANNOTATION: Final = f"{GROUP}/retry"
#: A level: present (any value) means paused; `resume` removes it.
CANARY_PAUSE_ANNOTATION: Final = f"{GROUP}/paused"
#: `dabba cert renew`: the time of the request; served by the next certificate issued after it.
CERT_RENEW_ANNOTATION: Final = f"{GROUP}/renew-requested-at"
