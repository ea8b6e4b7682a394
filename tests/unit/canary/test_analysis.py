from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any

import pytest

from dabba.canary.analysis import (
    MetricOutcome,
    QueryContext,
    QueryResult,
    Role,
    error_outcome,
    evaluate,
    format_value,
    normal_cdf,
    queries_for,
    render,
    threshold_text,
    tick_result,
    two_proportion_z,
)
from dabba.canary.model import Mesh, MetricResult, MetricSpec
from dabba.errors import SpecError
from tests.unit.canary.sim import T0, make_spec

SPEC = make_spec(analysis={"interval": "1m", "minRequests": 20})
CTX = QueryContext.for_canary(SPEC)


def ctx_for(mesh: Mesh, **changes: Any) -> QueryContext:
    return dataclasses.replace(CTX, mesh=mesh, **changes)


def metric(name: str, **fields: Any) -> MetricSpec:
    return MetricSpec.from_k8s({"name": name, **fields})


# -- rendering -------------------------------------------------------------------------------


def test_context_variables() -> None:
    assert dict(CTX.variables) == {
        "name": "podinfo",
        "namespace": "test",
        "target": "podinfo",
        "canary": "podinfo",
        "primary": "podinfo-primary",
        "service": "podinfo",
        "canary_service": "podinfo-canary",
        "primary_service": "podinfo-primary",
        "port": "9898",
    }


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param("{{ namespace }}/{{ target }}", "test/podinfo", id="spaced"),
        pytest.param("{{namespace}}-{{primary}}", "test-podinfo-primary", id="unspaced"),
        pytest.param("{{  service   }}", "podinfo", id="extra spaces"),
        pytest.param("rate(x[5m])", "rate(x[5m])", id="no variables"),
        pytest.param(
            'a{b="{{ canary_service }}"}', 'a{b="podinfo-canary"}', id="braces of PromQL are kept"
        ),
    ],
)
def test_render(template: str, expected: str) -> None:
    assert render(template, CTX.variables) == expected


def test_render_refuses_unknown_variables() -> None:
    with pytest.raises(SpecError, match=r"unknown template variable \{\{ ingress \}\}"):
        render("{{ ingress }}", CTX.variables)


ISTIO_SEL = (
    'reporter="destination",destination_workload_namespace="test",destination_workload="podinfo"'
)
ISTIO_PRI = ISTIO_SEL.replace('"podinfo"', '"podinfo-primary"')
LINKERD_SEL = 'namespace="test",deployment="podinfo",direction="inbound"'
LINKERD_PRI = 'namespace="test",deployment="podinfo-primary",direction="inbound"'
ENVOY_SEL = 'envoy_cluster_name=~"test_podinfo-canary_[0-9a-zA-Z-]+"'
ENVOY_PRI = 'envoy_cluster_name=~"test_podinfo-primary_[0-9a-zA-Z-]+"'


@pytest.mark.parametrize(
    ("mesh", "expected"),
    [
        pytest.param(
            Mesh.ISTIO,
            {
                "canary_requests": f"sum(increase(istio_requests_total{{{ISTIO_SEL}}}[1m]))",
                "canary_errors": (
                    f'sum(increase(istio_requests_total{{{ISTIO_SEL},response_code=~"5.."}}[1m]))'
                ),
            },
            id="istio success rate",
        ),
        pytest.param(
            Mesh.LINKERD,
            {
                "canary_requests": f"sum(increase(response_total{{{LINKERD_SEL}}}[1m]))",
                "canary_errors": (
                    f'sum(increase(response_total{{{LINKERD_SEL},status_code=~"5.."}}[1m]))'
                ),
            },
            id="linkerd success rate",
        ),
        pytest.param(
            Mesh.ENVOY,
            {
                "canary_requests": f"sum(increase(envoy_cluster_upstream_rq{{{ENVOY_SEL}}}[1m]))",
                "canary_errors": (
                    f"sum(increase(envoy_cluster_upstream_rq{{{ENVOY_SEL},"
                    'envoy_response_code=~"5.."}[1m]))'
                ),
            },
            id="envoy success rate",
        ),
    ],
)
def test_success_rate_queries_per_mesh(mesh: Mesh, expected: dict[str, str]) -> None:
    assert queries_for(metric("request-success-rate"), ctx_for(mesh)) == expected


