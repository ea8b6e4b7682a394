"""The Canary state machine: ``plan()`` then ``decide()`` (pure).

One handler call is one *evaluation*::

    obs  = observe(...)                       # I/O: revision, readiness, live weights, requests
    need = plan(spec, status, obs, now)       # pure: which webhooks and queries this call needs
    obs  = obs.with_results(run(need))        # I/O: call them
    d    = decide(spec, status, obs, now)     # pure: new status + actions, as data
    execute(d.actions); write(d.status)       # I/O: idempotent actions, status last

``plan`` and ``decide`` run the same code: ``plan`` walks it in *planning mode*, where every
question about a webhook or a metric is recorded and answered optimistically (gates pass, the
rollback hook does not fire, the tick succeeds), so the plan holds everything any branch of
this evaluation can ask for. ``decide`` then reads the answers from the observation. The two
cannot disagree, and a result the handler did not fetch reads as "gate closed" or "webhook
failed" or "no tick", never as a pass.

Phases (SPEC §1.5)::

     new Canary ──▶ Initializing ──(primary ready)──▶ Initialized
                                                          │
           ┌───────── new revision, or `retry` of the Failed one (not while suspended) ──┐
           │                                                                             │
           ▼                                                                             │
        Waiting ──(confirm-rollout 2xx)──▶ Progressing ◀──┐ checksPerStep passing ticks:  │
       (gate shut)                         │   │          │ next weight of the schedule   │
                                           │   └──────────┘                               │
                         last step passed, │                                              │
                  confirm-promotion shut   │  last step passed (gate open), `promote`,   │
                        ┌──────────────────┤  or skipAnalysis once the canary is ready    │
                        ▼                  ▼                                              │
              WaitingPromotion ──(2xx)──▶ Promoting ──(primary ready)──▶ Finalising       │
                                         (template      (100 % primary, then target 0)   │
                                          copied)                 │                      │
                                                                  ▼                      │
                                                              Succeeded ─────────────────┤
     Waiting / Progressing / WaitingPromotion / Promoting                                │
         ── threshold failed ticks, maxInconclusive, readiness deadline,                 │
            `abort`, rollback webhook ──▶ Failed (100 % primary, target 0) ──────────────┘
     any phase ── Canary deleted ──▶ Terminating
     Waiting / Progressing / WaitingPromotion ── new revision ──▶ restart (Waiting or Progressing)
                                              ── reverted to the promoted one ──▶ Initialized

Rules (SPEC §1.3, §1.6):

- A tick is due one ``interval`` after ``lastTickTime``, which is set when a tick is judged and
  whenever the weight changes, so a judged interval ran at the weight it judges.
- A due tick is judged first, before readiness or the router are looked at: the metrics
  describe the canary over the interval that just ended. Moving forward (first weight, next
  step, promotion) then needs both Deployments ready and the router to have accepted the last
  write (``weights`` not ``None``). Weights that differ from ``canaryWeight`` are rewritten last,
  and the next interval starts from the correction.
- A canary or primary not ready holds the run and fails it at ``progressDeadlineSeconds``,
  counted from the later of "stopped being ready" and the start of the phase. A target scaled
  to zero mid-run fails it at once.
- Tick verdict = worst metric result (Failed > Error > Inconclusive > Successful) plus the
  ``rollout`` webhooks. Failed → ``failedChecks`` + 1 (cumulative over the run, as Flagger).
  Error → counted as failed only from the 3rd in a row. Inconclusive → never advances; the run
  fails after ``maxInconclusive`` in a row (0 waits forever). Any tick that is not Successful
  resets ``checksAtWeight``: a weight advances, and a run promotes (also through an approval in
  ``WaitingPromotion``), only after ``checksPerStep`` *consecutive* passing ticks.
- ``failedChecks`` reaching ``threshold`` rolls back in the same decision: ``SetWeights(100, 0)``
  and ``ScaleTarget(0)`` are its first actions.
- The decision depends only on ``(spec, status, observation, now)``; all actions are
  idempotent. After a crash between the actions and the status write, the next evaluation
  re-derives the same step from the same stored status (the router already showing the new
  weight is not drift, because the tick is judged before drift is looked at), and
  ``CopyTemplateToPrimary`` is not emitted again once the primary carries the revision: no step
  is repeated and nothing is promoted twice. Notifications (Events, ``post-rollout``) are at
  least once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final

from dabba.canary import weights as w
from dabba.canary.analysis import (
    MetricOutcome,
    QueryContext,
    QueryResult,
    TickResult,
    error_outcome,
    evaluate,
    queries_for,
    tick_result,
)
from dabba.canary.model import (
    PRIMARY_ONLY,
    CanarySpec,
    CanaryStatus,
    ConditionType,
    MetricResult,
    MetricSpec,
    Phase,
    ReadyReason,
    RunRecord,
    RunResult,
    WebhookSpec,
    WebhookType,
    Weights,
    get_condition,
    set_condition,
    truncate,
)

__all__ = [
    "ALLOWED_TRANSITIONS",
    "ERROR_LIMIT",
    "Action",
    "Controls",
    "CopyTemplateToPrimary",
    "Decision",
    "EmitEvent",
    "EnsurePrimary",
    "EnsureRouting",
    "EnsureServices",
    "EventType",
    "Observation",
    "Plan",
    "PlannedMetric",
    "Readiness",
    "Requeue",
    "RestoreRouting",
    "RunWebhook",
    "ScaleTarget",
    "SetWeights",
    "WebhookResult",
    "decide",
    "is_due",
    "plan",
]

#: Consecutive Error ticks tolerated before each further one counts as a failed tick.
ERROR_LIMIT: Final = 3
#: How often to look again while waiting on something that is not a tick (readiness, router).
POLL_SECONDS: Final = 5.0
#: Never ask to be woken sooner than this.
MIN_REQUEUE_SECONDS: Final = 1.0

# --------------------------------------------------------------------------------------------
# What the adapters observed
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether a Deployment serves its new template.

    ``ready`` means its rollout is complete: observedGeneration current, all replicas updated
    and available (Flagger's ``deployment_ready.go``). ``not_ready_since`` is when it last
    stopped being ready, if known; the deadline then counts from the later of that and the
    start of the current phase.
    """

    ready: bool
    ready_replicas: int = 0
    desired_replicas: int = 0
    not_ready_since: dt.datetime | None = None
    #: Replicas on the current template (None: not known, e.g. no Deployment).
    updated_replicas: int | None = None
    #: All replicas, old template included.
    total_replicas: int | None = None
    #: Whether the Deployment controller has seen the latest spec (observedGeneration).
    observed: bool = True

    def describe(self) -> str:
        """``2/3 replicas ready``, or what else keeps enough ready replicas from counting."""
        counts = f"{self.ready_replicas}/{self.desired_replicas} replicas ready"
        if (
            self.ready
            or self.updated_replicas is None
            or self.ready_replicas < self.desired_replicas
        ):
            return counts
        # Enough replicas are ready, yet the rollout is not done: say why, or "2/2 ready"
        # reads like a contradiction next to "waiting".
        if not self.observed:
            return f"{counts}, the new template not yet picked up by the Deployment controller"
        if self.updated_replicas is not None and self.updated_replicas < self.desired_replicas:
            return f"{counts}, {self.updated_replicas}/{self.desired_replicas} on the new template"
        if self.total_replicas is not None and self.total_replicas > self.desired_replicas:
            return f"{counts}, {self.total_replicas - self.desired_replicas} old still running"
        return f"{counts}, not all available yet"


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """What one webhook call returned: ``ok`` is a 2xx within the timeout."""

    ok: bool
    message: str = ""


