"""Analysis: which PromQL a metric needs, and the verdict on what came back (pure).

One tick judges every metric of ``analysis.metrics`` over the metric's interval. The adapter
layer does the I/O in between two pure calls::

    queries = queries_for(metric, ctx)            # {"canary_requests": "sum(increase(...))", ...}
    results = {role: run(q) for role, q in ...}   # I/O: QueryResult(value | None | error)
    outcome = evaluate(metric, ctx, results)      # MetricOutcome(..., result, reason)

Each metric names its queries by *role*; a role is always the same measurement, so an adapter
may cache identical query strings within a tick (every metric asks for ``canary_requests``).

Results (after Argo Rollouts, ``utils/evaluate/evaluate.go``), in this order of checks:

1. ``Error``: a query failed (Prometheus unreachable, invalid query) or was not run.
2. ``Inconclusive``: fewer canary requests than ``max(minRequests, 1)`` in the interval, or no
   data, NaN or ±Inf. Zero traffic is never Failed nor Successful: Flagger counts "no values"
   as a failed check and rolls back quiet services (fluxcd/flagger#1035, #883, #1330).
3. ``Failed`` / ``Successful``: the value against the metric's threshold.

An errors query that matches no series is zero errors, not "no data": Prometheus returns an
empty vector when no 5xx was ever recorded, and that is the good case.

Builtin metrics and their verdicts:

- ``request-success-rate``: ``100 * (1 - canary_errors / canary_requests)`` in ``thresholdRange``
  (default ``min: 99``).
- ``request-duration``: canary p99 in ms in ``thresholdRange`` (default ``max: 500``).
- ``error-rate-vs-primary``: one-sided two-proportion z-test (pooled). Fails only when the
  canary's 5xx ratio is higher than the primary's with ``confidence`` (default 0.95) AND by more
  than ``tolerance`` percentage points (default 1.0, see ``model.DEFAULT_TOLERANCE``). Both sides
  need ``minRequests``. The value is the difference in percentage points.
- ``latency-vs-primary``: canary p99 / primary p99 must stay below ``maxRatio`` (default 1.2).
- ``slo-burn-rate``: ``(canary_errors / canary_requests) / (1 - objective / 100)`` must stay below
  ``maxBurnRate`` (default 14.4).
- Custom: the ``value`` query must return one scalar in ``thresholdRange``. It is gated on canary
  traffic like the builtins unless ``minRequests`` is 0 (for workloads judged by non-request
  metrics).

The error definition is 5xx. Counts use ``increase()`` over the interval, latencies
``histogram_quantile(0.99, ...)`` over ``rate()`` of the bucket series.

Label contract per mesh (the e2e traffic simulator emits exactly these series; ``<ns>`` is the
Canary's namespace, ``<target>`` the target Deployment, ``<svc>`` the apex Service, ``<port>``
``service.port``). The canary side is the target; the primary side is ``<target>-primary``
(Istio, Linkerd) or ``<svc>-primary`` (Envoy)::

    istio   counter   istio_requests_total{reporter="destination",
                          destination_workload_namespace="<ns>",
                          destination_workload="<target>" | "<target>-primary",
                          response_code="200" | "503" | ...}
            histogram istio_request_duration_milliseconds_bucket{same labels minus
                          response_code, le="..."}                       (milliseconds)
    linkerd counter   response_total{namespace="<ns>",
                          deployment="<target>" | "<target>-primary",
                          direction="inbound",
                          classification="success" | "failure",          (failure = 5xx)
                          status_code="200" | "503" | ...}
            histogram response_latency_ms_bucket{namespace, deployment, direction="inbound",
                          le="..."}                                       (milliseconds)
    envoy   counter   envoy_cluster_upstream_rq{
                          envoy_cluster_name="<ns>_<svc>-canary_<port>"
                                           | "<ns>_<svc>-primary_<port>",
                          envoy_response_code="200" | "503" | ...}
            histogram envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name, le="..."}
                                                                          (milliseconds)

The Envoy cluster name follows Contour's stat naming (``namespace_service_port``), which the
queries match with ``envoy_cluster_name=~"<ns>_<svc>-canary_[0-9a-zA-Z-]+"`` as Flagger does.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from dabba.canary.model import (
    TEMPLATE_VARIABLE,
    AnalysisRecord,
    BuiltinMetric,
    CanarySpec,
    Mesh,
    MetricResult,
    MetricSpec,
    ThresholdRange,
    format_duration,
)
from dabba.errors import SpecError
from dabba.metrics import QueryResult

__all__ = [
    "MetricOutcome",
    "QueryContext",
    "QueryResult",
    "Role",
    "TickResult",
    "evaluate",
    "format_value",
    "normal_cdf",
    "queries_for",
    "render",
    "threshold_text",
    "tick_result",
    "two_proportion_z",
]


class Role(StrEnum):
    """What a query measures; ``queries_for`` keys its dict by these."""

    CANARY_REQUESTS = "canary_requests"
    """Canary requests in the interval (``sum(increase(...))``)."""
    CANARY_ERRORS = "canary_errors"
    """Canary 5xx responses in the interval."""
    PRIMARY_REQUESTS = "primary_requests"
    """Primary requests in the interval."""
    PRIMARY_ERRORS = "primary_errors"
    """Primary 5xx responses in the interval."""
    CANARY_P99 = "canary_p99"
    """Canary p99 latency in milliseconds."""
    PRIMARY_P99 = "primary_p99"
    """Primary p99 latency in milliseconds."""
    VALUE = "value"
    """A custom metric's own query."""


