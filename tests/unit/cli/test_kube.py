"""kubectl-like connection rules and error mapping (no API server needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from dabba.cli import kube
from dabba.cli.errors import ConfigProblem


def _kubeconfig(path: Path, current: str | None, contexts: dict[str, str | None]) -> Path:
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": "https://10.1.2.3:6443", "insecure-skip-tls-verify": True},
            }
        ],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [
            {
                "name": name,
                "context": {"cluster": "c", "user": "u", **({"namespace": ns} if ns else {})},
            }
            for name, ns in contexts.items()
        ],
    }
    if current:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KUBECONFIG", raising=False)


def test_namespace_comes_from_flag_then_context_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _kubeconfig(tmp_path / "kc", "prod", {"prod": "shop", "dev": None})
    monkeypatch.setenv("KUBECONFIG", str(path))
    assert kube.connect(None, None, None, False).target.namespace == "shop"
    assert kube.connect(None, None, "bank", False).target.namespace == "bank"
    dev = kube.connect(None, "dev", None, True).target
    assert (dev.namespace, dev.context, dev.all_namespaces) == ("default", "dev", True)
    assert dev.server == "https://10.1.2.3:6443"
    assert dev.where() == "all namespaces"


def test_kubeconfig_paths_merge_like_kubectl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _kubeconfig(tmp_path / "a", None, {"a": "from-a"})
    second = _kubeconfig(tmp_path / "b", "a", {"a": "ignored", "b": "from-b"})
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'missing'}:{second}")
    # current-context from the second file, the context itself from the first (first wins).
    assert kube.connect(None, None, None, False).target.namespace == "from-a"
    assert kube.connect(None, "b", None, False).target.namespace == "from-b"


def test_explicit_kubeconfig_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path / "env", "x", {"x": "env"})))
    path = _kubeconfig(tmp_path / "flag", "y", {"y": "flag"})
    assert kube.connect(str(path), None, None, False).target.namespace == "flag"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing-file", "does not exist"),
        ("no-kubeconfig", "no kubeconfig found"),
        ("no-current", "has no current context"),
        ("unknown-context", "context nope not found in the kubeconfig (available: a)"),
        ("not-yaml", "cannot read kubeconfig"),
    ],
)
def test_config_problems_exit_2(tmp_path: Path, setup: str, message: str) -> None:
    explicit: str | None = None
    context: str | None = None
    if setup == "missing-file":
        explicit = str(tmp_path / "none")
    elif setup == "no-current":
        explicit = str(_kubeconfig(tmp_path / "kc", None, {"a": None}))
    elif setup == "unknown-context":
        explicit = str(_kubeconfig(tmp_path / "kc", "a", {"a": None}))
        context = "nope"
    elif setup == "not-yaml":
        (tmp_path / "kc").write_text("{unclosed")
        explicit = str(tmp_path / "kc")
    with pytest.raises(ConfigProblem, match=re.escape(message)) as caught:
        kube.connect(explicit, context, None, False)
    assert caught.value.exit_code == 2


def _api_exception(status: int, body: object) -> ApiException:
    exc = ApiException(status=status, reason="Not Found")
    exc.body = body if isinstance(body, str) else json.dumps(body)
    return exc


def test_a_missing_object_is_told_apart_from_a_missing_crd() -> None:
    obj = _api_exception(
        404,
        {
            "kind": "Status",
            "message": 'canaries.dabba.io "x" not found',
            "reason": "NotFound",
            "details": {"name": "x", "group": "dabba.io", "kind": "canaries"},
        },
    )
    assert kube._is_object_not_found(obj)
    assert kube._status_message(obj) == 'canaries.dabba.io "x" not found'
    no_crd = _api_exception(404, "404 page not found")
    assert not kube._is_object_not_found(no_crd)
    assert kube._status_message(no_crd) == "Not Found"


def test_events_order_by_time_then_storage_order() -> None:
    def event(ts: str, rv: str) -> dict[str, Any]:
        return {"lastTimestamp": ts, "metadata": {"resourceVersion": rv}}

    events = [
        event("2026-01-01T00:00:01Z", "90"),
        event("2026-01-01T00:00:00Z", "120"),
        event("2026-01-01T00:00:00Z", "100"),
    ]
    ordered = sorted(events, key=kube.event_order)
    assert [e["metadata"]["resourceVersion"] for e in ordered] == ["100", "120", "90"]
    assert kube.event_time({"eventTime": "2026-01-01T00:00:00.000001Z"}).startswith("2026")