@dataclass(frozen=True, slots=True)
class Controls:
    """Manual requests, from annotations the CLI sets.

    ``promote``, ``abort`` and ``retry`` are request ids (the annotation value, e.g. the time
    the CLI wrote it); each id is acted on once and then remembered in
    ``status.handledRequests``. ``paused`` is a level: present means paused.
    """

    promote: str | None = None
    abort: str | None = None
    retry: str | None = None
    paused: bool = False


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything ``decide`` knows about the world, gathered by the I/O layer.

    Attributes:
        revision: hash of the target's pod template and the config it references.
        target: readiness of the target Deployment (it runs the canary).
        primary: readiness of ``<target>-primary``.
        weights: live weights read back from the routing object; ``None`` while the router
            has not accepted the last write (or the object does not exist yet).
        primary_revision: the revision the primary's template carries, if recorded on it.
        canary_replicas: replicas the target runs during a run (its declared scale or the
            HPA's minimum, as the observer decides), and restores on deletion.
        metric_results: ``{metric name: {role: QueryResult}}`` for the metrics ``plan`` asked
            for; ``None`` when no query was run.
        webhook_results: ``{webhook name: WebhookResult}`` for the webhooks ``plan`` asked for.
        controls: manual promote/abort/retry requests and the pause flag.
        metrics_online: whether Prometheus answered its health check; when it did not, a due
            tick is judged as Error for every metric without running the queries.
        deleting: the Canary has a deletion timestamp.
        generation: ``metadata.generation``, copied to ``status.observedGeneration``.
    """

    revision: str
    target: Readiness
    primary: Readiness
    weights: Weights | None
    primary_revision: str | None = None
    canary_replicas: int = 1
    metric_results: Mapping[str, Mapping[str, QueryResult]] | None = None
    webhook_results: Mapping[str, WebhookResult] = field(default_factory=dict)
    controls: Controls = Controls()
    metrics_online: bool = True
    deleting: bool = False
    generation: int | None = None

    def with_results(
        self,
        metric_results: Mapping[str, Mapping[str, QueryResult]] | None = None,
        webhook_results: Mapping[str, WebhookResult] | None = None,
    ) -> Observation:
        """The same observation with the answers to a ``Plan``."""
        return replace(
            self,
            metric_results=metric_results,
            webhook_results=dict(webhook_results or {}),
        )


# --------------------------------------------------------------------------------------------
# Actions (data; the executor runs them in order, each idempotent)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnsurePrimary:
    """Create ``<target>-primary`` from the target's template if it does not exist yet.

    Never overwrites an existing primary. ``revision`` is recorded on it.
    """

    revision: str


@dataclass(frozen=True, slots=True)
class EnsureServices:
    """Create or repair the apex, ``-primary`` and ``-canary`` Services."""


@dataclass(frozen=True, slots=True)
class EnsureRouting:
    """Create, adopt or repair the routing object without changing its current weights."""


@dataclass(frozen=True, slots=True)
class SetWeights:
    """Write the traffic split to the routing object.

    Header cohorts (``analysis.match``) go 100 % to the canary whenever ``canary > 0``.
    """

    primary: int
    canary: int

    @classmethod
    def of(cls, weights: Weights) -> SetWeights:
        """The action for a split."""
        return cls(primary=weights.primary, canary=weights.canary)


@dataclass(frozen=True, slots=True)
class ScaleTarget:
    """Scale the target Deployment (the canary) to ``replicas``."""

    replicas: int


@dataclass(frozen=True, slots=True)
class CopyTemplateToPrimary:
    """Promote: copy the target's template onto the primary.

    The executor must copy only if the target still hashes to ``revision`` (a newer revision
    may have landed since the observation) and record ``revision`` on the primary.
    """

    revision: str


@dataclass(frozen=True, slots=True)
class RestoreRouting:
    """Give back the adopted routing object as it was before dabba (``revertOnDeletion``)."""


@dataclass(frozen=True, slots=True)
class RunWebhook:
    """Call every webhook of a notification type (``post-rollout``); the result is only logged."""

    hook_type: WebhookType


class EventType(StrEnum):
    """Kubernetes Event types."""

    NORMAL = "Normal"
    """Progress."""
    WARNING = "Warning"
    """Something failed or needs attention."""


@dataclass(frozen=True, slots=True)
class EmitEvent:
    """Post a Kubernetes Event on the Canary (and forward it to the ``event`` webhooks)."""

    type: EventType
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Requeue:
    """Evaluate this Canary again after ``after_seconds``."""

    after_seconds: float


Action = (
    EnsurePrimary
    | EnsureServices
    | EnsureRouting
    | SetWeights
    | ScaleTarget
    | CopyTemplateToPrimary
    | RestoreRouting
    | RunWebhook
    | EmitEvent
    | Requeue
)

# --------------------------------------------------------------------------------------------
# Plan and decision
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedMetric:
    """A metric to evaluate this call, with its rendered queries by role."""

    metric: MetricSpec
    queries: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Plan:
    """What the handler must fetch before ``decide``.

    Attributes:
        webhooks: webhooks to call now; answers go to ``Observation.webhook_results``.
        metrics: metrics whose queries to run; answers go to ``Observation.metric_results``.
        analysis_due: an analysis tick is due this call (even with no metrics configured).
    """

    webhooks: tuple[WebhookSpec, ...] = ()
    metrics: tuple[PlannedMetric, ...] = ()
    analysis_due: bool = False

    @property
    def needs_analysis(self) -> bool:
        """Whether any Prometheus query has to run."""
        return bool(self.metrics)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one evaluation.

    Attributes:
        status: the complete new status, to be written after the actions succeeded.
        actions: what to do, in order.
        reason: a short key for the log line (e.g. ``"Stepped"``, ``"Held"``).
    """

    status: CanaryStatus
    actions: tuple[Action, ...]
    reason: str

    @property
    def events(self) -> tuple[EmitEvent, ...]:
        """The Events among the actions."""
        return tuple(a for a in self.actions if isinstance(a, EmitEvent))

    @property
    def requeue_after(self) -> float | None:
        """Seconds until the next evaluation, if one is wanted."""
        return next((a.after_seconds for a in self.actions if isinstance(a, Requeue)), None)


#: Every phase change ``decide`` may make (staying in a phase is always allowed).
ALLOWED_TRANSITIONS: Final[Mapping[Phase | None, frozenset[Phase]]] = {
    # A new Canary whose primary is already ready is Initialized in its first evaluation.
    None: frozenset({Phase.INITIALIZING, Phase.INITIALIZED, Phase.TERMINATING}),
    Phase.INITIALIZING: frozenset({Phase.INITIALIZED, Phase.TERMINATING}),
    Phase.INITIALIZED: frozenset({Phase.WAITING, Phase.PROGRESSING, Phase.TERMINATING}),
    Phase.SUCCEEDED: frozenset({Phase.WAITING, Phase.PROGRESSING, Phase.TERMINATING}),
    Phase.FAILED: frozenset({Phase.WAITING, Phase.PROGRESSING, Phase.TERMINATING}),
    Phase.WAITING: frozenset(
        {
            Phase.PROGRESSING,
            Phase.PROMOTING,
            Phase.FAILED,
            Phase.INITIALIZED,
            Phase.TERMINATING,
        }
    ),
    Phase.PROGRESSING: frozenset(
        {
            Phase.WAITING,
            Phase.WAITING_PROMOTION,
            Phase.PROMOTING,
            Phase.FAILED,
            Phase.INITIALIZED,
            Phase.TERMINATING,
        }
    ),
    Phase.WAITING_PROMOTION: frozenset(
        {
            Phase.WAITING,
            Phase.PROGRESSING,
            Phase.PROMOTING,
            Phase.FAILED,
            Phase.INITIALIZED,
            Phase.TERMINATING,
        }
    ),
    Phase.PROMOTING: frozenset(
        {Phase.FINALISING, Phase.FAILED, Phase.WAITING, Phase.PROGRESSING, Phase.TERMINATING}
    ),
    Phase.FINALISING: frozenset({Phase.SUCCEEDED, Phase.TERMINATING}),
    Phase.TERMINATING: frozenset(),
}


def is_due(spec: CanarySpec, status: CanaryStatus, now: dt.datetime) -> bool:
    """Whether an analysis tick is due: one interval after ``lastTickTime`` (or never ticked)."""
    return status.last_tick_time is None or now >= status.last_tick_time + spec.analysis.interval


def plan(spec: CanarySpec, status: CanaryStatus, obs: Observation, now: dt.datetime) -> Plan:
    """Say which webhooks and metric queries this evaluation needs.

    Purely computational, no side effects. ``obs`` need not carry results yet.

    Args:
        spec: the Canary's spec.
        status: the stored status.
        obs: the observation (results are ignored).
        now: the current time, timezone-aware.

    Returns:
        The webhooks to call and the queries to run before ``decide``.
    """
    engine = _Engine(spec, status, obs, now, planning=True)
    engine.run()
    return Plan(
        webhooks=tuple(engine.planned_hooks.values()),
        metrics=tuple(engine.planned_metrics),
        analysis_due=engine.analysis_due,
    )


def decide(spec: CanarySpec, status: CanaryStatus, obs: Observation, now: dt.datetime) -> Decision:
    """Decide what to do: a purely computational function with no side effects.

    The result depends only on the arguments, so deciding again from the same inputs (for
    example after a crash before the status was written) yields the same decision.

    Args:
        spec: the Canary's spec.
        status: the stored status.
        obs: the observation, with the answers to ``plan(spec, status, obs, now)``.
        now: the current time, timezone-aware.

    Returns:
        The new status, the actions to run in order, and a short reason.
    """
    engine = _Engine(spec, status, obs, now, planning=False)
    engine.run()
    return engine.decision()


# --------------------------------------------------------------------------------------------
# The engine: one evaluation, walked once in planning mode and once in deciding mode
# --------------------------------------------------------------------------------------------

_PROMOTED_STATUS: Final = {
    Phase.INITIALIZED: "True",
    Phase.SUCCEEDED: "True",
    Phase.FAILED: "False",
}


def _short(revision: str | None) -> str:
    return (revision or "<none>")[:12]


def _seconds(delta: dt.timedelta) -> float:
    return delta.total_seconds()


class _Engine:
    """Mutable scratchpad of one evaluation; never escapes ``plan``/``decide``."""

    def __init__(
        self,
        spec: CanarySpec,
        status: CanaryStatus,
        obs: Observation,
        now: dt.datetime,
        *,
        planning: bool,
    ) -> None:
        self.spec = spec
        self.before = status
        self.status = status
        self.obs = obs
        self.now = now
        self.stamp = truncate(now)
        self.planning = planning
        self.ctx = QueryContext.for_canary(spec)
        self.steps = w.schedule(spec)
        self.actions: list[Action] = []
        self.reason = "Held"
        self.blocked: tuple[ReadyReason, str] | None = None
        self.phase_message: str | None = None
        self.wake: float | None = None
        # planning mode
        self.planned_hooks: dict[str, WebhookSpec] = {}
        self.planned_metrics: list[PlannedMetric] = []
        self.analysis_due = False

    # -- plumbing ---------------------------------------------------------------------------

    def emit(self, reason: str, message: str, *, warning: bool = False) -> None:
        kind = EventType.WARNING if warning else EventType.NORMAL
        self.actions.append(EmitEvent(kind, reason, message))

    def go(self, phase: Phase, message: str, *, warning: bool = False) -> None:
        """Enter ``phase`` (or re-enter it, for a restarted run) and say why."""
        self.status = self.status.evolve(phase=phase, last_transition_time=self.stamp)
        self.phase_message = message
        self.reason = phase.value
        self.emit(phase.value, message, warning=warning)

    def requeue_in(self, seconds: float) -> None:
        self.wake = seconds if self.wake is None else min(self.wake, seconds)

    def block(self, reason: ReadyReason, message: str) -> None:
        self.blocked = (reason, message)

    def set_weight(self, canary: int, why: str, *, force: bool = False) -> None:
        """Route ``canary`` percent to the canary; an Event when the weight changes."""
        old = self.status.canary_weight
        target = w.split(canary)
        already = next((a for a in reversed(self.actions) if isinstance(a, SetWeights)), None)
        if already != SetWeights.of(target) and (
            force or old != canary or self.obs.weights != target
        ):
            self.actions.append(SetWeights.of(target))
        if old != canary:
            self.emit("WeightChanged", f"canary weight {old}% → {canary}% {why}".rstrip())
        self.status = self.status.evolve(canary_weight=canary)

    @property
    def frozen(self) -> bool:
        return self.spec.suspend or self.obs.controls.paused

    @property
    def interval(self) -> float:
        return _seconds(self.spec.analysis.interval)

    # -- questions answered by the observation (or recorded, in planning mode) ---------------

    def hooks(self, hook_type: WebhookType) -> tuple[WebhookSpec, ...]:
        return self.spec.analysis.hooks(hook_type)

    def hook_result(self, hook: WebhookSpec) -> WebhookResult:
        if self.planning:
            self.planned_hooks.setdefault(hook.name, hook)
            return WebhookResult(ok=hook.type is not WebhookType.ROLLBACK)
        return self.obs.webhook_results.get(hook.name) or WebhookResult(
            ok=False, message="not called"
        )

    def gate_failures(self, hook_type: WebhookType) -> list[str]:
        """Names and messages of the hooks of a type that did not return 2xx."""
        failures = []
        for hook in self.hooks(hook_type):
            result = self.hook_result(hook)
            if not result.ok:
                failures.append(f"{hook.name} ({result.message or 'not 2xx'})")
        return failures

    def rollback_requested(self) -> str | None:
        """The rollback webhook that returned 2xx (it asks for a rollback), if any."""
        fired = [h.name for h in self.hooks(WebhookType.ROLLBACK) if self.hook_result(h).ok]
        return ", ".join(fired) if fired else None

    def analyse(self) -> TickResult | None:
        """Judge the due tick, or ``None`` when the handler did not run the queries."""
        self.analysis_due = True
        outcomes: list[MetricOutcome] = []
        for hook in self.hooks(WebhookType.ROLLOUT):
            result = self.hook_result(hook)
            outcomes.append(
                MetricOutcome(
                    metric=f"webhook/{hook.name}",
                    query=hook.url,
                    value=None,
                    threshold_text="2xx",
                    result=MetricResult.SUCCESSFUL if result.ok else MetricResult.FAILED,
                    reason=result.message or ("2xx" if result.ok else "failed"),
                )
            )
        metrics = self.spec.analysis.metrics
        if self.planning:
            self.planned_metrics = [PlannedMetric(m, queries_for(m, self.ctx)) for m in metrics]
            return tick_result(outcomes)
        if metrics and self.obs.metric_results is None:
            if self.obs.metrics_online:
                return None
            outcomes += [error_outcome(m, self.ctx, "Prometheus is unreachable") for m in metrics]
            return tick_result(outcomes)
        results = self.obs.metric_results or {}
        outcomes += [evaluate(m, self.ctx, results.get(m.name, {})) for m in metrics]
        return tick_result(outcomes)

    # -- the walk ---------------------------------------------------------------------------

    def run(self) -> None:
        phase = self.status.phase
        if self.obs.deleting:
            self.terminate()
            return
        if phase is None or phase is Phase.INITIALIZING:
            self.initialize()
            return
        if phase is Phase.TERMINATING:
            return
        self.actions += [EnsureServices(), EnsureRouting()]
        if self.handle_requests():
            return
        if self.frozen:
            self.freeze()
            return
        if phase.is_idle:
            self.idle()
        elif phase is Phase.WAITING:
            self.waiting()
        elif phase.in_analysis:
            self.progressing()
        elif phase is Phase.PROMOTING:
            self.promoting()
        else:
            self.finalising()

    def terminate(self) -> None:
        if self.status.phase is Phase.TERMINATING:
            return
        if self.spec.revert_on_deletion:
            self.actions += [RestoreRouting(), ScaleTarget(self.obs.canary_replicas)]
            self.go(
                Phase.TERMINATING,
                "Canary deleted: restoring the original routing and the target's "
                f"{self.obs.canary_replicas} replica(s)",
            )
        else:
            self.go(Phase.TERMINATING, "Canary deleted: leaving routing and the target as they are")

    def initialize(self) -> None:
        if self.status.phase is None:
            self.go(Phase.INITIALIZING, f"creating {self.spec.primary_name} and the Services")
        self.actions += [EnsurePrimary(self.obs.revision), EnsureServices()]
        if not self.obs.primary.ready:
            # Why no deadline here: nothing is being released yet, so there is nothing to
            # roll back; Ready=False says what we wait for.
            self.block(
                ReadyReason.PRIMARY_NOT_READY,
                f"waiting for {self.spec.primary_name}: {self.obs.primary.describe()}",
            )
            self.requeue_in(POLL_SECONDS)
            return
        promoted = self.obs.primary_revision or self.obs.revision
        self.actions.append(EnsureRouting())
        self.set_weight(0, "", force=self.obs.weights != PRIMARY_ONLY)
        self.actions.append(ScaleTarget(0))
        self.status = self.status.evolve(revision=promoted, last_promoted_revision=promoted)
        self.go(
            Phase.INITIALIZED,
            f"{self.spec.primary_name} ready with revision {_short(promoted)}; "
            "all traffic on the primary, target scaled to 0",
        )

    def handle_requests(self) -> bool:
        """Act on new manual requests; ``True`` when one decided this evaluation."""
        controls, handled, phase = self.obs.controls, self.status.handled, self.status.phase
        in_run = phase in (Phase.WAITING, Phase.PROGRESSING, Phase.WAITING_PROMOTION)
        if controls.abort and controls.abort != handled.abort:
            self.status = self.status.evolve(handled=replace(handled, abort=controls.abort))
            if in_run:
                self.rollback("aborted by user")
                return True
            self.emit("AbortIgnored", f"abort ignored: no run in progress (phase {phase})")
        handled = self.status.handled
        if controls.promote and controls.promote != handled.promote:
            self.status = self.status.evolve(handled=replace(handled, promote=controls.promote))
            if in_run and self.obs.revision == self.status.revision:
                self.promote("promoted manually, analysis skipped")
                return True
            self.emit(
                "PromoteIgnored",
                f"promote ignored: no run of the current revision in progress (phase {phase})",
            )
        handled = self.status.handled
        if controls.retry and controls.retry != handled.retry:
            retryable = (
                phase is Phase.FAILED and self.obs.revision == self.status.last_failed_revision
            )
            if retryable and self.frozen:
                return False  # kept pending: suspend/pause forbid new runs; runs on resume
            self.status = self.status.evolve(handled=replace(handled, retry=controls.retry))
            if retryable:
                self.start_run(f"retry of failed revision {_short(self.obs.revision)} requested")
                return True
            self.emit("RetryIgnored", "retry ignored: the current revision has not failed")
        return False

    def freeze(self) -> None:
        if self.spec.suspend:
            self.block(ReadyReason.SUSPENDED, "spec.suspend is set: no new run, weights held")
        else:
            self.block(ReadyReason.PAUSED, "paused: no new run, weights held until resumed")
        self.requeue_in(self.interval)

    # -- idle and run start -----------------------------------------------------------------

    def idle(self) -> None:
        self.requeue_in(self.interval)
        self.correct_drift(PRIMARY_ONLY)
        revision = self.obs.revision
        if revision in (self.status.last_promoted_revision, self.status.last_failed_revision):
            return
        self.start_run(f"new revision {_short(revision)} detected")

    def correct_drift(self, expected: Weights) -> bool:
        """Rewrite drifted weights; ``True`` when the router does not (yet) show ``expected``."""
        live = self.obs.weights
        if live is None:
            self.block(
                ReadyReason.ROUTER_NOT_READY, "the routing object has not accepted the weights yet"
            )
            self.requeue_in(POLL_SECONDS)
            return True
        if live == expected:
            return False
        self.actions.append(SetWeights.of(expected))
        self.emit(
            "WeightDrift", f"routing showed {live}, expected {expected}: rewritten", warning=True
        )
        return True

    def record_superseded(self, reason: str) -> None:
        if self.status.revision is None:
            return
        self.status = self.status.with_run_recorded(
            RunRecord(
                revision=self.status.revision,
                result=RunResult.SUPERSEDED,
                started=self.status.run_start_time or self.stamp,
                finished=self.stamp,
                reason=reason,
            )
        )

    def start_run(self, why: str) -> None:
        """Begin (or restart) a run of ``obs.revision`` from the first step."""
        self.status = self.status.evolve(
            revision=self.obs.revision,
            step_index=0,
            failed_checks=0,
            inconclusive_checks=0,
            checks_at_weight=0,
            consecutive_errors=0,
            last_tick_time=None,
            run_start_time=self.stamp,
            last_analysis=(),
        )
        self.set_weight(0, "(new run)")
        if not self.spec.skip_analysis and self.hooks(WebhookType.CONFIRM_ROLLOUT):
            failures = self.gate_failures(WebhookType.CONFIRM_ROLLOUT)
            if failures:
                self.actions.append(ScaleTarget(0))
                self.go(
                    Phase.WAITING,
                    f"{why}; waiting for confirm-rollout: {', '.join(failures)}",
                )
                self.requeue_in(self.interval)
                return
        self.begin_progressing(why)

    def begin_progressing(self, why: str) -> None:
        replicas = self.obs.canary_replicas
        self.actions.append(ScaleTarget(replicas))
        self.go(
            Phase.PROGRESSING,
            f"{why}: canary scaled to {replicas} replica(s); traffic moves once it is ready",
        )
        self.requeue_in(POLL_SECONDS)

    def revision_changed(self) -> bool:
        """Handle a target that moved on mid-run; ``True`` when it did."""
        revision = self.obs.revision
        if revision == self.status.revision:
            return False
        if revision == self.status.last_promoted_revision:
            reason = f"target reverted to the promoted revision {_short(revision)}"
            self.record_superseded(reason)
            self.set_weight(0, "(run stopped)", force=True)
            self.actions.append(ScaleTarget(0))
            self.status = self.status.evolve(
                revision=revision, step_index=0, checks_at_weight=0, last_tick_time=None
            )
            self.go(Phase.INITIALIZED, f"run of {_short(self.before.revision)} stopped: {reason}")
            self.requeue_in(self.interval)
            return True
        reason = f"new revision {_short(revision)} replaced {_short(self.status.revision)} mid-run"
        self.record_superseded(reason)
        self.emit("Restarted", f"{reason}: analysis restarts from the first step")
        self.start_run(reason)
        return True

    # -- Waiting ----------------------------------------------------------------------------

    def waiting(self) -> None:
        if self.revision_changed():
            return
        fired = self.rollback_requested()
        if fired:
            self.rollback(f"rollback webhook {fired} asked for it")
            return
        failures = self.gate_failures(WebhookType.CONFIRM_ROLLOUT)
        if failures:
            self.requeue_in(self.interval)
            return
        self.begin_progressing(
            f"confirm-rollout passed for revision {_short(self.status.revision)}"
        )

    # -- Progressing and WaitingPromotion ---------------------------------------------------

    def progressing(self) -> None:
        if self.revision_changed():
            return
        if not self.spec.skip_analysis:
            fired = self.rollback_requested()
            if fired:
                self.rollback(f"rollback webhook {fired} asked for it")
                return
        if self.status.phase is Phase.PROGRESSING and self.status.canary_weight == 0:
            if self.workloads_ready() and not self.router_pending():
                self.first_step()
            return
        # Why judge before anything else: the metrics describe the canary's quality over the
        # interval that just ended, whatever its readiness or the router show now. Judging
        # first also makes a re-evaluation after a crash re-derive the step (or rollback) it
        # had decided, instead of mistaking its own weight write for drift.
        if not self.spec.skip_analysis:
            self.tick()
        if self.status.phase is not Phase.FAILED:
            self.move_forward()

    def move_forward(self) -> None:
        """After the tick: step, promote or hold, once workloads and router allow it."""
        if not self.workloads_ready() or self.router_pending():
            return
        if self.spec.skip_analysis:
            self.promote("skipAnalysis is set")
            return
        earned = self.status.checks_at_weight >= self.spec.analysis.checks_per_step
        if self.status.phase is Phase.PROGRESSING:
            if earned:
                self.advance()
                return
        elif earned and not self.gate_failures(WebhookType.CONFIRM_PROMOTION):
            # Why ``earned``: a tick that failed while the gate was shut resets the passing
            # window, and an approval must not promote over it; the last ``checksPerStep``
            # ticks before any promotion are passes.
            self.promote("confirm-promotion passed")
            return
        if self.correct_drift(w.split(self.status.canary_weight)):
            # The next judged interval starts from the corrected weights.
            self.status = self.status.evolve(last_tick_time=self.stamp)

    def router_pending(self) -> bool:
        """Hold while the router has not accepted the last write (``weights is None``)."""
        if self.obs.weights is not None:
            return False
        self.block(
            ReadyReason.ROUTER_NOT_READY, "the routing object has not accepted the weights yet"
        )
        self.requeue_in(POLL_SECONDS)
        return True

    def deadline_left(self, readiness: Readiness) -> dt.timedelta:
        phase_start = self.status.last_transition_time or self.now
        since = max(readiness.not_ready_since or phase_start, phase_start)
        return self.spec.progress_deadline - (self.now - since)

    def workloads_ready(self) -> bool:
        """Hold while the canary or primary is not ready; roll back past the deadline."""
        target = self.obs.target
        if not target.ready and target.desired_replicas == 0:
            # Why not wait for the deadline: nothing will scale it up again. This is also what
            # a crash between a rollback's actions and its status write looks like afterwards.
            self.rollback("the target was scaled to 0 during the run")
            return False
        for name, readiness, reason in (
            ("canary", target, ReadyReason.CANARY_NOT_READY),
            (self.spec.primary_name, self.obs.primary, ReadyReason.PRIMARY_NOT_READY),
        ):
            if readiness.ready:
                continue
            left = self.deadline_left(readiness)
            if left <= dt.timedelta(0):
                self.rollback(
                    f"{name} not ready within progressDeadlineSeconds "
                    f"({self.spec.progress_deadline_seconds}s): {readiness.describe()}"
                )
                return False
            self.block(
                reason,
                f"waiting for {name}: {readiness.describe()}, {left.total_seconds():.0f}s left",
            )
            self.requeue_in(max(MIN_REQUEUE_SECONDS, min(POLL_SECONDS, _seconds(left))))
            return False
        return True

    def first_step(self) -> None:
        """Canary ready at weight 0: pre-rollout webhooks, then the first weight."""
        if self.spec.skip_analysis:
            self.promote("skipAnalysis is set and the canary is ready")
            return
        if self.hooks(WebhookType.PRE_ROLLOUT):
            if not is_due(self.spec, self.status, self.now):
                self.requeue_until_due()
                return
            failures = self.gate_failures(WebhookType.PRE_ROLLOUT)
            if failures:
                self.status = self.status.evolve(last_tick_time=self.stamp)
                self.requeue_in(self.interval)
                self.failed_check(f"pre-rollout webhook {', '.join(failures)} failed")
                return
        self.status = self.status.evolve(
            step_index=0, checks_at_weight=0, last_tick_time=self.stamp
        )
        self.set_weight(self.steps[0], "(canary ready)")
        self.reason = "Stepped"
        self.requeue_in(self.interval)

    def requeue_until_due(self) -> None:
        last = self.status.last_tick_time
        left = (
            self.interval
            if last is None
            else _seconds(last + self.spec.analysis.interval - self.now)
        )
        self.requeue_in(max(MIN_REQUEUE_SECONDS, left))

    def tick(self) -> None:
        """Judge the interval that just ended, if one is due: counters only, no step."""
        if not is_due(self.spec, self.status, self.now):
            self.requeue_until_due()
            return
        result = self.analyse()
        if result is None:
            # The handler did not run the queries: judge nothing, look again soon.
            self.requeue_in(POLL_SECONDS)
            return
        self.status = self.status.evolve(
            last_tick_time=self.stamp,
            last_analysis=tuple(o.to_record(self.stamp) for o in result.outcomes),
        )
        self.requeue_in(self.interval)
        self.reason = f"Tick{result.result.value}"
        if result.result is MetricResult.SUCCESSFUL:
            self.status = self.status.evolve(
                checks_at_weight=self.status.checks_at_weight + 1,
                consecutive_errors=0,
                inconclusive_checks=0,
            )
        elif result.result is MetricResult.INCONCLUSIVE:
            self.inconclusive(result)
        elif result.result is MetricResult.ERROR:
            self.errored(result)
        else:
            self.status = self.status.evolve(
                checks_at_weight=0, consecutive_errors=0, inconclusive_checks=0
            )
            self.failed_check(result.summary())

    def advance(self) -> None:
        """The step collected its passing ticks: next weight, or promotion after the last."""
        checks, needed = self.status.checks_at_weight, self.spec.analysis.checks_per_step
        index = self.status.step_index
        following = w.next_weight(self.steps, index)
        if following is not None:
            self.status = self.status.evolve(
                step_index=index + 1, checks_at_weight=0, last_tick_time=self.stamp
            )
            self.set_weight(following, f"({checks}/{needed} checks passed)")
            self.reason = "Stepped"
            self.requeue_in(self.interval)
            return
        failures = (
            self.gate_failures(WebhookType.CONFIRM_PROMOTION)
            if self.hooks(WebhookType.CONFIRM_PROMOTION)
            else []
        )
        if failures:
            self.go(
                Phase.WAITING_PROMOTION,
                f"all {len(self.steps)} steps passed at {self.status.canary_weight}%; "
                f"waiting for confirm-promotion: {', '.join(failures)}",
            )
            return
        self.promote(f"all {len(self.steps)} steps passed ({checks}/{needed} checks at the last)")

    def inconclusive(self, result: TickResult) -> None:
        count = self.status.inconclusive_checks + 1
        self.status = self.status.evolve(
            inconclusive_checks=count, checks_at_weight=0, consecutive_errors=0
        )
        limit = self.spec.analysis.max_inconclusive
        shown = f"{count}/{limit}" if limit else f"{count}, no limit"
        self.emit("CheckInconclusive", f"{result.summary()} (inconclusive {shown} in a row)")
        if limit and count >= limit:
            self.rollback(f"{count} inconclusive checks in a row: {result.summary()}")

    def errored(self, result: TickResult) -> None:
        count = self.status.consecutive_errors + 1
        self.status = self.status.evolve(
            consecutive_errors=count, checks_at_weight=0, inconclusive_checks=0
        )
        if count < ERROR_LIMIT:
            self.emit(
                "CheckError",
                f"{result.summary()} (error {count} in a row; "
                f"counted as failed from {ERROR_LIMIT})",
                warning=True,
            )
            return
        self.failed_check(f"{result.summary()} ({count} errors in a row)")

    def failed_check(self, message: str) -> None:
        failed = self.status.failed_checks + 1
        threshold = self.spec.analysis.threshold
        self.status = self.status.evolve(failed_checks=failed)
        self.emit("CheckFailed", f"{message} (failed checks {failed}/{threshold})", warning=True)
        if failed >= threshold:
            self.rollback(f"{message} ({failed} failed checks)")

    # -- promotion ----------------------------------------------------------------------------

    def promote(self, why: str) -> None:
        revision = self.status.revision or self.obs.revision
        # Why the check: after a crash between the copy and the status write, the evaluation
        # that re-derives the promotion must not copy (and roll the primary) a second time.
        if self.obs.primary_revision != revision:
            self.actions.append(CopyTemplateToPrimary(revision))
        self.go(
            Phase.PROMOTING,
            f"promoting revision {_short(revision)} to {self.spec.primary_name}: {why}",
        )
        self.requeue_in(POLL_SECONDS)

    def promoting(self) -> None:
        revision = self.status.revision or self.obs.revision
        if self.obs.primary_revision is not None and self.obs.primary_revision != revision:
            if self.obs.revision != revision:
                # The copy never landed and the target moved on: nothing left to promote.
                self.record_superseded(f"new revision {_short(self.obs.revision)} before promotion")
                self.start_run(f"new revision {_short(self.obs.revision)} detected")
                return
            self.actions.append(CopyTemplateToPrimary(revision))
            self.requeue_in(POLL_SECONDS)
            return
        primary = self.obs.primary
        if not primary.ready:
            left = self.deadline_left(primary)
            if left <= dt.timedelta(0):
                self.rollback(
                    f"{self.spec.primary_name} not ready within progressDeadlineSeconds "
                    f"({self.spec.progress_deadline_seconds}s) after promotion: "
                    f"{primary.describe()}"
                )
                return
            self.block(
                ReadyReason.PRIMARY_NOT_READY,
                f"waiting for {self.spec.primary_name}: {primary.describe()}",
            )
            self.requeue_in(max(MIN_REQUEUE_SECONDS, min(POLL_SECONDS, _seconds(left))))
            return
        self.set_weight(0, "(primary runs the new revision)")
        self.go(
            Phase.FINALISING,
            f"{self.spec.primary_name} ready with revision {_short(revision)}: "
            "all traffic back on the primary",
        )
        self.requeue_in(POLL_SECONDS)

    def finalising(self) -> None:
        if self.correct_drift(PRIMARY_ONLY):
            return  # wait for the router to show 100/0 before the canary pods go away
        revision = self.status.revision or self.obs.revision
        self.actions += [ScaleTarget(0), RunWebhook(WebhookType.POST_ROLLOUT)]
        self.status = self.status.evolve(
            last_promoted_revision=revision, canary_weight=0
        ).with_run_recorded(
            RunRecord(
                revision=revision,
                result=RunResult.SUCCEEDED,
                started=self.status.run_start_time or self.stamp,
                finished=self.stamp,
                reason="promoted",
            )
        )
        self.go(
            Phase.SUCCEEDED,
            f"promoted revision {_short(revision)}: primary serves 100%, target scaled to 0",
        )
        self.requeue_in(self.interval)

    # -- rollback -----------------------------------------------------------------------------

    def rollback(self, why: str) -> None:
        """Fail the run now: 100 % primary and target at zero, in this decision."""
        revision = self.status.revision or self.obs.revision
        self.set_weight(0, "(rollback)", force=True)
        # Why first: traffic must leave a bad canary even if repairing the Services or the
        # routing object fails; the executor stops at the first failing action.
        urgent: list[Action] = [SetWeights.of(PRIMARY_ONLY), ScaleTarget(0)]
        self.actions = [*urgent, *(a for a in self.actions if a not in urgent)]
        self.actions.append(RunWebhook(WebhookType.POST_ROLLOUT))
        self.status = self.status.evolve(
            last_failed_revision=revision, checks_at_weight=0
        ).with_run_recorded(
            RunRecord(
                revision=revision,
                result=RunResult.FAILED,
                started=self.status.run_start_time or self.stamp,
                finished=self.stamp,
                reason=why,
            )
        )
        self.go(Phase.FAILED, f"rolled back: {why}", warning=True)
        self.requeue_in(self.interval)

    # -- result -------------------------------------------------------------------------------

    def decision(self) -> Decision:
        status = self.status
        if self.obs.generation is not None:
            status = status.evolve(observed_generation=self.obs.generation)
        status = self.with_conditions(status)  # may add Events: before copying the actions
        actions = list(self.actions)
        if self.wake is not None and status.phase is not Phase.TERMINATING:
            actions.append(Requeue(max(MIN_REQUEUE_SECONDS, round(self.wake, 3))))
        return Decision(status=status, actions=tuple(actions), reason=self.reason)

    def with_conditions(self, status: CanaryStatus) -> CanaryStatus:
        phase = status.phase
        conditions = status.conditions
        if phase is not None:
            previous = get_condition(conditions, ConditionType.PROMOTED)
            message = self.phase_message or (previous.message if previous else phase.value)
            conditions = set_condition(
                conditions,
                type_=ConditionType.PROMOTED,
                status=_PROMOTED_STATUS.get(phase, "Unknown"),
                reason=phase.value,
                message=message,
                now=self.now,
            )
        reason, message = self.blocked or (ReadyReason.READY, "nothing blocks the canary")
        before = get_condition(conditions, ConditionType.READY)
        if phase is not Phase.TERMINATING:
            conditions = set_condition(
                conditions,
                type_=ConditionType.READY,
                status="True" if reason is ReadyReason.READY else "False",
                reason=reason.value,
                message=message,
                now=self.now,
            )
            # Why an Event only on a change of reason: a hold lasts many evaluations and
            # should be announced once, not on every requeue.
            if before is None or before.reason != reason.value:
                if reason is not ReadyReason.READY:
                    self.actions.append(
                        EmitEvent(
                            EventType.WARNING if reason in _WARN else EventType.NORMAL,
                            reason.value,
                            message,
                        )
                    )
                elif before is not None:
                    self.actions.append(
                        EmitEvent(
                            EventType.NORMAL, reason.value, f"no longer blocked ({before.reason})"
                        )
                    )
        return status.evolve(conditions=conditions)


_WARN: Final = frozenset(
    {ReadyReason.PRIMARY_NOT_READY, ReadyReason.CANARY_NOT_READY, ReadyReason.ROUTER_NOT_READY}
)