@dataclass(frozen=True, slots=True)
class QueryContext:
    """What the query templates and the verdicts need from the Canary."""

    variables: Mapping[str, str]
    mesh: Mesh
    interval: dt.timedelta
    min_requests: int

    @classmethod
    def for_canary(cls, spec: CanarySpec) -> QueryContext:
        """The context of one Canary: its names, mesh, interval and ``minRequests``."""
        return cls(
            variables={
                "name": spec.name,
                "namespace": spec.namespace,
                "target": spec.target.name,
                "canary": spec.target.name,
                "primary": spec.primary_name,
                "service": spec.service.name,
                "canary_service": spec.service.canary_name,
                "primary_service": spec.service.primary_name,
                "port": str(spec.service.port),
            },
            mesh=spec.mesh,
            interval=spec.analysis.interval,
            min_requests=spec.analysis.min_requests,
        )

    def interval_of(self, metric: MetricSpec) -> dt.timedelta:
        """The range of a metric's queries: its own interval or the analysis interval."""
        return metric.interval or self.interval


def render(template: str, variables: Mapping[str, str]) -> str:
    """Replace every ``{{ name }}`` in ``template``.

    Raises:
        SpecError: the template uses a variable that is not given (like Go's
            ``missingkey=error``: a typo must not become an empty label matcher).
    """

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in variables:
            raise SpecError(
                f"unknown template variable {{{{ {key} }}}}; known: {', '.join(sorted(variables))}"
            )
        return variables[key]

    return TEMPLATE_VARIABLE.sub(substitute, template)


# --------------------------------------------------------------------------------------------
# Builtin query templates
# --------------------------------------------------------------------------------------------

_SIDE: Final = "<SIDE>"


@dataclass(frozen=True, slots=True)
class _Telemetry:
    """The series and labels of one mesh; ``<SIDE>`` is replaced by canary or primary."""

    requests: str
    latency_bucket: str
    selector: str
    errors: str
    sides: Mapping[str, str]


_TELEMETRY: Final[Mapping[Mesh, _Telemetry]] = {
    Mesh.ISTIO: _Telemetry(
        requests="istio_requests_total",
        latency_bucket="istio_request_duration_milliseconds_bucket",
        selector=(
            'reporter="destination",destination_workload_namespace="{{ namespace }}",'
            'destination_workload="{{ <SIDE> }}"'
        ),
        errors='response_code=~"5.."',
        sides={"canary": "canary", "primary": "primary"},
    ),
    Mesh.LINKERD: _Telemetry(
        requests="response_total",
        latency_bucket="response_latency_ms_bucket",
        selector='namespace="{{ namespace }}",deployment="{{ <SIDE> }}",direction="inbound"',
        errors='status_code=~"5.."',
        sides={"canary": "canary", "primary": "primary"},
    ),
    Mesh.ENVOY: _Telemetry(
        requests="envoy_cluster_upstream_rq",
        latency_bucket="envoy_cluster_upstream_rq_time_bucket",
        selector='envoy_cluster_name=~"{{ namespace }}_{{ <SIDE> }}_[0-9a-zA-Z-]+"',
        errors='envoy_response_code=~"5.."',
        sides={"canary": "canary_service", "primary": "primary_service"},
    ),
}


