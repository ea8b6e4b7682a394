"""The Canary resource as values: spec, status, phases and results (pure).

A ``Canary`` names a Deployment (the *target*). dabba keeps a copy of it, ``<target>-primary``,
serving stable traffic, and every new *revision* of the target (a change of its pod template or
of the config it references) is run beside the primary, judged step by step, then promoted onto
the primary or rolled back (SPEC §1.1).

This module turns the Kubernetes dicts into frozen dataclasses and back:

- ``CanarySpec.from_k8s`` reads ``.spec`` and applies the runtime defaults that the CRD cannot
  express as schema defaults (``service.name`` = ``targetRef.name``; the ``[5, 10, 25, 50]``
  schedule when neither ``stepWeights`` nor ``stepWeight`` is given; per-metric defaults such as
  ``confidence: 0.95``). Anything the operator cannot act on raises ``SpecError``.
- ``CanaryStatus.from_k8s``/``to_k8s`` round-trip ``.status`` exactly. Times are stored with
  whole seconds, so a status that went through the API server compares equal to the one that
  was written (a restarted operator must take the same decisions; cert-manager PR 4399 is the
  same lesson for renewal times).

Durations use one grammar everywhere (the CRD's): whole numbers with the units ``h``, ``m``,
``s``, ``ms``, largest first, e.g. ``90s``, ``1m30s``, ``500ms``. It is the subset that both Go's
``time.ParseDuration`` (CEL's ``duration()``) and PromQL range selectors accept, so a value the
API server admits is rendered into ``{{ interval }}`` unchanged.

Status fields beyond SPEC §1.5 (the state machine needs them to be restart-safe):
``checksAtWeight``, ``consecutiveErrors``, ``runStartTime``, ``lastTickTime`` and
``handledRequests`` (see ``CanaryStatus``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Final

from dabba.errors import SpecError

# --------------------------------------------------------------------------------------------
# Durations and times
# --------------------------------------------------------------------------------------------

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")


def parse_duration(text: str) -> dt.timedelta:
    """Parse a Go-style duration restricted to whole ``h``, ``m``, ``s``, ``ms`` units.

    Args:
        text: e.g. ``"60s"``, ``"1m30s"``, ``"500ms"``, ``"2h"``.

    Returns:
        The duration.

    Raises:
        SpecError: the text is empty, has fractions, unknown units or units out of order.
    """
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not text or match is None or not any(match.groups()):
        raise SpecError(
            f"{text!r} is not a duration: use whole numbers with units h, m, s, ms, largest "
            "first (e.g. 30s, 1m30s, 500ms)"
        )
    hours, minutes, seconds, millis = (int(g) if g else 0 for g in match.groups())
    return dt.timedelta(hours=hours, minutes=minutes, seconds=seconds, milliseconds=millis)


def format_duration(value: dt.timedelta) -> str:
    """Format a duration in the same grammar, largest unit first (``90s`` → ``"1m30s"``).

    Sub-millisecond parts are dropped; a zero duration is ``"0s"``.
    """
    total_ms = int(value / dt.timedelta(milliseconds=1))
    if total_ms <= 0:
        return "0s"
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    parts = [(hours, "h"), (minutes, "m"), (seconds, "s"), (millis, "ms")]
    return "".join(f"{n}{unit}" for n, unit in parts if n)


def format_time(value: dt.datetime) -> str:
    """RFC 3339 in UTC with whole seconds, as Kubernetes writes times."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    """Parse an RFC 3339 time as written by ``format_time`` (or by the API server)."""
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def truncate(value: dt.datetime) -> dt.datetime:
    """Drop sub-second precision: what is stored in status is what is compared later."""
    return value.astimezone(dt.UTC).replace(microsecond=0)


# --------------------------------------------------------------------------------------------
# Enumerations
# --------------------------------------------------------------------------------------------


class Router(StrEnum):
    """How traffic is shifted between primary and canary."""

    ISTIO = "istio"
    """VirtualService weights, DestinationRules for both hosts."""
    GATEWAYAPI = "gatewayapi"
    """HTTPRoute weighted backendRefs (Linkerd, Envoy Gateway, Istio, Cilium, Contour)."""
    KUBERNETES = "kubernetes"
    """No weights: blue/green by switching the apex Service selector."""


class Mesh(StrEnum):
    """Whose telemetry the builtin metric queries read (see ``analysis`` for the labels)."""

    ISTIO = "istio"
    """``istio_requests_total`` and ``istio_request_duration_milliseconds_bucket``."""
    LINKERD = "linkerd"
    """``response_total`` and ``response_latency_ms_bucket`` (linkerd-proxy, inbound)."""
    ENVOY = "envoy"
    """``envoy_cluster_upstream_rq`` and ``envoy_cluster_upstream_rq_time_bucket``."""


#: Mesh whose metrics the builtins read when ``analysis.mesh`` is not set. Why gatewayapi →
#: envoy: most Gateway API implementations are Envoy-based (Envoy Gateway, Contour, Istio's
#: gateways, Cilium). The kubernetes router has no mesh of its own; Istio is the commonest.
DEFAULT_MESH: Final[Mapping[Router, Mesh]] = {
    Router.ISTIO: Mesh.ISTIO,
    Router.GATEWAYAPI: Mesh.ENVOY,
    Router.KUBERNETES: Mesh.ISTIO,
}


class Phase(StrEnum):
    """Phase of the current or last run (``status.phase``)."""

    INITIALIZING = "Initializing"
    """Creating the primary Deployment and the Services; waiting for the primary to be ready."""
    INITIALIZED = "Initialized"
    """Primary, Services and routing are in place; no run in progress."""
    WAITING = "Waiting"
    """A new revision waits for its confirm-rollout webhooks; no traffic moved yet."""
    PROGRESSING = "Progressing"
    """The canary is scaled up and takes a growing share of traffic, judged every tick."""
    WAITING_PROMOTION = "WaitingPromotion"
    """The schedule is done; waiting for confirm-promotion webhooks while analysis continues."""
    PROMOTING = "Promoting"
    """The canary's template was copied onto the primary; waiting for the primary to be ready."""
    FINALISING = "Finalising"
    """Traffic goes back 100 % to the primary; the target is then scaled to zero."""
    SUCCEEDED = "Succeeded"
    """The revision was promoted; the primary runs it and the target is at zero."""
    FAILED = "Failed"
    """The revision was rolled back: 100 % on the primary, target at zero."""
    TERMINATING = "Terminating"
    """The Canary is being deleted; routing and the target's scale are restored if asked."""

    @property
    def is_idle(self) -> bool:
        """No run in progress: a new revision may start one."""
        return self in _IDLE

    @property
    def in_analysis(self) -> bool:
        """Traffic is split and ticks are judged."""
        return self in {Phase.PROGRESSING, Phase.WAITING_PROMOTION}


