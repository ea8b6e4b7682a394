"""Two Canaries on one target: the second is told so in status and an Event (issue 9).

Found by the bad-input corpus of the chaos suite: the second Canary's evaluation raised
``SpecError`` from the router ("two Canaries cannot share a routing object") and the daemon
only logged a traceback every 5 s — no condition, no Event.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dabba.canary import observe, reconcile
from dabba.canary.naming import CANARY_LABEL
from dabba.errors import SpecError
from tests.unit.canary.routers.specs import canary_spec

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
BODY: dict[str, Any] = {
    "metadata": {"name": "second", "namespace": "test", "generation": 1},
    "spec": {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "router": "istio",
        "service": {"port": 9898},
    },
}


class _Router:
    def weights(self, spec: object) -> None:
        return None


def test_a_primary_managed_by_another_canary_is_a_spec_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deployments = {
        "podinfo": {"metadata": {"name": "podinfo"}, "spec": {"replicas": 1}},
        "podinfo-primary": {
            "metadata": {"name": "podinfo-primary", "labels": {CANARY_LABEL: "first"}},
            "spec": {"replicas": 1},
        },
    }
    monkeypatch.setattr(
        observe.workloads, "read_deployment", lambda _k, _ns, name: deployments.get(name)
    )
    spec = canary_spec(name="second")
    with pytest.raises(SpecError, match="managed by Canary first; two Canaries"):
        observe.observe(None, _Router(), spec, BODY)  # type: ignore[arg-type]


def test_a_spec_error_while_observing_is_reported_in_status_and_an_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    patched: list[dict[str, Any]] = []
    events: list[tuple[str, str, str]] = []
    monkeypatch.setattr(reconcile.objects, "get_custom", lambda *_: BODY)
    monkeypatch.setattr(
        reconcile.objects, "patch_status", lambda _k, _p, _ns, _n, status: patched.append(status)
    )
    monkeypatch.setattr(reconcile, "router_for", lambda *_: _Router())

    def conflict(*_: object) -> None:
        raise SpecError("VirtualService podinfo is managed by Canary first; two Canaries ...")

    monkeypatch.setattr(reconcile.observe_mod, "observe", conflict)
    providers = reconcile.Providers(None, lambda url: None)  # type: ignore[arg-type,return-value]

    def record(type_: str, reason: str, message: str) -> None:
        events.append((type_, reason, message))

    outcome = reconcile.evaluate(None, "test", "second", providers, lambda: NOW, record)  # type: ignore[arg-type]

    assert outcome.requeue_after == reconcile.BLOCKED_RETRY
    assert outcome.target == "podinfo"
    [status] = patched
    [ready] = status["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", "InvalidSpec")
    assert "two Canaries" in ready["message"]
    assert events == [("Warning", "InvalidSpec", ready["message"])]