def _selector(mesh: Mesh, side: str) -> str:
    telemetry = _TELEMETRY[mesh]
    return telemetry.selector.replace(_SIDE, telemetry.sides[side])


def _requests_query(mesh: Mesh, side: str) -> str:
    t = _TELEMETRY[mesh]
    return f"sum(increase({t.requests}{{{_selector(mesh, side)}}}[{{{{ interval }}}}]))"


def _errors_query(mesh: Mesh, side: str) -> str:
    t = _TELEMETRY[mesh]
    return f"sum(increase({t.requests}{{{_selector(mesh, side)},{t.errors}}}[{{{{ interval }}}}]))"


def _p99_query(mesh: Mesh, side: str) -> str:
    t = _TELEMETRY[mesh]
    return (
        f"histogram_quantile(0.99, sum by (le) "
        f"(rate({t.latency_bucket}{{{_selector(mesh, side)}}}[{{{{ interval }}}}])))"
    )


def _templates(metric: MetricSpec, mesh: Mesh, min_requests: int) -> dict[Role, str]:
    builtin = metric.builtin
    requests = {Role.CANARY_REQUESTS: _requests_query(mesh, "canary")}
    if builtin is None:
        # Why the gate is optional here: a custom metric may judge a worker that serves no
        # requests; minRequests: 0 is the opt-out. Builtins always need traffic.
        custom = {Role.VALUE: metric.query or ""}
        return {**custom, **requests} if min_requests > 0 else custom
    if builtin in (BuiltinMetric.REQUEST_SUCCESS_RATE, BuiltinMetric.SLO_BURN_RATE):
        return {**requests, Role.CANARY_ERRORS: _errors_query(mesh, "canary")}
    if builtin is BuiltinMetric.REQUEST_DURATION:
        return {**requests, Role.CANARY_P99: _p99_query(mesh, "canary")}
    if builtin is BuiltinMetric.ERROR_RATE_VS_PRIMARY:
        return {
            **requests,
            Role.CANARY_ERRORS: _errors_query(mesh, "canary"),
            Role.PRIMARY_REQUESTS: _requests_query(mesh, "primary"),
            Role.PRIMARY_ERRORS: _errors_query(mesh, "primary"),
        }
    return {  # latency-vs-primary
        **requests,
        Role.CANARY_P99: _p99_query(mesh, "canary"),
        Role.PRIMARY_P99: _p99_query(mesh, "primary"),
    }


def queries_for(metric: MetricSpec, ctx: QueryContext) -> dict[str, str]:
    """The rendered queries one metric needs, keyed by ``Role`` value.

    Args:
        metric: a builtin or custom metric.
        ctx: the Canary's names, mesh, interval and ``minRequests``.

    Returns:
        ``{role: PromQL}`` in a stable order; every query returns one scalar.

    Raises:
        SpecError: a custom query uses an unknown ``{{ variable }}``.
    """
    variables = {**ctx.variables, "interval": format_duration(ctx.interval_of(metric))}
    templates = _templates(metric, ctx.mesh, ctx.min_requests)
    return {role.value: render(text, variables) for role, text in templates.items()}


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def normal_cdf(z: float) -> float:
    """Standard normal cumulative distribution, ``P(Z <= z)``."""
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def two_proportion_z(x1: float, n1: float, x2: float, n2: float) -> float:
    """Pooled two-proportion z statistic for ``x1/n1 - x2/n2``.

    Args:
        x1: successes (here: 5xx) in sample 1 (canary).
        n1: size of sample 1, > 0.
        x2: successes in sample 2 (primary).
        n2: size of sample 2, > 0.

    Returns:
        ``z``; 0 when both ratios are equal, including the degenerate case where the pooled
        ratio is 0 or 1 and the standard error vanishes.
    """
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both samples need at least one request")
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    if se == 0.0:
        # Pooled ratio 0 or 1 means both ratios are 0 or both are 1: no difference.
        return 0.0
    return (p1 - p2) / se