@pytest.mark.parametrize(
    ("mesh", "bucket", "selector"),
    [
        pytest.param(
            Mesh.ISTIO, "istio_request_duration_milliseconds_bucket", ISTIO_SEL, id="istio p99"
        ),
        pytest.param(Mesh.LINKERD, "response_latency_ms_bucket", LINKERD_SEL, id="linkerd p99"),
        pytest.param(
            Mesh.ENVOY, "envoy_cluster_upstream_rq_time_bucket", ENVOY_SEL, id="envoy p99"
        ),
    ],
)
def test_duration_queries_per_mesh(mesh: Mesh, bucket: str, selector: str) -> None:
    queries = queries_for(metric("request-duration", interval="30s"), ctx_for(mesh))
    assert list(queries) == ["canary_requests", "canary_p99"]
    assert queries["canary_p99"] == (
        f"histogram_quantile(0.99, sum by (le) (rate({bucket}{{{selector}}}[30s])))"
    )
    assert queries["canary_requests"].endswith("[30s]))")


@pytest.mark.parametrize(
    ("mesh", "canary", "primary"),
    [
        pytest.param(Mesh.ISTIO, ISTIO_SEL, ISTIO_PRI, id="istio primary is <target>-primary"),
        pytest.param(
            Mesh.LINKERD, LINKERD_SEL, LINKERD_PRI, id="linkerd primary is <target>-primary"
        ),
        pytest.param(Mesh.ENVOY, ENVOY_SEL, ENVOY_PRI, id="envoy primary is <svc>-primary"),
    ],
)
def test_vs_primary_queries_select_both_sides(mesh: Mesh, canary: str, primary: str) -> None:
    errors = queries_for(metric("error-rate-vs-primary"), ctx_for(mesh))
    assert list(errors) == [
        "canary_requests",
        "canary_errors",
        "primary_requests",
        "primary_errors",
    ]
    assert canary in errors["canary_errors"]
    assert primary in errors["primary_errors"]
    assert primary not in errors["canary_requests"]
    latency = queries_for(metric("latency-vs-primary"), ctx_for(mesh))
    assert list(latency) == ["canary_requests", "canary_p99", "primary_p99"]
    assert primary in latency["primary_p99"]


def test_custom_queries_render_variables_and_are_gated_on_traffic() -> None:
    custom = metric(
        "queue",
        query='max(queue{ns="{{ namespace }}",svc="{{ service }}"}[{{ interval }}])',
        interval="2m",
        thresholdRange={"max": 10},
    )
    queries = queries_for(custom, CTX)
    assert queries["value"] == 'max(queue{ns="test",svc="podinfo"}[2m])'
    assert queries["canary_requests"].endswith("[2m]))")
    assert list(queries_for(custom, dataclasses.replace(CTX, min_requests=0))) == ["value"]


# -- statistics ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("z", "expected"),
    [
        pytest.param(0.0, 0.5, id="median"),
        pytest.param(1.6448536, 0.95, id="one-sided 95%"),
        pytest.param(1.959964, 0.975, id="two-sided 95%"),
        pytest.param(-1.959964, 0.025, id="symmetric"),
    ],
)
def test_normal_cdf(z: float, expected: float) -> None:
    assert normal_cdf(z) == pytest.approx(expected, abs=1e-6)


def test_two_proportion_z_by_hand() -> None:
    # Canary 10 errors of 200 (5 %), primary 20 of 2000 (1 %):
    #   pooled p = 30 / 2200 = 0.0136364
    #   SE = sqrt(0.0136364 * 0.9863636 * (1/200 + 1/2000)) = sqrt(0.0134504 * 0.0055)
    #      = sqrt(7.39773e-5) = 0.0086010
    #   z  = (0.05 - 0.01) / 0.0086010 = 4.6506   → P(Z <= z) = 0.9999983
    z = two_proportion_z(10, 200, 20, 2000)
    assert z == pytest.approx(4.6506, abs=1e-4)
    assert normal_cdf(z) == pytest.approx(0.9999983, abs=1e-7)


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "expected"),
    [
        pytest.param(0, 100, 0, 100, 0.0, id="no errors anywhere"),
        pytest.param(100, 100, 50, 50, 0.0, id="all errors on both sides"),
        pytest.param(5, 100, 5, 100, 0.0, id="equal ratios"),
        pytest.param(1, 100, 10, 100, -2.7915, id="canary better is negative"),
    ],
)
def test_two_proportion_z_edges(
    x1: float, n1: float, x2: float, n2: float, expected: float
) -> None:
    assert two_proportion_z(x1, n1, x2, n2) == pytest.approx(expected, abs=1e-4)


