"""How dabba names and labels what it creates beside the user's Deployment (pure).

The target ``<target>`` keeps its own labels and selector and runs the canary. The primary
``<target>-primary`` is a copy whose selector labels get a ``-primary`` suffix, so no Service
or ReplicaSet can confuse the two (Flagger's convention: ``app: podinfo`` →
``app: podinfo-primary``). Services: ``<svc>-canary`` selects the target's pods,
``<svc>-primary`` and the apex ``<svc>`` select the primary's (the kubernetes router moves the
apex to the canary's pods for a blue/green switch).
"""

from __future__ import annotations

from collections.abc import Mapping

from dabba.k8s import meta

PRIMARY_SUFFIX = "-primary"
#: Label on every object dabba creates for a Canary (value: the Canary's name).
CANARY_LABEL = f"{meta.GROUP}/canary"
#: Annotation on the primary Deployment: the revision its template was copied from.
REVISION_ANNOTATION = f"{meta.GROUP}/revision"


def primary_selector(target_selector: Mapping[str, str]) -> dict[str, str]:
    """The primary's selector: every value of the target's selector with ``-primary``."""
    return {k: f"{v}{PRIMARY_SUFFIX}" for k, v in target_selector.items()}


def primary_labels(
    template_labels: Mapping[str, str], target_selector: Mapping[str, str]
) -> dict[str, str]:
    """Pod-template labels of the primary: the target's, with the selector keys renamed."""
    return {**template_labels, **primary_selector(target_selector)}