# --------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetricOutcome:
    """The verdict on one metric for one tick, with everything needed to explain it."""

    metric: str
    query: str
    value: float | None
    threshold_text: str
    result: MetricResult
    reason: str

    def to_record(self, now: dt.datetime) -> AnalysisRecord:
        """The ``status.lastAnalysis`` entry for this outcome."""
        return AnalysisRecord(
            metric=self.metric,
            query=self.query,
            value=self.value,
            threshold=self.threshold_text,
            result=self.result,
            message=self.reason,
            time=now,
        )

    def describe(self) -> str:
        """One line for Events: ``request-success-rate 91.2 < 99``."""
        return f"{self.metric} {self.reason}" if self.reason else self.metric


def format_value(value: float) -> str:
    """A number as people read it: ``91.2``, ``99``, ``0.0123``, ``1234``."""
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:  # noqa: PLR2004 - beyond 4 digits, decimals are noise
        return f"{value:.0f}"
    text = f"{value:.4g}"
    return text if "e" not in text else f"{value:.6f}".rstrip("0").rstrip(".")


def _pct(value: float) -> str:
    return f"{format_value(value)}%"


def threshold_text(metric: MetricSpec) -> str:
    """The comparison applied to a metric, as shown in ``status.lastAnalysis[].threshold``."""
    builtin = metric.builtin
    if builtin is BuiltinMetric.ERROR_RATE_VS_PRIMARY:
        return (
            f"canary 5xx <= primary + {format_value(metric.tolerance)}pp "
            f"(or not higher at {format_value(metric.confidence * 100)}% confidence)"
        )
    if builtin is BuiltinMetric.LATENCY_VS_PRIMARY:
        return f"p99 ratio < {format_value(metric.max_ratio)}"
    if builtin is BuiltinMetric.SLO_BURN_RATE:
        objective = format_value(metric.objective or 0.0)
        return f"burn rate < {format_value(metric.max_burn_rate)} (objective {objective}%)"
    rng = metric.threshold_range or ThresholdRange()
    bounds = [
        f"{op} {format_value(v)}" for op, v in ((">=", rng.min), ("<=", rng.max)) if v is not None
    ]
    return " and ".join(bounds) or "any value"


@dataclass(frozen=True, slots=True)
class _Verdict:
    result: MetricResult
    value: float | None
    reason: str


def _inconclusive(reason: str, value: float | None = None) -> _Verdict:
    return _Verdict(MetricResult.INCONCLUSIVE, value, reason)


def _range_verdict(metric: MetricSpec, value: float, unit: str = "") -> _Verdict:
    rng = metric.threshold_range
    shown = f"{format_value(value)}{unit}"
    if rng is None or rng.contains(value):
        return _Verdict(MetricResult.SUCCESSFUL, value, f"{shown} within {threshold_text(metric)}")
    if rng.min is not None and value < rng.min:
        return _Verdict(MetricResult.FAILED, value, f"{shown} < {format_value(rng.min)}{unit}")
    return _Verdict(MetricResult.FAILED, value, f"{shown} > {format_value(rng.max or 0.0)}{unit}")


def _traffic_gate(
    side: str, results: Mapping[str, QueryResult], role: Role, ctx: QueryContext, metric: MetricSpec
) -> tuple[float, None] | tuple[None, _Verdict]:
    needed = max(ctx.min_requests, 1)
    window = format_duration(ctx.interval_of(metric))
    count = results[role.value].finite
    if count is None or count <= 0:
        return None, _inconclusive(f"no {side} requests in {window} (zero traffic)")
    if count < needed:
        return None, _inconclusive(
            f"only {format_value(count)} {side} requests in {window} (minRequests {needed})"
        )
    return count, None


def _errors(results: Mapping[str, QueryResult], role: Role, total: float) -> float | None:
    result = results[role.value]
    if result.value is None:
        return 0.0  # no 5xx series at all: zero errors (see the module docstring)
    if not math.isfinite(result.value):
        return None
    return min(max(result.value, 0.0), total)


def _success_rate(metric: MetricSpec, ctx: QueryContext, r: Mapping[str, QueryResult]) -> _Verdict:
    total, verdict = _traffic_gate("canary", r, Role.CANARY_REQUESTS, ctx, metric)
    if verdict is not None or total is None:
        return verdict or _inconclusive("no canary traffic")
    errors = _errors(r, Role.CANARY_ERRORS, total)
    if errors is None:
        return _inconclusive("canary error count is not a number")
    return _range_verdict(metric, 100.0 * (1.0 - errors / total))