def test_two_proportion_z_needs_samples() -> None:
    with pytest.raises(ValueError, match="at least one request"):
        two_proportion_z(0, 0, 1, 10)


# -- evaluation ------------------------------------------------------------------------------


def ok(value: float) -> QueryResult:
    return QueryResult.ok(value)


NO = QueryResult.no_data()
NAN = QueryResult.ok(math.nan)


@pytest.mark.parametrize(
    ("spec", "results", "result", "value", "reason"),
    [
        # request-success-rate
        pytest.param(
            {"name": "request-success-rate"},
            {"canary_requests": ok(1000), "canary_errors": ok(5)},
            MetricResult.SUCCESSFUL,
            99.5,
            "99.5 within >= 99",
            id="success rate above the floor",
        ),
        pytest.param(
            {"name": "request-success-rate"},
            {"canary_requests": ok(1000), "canary_errors": ok(88)},
            MetricResult.FAILED,
            91.2,
            "91.2 < 99",
            id="success rate below the floor",
        ),
        pytest.param(
            {"name": "request-success-rate"},
            {"canary_requests": ok(100), "canary_errors": ok(1)},
            MetricResult.SUCCESSFUL,
            99.0,
            "within",
            id="success rate exactly at the floor passes",
        ),
        pytest.param(
            {"name": "request-success-rate"},
            {"canary_requests": ok(500), "canary_errors": NO},
            MetricResult.SUCCESSFUL,
            100.0,
            "100 within",
            id="no 5xx series means zero errors",
        ),
        pytest.param(
            {"name": "request-success-rate"},
            {"canary_requests": ok(0), "canary_errors": NO},
            MetricResult.INCONCLUSIVE,
            None,
            "zero traffic",
            id="zero traffic is inconclusive",
        ),
        pytest.param(
            {"name": "request-success-rate"},
            {"canary_requests": NO, "canary_errors": NO},
            MetricResult.INCONCLUSIVE,
            None,
            "zero traffic",
            id="no request series is inconclusive",
        ),
        pytest.param(
            {"name": "request-success-rate"},
            {"canary_requests": ok(19), "canary_errors": ok(19)},
            MetricResult.INCONCLUSIVE,
            None,
            "only 19 canary requests in 1m (minRequests 20)",
            id="below minRequests is inconclusive even if all failed",
        ),
        pytest.param(
            {"name": "request-success-rate"},
            {"canary_requests": NAN, "canary_errors": ok(0)},
            MetricResult.INCONCLUSIVE,
            None,
            "zero traffic",
            id="NaN request count is inconclusive",
        ),
        pytest.param(
            {"name": "request-success-rate"},
            {"canary_requests": ok(100), "canary_errors": ok(math.inf)},
            MetricResult.INCONCLUSIVE,
            None,
            "not a number",
            id="infinite errors are inconclusive",
        ),
        pytest.param(
            {"name": "request-success-rate"},
            {"canary_requests": ok(100), "canary_errors": QueryResult.failed("timeout")},
            MetricResult.ERROR,
            None,
            "canary_errors query failed: timeout",
            id="query error",
        ),
        pytest.param(
            {"name": "request-success-rate"},
            {"canary_requests": ok(100)},
            MetricResult.ERROR,
            None,
            "the canary_errors query was not run",
            id="missing result is an error",
        ),
        # request-duration
        pytest.param(
            {"name": "request-duration"},
            {"canary_requests": ok(100), "canary_p99": ok(120)},
            MetricResult.SUCCESSFUL,
            120.0,
            "120ms within <= 500",
            id="p99 below the ceiling",
        ),
        pytest.param(
            {"name": "request-duration"},
            {"canary_requests": ok(100), "canary_p99": ok(612.4)},
            MetricResult.FAILED,
            612.4,
            "612.4ms > 500ms",
            id="p99 above the ceiling",
        ),
        pytest.param(
            {"name": "request-duration"},
            {"canary_requests": ok(100), "canary_p99": NAN},
            MetricResult.INCONCLUSIVE,
            None,
            "no canary latency data",
            id="NaN p99 is inconclusive",
        ),
        pytest.param(
            {"name": "request-duration", "thresholdRange": {"min": 1, "max": 100}},
            {"canary_requests": ok(100), "canary_p99": ok(0.5)},
            MetricResult.FAILED,
            0.5,
            "0.5ms < 1ms",
            id="p99 below a minimum",
        ),
        # error-rate-vs-primary
        pytest.param(
            {"name": "error-rate-vs-primary"},
            {
                "canary_requests": ok(200),
                "canary_errors": ok(10),
                "primary_requests": ok(2000),
                "primary_errors": ok(20),
            },
            MetricResult.FAILED,
            4.0,
            "canary 5xx 5% vs primary 1% (+4.00pp, z=4.65",
            id="canary clearly worse fails",
        ),
        pytest.param(
            {"name": "error-rate-vs-primary"},
            {
                "canary_requests": ok(200),
                "canary_errors": ok(3),
                "primary_requests": ok(2000),
                "primary_errors": ok(20),
            },
            MetricResult.SUCCESSFUL,
            0.5,
            "+0.50pp",
            id="slightly noisier canary within tolerance passes",
        ),
        pytest.param(
            {"name": "error-rate-vs-primary", "tolerance": 0},
            {
                "canary_requests": ok(20000),
                "canary_errors": ok(300),
                "primary_requests": ok(200000),
                "primary_errors": ok(2000),
            },
            MetricResult.FAILED,
            0.5,
            "higher with 100% confidence",
            id="zero tolerance fails on any significant increase",
        ),
        pytest.param(
            {"name": "error-rate-vs-primary", "tolerance": 0},
            {
                "canary_requests": ok(50),
                "canary_errors": ok(2),
                "primary_requests": ok(1000),
                "primary_errors": ok(20),
            },
            MetricResult.SUCCESSFUL,
            2.0,
            "z=0.96, higher with 83.24% confidence",
            id="a higher ratio that is not significant passes",
        ),
        pytest.param(
            {"name": "error-rate-vs-primary"},
            {
                "canary_requests": ok(200),
                "canary_errors": ok(0),
                "primary_requests": ok(2000),
                "primary_errors": ok(200),
            },
            MetricResult.SUCCESSFUL,
            -10.0,
            "-10.00pp",
            id="a better canary passes",
        ),
        pytest.param(
            {"name": "error-rate-vs-primary"},
            {
                "canary_requests": ok(200),
                "canary_errors": ok(10),
                "primary_requests": ok(0),
                "primary_errors": NO,
            },
            MetricResult.INCONCLUSIVE,
            None,
            "no primary requests",
            id="no primary traffic is inconclusive",
        ),
        pytest.param(
            {"name": "error-rate-vs-primary"},
            {
                "canary_requests": ok(5),
                "canary_errors": ok(5),
                "primary_requests": ok(2000),
                "primary_errors": ok(0),
            },
            MetricResult.INCONCLUSIVE,
            None,
            "only 5 canary requests",
            id="too few canary requests is inconclusive",
        ),
        # latency-vs-primary
        pytest.param(
            {"name": "latency-vs-primary"},
            {"canary_requests": ok(100), "canary_p99": ok(110), "primary_p99": ok(100)},
            MetricResult.SUCCESSFUL,
            1.1,
            "= 1.1",
            id="ratio below maxRatio",
        ),
        pytest.param(
            {"name": "latency-vs-primary"},
            {"canary_requests": ok(100), "canary_p99": ok(500), "primary_p99": ok(100)},
            MetricResult.FAILED,
            5.0,
            "p99 canary 500ms / primary 100ms = 5 >= 1.2",
            id="five times slower fails",
        ),
        pytest.param(
            {"name": "latency-vs-primary"},
            {"canary_requests": ok(100), "canary_p99": ok(120), "primary_p99": ok(100)},
            MetricResult.FAILED,
            1.2,
            ">= 1.2",
            id="exactly maxRatio fails (must stay below)",
        ),
        pytest.param(
            {"name": "latency-vs-primary"},
            {"canary_requests": ok(100), "canary_p99": ok(50), "primary_p99": NO},
            MetricResult.INCONCLUSIVE,
            None,
            "no primary latency",
            id="no primary latency is inconclusive",
        ),
        pytest.param(
            {"name": "latency-vs-primary"},
            {"canary_requests": ok(100), "canary_p99": ok(50), "primary_p99": ok(0)},
            MetricResult.INCONCLUSIVE,
            None,
            "no primary latency",
            id="zero primary latency is inconclusive",
        ),
        # slo-burn-rate
        pytest.param(
            {"name": "slo-burn-rate", "objective": 99.9},
            {"canary_requests": ok(10000), "canary_errors": ok(5)},
            MetricResult.SUCCESSFUL,
            0.5,
            "burn rate 0.5",
            id="burning half the budget rate passes",
        ),
        pytest.param(
            {"name": "slo-burn-rate", "objective": 99.9},
            {"canary_requests": ok(1000), "canary_errors": ok(20)},
            MetricResult.FAILED,
            20.0,
            "burn rate 20 (canary errors 2%, budget 0.1%) >= 14.4",
            id="fast burn fails",
        ),
        pytest.param(
            {"name": "slo-burn-rate", "objective": 99, "maxBurnRate": 2},
            {"canary_requests": ok(1000), "canary_errors": ok(20)},
            MetricResult.FAILED,
            2.0,
            ">= 2",
            id="burn rate at the maximum fails",
        ),
        pytest.param(
            {"name": "slo-burn-rate", "objective": 99.9},
            {"canary_requests": ok(3), "canary_errors": ok(3)},
            MetricResult.INCONCLUSIVE,
            None,
            "only 3 canary requests",
            id="burn rate without traffic is inconclusive",
        ),
        # custom
        pytest.param(
            {"name": "queue", "query": "q", "thresholdRange": {"max": 10}},
            {"value": ok(3), "canary_requests": ok(100)},
            MetricResult.SUCCESSFUL,
            3.0,
            "3 within <= 10",
            id="custom within range",
        ),
        pytest.param(
            {"name": "queue", "query": "q", "thresholdRange": {"min": 1, "max": 10}},
            {"value": ok(11), "canary_requests": ok(100)},
            MetricResult.FAILED,
            11.0,
            "11 > 10",
            id="custom above range",
        ),
        pytest.param(
            {"name": "queue", "query": "q", "thresholdRange": {"max": 10}},
            {"value": NO, "canary_requests": ok(100)},
            MetricResult.INCONCLUSIVE,
            None,
            "no data",
            id="custom without data",
        ),
        pytest.param(
            {"name": "queue", "query": "q", "thresholdRange": {"max": 10}},
            {"value": NAN, "canary_requests": ok(100)},
            MetricResult.INCONCLUSIVE,
            None,
            "returned nan",
            id="custom NaN",
        ),
        pytest.param(
            {"name": "queue", "query": "q", "thresholdRange": {"max": 10}},
            {"value": ok(3), "canary_requests": ok(0)},
            MetricResult.INCONCLUSIVE,
            None,
            "zero traffic",
            id="custom without canary traffic",
        ),
        pytest.param(
            {"name": "queue", "query": "q", "thresholdRange": {"max": 10}},
            {"value": QueryResult.failed("bad_data: parse error"), "canary_requests": ok(100)},
            MetricResult.ERROR,
            None,
            "value query failed: bad_data",
            id="custom invalid query",
        ),
    ],
)
def test_evaluate(
    spec: dict[str, Any],
    results: dict[str, QueryResult],
    result: MetricResult,
    value: float | None,
    reason: str,
) -> None:
    m = MetricSpec.from_k8s(spec)
    outcome = evaluate(m, CTX, results)
    assert outcome.result is result, outcome.reason
    if value is None:
        assert outcome.value is None
    else:
        assert outcome.value == pytest.approx(value, abs=1e-9)
    assert reason in outcome.reason
    assert outcome.metric == m.name
    assert outcome.threshold_text == threshold_text(m)
    for query in queries_for(m, CTX).values():
        assert query in outcome.query


