"""Build the state machine's ``Observation`` from the cluster, and answer its ``Plan``. I/O.

Reads the target and primary Deployments (revision, readiness), the live weights from the
router, the manual-control annotations; then runs exactly the webhooks and PromQL queries
``plan`` asked for. Identical query strings within one evaluation run once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from dabba.canary import webhooks, workloads
from dabba.canary.model import CanarySpec, CanaryStatus, parse_time
from dabba.canary.naming import CANARY_LABEL
from dabba.canary.routers import TrafficRouter
from dabba.canary.state_machine import Controls, Observation, Plan, WebhookResult
from dabba.errors import SpecError
from dabba.k8s import meta
from dabba.k8s.client import Clients
from dabba.metrics import MetricsProvider, QueryResult


@dataclasses.dataclass(frozen=True)
class World:
    """What one evaluation read, beyond the Observation itself."""

    observation: Observation
    target: dict[str, Any] | None
    primary: dict[str, Any] | None


class TargetMissingError(Exception):
    """The Canary's target Deployment does not exist."""


def _not_ready_since(deployment: Mapping[str, Any] | None) -> dt.datetime | None:
    """When the Deployment's Available condition last turned False, if it is False."""
    for cond in (deployment or {}).get("status", {}).get("conditions") or []:
        if cond.get("type") == "Available" and cond.get("status") != "True":
            try:
                return parse_time(cond.get("lastTransitionTime") or "")
            except ValueError:
                return None
    return None


def controls(annotations: Mapping[str, str]) -> Controls:
    return Controls(
        promote=annotations.get(meta.CANARY_PROMOTE_ANNOTATION) or None,
        abort=annotations.get(meta.CANARY_ABORT_ANNOTATION) or None,
        retry=annotations.get(meta.CANARY_RETRY_ANNOTATION) or None,
        paused=meta.CANARY_PAUSE_ANNOTATION in annotations,
    )


def observe(k: Clients, router: TrafficRouter, spec: CanarySpec, body: Mapping[str, Any]) -> World:
    """Everything ``plan``/``decide`` need, except webhook and metric answers."""
    md = body.get("metadata", {})
    target = workloads.read_deployment(k, spec.namespace, spec.target.name)
    if target is None:
        raise TargetMissingError(f"target Deployment {spec.namespace}/{spec.target.name} not found")
    primary = workloads.read_deployment(k, spec.namespace, spec.primary_name)
    owner = ((primary or {}).get("metadata", {}).get("labels") or {}).get(CANARY_LABEL)
    if owner is not None and owner != spec.name:
        raise SpecError(
            f"Deployment {spec.primary_name} is managed by Canary {owner}; two Canaries cannot "
            f"target one Deployment ({spec.target.name})"
        )
    declared = int((primary or target).get("spec", {}).get("replicas", 1))
    obs = Observation(
        revision=workloads.revision(k, target),
        target=workloads.readiness(target, _not_ready_since(target)),
        primary=workloads.readiness(primary, _not_ready_since(primary)),
        weights=router.weights(spec),
        primary_revision=workloads.primary_revision(primary),
        canary_replicas=max(declared, 1),
        controls=controls(md.get("annotations") or {}),
        deleting=bool(md.get("deletionTimestamp")),
        generation=md.get("generation"),
    )
    return World(obs, target, primary)


def payload(spec: CanarySpec, status: CanaryStatus, revision: str) -> dict[str, Any]:
    """The JSON body every webhook receives (SPEC §1.4)."""
    return {
        "name": spec.name,
        "namespace": spec.namespace,
        "phase": str(status.phase) if status.phase else None,
        "weight": status.canary_weight,
        "revision": revision,
    }


def answer(
    plan: Plan,
    obs: Observation,
    spec: CanarySpec,
    status: CanaryStatus,
    provider: MetricsProvider,
) -> Observation:
    """Run the plan's webhooks and queries; the observation with their results."""
    hooks: dict[str, WebhookResult] = {}
    for hook in plan.webhooks:
        hooks[hook.name] = webhooks.call(hook, payload(spec, status, obs.revision))
    metric_results: dict[str, dict[str, QueryResult]] | None = None
    online = True
    if plan.metrics:
        online = provider.is_online()
        metric_results = {}
        if online:
            cache: dict[str, QueryResult] = {}
            for planned in plan.metrics:
                results = {}
                for role, promql in planned.queries.items():
                    if promql not in cache:
                        cache[promql] = provider.query(promql)
                    results[role] = cache[promql]
                metric_results[planned.metric.name] = results
    answered = obs.with_results(metric_results=metric_results, webhook_results=hooks)
    return dataclasses.replace(answered, metrics_online=online)