def _duration(metric: MetricSpec, ctx: QueryContext, r: Mapping[str, QueryResult]) -> _Verdict:
    total, verdict = _traffic_gate("canary", r, Role.CANARY_REQUESTS, ctx, metric)
    if verdict is not None or total is None:
        return verdict or _inconclusive("no canary traffic")
    p99 = r[Role.CANARY_P99.value].finite
    if p99 is None:
        return _inconclusive("no canary latency data (empty histogram or NaN)")
    return _range_verdict(metric, p99, "ms")


def _error_rate_vs_primary(
    metric: MetricSpec, ctx: QueryContext, r: Mapping[str, QueryResult]
) -> _Verdict:
    canary_n, verdict = _traffic_gate("canary", r, Role.CANARY_REQUESTS, ctx, metric)
    if verdict is not None or canary_n is None:
        return verdict or _inconclusive("no canary traffic")
    primary_n, verdict = _traffic_gate("primary", r, Role.PRIMARY_REQUESTS, ctx, metric)
    if verdict is not None or primary_n is None:
        return verdict or _inconclusive("no primary traffic")
    canary_x = _errors(r, Role.CANARY_ERRORS, canary_n)
    primary_x = _errors(r, Role.PRIMARY_ERRORS, primary_n)
    if canary_x is None or primary_x is None:
        return _inconclusive("an error count is not a number")
    canary_ratio, primary_ratio = canary_x / canary_n, primary_x / primary_n
    diff_pp = 100.0 * (canary_ratio - primary_ratio)
    z = two_proportion_z(canary_x, canary_n, primary_x, primary_n)
    confidence_higher = normal_cdf(z)
    shown = (
        f"canary 5xx {_pct(100 * canary_ratio)} vs primary {_pct(100 * primary_ratio)} "
        f"({diff_pp:+.2f}pp, z={z:.2f}, higher with {_pct(100 * confidence_higher)} confidence)"
    )
    significant = confidence_higher >= metric.confidence
    if significant and diff_pp > metric.tolerance:
        return _Verdict(MetricResult.FAILED, diff_pp, shown)
    return _Verdict(MetricResult.SUCCESSFUL, diff_pp, shown)


def _latency_vs_primary(
    metric: MetricSpec, ctx: QueryContext, r: Mapping[str, QueryResult]
) -> _Verdict:
    total, verdict = _traffic_gate("canary", r, Role.CANARY_REQUESTS, ctx, metric)
    if verdict is not None or total is None:
        return verdict or _inconclusive("no canary traffic")
    canary, primary = r[Role.CANARY_P99.value].finite, r[Role.PRIMARY_P99.value].finite
    if canary is None:
        return _inconclusive("no canary latency data (empty histogram or NaN)")
    if primary is None or primary <= 0:
        return _inconclusive("no primary latency to compare with (no primary traffic?)")
    ratio = canary / primary
    shown = (
        f"p99 canary {format_value(canary)}ms / primary {format_value(primary)}ms "
        f"= {format_value(ratio)}"
    )
    if ratio < metric.max_ratio:
        return _Verdict(MetricResult.SUCCESSFUL, ratio, shown)
    return _Verdict(MetricResult.FAILED, ratio, f"{shown} >= {format_value(metric.max_ratio)}")


def _slo_burn_rate(metric: MetricSpec, ctx: QueryContext, r: Mapping[str, QueryResult]) -> _Verdict:
    total, verdict = _traffic_gate("canary", r, Role.CANARY_REQUESTS, ctx, metric)
    if verdict is not None or total is None:
        return verdict or _inconclusive("no canary traffic")
    errors = _errors(r, Role.CANARY_ERRORS, total)
    if errors is None:
        return _inconclusive("canary error count is not a number")
    budget = (100.0 - (metric.objective or 0.0)) / 100.0
    burn = (errors / total) / budget
    shown = (
        f"burn rate {format_value(burn)} (canary errors {_pct(100 * errors / total)}, "
        f"budget {_pct(100 * budget)})"
    )
    if burn < metric.max_burn_rate:
        return _Verdict(MetricResult.SUCCESSFUL, burn, shown)
    return _Verdict(MetricResult.FAILED, burn, f"{shown} >= {format_value(metric.max_burn_rate)}")


