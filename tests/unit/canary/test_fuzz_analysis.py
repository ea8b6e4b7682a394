"""Fuzzing the analysis (issue 9): whatever Prometheus answers — NaN, ±Inf, empty vectors,
several series, scalars, strings, malformed samples — the adapter and the judges never raise,
Successful/Failed need a real number, errors are Errors, and what reaches status is JSON
(``NaN`` is not JSON: a status patch carrying one would be refused by the API server).

``test_analysis.py`` has the hand-picked cases; these are the properties over everything.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dabba.canary.analysis import QueryContext, QueryResult, evaluate, queries_for, tick_result
from dabba.canary.model import Mesh, MetricResult, MetricSpec
from dabba.metrics.prometheus import _scalar
from tests.unit.canary.sim import T0, make_spec

SPEC = make_spec(analysis={"interval": "1m", "minRequests": 20})
CTX = QueryContext.for_canary(SPEC)

METRICS = [
    MetricSpec.from_k8s(m)
    for m in (
        {"name": "request-success-rate", "thresholdRange": {"min": 99}},
        {"name": "request-duration", "thresholdRange": {"max": 500}},
        {"name": "error-rate-vs-primary", "confidence": 0.95, "tolerance": 1},
        {"name": "latency-vs-primary", "maxRatio": 1.2},
        {"name": "slo-burn-rate", "objective": 99.9},
        {"name": "custom", "query": "sum(x)", "thresholdRange": {"min": 1, "max": 10}},
        {"name": "custom-min", "query": "sum(y)", "thresholdRange": {"min": 0}},
    )
]

NASTY_FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, -1e308, 5e-324]),
    st.integers(min_value=0, max_value=10_000).map(float),
)
RESULTS = st.one_of(
    NASTY_FLOATS.map(QueryResult.ok),
    st.just(QueryResult.no_data()),
    st.text(max_size=40).map(QueryResult.failed),
)

# -- the Prometheus adapter's parsing of a query's JSON result ---------------------------------

SAMPLE_VALUES = st.one_of(
    st.sampled_from(["NaN", "+Inf", "-Inf", "1", "0", "-3.5", "1e309", "", "nope"]),
    NASTY_FLOATS.map(repr),
    st.none(),
    st.integers(),
)
SAMPLES = st.one_of(
    st.tuples(st.floats(allow_nan=False), SAMPLE_VALUES).map(list),
    st.lists(SAMPLE_VALUES, max_size=3),
    st.none(),
    st.text(max_size=5),
)
SERIES = st.fixed_dictionaries(
    {"metric": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)},
    optional={"value": SAMPLES},
)
PROMETHEUS_RESULTS = st.one_of(
    st.lists(SERIES, max_size=5),  # vectors: empty, one series, several
    st.tuples(st.floats(allow_nan=False), SAMPLE_VALUES).map(list),  # scalar / string
    st.none(),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.text(max_size=10),
)


@settings(max_examples=400)
@given(PROMETHEUS_RESULTS)
def test_any_prometheus_result_parses_to_a_value_no_data_or_an_error(result: Any) -> None:
    parsed = _scalar(result)
    assert isinstance(parsed, QueryResult)
    assert parsed.value is None or isinstance(parsed.value, float)
    assert not (parsed.value is not None and parsed.error is not None)
    if isinstance(result, list) and result and isinstance(result[0], dict):
        if len(result) > 1:
            assert parsed.error is not None, "several series are an error, never a value"
            assert f"{len(result)} series" in parsed.error
        else:
            assert parsed.error is None
            assert parsed.value is not None  # unparseable samples become NaN: Inconclusive
    if result == []:
        assert parsed == QueryResult.no_data()


# -- the judges -------------------------------------------------------------------------------


@settings(max_examples=300)
@given(
    metric=st.sampled_from(METRICS),
    mesh=st.sampled_from(list(Mesh)),
    data=st.data(),
)
def test_the_judges_never_raise_and_only_judge_real_numbers(
    metric: MetricSpec, mesh: Mesh, data: st.DataObject
) -> None:
    ctx = dataclasses.replace(CTX, mesh=mesh)
    roles = list(queries_for(metric, ctx))
    results = {role: data.draw(RESULTS, label=role) for role in roles}
    if data.draw(st.booleans(), label="drop a role") and roles:
        results.pop(data.draw(st.sampled_from(roles), label="dropped"))

    outcome = evaluate(metric, ctx, results)

    if any(r.error is not None for r in results.values()) or set(results) != set(roles):
        assert outcome.result is MetricResult.ERROR, outcome
    if outcome.result in (MetricResult.SUCCESSFUL, MetricResult.FAILED):
        assert outcome.value is not None
        assert math.isfinite(outcome.value), f"judged on a non-number: {outcome}"
    # What goes into status.lastAnalysis and Events is JSON and a readable line.
    record = outcome.to_record(T0).to_k8s()
    json.dumps(record, allow_nan=False)
    assert outcome.describe()
    assert tick_result([outcome]).summary()


@settings(max_examples=200)
@given(data=st.data())
def test_zero_or_unknown_traffic_is_never_successful_or_failed(data: st.DataObject) -> None:
    """SPEC §1.3: zero traffic is Inconclusive, never Failed or Successful (builtins)."""
    metric = data.draw(st.sampled_from(METRICS[:5]))
    roles = list(queries_for(metric, CTX))
    results = {role: data.draw(RESULTS, label=role) for role in roles}
    results = {r: v for r, v in results.items() if v.error is None} | {
        r: QueryResult.ok(0.0) for r in roles if results[r].error is not None
    }
    no_traffic = data.draw(
        st.sampled_from([QueryResult.ok(0.0), QueryResult.no_data(), QueryResult.ok(math.nan)])
    )
    requests_roles = [r for r in roles if "requests" in r]
    for role in requests_roles:
        if role.startswith("canary"):
            results[role] = no_traffic
    outcome = evaluate(metric, CTX, results)
    if any(r.startswith("canary") for r in requests_roles):
        assert outcome.result is MetricResult.INCONCLUSIVE, (metric.name, results, outcome)