def test_custom_metric_without_traffic_gate_when_min_requests_is_zero() -> None:
    custom = metric("cpu", query="up", thresholdRange={"max": 1})
    outcome = evaluate(custom, dataclasses.replace(CTX, min_requests=0), {"value": ok(0.5)})
    assert outcome.result is MetricResult.SUCCESSFUL
    assert outcome.query == "up"


def test_zero_min_requests_still_needs_one_request_for_builtins() -> None:
    rate = metric("request-success-rate")
    outcome = evaluate(
        rate,
        dataclasses.replace(CTX, min_requests=0),
        {"canary_requests": ok(0), "canary_errors": NO},
    )
    assert outcome.result is MetricResult.INCONCLUSIVE


def test_error_outcome_and_record() -> None:
    outcome = error_outcome(metric("request-duration"), CTX, "Prometheus is unreachable")
    assert outcome.result is MetricResult.ERROR
    record = outcome.to_record(T0)
    assert (record.metric, record.result, record.message, record.time) == (
        "request-duration",
        MetricResult.ERROR,
        "Prometheus is unreachable",
        T0,
    )
    assert record.query.startswith("canary_requests: ")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({"name": "request-success-rate"}, ">= 99", id="min only"),
        pytest.param({"name": "request-duration"}, "<= 500", id="max only"),
        pytest.param(
            {"name": "x", "query": "q", "thresholdRange": {"min": 1, "max": 5.5}},
            ">= 1 and <= 5.5",
            id="both bounds",
        ),
        pytest.param(
            {"name": "error-rate-vs-primary"},
            "canary 5xx <= primary + 1pp (or not higher at 95% confidence)",
            id="two-proportion test",
        ),
        pytest.param(
            {"name": "latency-vs-primary", "maxRatio": 1.5}, "p99 ratio < 1.5", id="latency ratio"
        ),
        pytest.param(
            {"name": "slo-burn-rate", "objective": 99.9},
            "burn rate < 14.4 (objective 99.9%)",
            id="burn rate",
        ),
    ],
)
def test_threshold_text(spec: dict[str, Any], expected: str) -> None:
    assert threshold_text(MetricSpec.from_k8s(spec)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(91.2, "91.2", id="one decimal"),
        pytest.param(99.0, "99", id="whole"),
        pytest.param(0.012345, "0.01235", id="small"),
        pytest.param(1234.56, "1235", id="large"),
        pytest.param(0.00001234, "0.000012", id="tiny without exponent"),
        pytest.param(math.inf, "inf", id="infinite"),
    ],
)
def test_format_value(value: float, expected: str) -> None:
    assert format_value(value) == expected


