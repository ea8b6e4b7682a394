"""The Prometheus adapter against the real Prometheus of the local cluster."""

from __future__ import annotations

import math

import pytest

from dabba.metrics.prometheus import PrometheusProvider
from localcluster import cluster as lc

pytestmark = pytest.mark.integration


@pytest.fixture
def prom(cluster: lc.Cluster) -> PrometheusProvider:
    return PrometheusProvider(cluster.prometheus_url)


@pytest.mark.parametrize(
    ("promql", "expected"),
    [
        pytest.param("vector(42)", 42.0, id="a vector of one sample"),
        pytest.param("scalar(vector(7))", 7.0, id="a scalar result"),
        pytest.param('sum(up{job="dabba"}) >= 0', None, id="an aggregate (value varies)"),
    ],
)
def test_one_scalar_comes_back(
    prom: PrometheusProvider, promql: str, expected: float | None
) -> None:
    result = prom.query(promql)
    assert result.error is None
    assert result.value is not None
    if expected is not None:
        assert result.value == expected


def test_empty_vector_is_no_data(prom: PrometheusProvider) -> None:
    result = prom.query('nonexistent_metric_dabba{x="y"}')
    assert result.error is None
    assert result.value is None


def test_nan_passes_through_for_the_analysis_to_judge(prom: PrometheusProvider) -> None:
    result = prom.query("vector(0) / vector(0)")
    assert result.value is not None
    assert math.isnan(result.value)
    assert result.finite is None


def test_several_series_is_an_error_naming_them(prom: PrometheusProvider) -> None:
    result = prom.query(
        'label_replace(vector(1), "a", "x", "", "") or label_replace(vector(2), "a", "y", "", "")'
    )
    assert result.error is not None
    assert "2 series" in result.error
    assert "sum()" in result.error


def test_invalid_promql_is_an_error_with_prometheus_message(prom: PrometheusProvider) -> None:
    result = prom.query("sum(rate(")
    assert result.error is not None
    assert "rejected" in result.error
    assert "parse error" in result.error


def test_unreachable_prometheus_is_an_error_quickly() -> None:
    prom = PrometheusProvider(f"http://127.0.0.1:{lc.free_port()}", timeout=2)
    result = prom.query("vector(1)")
    assert result.error is not None
    assert "unreachable" in result.error
    assert not prom.is_online()
