from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dabba.certs import rotation
from dabba.certs.rotation import IssuanceBudget
from dabba.clock import FrozenClock

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
S = dt.timedelta(seconds=1)

# A UID whose jitter we never look at: the table below subtracts the jitter explicitly.
UID = "uid-a"


def jitter_for(lifetime: dt.timedelta, uid: str = UID) -> dt.timedelta:
    return rotation.jitter(uid, lifetime)


# --------------------------------------------------------------------------------------------
# Renewal time


@pytest.mark.parametrize(
    ("lifetime", "renew_before", "before"),
    [
        pytest.param(24 * H, None, 8 * H, id="default: one third of the lifetime"),
        pytest.param(24 * H, 2 * H, 2 * H, id="explicit renewBefore"),
        pytest.param(24 * H, 24 * H, 8 * H, id="renewBefore equal to the lifetime: default"),
        pytest.param(24 * H, 48 * H, 8 * H, id="renewBefore beyond a clamped lifetime: default"),
        pytest.param(24 * H, dt.timedelta(0), 8 * H, id="zero renewBefore: default"),
        pytest.param(120 * S, None, 40 * S, id="a two minute certificate renews 40s early"),
    ],
)
def test_renewal_time_table(lifetime, renew_before, before) -> None:
    expected = (T0 + lifetime - before - jitter_for(lifetime)).replace(microsecond=0)
    assert rotation.renewal_time(T0, T0 + lifetime, renew_before, UID) == expected


def test_a_two_minute_certificate_rotates_by_1m20s() -> None:
    # The acceptance: duration 2m, renewBefore default → rotated by 1m20s.
    for n in range(50):
        renewal = rotation.renewal_time(T0, T0 + 120 * S, None, f"uid-{n}")
        assert T0 + 74 * S <= renewal <= T0 + 80 * S


def test_renewal_time_is_whole_seconds() -> None:
    renewal = rotation.renewal_time(T0, T0 + dt.timedelta(hours=7, microseconds=5), None, UID)
    assert renewal.microsecond == 0


def test_a_renew_before_almost_as_long_as_the_lifetime_never_goes_before_not_before() -> None:
    lifetime = 100 * S
    # 99 s + up to 5 s jitter would land before notBefore: it is held at notBefore.
    assert rotation.renewal_time(T0, T0 + lifetime, 99 * S, "x" * 40) >= T0


def test_a_degenerate_lifetime_renews_at_once() -> None:
    assert rotation.renewal_time(T0, T0, None, UID) == T0 - S
    assert rotation.renewal_time(T0, T0 - H, None, UID) == T0 - H - S


_TIMES = st.datetimes(
    min_value=dt.datetime(2000, 1, 1),
    max_value=dt.datetime(2100, 1, 1),
    timezones=st.just(dt.UTC),
)


@given(
    _TIMES,
    st.timedeltas(min_value=dt.timedelta(microseconds=1), max_value=dt.timedelta(days=3650)),
    st.none() | st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=4000)),
    st.text(),
)
def test_renewal_is_always_strictly_before_not_after_and_not_before_not_before(
    not_before, lifetime, renew_before, uid
) -> None:
    renewal = rotation.renewal_time(not_before, not_before + lifetime, renew_before, uid)
    assert not_before <= renewal < not_before + lifetime


# --------------------------------------------------------------------------------------------
# Jitter


@given(st.text(), st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=3650)))
def test_jitter_is_deterministic_and_at_most_five_percent(uid, lifetime) -> None:
    first = rotation.jitter(uid, lifetime)
    assert first == rotation.jitter(uid, lifetime)
    assert dt.timedelta(0) <= first <= lifetime * 5 / 100


def test_jitter_is_zero_for_non_positive_lifetimes() -> None:
    assert rotation.jitter(UID, dt.timedelta(0)) == dt.timedelta(0)
    assert rotation.jitter(UID, -H) == dt.timedelta(0)


def test_two_hundred_certificates_created_together_renew_spread_out() -> None:
    # The acceptance: no burst. 200 one-hour certs issued in the same second.
    times = [rotation.renewal_time(T0, T0 + H, None, f"{n:08x}-uid") for n in range(200)]
    window = max(times) - min(times)
    assert len(set(times)) > 100
    assert window > dt.timedelta(minutes=2)  # most of the 3 minutes (5 % of 1 h)
    busiest_second = max(times.count(t) for t in set(times))
    assert busiest_second <= 5


# --------------------------------------------------------------------------------------------
# Backoff


@pytest.mark.parametrize(
    ("attempts", "delay"),
    [
        pytest.param(0, dt.timedelta(0), id="no failure: no delay"),
        pytest.param(-1, dt.timedelta(0), id="nonsense count: no delay"),
        pytest.param(1, 5 * S, id="first failure waits 5s"),
        pytest.param(2, 10 * S, id="then doubles"),
        pytest.param(3, 20 * S, id="and doubles"),
        pytest.param(6, 160 * S, id="160s"),
        pytest.param(7, 300 * S, id="capped at 5 minutes"),
        pytest.param(10**9, 300 * S, id="a huge count stays capped"),
    ],
)
def test_backoff_delay_table(attempts, delay) -> None:
    assert rotation.backoff_delay(attempts) == delay


