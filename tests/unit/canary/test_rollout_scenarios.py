"""Whole runs replayed against a simulated cluster on a frozen clock (no cluster needed)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dabba.canary.model import Phase, RunResult, Weights
from dabba.canary.state_machine import (
    Controls,
    CopyTemplateToPrimary,
    ScaleTarget,
    SetWeights,
)
from tests.unit.canary.sim import Driver, World, make_spec

DONE = (Phase.SUCCEEDED, Phase.FAILED)


def started(world: World | None = None, **spec: Any) -> Driver:
    """A driver whose Canary is Initialized over rev-a."""
    driver = Driver(make_spec(**spec), world or World())
    driver.settle()
    return driver


def release(driver: Driver, revision: str = "rev-b", **behaviour: float) -> int:
    """Deploy a revision; returns the index of the first evaluation that sees it."""
    driver.world.deploy(revision, driver.clock.now(), **behaviour)
    return len(driver.log)


def canary_weights(driver: Driver, since: int = 0) -> list[int]:
    """Canary weights the router was given, consecutive repeats collapsed."""
    seen: list[int] = []
    for ev in driver.log[since:]:
        for action in ev.decision.actions:
            if isinstance(action, SetWeights) and (not seen or seen[-1] != action.canary):
                seen.append(action.canary)
    return seen


def messages(driver: Driver, reason: str) -> list[str]:
    return [e.message for e in driver.events if e.reason == reason]


@pytest.mark.parametrize(
    ("router", "weights", "series"),
    [
        pytest.param(
            "istio", [5, 10, 25, 50, 0], "istio_requests_total", id="istio walks the schedule"
        ),
        pytest.param(
            "gatewayapi",
            [5, 10, 25, 50, 0],
            "envoy_cluster_upstream_rq",
            id="gatewayapi walks the schedule",
        ),
        pytest.param(
            "kubernetes", [100, 0], "istio_requests_total", id="kubernetes switches all at once"
        ),
    ],
)
def test_good_release_is_promoted(router: str, weights: list[int], series: str) -> None:
    driver = started(router=router)
    first = release(driver)
    final = driver.run_to(*DONE)
    world = driver.world
    assert final.phase is Phase.SUCCEEDED
    assert final.last_promoted_revision == "rev-b"
    assert (world.primary_revision, world.target_replicas, world.weights) == (
        "rev-b",
        0,
        Weights(100, 0),
    )
    assert world.copies == ["rev-b"]
    assert canary_weights(driver, first) == weights
    assert driver.phases()[-4:] == [
        Phase.PROGRESSING,
        Phase.PROMOTING,
        Phase.FINALISING,
        Phase.SUCCEEDED,
    ]
    assert final.history[0].result is RunResult.SUCCEEDED
    assert all(series in m.queries["canary_requests"] for ev in driver.log for m in ev.plan.metrics)
    assert messages(driver, "WeightChanged")[:2] == [
        f"canary weight 0% → {weights[0]}% (canary ready)",
        *(
            ["canary weight 5% → 10% (1/1 checks passed)"]
            if router != "kubernetes"
            else ["canary weight 100% → 0% (primary runs the new revision)"]
        ),
    ]


def test_good_release_with_two_checks_per_step_takes_twice_the_ticks() -> None:
    one = started()
    release(one)
    one.run_to(*DONE)
    two = started(analysis={"checksPerStep": 2})
    release(two)
    two.run_to(*DONE)

    def ticks(d: Driver) -> int:
        return sum(
            1
            for ev in d.log
            if ev.decision.reason.startswith("Tick") or ev.decision.reason == "Stepped"
        )

    assert two.status.phase is Phase.SUCCEEDED
    assert ticks(two) > ticks(one)
    # The step is taken by the evaluation whose tick is the second pass at that weight.
    assert [ev.before.checks_at_weight for ev in two.log if ev.decision.reason == "Stepped"][
        1:
    ] == [
        1,
        1,
        1,
    ]


@pytest.mark.parametrize("router", ["istio", "gatewayapi", "kubernetes"])
def test_bad_release_is_rolled_back_in_the_failing_tick(router: str) -> None:
    driver = started(router=router)
    first = release(driver, error_rate=0.1)
    final = driver.run_to(*DONE)
    world = driver.world
    assert final.phase is Phase.FAILED
    assert final.last_failed_revision == "rev-b"
    assert (world.primary_revision, world.target_replicas, world.weights) == (
        "rev-a",
        0,
        Weights(100, 0),
    )
    assert world.copies == []
    failing = driver.log[-1].decision
    assert failing.actions[:2] == (SetWeights(100, 0), ScaleTarget(0)), (
        "weights back in the same decision"
    )
    assert messages(driver, "Failed") == [
        "rolled back: request-success-rate 90 < 99 (3 failed checks)"
    ]
    assert messages(driver, "CheckFailed")[0] == "request-success-rate 90 < 99 (failed checks 1/3)"
    assert max(canary_weights(driver, first)) == (100 if router == "kubernetes" else 5)
    record = next(r for r in final.last_analysis if r.metric == "request-success-rate")
    assert (record.value, record.threshold, record.result.value) == (90.0, ">= 99", "Failed")


def test_latency_regression_is_caught_by_latency_vs_primary() -> None:
    driver = started(analysis={"metrics": [{"name": "latency-vs-primary"}]})
    release(driver, latency_ms=100)
    final = driver.run_to(*DONE)
    assert final.phase is Phase.FAILED
    assert "p99 canary 100ms / primary 20ms = 5 >= 1.2" in final.history[0].reason


@pytest.mark.parametrize(
    ("canary_errors", "phase"),
    [
        pytest.param(0.015, Phase.SUCCEEDED, id="slightly noisier but not worse is promoted"),
        pytest.param(0.01, Phase.SUCCEEDED, id="as good as the primary is promoted"),
        pytest.param(0.08, Phase.FAILED, id="clearly worse than the primary is rolled back"),
    ],
)
def test_error_rate_vs_primary(canary_errors: float, phase: Phase) -> None:
    world = World()
    world.behaviours["rev-a"] = world.behaviour("rev-a").__class__(error_rate=0.01)
    driver = started(world, analysis={"metrics": [{"name": "error-rate-vs-primary"}]})
    release(driver, error_rate=canary_errors)
    assert driver.run_to(*DONE).phase is phase


def test_zero_traffic_holds_then_fails_after_max_inconclusive() -> None:
    driver = started(World(rps=0), analysis={"maxInconclusive": 4})
    first = release(driver)
    final = driver.run_to(*DONE)
    assert final.phase is Phase.FAILED
    assert Phase.PROMOTING not in driver.phases()
    assert canary_weights(driver, first) == [5, 0], "inconclusive never advances"
    assert len(messages(driver, "CheckInconclusive")) == 4
    assert final.history[0].reason.startswith(
        "4 inconclusive checks in a row: request-success-rate no canary requests"
    )
    assert final.failed_checks == 0


def test_prometheus_down_mid_run_errors_then_rolls_back() -> None:
    driver = started()
    release(driver)
    driver.run_until(lambda s: s.canary_weight == 25)
    driver.world.prometheus_up = False
    final = driver.run_to(*DONE)
    assert final.phase is Phase.FAILED
    assert Phase.PROMOTING not in driver.phases()
    assert len(messages(driver, "CheckError")) == 2
    assert len(messages(driver, "CheckFailed")) == 3  # the 3rd, 4th and 5th errors in a row
    assert "connection refused" in final.history[0].reason
    assert driver.world.weights == Weights(100, 0)


def test_new_revision_mid_run_restarts_from_the_first_step() -> None:
    driver = started()
    release(driver)
    driver.run_until(lambda s: s.canary_weight == 25)
    restart = release(driver, "rev-c")
    final = driver.run_to(*DONE)
    assert final.phase is Phase.SUCCEEDED
    assert final.last_promoted_revision == "rev-c"
    assert canary_weights(driver, restart) == [0, 5, 10, 25, 50, 0]
    assert [(h.revision, h.result) for h in final.history[:2]] == [
        ("rev-c", RunResult.SUCCEEDED),
        ("rev-b", RunResult.SUPERSEDED),
    ]
    assert driver.world.copies == ["rev-c"]


def test_canary_never_ready_fails_at_the_progress_deadline() -> None:
    world = World(target_can_be_ready=False)
    driver = started(world)
    release(driver)
    final = driver.run_to(*DONE)
    assert final.phase is Phase.FAILED
    assert final.run_start_time is not None
    assert final.last_transition_time is not None
    took = final.last_transition_time - final.run_start_time
    assert dt.timedelta(seconds=60) <= took <= dt.timedelta(seconds=65)
    assert (
        "canary not ready within progressDeadlineSeconds (60s): 0/2 replicas ready"
        in final.history[0].reason
    )
    assert canary_weights(driver) == [0]


def test_confirm_promotion_holds_until_it_returns_2xx() -> None:
    hooks = {
        "analysis": {
            "webhooks": [{"name": "gate", "type": "confirm-promotion", "url": "http://gate"}]
        }
    }
    world = World(hooks={"gate": False})
    driver = started(world, **hooks)
    release(driver)
    driver.run_to(Phase.WAITING_PROMOTION)
    for _ in range(10):
        driver.step()
    assert driver.status.phase is Phase.WAITING_PROMOTION
    assert world.weights == Weights(50, 50)
    world.hooks["gate"] = True
    assert driver.run_to(*DONE).phase is Phase.SUCCEEDED
    assert world.copies == ["rev-b"]


def test_abort_rolls_back_at_once() -> None:
    world = World()
    driver = started(world)
    release(driver)
    driver.run_until(lambda s: s.canary_weight == 10)
    world.controls = Controls(abort="2026-03-01T12:00:40Z")
    driver.step()
    assert driver.status.phase is Phase.FAILED
    assert world.weights == Weights(100, 0)
    assert driver.status.history[0].reason == "aborted by user"


def test_manual_promote_skips_the_rest_of_the_schedule() -> None:
    world = World()
    driver = started(world)
    release(driver)
    driver.run_until(lambda s: s.canary_weight == 10)
    world.controls = Controls(promote="p1")
    final = driver.run_to(*DONE)
    assert final.phase is Phase.SUCCEEDED
    assert max(canary_weights(driver)) == 10


def test_pause_holds_and_resume_continues() -> None:
    world = World()
    driver = started(world)
    release(driver)
    driver.run_until(lambda s: s.canary_weight == 10)
    world.controls = Controls(paused=True)
    for _ in range(8):
        driver.step()
    assert (driver.status.canary_weight, world.weights) == (10, Weights(90, 10))
    world.controls = Controls()
    assert driver.run_to(*DONE).phase is Phase.SUCCEEDED


def test_suspend_starts_no_run_until_lifted() -> None:
    world = World()
    driver = started(world, suspend=True)
    release(driver)
    for _ in range(5):
        driver.step()
    assert driver.status.phase is Phase.INITIALIZED
    assert world.target_replicas == 0
    driver.spec = make_spec()
    assert driver.run_to(*DONE).phase is Phase.SUCCEEDED


def test_retry_runs_a_failed_revision_again() -> None:
    world = World()
    driver = started(world)
    release(driver, error_rate=0.1)
    driver.run_to(*DONE)
    assert driver.status.phase is Phase.FAILED
    for _ in range(3):
        driver.step()
    assert driver.status.phase is Phase.FAILED, "a failed revision is not retried by itself"
    world.behaviours["rev-b"].error_rate = 0.0  # the dependency that broke it recovered
    world.controls = Controls(retry="r1")
    final = driver.run_to(Phase.SUCCEEDED)
    assert final.last_promoted_revision == "rev-b"
    assert [h.result for h in final.history[:2]] == [RunResult.SUCCEEDED, RunResult.FAILED]


def test_skip_analysis_promotes_without_queries() -> None:
    driver = started(skipAnalysis=True)
    release(driver)
    assert driver.run_to(*DONE).phase is Phase.SUCCEEDED
    assert not any(ev.plan.metrics for ev in driver.log)
    assert canary_weights(driver) == [0]


def test_deletion_with_revert_restores_the_target_scale() -> None:
    world = World()
    driver = started(world, revertOnDeletion=True)
    world.deleting = True
    driver.step()
    assert driver.status.phase is Phase.TERMINATING
    assert world.target_replicas == 2


# -- restart safety ------------------------------------------------------------------------


def run_with_crash(crash_offset: int | None, **behaviour: float) -> Driver:
    """A release where the evaluation ``crash_offset`` after the deploy loses its status write
    (its actions were executed: the operator died between the actions and the status patch).
    """
    driver = started()
    first = release(driver, "rev-b", **behaviour)
    if crash_offset is not None:
        driver.crash_at = {first + crash_offset}
    driver.run_to(*DONE)
    return driver


def evaluations_after_release(**behaviour: float) -> int:
    driver = started()
    first = release(driver, "rev-b", **behaviour)
    driver.run_to(*DONE)
    return len(driver.log) - first


SETTLE = len(started().log)
GOOD_LENGTH = evaluations_after_release()
BAD_LENGTH = evaluations_after_release(error_rate=0.1)


@pytest.mark.parametrize("offset", range(GOOD_LENGTH))
def test_a_crash_at_any_evaluation_of_a_good_release_converges(offset: int) -> None:
    driver = run_with_crash(offset)
    world = driver.world
    assert driver.status.phase is Phase.SUCCEEDED
    assert (world.primary_revision, world.target_replicas, world.weights) == (
        "rev-b",
        0,
        Weights(100, 0),
    )
    assert world.copies == ["rev-b"], "promoted exactly once"
    steps = canary_weights(driver)[:-1]
    assert steps == sorted(set(steps)), f"a step was repeated or undone: {steps}"
    copies = [
        a for ev in driver.log for a in ev.decision.actions if isinstance(a, CopyTemplateToPrimary)
    ]
    assert len(copies) == 1
    assert len(driver.log) - SETTLE <= GOOD_LENGTH + 1, "a crash costs at most one evaluation"


@pytest.mark.parametrize("offset", range(BAD_LENGTH))
def test_a_crash_at_any_evaluation_of_a_bad_release_converges(offset: int) -> None:
    driver = run_with_crash(offset, error_rate=0.1)
    world = driver.world
    assert driver.status.phase is Phase.FAILED
    assert (world.primary_revision, world.target_replicas, world.weights) == (
        "rev-a",
        0,
        Weights(100, 0),
    )
    assert world.copies == []
    assert max(canary_weights(driver)) == 5
    assert len(driver.log) - SETTLE <= BAD_LENGTH + 1, "a crash costs at most one evaluation"
