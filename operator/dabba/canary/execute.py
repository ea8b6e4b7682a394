"""Carry out a ``Decision``'s actions, in order. I/O; every action is idempotent.

A failure stops the list where it happened and propagates: status is not written, so the
next evaluation re-decides from the same status and re-runs the actions (safe, because each
one converges rather than increments).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog

from dabba.canary import webhooks, workloads
from dabba.canary.model import CanarySpec, CanaryStatus, WebhookType, Weights
from dabba.canary.observe import payload
from dabba.canary.routers import TrafficRouter
from dabba.canary.state_machine import (
    Action,
    CopyTemplateToPrimary,
    Decision,
    EmitEvent,
    EnsurePrimary,
    EnsureRouting,
    EnsureServices,
    Requeue,
    RestoreRouting,
    RunWebhook,
    ScaleTarget,
    SetWeights,
)
from dabba.k8s.client import Clients

log = structlog.get_logger("dabba.canary")

Recorder = Callable[[str, str, str], None]


def execute(
    k: Clients,
    router: TrafficRouter,
    spec: CanarySpec,
    decision: Decision,
    owner: Mapping[str, Any],
    target: Mapping[str, Any] | None,
    revision: str,
    record: Recorder,
) -> None:
    """Run every action of ``decision``; raises on the first that fails."""
    bound = log.bind(
        kind="Canary",
        namespace=spec.namespace,
        name=spec.name,
        revision=revision,
        weight=decision.status.canary_weight,
    )
    for action in decision.actions:
        _run(k, router, spec, action, owner, target, revision, decision.status, record, bound)


def _run(  # noqa: PLR0912 - one branch per action type
    k: Clients,
    router: TrafficRouter,
    spec: CanarySpec,
    action: Action,
    owner: Mapping[str, Any],
    target: Mapping[str, Any] | None,
    revision: str,
    status: CanaryStatus,
    record: Recorder,
    bound: Any,
) -> None:
    if isinstance(action, EnsurePrimary):
        if target is not None and workloads.ensure_primary(k, spec, target, action.revision, owner):
            bound.info("created primary", primary=spec.primary_name)
    elif isinstance(action, EnsureServices):
        if target is not None:
            workloads.ensure_services(k, spec, target, owner)
    elif isinstance(action, EnsureRouting):
        router.ensure(spec, owner)
    elif isinstance(action, SetWeights):
        router.set_weights(spec, Weights(primary=action.primary, canary=action.canary))
        bound.info("weights set", primary=action.primary, canary=action.canary)
    elif isinstance(action, ScaleTarget):
        workloads.scale(k, spec.namespace, spec.target.name, action.replicas)
    elif isinstance(action, CopyTemplateToPrimary):
        if workloads.copy_template_to_primary(k, spec, action.revision):
            bound.info("promoted template to primary", promoted=action.revision)
        else:
            bound.warning(
                "target changed before promotion; the new revision will be analysed",
                analysed=action.revision,
            )
    elif isinstance(action, RestoreRouting):
        router.restore(spec)
        if target is not None:
            # The apex goes back to the user's pods: the primary is about to be collected.
            workloads.point_apex_at_target(k, spec, target)
    elif isinstance(action, RunWebhook):
        for hook in spec.analysis.hooks(action.hook_type):
            result = webhooks.call(hook, payload(spec, status, revision))
            bound.info(
                "webhook called",
                webhook=hook.name,
                type=str(action.hook_type),
                ok=result.ok,
                result=result.message,
            )
    elif isinstance(action, EmitEvent):
        record(str(action.type), action.reason, action.message)
        for hook in spec.analysis.hooks(WebhookType.EVENT):
            webhooks.call(
                hook,
                {
                    **payload(spec, status, revision),
                    "event": {
                        "type": str(action.type),
                        "reason": action.reason,
                        "message": action.message,
                    },
                },
            )
    elif isinstance(action, Requeue):
        pass  # the daemon reads decision.requeue_after