def _custom(metric: MetricSpec, ctx: QueryContext, r: Mapping[str, QueryResult]) -> _Verdict:
    if Role.CANARY_REQUESTS.value in r and ctx.min_requests > 0:
        _, verdict = _traffic_gate("canary", r, Role.CANARY_REQUESTS, ctx, metric)
        if verdict is not None:
            return verdict
    value = r[Role.VALUE.value]
    if value.value is None:
        return _inconclusive("the query returned no data")
    if value.finite is None:
        return _inconclusive(f"the query returned {value.value}")
    return _range_verdict(metric, value.finite)


_JUDGES: Final = {
    BuiltinMetric.REQUEST_SUCCESS_RATE: _success_rate,
    BuiltinMetric.REQUEST_DURATION: _duration,
    BuiltinMetric.ERROR_RATE_VS_PRIMARY: _error_rate_vs_primary,
    BuiltinMetric.LATENCY_VS_PRIMARY: _latency_vs_primary,
    BuiltinMetric.SLO_BURN_RATE: _slo_burn_rate,
}


def describe_queries(queries: Mapping[str, str]) -> str:
    """All queries of a metric as one text: the query alone, or ``role: query`` per line."""
    if len(queries) == 1:
        return next(iter(queries.values()))
    return "\n".join(f"{role}: {query}" for role, query in queries.items())


def evaluate(
    metric: MetricSpec, ctx: QueryContext, results: Mapping[str, QueryResult]
) -> MetricOutcome:
    """Judge one metric from the results of its queries.

    Args:
        metric: the metric.
        ctx: the same context ``queries_for`` was given.
        results: ``{role: QueryResult}`` for every role ``queries_for`` returned; a missing
            role counts as an error (the adapter did not run it).

    Returns:
        The outcome: ``Error`` if any query failed, ``Inconclusive`` without enough traffic or
        data, else ``Failed``/``Successful`` against the metric's threshold.
    """
    queries = queries_for(metric, ctx)

    def outcome(verdict: _Verdict) -> MetricOutcome:
        return MetricOutcome(
            metric=metric.name,
            query=describe_queries(queries),
            value=verdict.value,
            threshold_text=threshold_text(metric),
            result=verdict.result,
            reason=verdict.reason,
        )

    for role in queries:
        result = results.get(role)
        if result is None:
            return outcome(_Verdict(MetricResult.ERROR, None, f"the {role} query was not run"))
        if result.error is not None:
            return outcome(
                _Verdict(MetricResult.ERROR, None, f"{role} query failed: {result.error}")
            )
    builtin = metric.builtin
    judge = _JUDGES[builtin] if builtin is not None else _custom
    return outcome(judge(metric, ctx, results))


def error_outcome(metric: MetricSpec, ctx: QueryContext, reason: str) -> MetricOutcome:
    """An ``Error`` outcome without running anything (e.g. Prometheus is known to be down)."""
    return MetricOutcome(
        metric=metric.name,
        query=describe_queries(queries_for(metric, ctx)),
        value=None,
        threshold_text=threshold_text(metric),
        result=MetricResult.ERROR,
        reason=reason,
    )


# --------------------------------------------------------------------------------------------
# One tick
# --------------------------------------------------------------------------------------------

#: Worst first: the tick takes the first of these that any outcome has.
_PRECEDENCE: Final = (
    MetricResult.FAILED,
    MetricResult.ERROR,
    MetricResult.INCONCLUSIVE,
    MetricResult.SUCCESSFUL,
)


@dataclass(frozen=True, slots=True)
class TickResult:
    """The verdict on one tick: the worst metric result, and the outcomes behind it."""

    result: MetricResult
    outcomes: tuple[MetricOutcome, ...]

    @property
    def deciding(self) -> tuple[MetricOutcome, ...]:
        """The outcomes that share the tick's result (why the tick is what it is)."""
        return tuple(o for o in self.outcomes if o.result is self.result)

    def summary(self) -> str:
        """One line for Events and history, e.g. ``request-success-rate 91.2 < 99``."""
        deciding = self.deciding
        if not deciding:
            return "no metrics configured"
        return "; ".join(o.describe() for o in deciding)


def tick_result(outcomes: Sequence[MetricOutcome]) -> TickResult:
    """Aggregate a tick: Failed if any metric Failed, else Error if any Error, else
    Inconclusive if any Inconclusive, else Successful (also with no metrics at all).
    """
    present = {o.result for o in outcomes}
    result = next((r for r in _PRECEDENCE if r in present), MetricResult.SUCCESSFUL)
    return TickResult(result=result, outcomes=tuple(outcomes))
