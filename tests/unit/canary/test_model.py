from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dabba.canary.model import (
    DEFAULT_TOLERANCE,
    MAX_HISTORY,
    AnalysisRecord,
    CanarySpec,
    CanaryStatus,
    Cohort,
    Condition,
    GatewayRef,
    HandledRequests,
    Mesh,
    MetricResult,
    Phase,
    Router,
    RunRecord,
    RunResult,
    StringMatch,
    ThresholdRange,
    WebhookType,
    Weights,
    format_duration,
    format_time,
    parse_duration,
    parse_time,
    set_condition,
)
from dabba.errors import SpecError
from tests.unit.canary.sim import T0, make_spec, spec_dict

# -- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("60s", dt.timedelta(seconds=60), id="seconds"),
        pytest.param("1m30s", dt.timedelta(seconds=90), id="minutes and seconds"),
        pytest.param("500ms", dt.timedelta(milliseconds=500), id="milliseconds are not minutes"),
        pytest.param("2h", dt.timedelta(hours=2), id="hours"),
        pytest.param(
            "1h2m3s4ms",
            dt.timedelta(hours=1, minutes=2, seconds=3, milliseconds=4),
            id="every unit in order",
        ),
        pytest.param("0s", dt.timedelta(0), id="zero"),
        pytest.param("90s", dt.timedelta(seconds=90), id="seconds above a minute are fine"),
        pytest.param("5m", dt.timedelta(minutes=5), id="minutes alone"),
    ],
)
def test_parse_duration_accepts_the_crd_grammar(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("60", id="no unit"),
        pytest.param("1.5m", id="fractions are rejected"),
        pytest.param("1d", id="days are rejected"),
        pytest.param("30s1m", id="units out of order"),
        pytest.param("-5s", id="negative"),
        pytest.param("1m 30s", id="inner space"),
        pytest.param("10us", id="microseconds"),
    ],
)
def test_parse_duration_rejects_everything_else(text: str) -> None:
    with pytest.raises(SpecError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(dt.timedelta(seconds=90), "1m30s", id="largest unit first"),
        pytest.param(dt.timedelta(seconds=60), "1m", id="whole minute"),
        pytest.param(dt.timedelta(milliseconds=1500), "1s500ms", id="milliseconds"),
        pytest.param(dt.timedelta(hours=2, seconds=5), "2h5s", id="zero parts are left out"),
        pytest.param(dt.timedelta(0), "0s", id="zero"),
    ],
)
def test_format_duration(value: dt.timedelta, expected: str) -> None:
    assert format_duration(value) == expected


@settings(max_examples=60)
@given(st.integers(min_value=1, max_value=10 * 3_600_000))
def test_format_then_parse_is_the_identity(millis: int) -> None:
    value = dt.timedelta(milliseconds=millis)
    assert parse_duration(format_duration(value)) == value


