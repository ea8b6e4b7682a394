"""Traffic routers: one Protocol, one module per way of shifting traffic.

A router owns one routing object per Canary (VirtualService, HTTPRoute, or the apex Service's
selector) and answers three questions: make sure it exists (adopting one the user already
had), what split it serves *right now* as the data plane would see it, and set a split
keeping the header cohorts. Every call is idempotent and re-reads before it writes, so the
state machine can correct drift by simply asking again.

    router_for(spec) ──► IstioRouter | GatewayAPIRouter | KubernetesRouter
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from dabba.canary.model import CanarySpec, Router, Weights
from dabba.k8s.client import Clients

#: Annotation on an adopted routing object holding its original spec (JSON), restored on
#: deletion with ``revertOnDeletion`` (Flagger's ``original-configuration``).
ORIGINAL_ANNOTATION = "dabba.io/original-configuration"


class TrafficRouter(Protocol):
    """What the Canary controller needs from a routing implementation.

    Objects a router creates carry the label ``dabba.io/canary: <canary>`` and an
    ownerReference to the Canary; objects it adopts carry the label and
    ``ORIGINAL_ANNOTATION`` but no ownerReference, so they outlive the Canary. Errors:
    ``SpecError`` when the object is labelled for another Canary; ``RouteNotFoundError``
    (a ``LookupError``, from ``routers._shared``) when ``set_weights`` finds no object that
    ``ensure`` created or adopted; ``ValueError`` from the kubernetes router for any split
    other than 100/0 and 0/100. Each module's docstring shows the objects it writes.
    """

    def ensure(self, spec: CanarySpec, owner: Mapping[str, Any]) -> None:
        """Create the routing object(s), or adopt existing ones, without changing a split
        that is already in place (a new object starts at 100 % primary).

        ``owner`` is the Canary object (for ownerReferences on objects dabba creates).
        """
        ...

    def weights(self, spec: CanarySpec) -> Weights | None:
        """The split the routing object serves now, or None when it does not exist, is not
        accepted yet (Gateway API ``Accepted``/``observedGeneration``) or is not ours."""
        ...

    def set_weights(self, spec: CanarySpec, weights: Weights) -> None:
        """Write ``weights``; header cohorts (``analysis.match``) route 100 % to the canary
        whenever ``weights.canary > 0`` and are removed at 0."""
        ...

    def restore(self, spec: CanarySpec) -> None:
        """Give an adopted object back as it was (``revertOnDeletion``), or delete what dabba
        created. Missing objects are fine."""
        ...


def router_for(spec: CanarySpec, clients: Clients) -> TrafficRouter:
    """The router for ``spec.router``."""
    # Imported here: each router module is only loaded when a Canary uses it.
    if spec.router is Router.ISTIO:
        from dabba.canary.routers.istio import IstioRouter  # noqa: PLC0415

        return IstioRouter(clients)
    if spec.router is Router.GATEWAYAPI:
        from dabba.canary.routers.gatewayapi import GatewayAPIRouter  # noqa: PLC0415

        return GatewayAPIRouter(clients)
    from dabba.canary.routers.kubernetes import KubernetesRouter  # noqa: PLC0415

    return KubernetesRouter(clients)