_IDLE: Final = frozenset({Phase.INITIALIZED, Phase.SUCCEEDED, Phase.FAILED})


class MetricResult(StrEnum):
    """Verdict on one metric for one tick (Argo Rollouts' four results)."""

    SUCCESSFUL = "Successful"
    """The value was measured and is within its threshold."""
    FAILED = "Failed"
    """The value was measured and breaks its threshold."""
    INCONCLUSIVE = "Inconclusive"
    """Nothing to judge: no data, NaN, or fewer canary requests than ``minRequests``."""
    ERROR = "Error"
    """The value could not be measured: Prometheus unreachable or the query is invalid."""


class BuiltinMetric(StrEnum):
    """Metrics whose queries dabba writes (per mesh) instead of the user."""

    REQUEST_SUCCESS_RATE = "request-success-rate"
    """Percentage of non-5xx canary requests; ``thresholdRange`` (default ``min: 99``)."""
    REQUEST_DURATION = "request-duration"
    """Canary p99 latency in milliseconds; ``thresholdRange`` (default ``max: 500``)."""
    ERROR_RATE_VS_PRIMARY = "error-rate-vs-primary"
    """Two-proportion test of canary vs primary 5xx ratio; ``confidence`` and ``tolerance``."""
    LATENCY_VS_PRIMARY = "latency-vs-primary"
    """Canary p99 / primary p99 must stay below ``maxRatio``."""
    SLO_BURN_RATE = "slo-burn-rate"
    """Canary error ratio / error budget must stay below ``maxBurnRate``."""


class WebhookType(StrEnum):
    """When a webhook is called (SPEC §1.4)."""

    CONFIRM_ROLLOUT = "confirm-rollout"
    """Gate before a run starts; the run waits in ``Waiting`` until it returns 2xx."""
    PRE_ROLLOUT = "pre-rollout"
    """Once the canary is ready, before traffic moves; a failure is a failed check."""
    ROLLOUT = "rollout"
    """Every analysis tick, before the metrics; a failure fails the tick."""
    CONFIRM_PROMOTION = "confirm-promotion"
    """Gate before promotion; the run waits in ``WaitingPromotion`` (analysis continues)."""
    POST_ROLLOUT = "post-rollout"
    """After the run succeeded or failed; the result is only logged."""
    ROLLBACK = "rollback"
    """Polled during a run: 2xx means roll back now."""
    EVENT = "event"
    """Every Event dabba emits, fire and forget."""


# --------------------------------------------------------------------------------------------
# Spec
# --------------------------------------------------------------------------------------------

DEFAULT_INTERVAL: Final = dt.timedelta(seconds=60)
MIN_INTERVAL: Final = dt.timedelta(seconds=5)
DEFAULT_STEP_WEIGHTS: Final = (5, 10, 25, 50)
DEFAULT_MAX_WEIGHT: Final = 50
DEFAULT_CHECKS_PER_STEP: Final = 1
DEFAULT_THRESHOLD: Final = 5
DEFAULT_MIN_REQUESTS: Final = 20
DEFAULT_MAX_INCONCLUSIVE: Final = 10
DEFAULT_PROGRESS_DEADLINE_SECONDS: Final = 600
DEFAULT_WEBHOOK_TIMEOUT: Final = dt.timedelta(seconds=10)

