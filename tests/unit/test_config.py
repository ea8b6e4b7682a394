from __future__ import annotations

from typing import Any

import pytest

from dabba.config import OperatorConfig, parse
from dabba.errors import ConfigError


def _parse(env: dict[str, str] | None = None, **flags: Any) -> OperatorConfig:
    base: dict[str, Any] = {
        "all_namespaces": None,
        "namespaces": (),
        "prometheus_url": None,
        "listen_host": None,
        "metrics_port": None,
        "log_format": None,
        "log_level": None,
        "peering_name": None,
        "standalone": None,
        "priority": None,
    }
    base.update(flags)
    return parse(**base, env=env or {})


def test_defaults_watch_every_namespace_with_leader_election() -> None:
    cfg = _parse()
    assert cfg.clusterwide
    assert cfg.namespaces == ()
    assert cfg.prometheus_url is None
    assert cfg.metrics_port == 8080
    assert cfg.log_format == "auto"
    assert cfg.log_level == "info"
    assert cfg.peering_name == "dabba"
    assert not cfg.standalone
    assert cfg.priority >= 1


def test_replicas_get_distinct_priorities_unless_one_is_given() -> None:
    # kopf pauses all peers that share a priority: replicas must not collide by default.
    priorities = {_parse().priority for _ in range(50)}
    assert len(priorities) == 50
    assert _parse(priority="7").priority == 7
    assert _parse({"DABBA_PRIORITY": "9"}).priority == 9


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        pytest.param({"namespaces": ("a", "b")}, {}, ("a", "b"), id="namespaces from flags"),
        pytest.param({}, {"DABBA_NAMESPACES": "x, y,"}, ("x", "y"), id="namespaces from env"),
        pytest.param(
            {"namespaces": ("a",)}, {"DABBA_NAMESPACES": "x"}, ("a",), id="flags win over env"
        ),
        pytest.param(
            {"all_namespaces": True},
            {"DABBA_NAMESPACES": "x"},
            (),
            id="-A wins over env namespaces",
        ),
    ],
)
def test_namespace_selection(
    flags: dict[str, Any], env: dict[str, str], expected: tuple[str, ...]
) -> None:
    cfg = _parse(env, **flags)
    assert cfg.namespaces == expected
    assert cfg.clusterwide == (expected == ())


def test_env_supplies_prometheus_url_and_logging() -> None:
    cfg = _parse(
        {
            "DABBA_PROMETHEUS_URL": "http://127.0.0.1:9090",
            "DABBA_LOG_FORMAT": "JSON",
            "DABBA_LOG_LEVEL": "debug",
            "DABBA_METRICS_PORT": "9000",
            "DABBA_STANDALONE": "true",
            "DABBA_PRIORITY": "5",
        }
    )
    assert cfg.prometheus_url == "http://127.0.0.1:9090"
    assert cfg.log_format == "json"
    assert cfg.log_level == "debug"
    assert cfg.metrics_port == 9000
    assert cfg.standalone
    assert cfg.priority == 5


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param({"all_namespaces": True, "namespaces": ("a",)}, "not both", id="-A with -n"),
        pytest.param(
            {"prometheus_url": "prometheus:9090"}, "http://host:port", id="URL without scheme"
        ),
        pytest.param({"prometheus_url": "ftp://x"}, "http://host:port", id="URL with bad scheme"),
        pytest.param({"metrics_port": "http"}, "port number", id="port not a number"),
        pytest.param({"metrics_port": "70000"}, "between 0 and 65535", id="port out of range"),
        pytest.param({"log_format": "xml"}, "log format", id="unknown log format"),
        pytest.param({"log_level": "loud"}, "log level", id="unknown log level"),
        pytest.param({"priority": "high"}, "priority", id="priority not an integer"),
    ],
)
def test_bad_configuration_is_a_clear_error(flags: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _parse(**flags)