def test_times_are_written_in_utc_with_whole_seconds() -> None:
    when = dt.datetime(2026, 3, 1, 13, 0, 5, 999_999, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert format_time(when) == "2026-03-01T12:00:05Z"
    assert parse_time("2026-03-01T12:00:05Z") == dt.datetime(2026, 3, 1, 12, 0, 5, tzinfo=dt.UTC)


# -- spec ----------------------------------------------------------------------------------


def test_spec_defaults_follow_the_spec() -> None:
    spec = CanarySpec.from_k8s(
        {"targetRef": {"name": "podinfo"}, "service": {"port": 9898}}, name="c", namespace="ns"
    )
    assert spec.service.name == "podinfo"
    assert spec.service.primary_name == "podinfo-primary"
    assert spec.service.canary_name == "podinfo-canary"
    assert spec.primary_name == "podinfo-primary"
    assert spec.router is Router.ISTIO
    assert spec.mesh is Mesh.ISTIO
    analysis = spec.analysis
    assert analysis.interval == dt.timedelta(seconds=60)
    assert (analysis.step_weights, analysis.step_weight, analysis.max_weight) == (None, None, None)
    assert (analysis.checks_per_step, analysis.threshold) == (1, 5)
    assert (analysis.min_requests, analysis.max_inconclusive) == (20, 10)
    assert spec.progress_deadline_seconds == 600
    assert not (spec.skip_analysis)
    assert not (spec.suspend)
    assert not (spec.revert_on_deletion)


def test_spec_reads_every_field() -> None:
    data = spec_dict(
        router="gatewayapi",
        service={
            "name": "front",
            "targetPort": "http",
            "hosts": ["front.example.com"],
            "gatewayRefs": [{"name": "gw", "namespace": "infra", "sectionName": "https"}],
        },
        analysis={
            "interval": "1m30s",
            "stepWeight": 20,
            "maxWeight": 50,
            "checksPerStep": 2,
            "minRequests": 5,
            "maxInconclusive": 0,
            "mesh": "linkerd",
            "match": [{"headers": {"x-canary": {"exact": "true"}, "user": {"prefix": "qa-"}}}],
            "metrics": [
                {"name": "error-rate-vs-primary", "confidence": 0.99, "tolerance": 0.5},
                {"name": "latency-vs-primary", "maxRatio": 1.5, "interval": "2m"},
                {"name": "slo-burn-rate", "objective": 99.9},
                {
                    "name": "cpu",
                    "query": 'sum(x{ns="{{ namespace }}"})',
                    "thresholdRange": {"max": 2},
                },
            ],
            "webhooks": [
                {
                    "name": "gate",
                    "type": "confirm-promotion",
                    "url": "http://gate",
                    "timeout": "5s",
                    "metadata": {"a": "b"},
                },
                {"name": "load", "url": "http://load"},
            ],
        },
        metricsServer="http://prom:9090",
        skipAnalysis=True,
        suspend=True,
        revertOnDeletion=True,
    )
    spec = CanarySpec.from_k8s(data, name="c", namespace="ns")
    assert spec.router is Router.GATEWAYAPI
    assert spec.mesh is Mesh.LINKERD
    assert spec.service.name == "front"
    assert spec.service.target_port == "http"
    assert spec.service.gateway_refs == (GatewayRef("gw", "infra", "https"),)
    a = spec.analysis
    assert a.interval == dt.timedelta(seconds=90)
    assert (a.step_weight, a.max_weight, a.checks_per_step) == (20, 50, 2)
    assert a.match == (
        Cohort(
            (("user", StringMatch("prefix", "qa-")), ("x-canary", StringMatch("exact", "true")))
        ),
    )
    assert a.match[0].to_k8s() == {
        "headers": {"user": {"prefix": "qa-"}, "x-canary": {"exact": "true"}}
    }
    erp, lat, slo, cpu = a.metrics
    assert (erp.confidence, erp.tolerance) == (0.99, 0.5)
    assert (lat.max_ratio, lat.interval) == (1.5, dt.timedelta(minutes=2))
    assert (slo.objective, slo.max_burn_rate) == (99.9, 14.4)
    assert cpu.builtin is None
    assert cpu.threshold_range == ThresholdRange(max=2)
    gate, load = a.webhooks
    assert (gate.type, gate.timeout, dict(gate.metadata)) == (
        WebhookType.CONFIRM_PROMOTION,
        dt.timedelta(seconds=5),
        {"a": "b"},
    )
    assert (load.type, load.timeout) == (WebhookType.ROLLOUT, dt.timedelta(seconds=10))
    assert a.hooks(WebhookType.ROLLOUT) == (load,)
    assert spec.metrics_server == "http://prom:9090"
    assert spec.skip_analysis
    assert spec.suspend
    assert spec.revert_on_deletion


@pytest.mark.parametrize(
    ("router", "mesh"),
    [
        pytest.param("istio", Mesh.ISTIO, id="istio router reads istio metrics"),
        pytest.param("gatewayapi", Mesh.ENVOY, id="gatewayapi router reads envoy metrics"),
        pytest.param("kubernetes", Mesh.ISTIO, id="kubernetes router defaults to istio metrics"),
    ],
)
def test_default_mesh_per_router(router: str, mesh: Mesh) -> None:
    assert make_spec(router=router).mesh is mesh


def test_builtin_metrics_get_their_default_thresholds() -> None:
    spec = make_spec(
        analysis={
            "metrics": [
                {"name": "request-success-rate"},
                {"name": "request-duration"},
                {"name": "error-rate-vs-primary"},
                {"name": "latency-vs-primary"},
            ]
        }
    )
    rate, duration, erp, lat = spec.analysis.metrics
    assert rate.threshold_range == ThresholdRange(min=99)
    assert duration.threshold_range == ThresholdRange(max=500)
    assert (erp.confidence, erp.tolerance) == (0.95, DEFAULT_TOLERANCE)
    assert lat.max_ratio == 1.2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param({"targetRef": {"name": None}}, "targetRef.name is required", id="no target"),
        pytest.param(
            {"targetRef": {"kind": "StatefulSet"}},
            "only apps/v1 Deployments",
            id="not a Deployment",
        ),
        pytest.param({"service": {"port": None}}, "service.port is required", id="no port"),
        pytest.param({"router": "smi"}, "unknown router", id="unknown router"),
        pytest.param(
            {"analysis": {"interval": "1.5m"}}, "is not a duration", id="interval does not parse"
        ),
        pytest.param({"analysis": {"interval": "2s"}}, "at least 5s", id="interval below 5s"),
        pytest.param(
            {"analysis": {"stepWeights": [5], "stepWeight": 5}}, "not both", id="both schedules"
        ),
        pytest.param(
            {"analysis": {"stepWeights": []}}, "must not be empty", id="empty stepWeights"
        ),
        pytest.param(
            {"analysis": {"stepWeights": [10, 5]}},
            "strictly increasing",
            id="decreasing stepWeights",
        ),
        pytest.param(
            {"analysis": {"stepWeights": [10, 10]}},
            "strictly increasing",
            id="repeated stepWeights",
        ),
        pytest.param({"analysis": {"stepWeights": [0, 5]}}, "between 1 and 100", id="zero weight"),
        pytest.param(
            {"analysis": {"stepWeights": [50, 101]}}, "between 1 and 100", id="weight above 100"
        ),
        pytest.param(
            {"analysis": {"stepWeight": 30, "maxWeight": 20}},
            "greater than or equal",
            id="maxWeight below stepWeight",
        ),
        pytest.param(
            {"analysis": {"threshold": 0}}, "threshold must be at least 1", id="threshold zero"
        ),
        pytest.param({"analysis": {"checksPerStep": 0}}, "checksPerStep", id="no checks per step"),
        pytest.param({"analysis": {"mesh": "consul"}}, "analysis.mesh", id="unknown mesh"),
        pytest.param(
            {"analysis": {"metrics": [{"name": "cpu", "thresholdRange": {"max": 1}}]}},
            "needs a query",
            id="custom metric without query",
        ),
        pytest.param(
            {"analysis": {"metrics": [{"name": "cpu", "query": "up"}]}},
            "needs thresholdRange",
            id="custom metric without threshold",
        ),
        pytest.param(
            {
                "analysis": {
                    "metrics": [
                        {"name": "cpu", "query": 'up{a="{{ nope }}"}', "thresholdRange": {"max": 1}}
                    ]
                }
            },
            "unknown template variable",
            id="custom query with an unknown variable",
        ),
        pytest.param(
            {"analysis": {"metrics": [{"name": "request-duration", "query": "up"}]}},
            "cannot be set on the builtin",
            id="query on a builtin",
        ),
        pytest.param(
            {"analysis": {"metrics": [{"name": "slo-burn-rate"}]}},
            "needs objective",
            id="burn rate without objective",
        ),
        pytest.param(
            {"analysis": {"metrics": [{"name": "error-rate-vs-primary", "confidence": 1.0}]}},
            "confidence",
            id="confidence of one",
        ),
        pytest.param(
            {"analysis": {"metrics": [{"name": "request-duration", "interval": "1s"}]}},
            "at least 5s",
            id="metric interval below 5s",
        ),
        pytest.param(
            {"analysis": {"metrics": [{"name": "request-duration"}, {"name": "request-duration"}]}},
            "duplicate metric",
            id="duplicate metric names",
        ),
        pytest.param(
            {"analysis": {"webhooks": [{"name": "a", "url": "http://a", "type": "pre-flight"}]}},
            "unknown type",
            id="unknown webhook type",
        ),
        pytest.param(
            {"analysis": {"webhooks": [{"name": "a"}]}},
            "needs a name and a url",
            id="webhook without url",
        ),
        pytest.param(
            {"analysis": {"match": [{"headers": {"x": {"exact": "a", "prefix": "b"}}}]}},
            "exactly one of",
            id="header match with two matchers",
        ),
        pytest.param({"progressDeadlineSeconds": 0}, "progressDeadlineSeconds", id="zero deadline"),
        pytest.param({"suspend": "yes"}, "suspend must be true or false", id="wrong type"),
        pytest.param(
            {"analysis": {"threshold": True}},
            "threshold must be an integer",
            id="a bool is not a number",
        ),
    ],
)
def test_spec_errors_are_spec_errors(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        make_spec(**extra)


# -- weights and conditions ------------------------------------------------------------------


def test_weights_always_sum_to_100() -> None:
    assert Weights.for_canary(25) == Weights(75, 25)
    assert str(Weights(75, 25)) == "primary 75% / canary 25%"
    with pytest.raises(ValueError, match="sum to 100"):
        Weights(50, 60)


def test_set_condition_moves_the_time_only_when_the_status_changes() -> None:
    later = T0 + dt.timedelta(minutes=5)
    first = set_condition((), type_="Ready", status="True", reason="Ready", message="a", now=T0)
    same = set_condition(
        first, type_="Ready", status="True", reason="Other", message="b", now=later
    )
    flipped = set_condition(same, type_="Ready", status="False", reason="X", message="c", now=later)
    assert same[0].last_transition_time == T0
    assert same[0].reason == "Other"
    assert flipped[0].last_transition_time == later


def test_phases_are_idle_or_in_analysis() -> None:
    assert {p for p in Phase if p.is_idle} == {Phase.INITIALIZED, Phase.SUCCEEDED, Phase.FAILED}
    assert {p for p in Phase if p.in_analysis} == {Phase.PROGRESSING, Phase.WAITING_PROMOTION}
    assert all(p.__doc__ for p in Phase)


# -- status round trip -----------------------------------------------------------------------

_times = st.datetimes(
    min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2040, 1, 1), timezones=st.just(dt.UTC)
).map(lambda t: t.replace(microsecond=0))
_text = st.text(alphabet="abcdef0123456789", min_size=1, max_size=16)