DEFAULT_CONFIDENCE: Final = 0.95
#: Percentage points by which the canary's 5xx ratio may exceed the primary's. Why 1.0 and not 0:
#: a significance test alone flags differences that are real but harmless once traffic is large
#: (0.1 % vs 0.15 % over 100k requests is "significant"), and 1 point is the same budget that
#: the default ``request-success-rate`` floor (99 %) grants. Set 0 to fail on any significant
#: increase.
DEFAULT_TOLERANCE: Final = 1.0
DEFAULT_MAX_RATIO: Final = 1.2
#: The SRE workbook's fast-burn page: 2 % of a 30-day budget spent in one hour.
DEFAULT_MAX_BURN_RATE: Final = 14.4
DEFAULT_SUCCESS_RATE_MIN: Final = 99.0
DEFAULT_DURATION_MAX_MS: Final = 500.0

#: Variables a metric query may use, as ``{{ name }}`` (whitespace inside the braces is optional).
TEMPLATE_VARIABLES: Final = frozenset(
    {
        "name",  # the Canary's name
        "namespace",  # the Canary's (and target's) namespace
        "target",  # the target Deployment; it runs the canary
        "canary",  # same as target, reads better next to primary
        "primary",  # <target>-primary
        "service",  # the apex Service
        "canary_service",  # <service>-canary
        "primary_service",  # <service>-primary
        "port",  # service.port
        "interval",  # the metric's range (metrics[].interval or analysis.interval)
    }
)
TEMPLATE_VARIABLE: Final = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")


def _get(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = data.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) and kind is not bool:
        raise SpecError(f"{key} must be {_kind_name(kind)}, got {value!r}")
    if not isinstance(value, kind):
        raise SpecError(f"{key} must be {_kind_name(kind)}, got {value!r}")
    return value


_KIND_NAMES: Final[Mapping[type, str]] = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
    list: "a list",
    dict: "an object",
}


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if set(kinds) == {int, float}:
        return "a number"
    return " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)


def _number(data: Mapping[str, Any], key: str, default: float | None) -> float | None:
    value = _get(data, key, (int, float), default)
    return None if value is None else float(value)