@pytest.mark.parametrize(
    ("attempts", "last_failure", "deadline", "expected"),
    [
        pytest.param(0, T0, None, None, id="no failures: issue now"),
        pytest.param(3, None, None, None, id="no failure time: issue now"),
        pytest.param(3, T0, None, T0 + 20 * S, id="no certificate: plain backoff"),
        pytest.param(3, T0, T0 + H, T0 + 20 * S, id="deadline far away: plain backoff"),
        pytest.param(7, T0, T0 + 60 * S, T0 + 60 * S, id="pulled in to the expiry"),
        pytest.param(
            7, T0 + 61 * S, T0 + 60 * S, T0 + 361 * S, id="already expired: full delay, no hot loop"
        ),
        pytest.param(
            7, T0 + 60 * S, T0 + 60 * S, T0 + 360 * S, id="failure at the deadline itself"
        ),
    ],
)
def test_backoff_table(attempts, last_failure, deadline, expected) -> None:
    assert rotation.backoff(attempts, last_failure, deadline) == expected


@given(
    st.integers(min_value=1, max_value=10_000),
    _TIMES,
    st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=30)),
)
def test_backoff_never_pushes_past_expiry(attempts, last_failure, headroom) -> None:
    deadline = last_failure + headroom
    retry_at = rotation.backoff(attempts, last_failure, deadline)
    assert retry_at is not None
    if last_failure < deadline:
        assert last_failure < retry_at <= deadline
    else:
        assert retry_at == last_failure + rotation.backoff_delay(attempts)


@given(st.integers(min_value=0, max_value=200))
def test_backoff_delay_is_monotonic(attempts) -> None:
    assert rotation.backoff_delay(attempts) <= rotation.backoff_delay(attempts + 1)


# --------------------------------------------------------------------------------------------
# Issuance budget


def test_a_full_budget_allows_a_burst_then_refills_at_the_rate() -> None:
    clock = FrozenClock(T0)
    budget = IssuanceBudget(capacity=3, per_second=0.5)
    grants = []
    for _ in range(4):
        granted, budget = budget.take(clock.now())
        grants.append(granted)
    assert grants == [True, True, True, False]
    assert budget.next_available(clock.now()) == T0 + 2 * S
    clock.advance(1 * S)
    assert budget.take(clock.now())[0] is False
    clock.advance(1 * S)
    granted, budget = budget.take(clock.now())
    assert granted
    clock.advance(dt.timedelta(days=1))
    assert budget.available(clock.now()) == 3.0  # never above capacity


def test_a_refused_take_leaves_the_tokens_and_a_clock_step_back_refills_nothing() -> None:
    budget = IssuanceBudget(capacity=1, per_second=1.0)
    granted, budget = budget.take(T0)
    assert granted
    granted, after = budget.take(T0 - dt.timedelta(minutes=5))
    assert not granted
    assert after.updated_at == T0
    assert after.next_available(T0) == T0 + S
    assert after.next_available(T0 + 2 * S) == T0 + 2 * S


@pytest.mark.parametrize(
    ("capacity", "rate", "message"),
    [
        pytest.param(0, 1.0, "capacity", id="zero capacity"),
        pytest.param(1, 0.0, "refill rate", id="zero rate"),
    ],
)
def test_budget_parameters_are_validated(capacity, rate, message) -> None:
    with pytest.raises(ValueError, match=message):
        IssuanceBudget(capacity=capacity, per_second=rate)


def test_spend_keeps_one_budget_per_issuer() -> None:
    template = IssuanceBudget(capacity=1, per_second=1.0)
    budgets: dict[str, IssuanceBudget] = {}
    first = rotation.spend(budgets, "MeshCertificate/dabba-system/a", T0, template=template)
    assert first is None  # granted
    again = rotation.spend(budgets, "MeshCertificate/dabba-system/a", T0, template=template)
    assert again == T0 + S  # refused, with when to retry
    other = rotation.spend(budgets, "Secret/shop/cacerts", T0, template=template)
    assert other is None
    assert set(budgets) == {"MeshCertificate/dabba-system/a", "Secret/shop/cacerts"}
    fresh: dict[str, IssuanceBudget] = {}
    rotation.spend(fresh, "x", T0)
    assert fresh["x"].capacity == IssuanceBudget().capacity


@given(
    st.integers(min_value=1, max_value=20),
    st.floats(min_value=0.01, max_value=50),
    st.lists(st.floats(min_value=0, max_value=10), max_size=60),
)
def test_the_budget_never_grants_more_than_burst_plus_rate(capacity, rate, gaps) -> None:
    budget = IssuanceBudget(capacity=capacity, per_second=rate)
    now, granted = T0, 0
    for gap in gaps:
        now += dt.timedelta(seconds=gap)
        ok, budget = budget.take(now)
        granted += ok
        assert 0 <= budget.available(now) <= capacity
    elapsed = (now - T0).total_seconds()
    assert granted <= capacity + rate * elapsed + 1e-6


def test_budgets_spend_the_certificate_token_only_when_the_issuer_grants() -> None:
    from dabba.certs.issuing import Budgets  # noqa: PLC0415 - the one class tested here

    budgets = Budgets(
        issuer=IssuanceBudget(capacity=1, per_second=1.0),
        certificate=IssuanceBudget(capacity=1, per_second=0.1),
    )
    assert budgets.spend("ca", "a", T0) is None
    # The issuer is empty: b is refused, and its own token is not spent by the refusal.
    assert budgets.spend("ca", "b", T0) == T0 + S
    assert budgets.spend("ca", "b", T0 + S) is None
    # a's own bucket refills at 0.1/s: refused before the issuer is even asked.
    assert budgets.spend("other-ca", "a", T0 + S) == T0 + 10 * S
