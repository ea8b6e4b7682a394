"""dabba.certs.runner.Runner: scheduling rules, with reconcile replaced by a recording fake.

What a reconcile does is tested end to end (e2e/test_meshcertificate.py); here only when the
runner starts one, with what, and that it never runs one certificate twice at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, cast

import pytest

from dabba.certs import reconcile, runner
from dabba.certs.reconcile import Outcome
from dabba.clock import SystemClock
from dabba.config import OperatorConfig
from dabba.deps import Deps
from dabba.k8s.client import Clients

CONFIG = OperatorConfig(
    clusterwide=True,
    namespaces=(),
    prometheus_url=None,
    listen_host="127.0.0.1",
    metrics_port=0,
    log_format="json",
    log_level="info",
    peering_name="dabba",
    standalone=True,
    priority=1,
)


class Gate:
    def __init__(self, leading: bool = True) -> None:
        self.leading = leading

    def cached(self) -> bool | None:
        return self.leading

    def active(self) -> bool:
        return self.leading


class FakeReconcile:
    """Records each call; answers with ``outcome`` after ``hold`` seconds."""

    def __init__(self, hold: float = 0.0) -> None:
        self.calls: list[dict[str, Any]] = []
        self.hold = hold
        self.outcome = Outcome(
            next_wake=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1), issuer_secret=None
        )
        self.running: dict[str, int] = {}
        self.overlap = False
        self._lock = threading.Lock()

    def __call__(self, _k: Any, namespace: str, name: str, *_: Any, **kw: Any) -> Outcome:
        with self._lock:
            self.running[name] = self.running.get(name, 0) + 1
            self.overlap |= self.running[name] > 1
            self.calls.append({"name": name, "body": kw.get("body"), "created": kw.get("created")})
        time.sleep(self.hold)
        with self._lock:
            self.running[name] -= 1
        return self.outcome

    def names(self) -> list[str]:
        return [c["name"] for c in self.calls]


def body(
    name: str, generation: int = 1, rv: int = 1, status: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "dabba.io/v1alpha1",
        "kind": "MeshCertificate",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "generation": generation,
            "resourceVersion": str(rv),
        },
        "spec": {"secretName": f"{name}-tls"},
        **({"status": status} if status else {}),
    }


def run(
    fake: FakeReconcile,
    gate: Gate,
    scenario: Callable[[runner.Runner], Coroutine[Any, Any, None]],
    concurrency: int = runner.CONCURRENCY,
) -> None:
    async def main() -> None:
        deps = Deps(config=CONFIG, clients=cast("Clients", None), clock=SystemClock())
        r = runner.Runner(deps, cast("Any", gate), lambda *_: None, concurrency=concurrency)
        r.ensure_started()
        try:
            await scenario(r)
        finally:
            await r.stop()
            deps.shutdown()

    asyncio.run(main())


async def until(what: str, check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeReconcile:
    f = FakeReconcile()
    monkeypatch.setattr(reconcile, "reconcile", f)
    return f


def test_a_new_certificate_is_reconciled_once_from_its_event_body(fake: FakeReconcile) -> None:
    async def scenario(r: runner.Runner) -> None:
        r.observed("ns", "a", body("a"))
        await until("the reconcile", lambda: len(fake.calls) == 1)
        r.observed("ns", "a", body("a", rv=2, status={"revision": 1}))  # our status echo
        await asyncio.sleep(0.3)
        assert fake.names() == ["a"], "the echo of our own status write is not news"

    run(fake, Gate(), scenario)
    assert fake.calls[0]["body"] == body("a")
    assert fake.calls[0]["created"] is True


def test_a_spec_change_reconciles_again_with_the_new_body(fake: FakeReconcile) -> None:
    async def scenario(r: runner.Runner) -> None:
        r.observed("ns", "a", body("a"))
        await until("the first reconcile", lambda: len(fake.calls) == 1)
        r.observed("ns", "a", body("a", generation=2, rv=5))
        await until("the second reconcile", lambda: len(fake.calls) == 2)

    run(fake, Gate(), scenario)
    assert fake.calls[1]["body"] == body("a", generation=2, rv=5)
    assert fake.calls[1]["created"] is False


def test_news_during_a_run_runs_it_again_after_never_beside(fake: FakeReconcile) -> None:
    fake.hold = 0.3

    async def scenario(r: runner.Runner) -> None:
        r.observed("ns", "a", body("a"))
        await until("the first reconcile", lambda: len(fake.calls) == 1)
        for gen in range(2, 6):  # a burst of news while it runs
            r.observed("ns", "a", body("a", generation=gen, rv=gen))
        await until("the rerun", lambda: len(fake.calls) == 2, within=3)
        await asyncio.sleep(0.8)

    run(fake, Gate(), scenario)
    assert not fake.overlap
    assert fake.names() == ["a", "a"], "a burst of news is one more reconcile"


def test_a_standby_reconciles_nothing_until_it_leads(fake: FakeReconcile) -> None:
    gate = Gate(leading=False)

    async def scenario(r: runner.Runner) -> None:
        r.observed("ns", "a", body("a"))
        await asyncio.sleep(0.3)
        assert fake.calls == []
        gate.leading = True
        await until("the reconcile after taking over", lambda: len(fake.calls) == 1, within=3)

    run(fake, gate, scenario)
    # The body arrived before the pause ended: it may be stale, so the object is read fresh.
    assert fake.calls[0]["body"] is None


def test_a_deleted_certificate_is_forgotten(fake: FakeReconcile) -> None:
    fake.outcome = Outcome(next_wake=dt.datetime.now(dt.UTC), issuer_secret=None)  # due again

    async def scenario(r: runner.Runner) -> None:
        r.observed("ns", "a", body("a"))
        await until("a reconcile", lambda: len(fake.calls) >= 1)
        r.deleted("ns", "a")
        await asyncio.sleep(0.2)
        settled = len(fake.calls)
        await asyncio.sleep(0.5)
        assert len(fake.calls) == settled
        assert ("ns", "a") not in r.known

    run(fake, Gate(), scenario)


def test_a_certificate_found_gone_is_dropped(fake: FakeReconcile) -> None:
    fake.outcome = Outcome(next_wake=None, issuer_secret=None, gone=True)

    async def scenario(r: runner.Runner) -> None:
        r.observed("ns", "a", body("a"))
        await until("the reconcile", lambda: len(fake.calls) == 1)
        await until("forgetting it", lambda: ("ns", "a") not in r.known)
        r.poke(("ns", "a"))
        await asyncio.sleep(0.3)

    run(fake, Gate(), scenario)
    assert fake.names() == ["a"]


def test_concurrency_is_bounded_and_every_certificate_runs(fake: FakeReconcile) -> None:
    fake.hold = 0.05
    peak = [0]

    async def scenario(r: runner.Runner) -> None:
        for i in range(60):
            r.observed("ns", f"c{i}", body(f"c{i}"))

        async def watch() -> None:
            while len(fake.calls) < 60:
                peak[0] = max(peak[0], len(r._tasks))
                await asyncio.sleep(0.005)

        await asyncio.wait_for(watch(), 10)

    run(fake, Gate(), scenario)
    assert sorted(fake.names()) == sorted(f"c{i}" for i in range(60))
    assert peak[0] <= runner.CONCURRENCY


def test_an_issuer_secret_change_wakes_its_dependents(fake: FakeReconcile) -> None:
    fake.outcome = Outcome(
        next_wake=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1), issuer_secret=("ns", "root-ca")
    )

    async def scenario(r: runner.Runner) -> None:
        r.observed("ns", "a", body("a"))
        r.observed("ns", "b", body("b"))
        await until("both", lambda: len(fake.calls) == 2)
        await asyncio.sleep(0.3)  # past the minimum interval
        r.secret_changed("ns", "root-ca", owner="root", rv="9", deleted=False)
        await until("both again", lambda: len(fake.calls) == 4)
        r.secret_changed("ns", "a-tls", owner="a", rv="10", deleted=False)
        await until("a's own Secret edited", lambda: len(fake.calls) == 5)

    run(fake, Gate(), scenario)
    assert sorted(fake.names()[2:4]) == ["a", "b"]
    assert fake.names()[4] == "a"


def test_bodies_kept_for_pending_reconciles_are_bounded(
    fake: FakeReconcile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "MAX_BODIES", 2)

    async def scenario(r: runner.Runner) -> None:
        for i in range(5):  # all arrive before the loop runs once
            r.observed("ns", f"c{i}", body(f"c{i}"))
        assert r._bodies == 2
        await until("all five", lambda: len(fake.calls) == 5)
        assert r._bodies == 0

    run(fake, Gate(), scenario, concurrency=1)
    assert [c["body"] is not None for c in fake.calls] == [True, True, False, False, False]
    assert [c["created"] for c in fake.calls] == [True, True, False, False, False]