def _strings(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    values = _get(data, key, list, [])
    if not all(isinstance(v, str) for v in values):
        raise SpecError(f"{key} must be a list of strings")
    return tuple(values)


@dataclass(frozen=True, slots=True)
class TargetRef:
    """The Deployment the user owns."""

    name: str
    api_version: str = "apps/v1"
    kind: str = "Deployment"


@dataclass(frozen=True, slots=True)
class GatewayRef:
    """A Gateway API parentRef of the HTTPRoute."""

    name: str
    namespace: str | None = None
    section_name: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """The apex Service and the routing object's hosts."""

    name: str
    port: int
    target_port: int | str | None = None
    hosts: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    gateway_refs: tuple[GatewayRef, ...] = ()

    @property
    def primary_name(self) -> str:
        """``<service>-primary``: selects the primary's pods."""
        return f"{self.name}-primary"

    @property
    def canary_name(self) -> str:
        """``<service>-canary``: selects the target's pods."""
        return f"{self.name}-canary"


@dataclass(frozen=True, slots=True)
class StringMatch:
    """How one header value is matched: exactly one of exact, prefix or regex."""

    kind: str  # "exact" | "prefix" | "regex"
    value: str


@dataclass(frozen=True, slots=True)
class Cohort:
    """A header cohort routed 100 % to the canary during a run (``analysis.match[]``).

    Headers inside one cohort are ANDed; cohorts are ORed.
    """

    headers: tuple[tuple[str, StringMatch], ...]

    def to_k8s(self) -> dict[str, Any]:
        """The ``{headers: {name: {exact: value}}}`` shape of the spec."""
        return {"headers": {name: {m.kind: m.value} for name, m in self.headers}}


@dataclass(frozen=True, slots=True)
class ThresholdRange:
    """Inclusive range a metric value must stay in."""

    min: float | None = None
    max: float | None = None

    def contains(self, value: float) -> bool:
        """Whether ``value`` passes (bounds inclusive)."""
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One check evaluated every tick (SPEC §1.3).

    Builtin-specific knobs carry their operator defaults, so consumers never repeat them.
    ``interval`` is the range of the metric's queries; ``None`` means ``analysis.interval``.
    """

    name: str
    query: str | None = None
    interval: dt.timedelta | None = None
    threshold_range: ThresholdRange | None = None
    confidence: float = DEFAULT_CONFIDENCE
    tolerance: float = DEFAULT_TOLERANCE
    max_ratio: float = DEFAULT_MAX_RATIO
    objective: float | None = None
    max_burn_rate: float = DEFAULT_MAX_BURN_RATE

    @property
    def builtin(self) -> BuiltinMetric | None:
        """The builtin this metric is, or ``None`` for a custom query."""
        try:
            return BuiltinMetric(self.name)
        except ValueError:
            return None

    @classmethod
    def from_k8s(cls, data: Mapping[str, Any]) -> MetricSpec:
        """Read one ``analysis.metrics[]`` entry, applying the per-builtin defaults."""
        name = _get(data, "name", str, "")
        if not name:
            raise SpecError("every metric needs a name")
        query = _get(data, "query", str, None)
        interval_text = _get(data, "interval", str, None)
        interval = parse_duration(interval_text) if interval_text is not None else None
        if interval is not None and interval < MIN_INTERVAL:
            raise SpecError(f"metric {name}: interval must be at least 5s, got {interval_text}")
        raw_range = _get(data, "thresholdRange", dict, None)
        threshold_range = (
            ThresholdRange(min=_number(raw_range, "min", None), max=_number(raw_range, "max", None))
            if raw_range is not None
            else None
        )
        builtin = _builtin(name)
        if builtin is None:
            _check_custom(name, query, threshold_range)
        elif query is not None:
            raise SpecError(f"query cannot be set on the builtin metric {name}")
        if builtin is BuiltinMetric.REQUEST_SUCCESS_RATE and threshold_range is None:
            threshold_range = ThresholdRange(min=DEFAULT_SUCCESS_RATE_MIN)
        if builtin is BuiltinMetric.REQUEST_DURATION and threshold_range is None:
            threshold_range = ThresholdRange(max=DEFAULT_DURATION_MAX_MS)
        objective = _number(data, "objective", None)
        if builtin is BuiltinMetric.SLO_BURN_RATE and (
            objective is None or not 0 < objective < 100  # noqa: PLR2004 - a percentage
        ):
            raise SpecError("slo-burn-rate needs objective, the SLO in percent (e.g. 99.9)")
        confidence = _number(data, "confidence", DEFAULT_CONFIDENCE)
        if confidence is not None and not 0 < confidence < 1:
            raise SpecError(f"metric {name}: confidence must be between 0 and 1")
        return cls(
            name=name,
            query=query,
            interval=interval,
            threshold_range=threshold_range,
            confidence=confidence if confidence is not None else DEFAULT_CONFIDENCE,
            tolerance=_number(data, "tolerance", DEFAULT_TOLERANCE) or 0.0,
            max_ratio=_number(data, "maxRatio", DEFAULT_MAX_RATIO) or DEFAULT_MAX_RATIO,
            objective=objective,
            max_burn_rate=_number(data, "maxBurnRate", DEFAULT_MAX_BURN_RATE)
            or DEFAULT_MAX_BURN_RATE,
        )


def _builtin(name: str) -> BuiltinMetric | None:
    try:
        return BuiltinMetric(name)
    except ValueError:
        return None


def _check_custom(name: str, query: str | None, threshold_range: ThresholdRange | None) -> None:
    if not query:
        raise SpecError(f"metric {name} is not a builtin, so it needs a query")
    if threshold_range is None or (threshold_range.min is None and threshold_range.max is None):
        raise SpecError(f"metric {name} needs thresholdRange with min and/or max")
    unknown = sorted(set(TEMPLATE_VARIABLE.findall(query)) - TEMPLATE_VARIABLES)
    if unknown:
        raise SpecError(
            f"metric {name}: unknown template variable(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(TEMPLATE_VARIABLES))}"
        )


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    """One ``analysis.webhooks[]`` entry."""

    name: str
    type: WebhookType
    url: str
    timeout: dt.timedelta = DEFAULT_WEBHOOK_TIMEOUT
    metadata: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_k8s(cls, data: Mapping[str, Any]) -> WebhookSpec:
        """Read one webhook; ``type`` defaults to ``rollout`` as in Flagger."""
        name = _get(data, "name", str, "")
        url = _get(data, "url", str, "")
        if not name or not url:
            raise SpecError("every webhook needs a name and a url")
        type_text = _get(data, "type", str, WebhookType.ROLLOUT.value)
        try:
            hook_type = WebhookType(type_text)
        except ValueError:
            known = ", ".join(t.value for t in WebhookType)
            raise SpecError(f"webhook {name}: unknown type {type_text!r} ({known})") from None
        timeout = parse_duration(_get(data, "timeout", str, "10s"))
        metadata = _get(data, "metadata", dict, {})
        return cls(
            name=name,
            type=hook_type,
            url=url,
            timeout=timeout,
            metadata={str(k): str(v) for k, v in metadata.items()},
        )


@dataclass(frozen=True, slots=True)
class AnalysisSpec:
    """``spec.analysis``: tick length, schedule, limits, metrics and webhooks."""

    interval: dt.timedelta = DEFAULT_INTERVAL
    step_weights: tuple[int, ...] | None = None
    step_weight: int | None = None
    max_weight: int | None = None
    checks_per_step: int = DEFAULT_CHECKS_PER_STEP
    threshold: int = DEFAULT_THRESHOLD
    min_requests: int = DEFAULT_MIN_REQUESTS
    max_inconclusive: int = DEFAULT_MAX_INCONCLUSIVE
    match: tuple[Cohort, ...] = ()
    metrics: tuple[MetricSpec, ...] = ()
    webhooks: tuple[WebhookSpec, ...] = ()
    mesh: Mesh | None = None

    def hooks(self, hook_type: WebhookType) -> tuple[WebhookSpec, ...]:
        """The webhooks of one type, in spec order."""
        return tuple(h for h in self.webhooks if h.type is hook_type)

    @classmethod
    def from_k8s(cls, data: Mapping[str, Any]) -> AnalysisSpec:
        """Read ``spec.analysis``; the weight defaults are resolved by ``weights.schedule``."""
        interval_text = _get(data, "interval", str, "60s")
        interval = parse_duration(interval_text)
        if interval < MIN_INTERVAL:
            raise SpecError(f"analysis.interval must be at least 5s, got {interval_text}")
        step_weights = _step_weights(data)
        step_weight = _get(data, "stepWeight", int, None)
        if step_weights is not None and step_weight is not None:
            raise SpecError("set either stepWeights or stepWeight (with maxWeight), not both")
        max_weight = _get(data, "maxWeight", int, None)
        for key, value in (("stepWeight", step_weight), ("maxWeight", max_weight)):
            if value is not None and not 1 <= value <= 100:  # noqa: PLR2004 - percent
                raise SpecError(f"{key} must be between 1 and 100, got {value}")
        if step_weight is not None and max_weight is not None and max_weight < step_weight:
            raise SpecError(
                f"maxWeight ({max_weight}) must be greater than or equal to stepWeight "
                f"({step_weight})"
            )
        threshold = _get(data, "threshold", int, DEFAULT_THRESHOLD)
        if threshold < 1:
            raise SpecError("threshold must be at least 1")
        checks = _get(data, "checksPerStep", int, DEFAULT_CHECKS_PER_STEP)
        min_requests = _get(data, "minRequests", int, DEFAULT_MIN_REQUESTS)
        max_inconclusive = _get(data, "maxInconclusive", int, DEFAULT_MAX_INCONCLUSIVE)
        if checks < 1 or min_requests < 0 or max_inconclusive < 0:
            raise SpecError(
                "checksPerStep must be at least 1; minRequests and maxInconclusive at least 0"
            )
        metrics = tuple(MetricSpec.from_k8s(m) for m in _get(data, "metrics", list, []))
        webhooks = tuple(WebhookSpec.from_k8s(w) for w in _get(data, "webhooks", list, []))
        for kind, names in (
            ("metric", [m.name for m in metrics]),
            ("webhook", [w.name for w in webhooks]),
        ):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise SpecError(f"duplicate {kind} name(s): {', '.join(duplicates)}")
        mesh_text = _get(data, "mesh", str, None)
        try:
            mesh = Mesh(mesh_text) if mesh_text is not None else None
        except ValueError:
            raise SpecError(
                f"analysis.mesh must be istio, linkerd or envoy, got {mesh_text!r}"
            ) from None
        return cls(
            interval=interval,
            step_weights=step_weights,
            step_weight=step_weight,
            max_weight=max_weight,
            checks_per_step=checks,
            threshold=threshold,
            min_requests=min_requests,
            max_inconclusive=max_inconclusive,
            match=tuple(_cohort(c) for c in _get(data, "match", list, [])),
            metrics=metrics,
            webhooks=webhooks,
            mesh=mesh,
        )


def _step_weights(data: Mapping[str, Any]) -> tuple[int, ...] | None:
    raw = _get(data, "stepWeights", list, None)
    if raw is None:
        return None
    weights = tuple(raw)
    if not weights:
        raise SpecError("stepWeights must not be empty; omit it to use [5, 10, 25, 50]")
    if not all(isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= 100 for w in weights):  # noqa: PLR2004
        raise SpecError(f"stepWeights must be percentages between 1 and 100, got {list(weights)}")
    if any(b <= a for a, b in itertools.pairwise(weights)):
        raise SpecError(f"stepWeights must be strictly increasing, got {list(weights)}")
    return weights


def _cohort(data: Any) -> Cohort:
    if not isinstance(data, dict) or not isinstance(data.get("headers"), dict):
        raise SpecError("every analysis.match entry needs headers")
    headers: list[tuple[str, StringMatch]] = []
    for name, matcher in sorted(data["headers"].items()):
        kinds = [
            k for k in ("exact", "prefix", "regex") if isinstance(matcher, dict) and k in matcher
        ]
        if len(kinds) != 1:
            raise SpecError(f"header {name}: exactly one of exact, prefix or regex")
        headers.append((str(name), StringMatch(kinds[0], str(matcher[kinds[0]]))))
    return Cohort(tuple(headers))


@dataclass(frozen=True, slots=True)
class CanarySpec:
    """``Canary.spec`` with runtime defaults applied, plus the Canary's identity.

    ``name`` and ``namespace`` come from the metadata; they are here because the metric queries
    and webhook payloads need them and the core never sees ``metadata`` otherwise.
    """

    name: str
    namespace: str
    target: TargetRef
    service: ServiceSpec
    router: Router = Router.ISTIO
    analysis: AnalysisSpec = AnalysisSpec()
    metrics_server: str | None = None
    progress_deadline_seconds: int = DEFAULT_PROGRESS_DEADLINE_SECONDS
    skip_analysis: bool = False
    suspend: bool = False
    revert_on_deletion: bool = False

    @property
    def mesh(self) -> Mesh:
        """Whose telemetry the builtin metrics read: ``analysis.mesh`` or the router's default."""
        return self.analysis.mesh or DEFAULT_MESH[self.router]

    @property
    def primary_name(self) -> str:
        """``<target>-primary``, the Deployment dabba owns."""
        return f"{self.target.name}-primary"

    @property
    def progress_deadline(self) -> dt.timedelta:
        """How long the canary or primary may stay not ready before the run fails."""
        return dt.timedelta(seconds=self.progress_deadline_seconds)

    @classmethod
    def from_k8s(cls, spec: Mapping[str, Any], *, name: str, namespace: str) -> CanarySpec:
        """Read ``Canary.spec``.

        Args:
            spec: the ``.spec`` dict as the API server returns it (schema defaults applied).
            name: ``metadata.name`` of the Canary.
            namespace: ``metadata.namespace`` of the Canary.

        Returns:
            The spec with runtime defaults applied.

        Raises:
            SpecError: a field the schema admits but the operator cannot act on.
        """
        target_data = _get(spec, "targetRef", dict, {})
        target_name = _get(target_data, "name", str, "")
        if not target_name:
            raise SpecError("targetRef.name is required")
        target = TargetRef(
            name=target_name,
            api_version=_get(target_data, "apiVersion", str, "apps/v1"),
            kind=_get(target_data, "kind", str, "Deployment"),
        )
        if (target.api_version, target.kind) != ("apps/v1", "Deployment"):
            raise SpecError(f"only apps/v1 Deployments can be targets, got {target.kind}")
        router_text = _get(spec, "router", str, Router.ISTIO.value)
        try:
            router = Router(router_text)
        except ValueError:
            raise SpecError(
                f"unknown router {router_text!r}: use istio, gatewayapi or kubernetes"
            ) from None
        deadline = _get(spec, "progressDeadlineSeconds", int, DEFAULT_PROGRESS_DEADLINE_SECONDS)
        if deadline < 1:
            raise SpecError("progressDeadlineSeconds must be at least 1")
        return cls(
            name=name,
            namespace=namespace,
            target=target,
            service=_service(_get(spec, "service", dict, {}), target_name),
            router=router,
            analysis=AnalysisSpec.from_k8s(_get(spec, "analysis", dict, {})),
            metrics_server=_get(spec, "metricsServer", str, None),
            progress_deadline_seconds=deadline,
            skip_analysis=_get(spec, "skipAnalysis", bool, False),
            suspend=_get(spec, "suspend", bool, False),
            revert_on_deletion=_get(spec, "revertOnDeletion", bool, False),
        )


def _service(data: Mapping[str, Any], target_name: str) -> ServiceSpec:
    port = _get(data, "port", int, None)
    if port is None or not 1 <= port <= 65535:  # noqa: PLR2004 - the TCP port range
        raise SpecError("service.port is required (1-65535)")
    refs = []
    for ref in _get(data, "gatewayRefs", list, []):
        if not isinstance(ref, dict) or not ref.get("name"):
            raise SpecError("every service.gatewayRefs entry needs a name")
        refs.append(
            GatewayRef(
                name=str(ref["name"]),
                namespace=ref.get("namespace"),
                section_name=ref.get("sectionName"),
            )
        )
    return ServiceSpec(
        name=_get(data, "name", str, None) or target_name,
        port=port,
        target_port=_get(data, "targetPort", (int, str), None),
        hosts=_strings(data, "hosts"),
        gateways=_strings(data, "gateways"),
        gateway_refs=tuple(refs),
    )


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Weights:
    """Traffic split in percent; always sums to 100."""

    primary: int
    canary: int

    def __post_init__(self) -> None:
        if self.primary < 0 or self.canary < 0 or self.primary + self.canary != 100:  # noqa: PLR2004
            raise ValueError(f"weights must be >= 0 and sum to 100, got {self}")

    @classmethod
    def for_canary(cls, canary: int) -> Weights:
        """The split that gives the canary ``canary`` percent."""
        return cls(primary=100 - canary, canary=canary)

    def __str__(self) -> str:
        return f"primary {self.primary}% / canary {self.canary}%"


PRIMARY_ONLY: Final = Weights(primary=100, canary=0)

# --------------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------------


class ConditionType(StrEnum):
    """Condition types on the Canary."""

    PROMOTED = "Promoted"
    """True when the last run was promoted (or the primary was just created); reason = phase."""
    READY = "Ready"
    """True while dabba is in control and nothing blocks the run; the reason says what does."""


class ReadyReason(StrEnum):
    """Reasons of the ``Ready`` condition."""

    READY = "Ready"
    """Nothing blocks: objects are in place and the run (if any) can move."""
    SUSPENDED = "Suspended"
    """``spec.suspend`` is set: no new run, a run in progress holds its weights."""
    PAUSED = "Paused"
    """Paused by ``dabba canary pause``; ``resume`` continues."""
    PRIMARY_NOT_READY = "PrimaryNotReady"
    """The primary Deployment does not have all replicas ready."""
    CANARY_NOT_READY = "CanaryNotReady"
    """The target (canary) Deployment does not have all replicas ready."""
    ROUTER_NOT_READY = "RouterNotReady"
    """The routing object has not accepted the weights dabba wrote."""


@dataclass(frozen=True, slots=True)
class Condition:
    """A standard Kubernetes condition."""

    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str
    last_transition_time: dt.datetime

    def to_k8s(self) -> dict[str, Any]:
        """The status dict form."""
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": format_time(self.last_transition_time),
        }

    @classmethod
    def from_k8s(cls, data: Mapping[str, Any]) -> Condition:
        """Read one condition; a missing time is the epoch (it only orders transitions)."""
        when = data.get("lastTransitionTime")
        return cls(
            type=str(data.get("type", "")),
            status=str(data.get("status", "Unknown")),
            reason=str(data.get("reason", "")),
            message=str(data.get("message", "")),
            last_transition_time=parse_time(when) if when else _EPOCH,
        )