_statuses = st.builds(
    CanaryStatus,
    phase=st.none() | st.sampled_from(Phase),
    canary_weight=st.integers(0, 100),
    step_index=st.integers(0, 10),
    failed_checks=st.integers(0, 10),
    inconclusive_checks=st.integers(0, 10),
    checks_at_weight=st.integers(0, 10),
    consecutive_errors=st.integers(0, 10),
    revision=st.none() | _text,
    last_promoted_revision=st.none() | _text,
    last_failed_revision=st.none() | _text,
    last_transition_time=st.none() | _times,
    last_tick_time=st.none() | _times,
    run_start_time=st.none() | _times,
    observed_generation=st.none() | st.integers(1, 100),
    conditions=st.lists(
        st.builds(
            Condition,
            type=_text,
            status=st.sampled_from(["True", "False", "Unknown"]),
            reason=_text,
            message=st.text(max_size=20),
            last_transition_time=_times,
        ),
        max_size=2,
    ).map(tuple),
    last_analysis=st.lists(
        st.builds(
            AnalysisRecord,
            metric=_text,
            query=st.text(max_size=30),
            value=st.none() | st.floats(allow_nan=False, allow_infinity=False),
            threshold=st.text(max_size=10),
            result=st.sampled_from(MetricResult),
            message=st.text(max_size=20),
            time=_times,
        ),
        max_size=3,
    ).map(tuple),
    history=st.lists(
        st.builds(
            RunRecord,
            revision=_text,
            result=st.sampled_from(RunResult),
            started=_times,
            finished=_times,
            reason=st.text(max_size=20),
        ),
        max_size=MAX_HISTORY,
    ).map(tuple),
    handled=st.builds(
        HandledRequests, promote=st.none() | _text, abort=st.none() | _text, retry=st.none() | _text
    ),
)


@settings(max_examples=60)
@given(_statuses)
def test_status_round_trips_through_its_kubernetes_form(status: CanaryStatus) -> None:
    assert CanaryStatus.from_k8s(status.to_k8s()) == status


def test_empty_status_is_a_new_canary_and_foreign_keys_are_ignored() -> None:
    assert CanaryStatus.from_k8s(None) == CanaryStatus()
    assert CanaryStatus.from_k8s({"kopf": {"progress": {}}}) == CanaryStatus()


def test_history_keeps_the_newest_ten_runs() -> None:
    status = CanaryStatus()
    for i in range(15):
        status = status.with_run_recorded(RunRecord(f"r{i}", RunResult.FAILED, T0, T0, "x"))
    assert len(status.history) == MAX_HISTORY
    assert status.history[0].revision == "r14"
    assert status.history[-1].revision == "r5"