def outcome_of(name: str, result: MetricResult) -> MetricOutcome:
    return MetricOutcome(name, "q", None, "t", result, f"{name} said {result}")


S, F, INC, E = (
    MetricResult.SUCCESSFUL,
    MetricResult.FAILED,
    MetricResult.INCONCLUSIVE,
    MetricResult.ERROR,
)


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        pytest.param([], S, id="no metrics is a pass"),
        pytest.param([S, S], S, id="all successful"),
        pytest.param([S, INC], INC, id="inconclusive beats successful"),
        pytest.param([INC, E], E, id="error beats inconclusive"),
        pytest.param([E, F, INC], F, id="failed beats everything"),
    ],
)
def test_tick_result_takes_the_worst(results: list[MetricResult], expected: MetricResult) -> None:
    tick = tick_result([outcome_of(f"m{i}", r) for i, r in enumerate(results)])
    assert tick.result is expected
    assert all(o.result is expected for o in tick.deciding)


def test_tick_summary_names_the_deciding_metrics() -> None:
    tick = tick_result([outcome_of("a", S), outcome_of("b", F), outcome_of("c", F)])
    assert tick.summary() == "b b said Failed; c c said Failed"
    assert tick_result([]).summary() == "no metrics configured"


def test_a_query_role_is_always_the_same_measurement() -> None:
    # Why: adapters may cache identical queries within a tick; two metrics asking for
    # canary_requests over the same interval must ask the same thing.
    a = queries_for(metric("request-success-rate"), CTX)
    b = queries_for(metric("request-duration"), CTX)
    assert a[Role.CANARY_REQUESTS] == b[Role.CANARY_REQUESTS]
    assert CTX.interval_of(metric("request-duration", interval="5m")) == dt.timedelta(minutes=5)