_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def set_condition(
    conditions: Sequence[Condition],
    *,
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: dt.datetime,
) -> tuple[Condition, ...]:
    """Return ``conditions`` with one condition set.

    ``lastTransitionTime`` only moves when ``status`` changes (the Kubernetes convention), so
    re-setting an unchanged condition does not churn the object.
    """
    previous = next((c for c in conditions if c.type == type_), None)
    when = (
        previous.last_transition_time
        if previous is not None and previous.status == status
        else truncate(now)
    )
    new = Condition(type_, status, reason, message, when)
    others = tuple(c for c in conditions if c.type != type_)
    return tuple(sorted((*others, new), key=lambda c: c.type))


def get_condition(conditions: Sequence[Condition], type_: str) -> Condition | None:
    """The condition of that type, if set."""
    return next((c for c in conditions if c.type == type_), None)


@dataclass(frozen=True, slots=True)
class AnalysisRecord:
    """One line of ``status.lastAnalysis``: what was measured, against what, and the verdict."""

    metric: str
    query: str
    value: float | None
    threshold: str
    result: MetricResult
    message: str
    time: dt.datetime

    def to_k8s(self) -> dict[str, Any]:
        """The status dict form; ``value`` is null when nothing could be measured."""
        return {
            "metric": self.metric,
            "query": self.query,
            "value": self.value,
            "threshold": self.threshold,
            "result": self.result.value,
            "message": self.message,
            "time": format_time(self.time),
        }

    @classmethod
    def from_k8s(cls, data: Mapping[str, Any]) -> AnalysisRecord:
        """Read one ``lastAnalysis`` entry."""
        value = data.get("value")
        return cls(
            metric=str(data.get("metric", "")),
            query=str(data.get("query", "")),
            value=float(value) if isinstance(value, (int, float)) else None,
            threshold=str(data.get("threshold", "")),
            result=MetricResult(data.get("result", MetricResult.INCONCLUSIVE.value)),
            message=str(data.get("message", "")),
            time=parse_time(data["time"]) if data.get("time") else _EPOCH,
        )


class RunResult(StrEnum):
    """How a run ended (``status.history[].result``)."""

    SUCCEEDED = "Succeeded"
    """Promoted onto the primary."""
    FAILED = "Failed"
    """Rolled back (failed checks, readiness deadline, webhook, or aborted by a user)."""
    SUPERSEDED = "Superseded"
    """A newer revision (or the promoted one, reverted to) replaced it mid-run."""


MAX_HISTORY: Final = 10


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One entry of ``status.history``."""

    revision: str
    result: RunResult
    started: dt.datetime
    finished: dt.datetime
    reason: str

    def to_k8s(self) -> dict[str, Any]:
        """The status dict form."""
        return {
            "revision": self.revision,
            "result": self.result.value,
            "started": format_time(self.started),
            "finished": format_time(self.finished),
            "reason": self.reason,
        }

    @classmethod
    def from_k8s(cls, data: Mapping[str, Any]) -> RunRecord:
        """Read one ``history`` entry."""
        return cls(
            revision=str(data.get("revision", "")),
            result=RunResult(data.get("result", RunResult.FAILED.value)),
            started=parse_time(data["started"]) if data.get("started") else _EPOCH,
            finished=parse_time(data["finished"]) if data.get("finished") else _EPOCH,
            reason=str(data.get("reason", "")),
        )


@dataclass(frozen=True, slots=True)
class HandledRequests:
    """Ids of the last manual requests (annotation values) that were acted on or refused.

    Why: a request annotation stays on the object until someone removes it. Remembering its id
    in status makes each request fire exactly once, and makes a stale ``promote`` unable to skip
    the analysis of a later revision.
    """

    promote: str | None = None
    abort: str | None = None
    retry: str | None = None

    def to_k8s(self) -> dict[str, Any]:
        """Only the ids that are set."""
        return {
            k: v
            for k, v in (("promote", self.promote), ("abort", self.abort), ("retry", self.retry))
            if v
        }

    @classmethod
    def from_k8s(cls, data: Mapping[str, Any]) -> HandledRequests:
        """Read ``status.handledRequests``."""
        return cls(
            promote=data.get("promote") or None,
            abort=data.get("abort") or None,
            retry=data.get("retry") or None,
        )


@dataclass(frozen=True, slots=True)
class CanaryStatus:
    """``Canary.status`` (SPEC §1.5) plus what the state machine needs to be restart-safe.

    Fields beyond SPEC §1.5:
        checks_at_weight: consecutive passing ticks at the current weight (``checksAtWeight``).
        consecutive_errors: consecutive ticks whose worst result was Error (``consecutiveErrors``).
        last_tick_time: when the last tick was judged, or the weight last set; the next tick
            is due one interval later (``lastTickTime``).
        run_start_time: when the current or last run started (``runStartTime``).
        handled: ids of the manual requests already handled (``handledRequests``).
    """

    phase: Phase | None = None
    canary_weight: int = 0
    step_index: int = 0
    failed_checks: int = 0
    inconclusive_checks: int = 0
    checks_at_weight: int = 0
    consecutive_errors: int = 0
    revision: str | None = None
    last_promoted_revision: str | None = None
    last_failed_revision: str | None = None
    last_transition_time: dt.datetime | None = None
    last_tick_time: dt.datetime | None = None
    run_start_time: dt.datetime | None = None
    observed_generation: int | None = None
    conditions: tuple[Condition, ...] = ()
    last_analysis: tuple[AnalysisRecord, ...] = ()
    history: tuple[RunRecord, ...] = ()
    handled: HandledRequests = HandledRequests()

    def evolve(self, **changes: Any) -> CanaryStatus:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return replace(self, **changes)

    def with_run_recorded(self, record: RunRecord) -> CanaryStatus:
        """Prepend a finished run to ``history``, keeping the newest ``MAX_HISTORY``."""
        return replace(self, history=(record, *self.history)[:MAX_HISTORY])

    def to_k8s(self) -> dict[str, Any]:
        """The ``.status`` dict; unset optional fields are written as null to clear them."""

        def time(value: dt.datetime | None) -> str | None:
            return format_time(value) if value is not None else None

        return {
            "phase": self.phase.value if self.phase is not None else None,
            "canaryWeight": self.canary_weight,
            "stepIndex": self.step_index,
            "failedChecks": self.failed_checks,
            "inconclusiveChecks": self.inconclusive_checks,
            "checksAtWeight": self.checks_at_weight,
            "consecutiveErrors": self.consecutive_errors,
            "revision": self.revision,
            "lastPromotedRevision": self.last_promoted_revision,
            "lastFailedRevision": self.last_failed_revision,
            "lastTransitionTime": time(self.last_transition_time),
            "lastTickTime": time(self.last_tick_time),
            "runStartTime": time(self.run_start_time),
            "observedGeneration": self.observed_generation,
            "conditions": [c.to_k8s() for c in self.conditions],
            "lastAnalysis": [a.to_k8s() for a in self.last_analysis],
            "history": [h.to_k8s() for h in self.history],
            "handledRequests": self.handled.to_k8s(),
        }

    @classmethod
    def from_k8s(cls, status: Mapping[str, Any] | None) -> CanaryStatus:
        """Read ``.status``; an empty or missing status is a Canary never seen before.

        Keys that are not ours (``status.kopf``) are ignored.
        """
        data: Mapping[str, Any] = status or {}

        def time(key: str) -> dt.datetime | None:
            value = data.get(key)
            return parse_time(value) if value else None

        def text(key: str) -> str | None:
            value = data.get(key)
            return str(value) if value else None

        def count(key: str) -> int:
            value = data.get(key)
            return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0

        phase_text = data.get("phase")
        generation = data.get("observedGeneration")
        return cls(
            phase=Phase(phase_text) if phase_text else None,
            canary_weight=count("canaryWeight"),
            step_index=count("stepIndex"),
            failed_checks=count("failedChecks"),
            inconclusive_checks=count("inconclusiveChecks"),
            checks_at_weight=count("checksAtWeight"),
            consecutive_errors=count("consecutiveErrors"),
            revision=text("revision"),
            last_promoted_revision=text("lastPromotedRevision"),
            last_failed_revision=text("lastFailedRevision"),
            last_transition_time=time("lastTransitionTime"),
            last_tick_time=time("lastTickTime"),
            run_start_time=time("runStartTime"),
            observed_generation=generation if isinstance(generation, int) else None,
            conditions=tuple(Condition.from_k8s(c) for c in data.get("conditions") or ()),
            last_analysis=tuple(AnalysisRecord.from_k8s(a) for a in data.get("lastAnalysis") or ()),
            history=tuple(RunRecord.from_k8s(h) for h in data.get("history") or ())[:MAX_HISTORY],
            handled=HandledRequests.from_k8s(data.get("handledRequests") or {}),
        )
