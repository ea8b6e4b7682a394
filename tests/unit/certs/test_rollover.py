"""The CA rollover state machine (``rollover.decide``): tables, properties, a simulated world.

Three layers of evidence:

* a table that walks every edge of :data:`rollover.TRANSITIONS` with a small, readable input;
* hypothesis properties over arbitrary inputs (the old root is never dropped while a live
  certificate chains to it, transitions stay in the table, decisions are deterministic,
  promotion and retirement only after their waits);
* a hypothesis state machine that plays a whole mesh — a root CA, leaves that sync their
  ca.crt and re-issue at their own pace, ConfigMap copies that can be blocked, time passing,
  renew requests, operator crashes between the Secret write and the status write — and checks
  after every step that every live leaf verifies against every peer's bundle.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import random

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from dabba.certs import rollover
from dabba.certs.rollover import (
    POLL,
    TRANSITIONS,
    Action,
    Copy,
    Holder,
    Phase,
    RolloverDecision,
    RolloverInput,
    RolloverStatus,
    Root,
    decide,
)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)
H = dt.timedelta(hours=1)
DELAY = 30 * S


def fp(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def root(name: str, lifetime: dt.timedelta = 3650 * 24 * H) -> Root:
    return Root(fp(name), T0 + lifetime, f"CN={name}")


OLD, NEW, EXT = root("old"), root("new"), root("external")


def holder(
    name: str,
    signed_by: Root = OLD,
    bundle: tuple[Root, ...] | None = (OLD,),
    *,
    ttl: dt.timedelta = H,
    direct: bool = True,
    on_current: bool = True,
) -> Holder:
    return Holder(
        name=f"ns/{name}",
        not_after=T0 + ttl,
        chains_to=frozenset({signed_by.fingerprint}),
        bundle=None if bundle is None else frozenset(r.fingerprint for r in bundle),
        direct=direct,
        on_current=on_current,
    )


def copies(*sets: tuple[Root, ...] | None) -> tuple[Copy, ...]:
    return tuple(
        Copy(f"ns{i}/bundle", None if s is None else frozenset(r.fingerprint for r in s), None)
        for i, s in enumerate(sets)
    )


def inp(**fields: object) -> RolloverInput:
    base: dict[str, object] = {
        "now": T0,
        "status": RolloverStatus(),
        "stored": (OLD,),
        "current": (OLD,),
        "propagation_delay": DELAY,
    }
    base.update(fields)
    return RolloverInput(**base)  # type: ignore[arg-type]


def status(phase: Phase | None, **times: dt.datetime | None) -> RolloverStatus:
    start = times.pop("start", T0 - 10 * S)
    return RolloverStatus(
        phase=phase,
        start_time=start,
        phase_time=times.pop("phase_time", T0 - 5 * S),
        settled_time=times.pop("settled", None),
        refused_request=times.pop("refused", None),
    )


def roots_of(d: RolloverDecision) -> list[str]:
    return [r.fingerprint_sha256 for r in d.trusted]


def reasons(d: RolloverDecision) -> list[str]:
    return [n.reason for n in d.notices]


# --------------------------------------------------------------------------------------------
# The table: every edge of TRANSITIONS, one readable case each


def test_idle_without_a_reason_stays_idle_and_trusts_the_current_root() -> None:
    d = decide(inp())
    assert (d.action, d.status.phase, roots_of(d)) == (Action.NONE, None, [OLD.fingerprint])
    assert d.trusted[0].reason.startswith("current")
    assert d.wake_at is None
    assert d.notices == ()


def test_idle_with_a_reason_prepares_the_next_ca() -> None:
    d = decide(inp(rotate="Renewing: renewal time reached"))
    assert d.action is Action.PREPARE_NEXT
    assert d.status.phase is None
    assert d.wake_at == T0
    assert "Renewing" in d.message


def test_with_the_next_ca_generated_the_root_is_added_beside_the_old_one() -> None:
    first = decide(inp(rotate="Renewing"))
    d = decide(inp(next=(NEW,), status=first.status, copies=copies((OLD,))))
    assert (d.action, d.status.phase) == (Action.NONE, Phase.ADDING_ROOT)
    assert roots_of(d) == [OLD.fingerprint, NEW.fingerprint]
    assert d.keep_next
    assert d.trusted[1].reason.startswith("next")
    assert d.status.start_time == T0 == d.status.phase_time
    assert reasons(d) == ["AddingRoot"]


def test_adding_root_waits_for_a_copy_that_cannot_be_written() -> None:
    blocked = Copy("quota/bundle", None, "exceeded quota: noconfig")
    d = decide(
        inp(
            next=(NEW,),
            stored=(OLD, NEW),
            status=status(Phase.ADDING_ROOT),
            copies=(*copies((OLD, NEW)), blocked),
        )
    )
    assert d.status.phase is Phase.ADDING_ROOT
    assert "quota/bundle (exceeded quota: noconfig)" in d.message
    assert d.wake_at == T0 + POLL
    assert reasons(d) == []  # no new Event while it keeps waiting


def test_adding_root_moves_on_once_ca_crt_and_every_configmap_hold_both() -> None:
    d = decide(
        inp(
            next=(NEW,),
            stored=(OLD, NEW),
            status=status(Phase.ADDING_ROOT),
            copies=copies((OLD, NEW), (OLD, NEW)),
            holders=(holder("a", bundle=(OLD,)), holder("b", bundle=(OLD, NEW))),
        )
    )
    assert (d.action, d.status.phase) == (Action.NONE, Phase.DISTRIBUTING_BUNDLE)
    assert "ns/a" in d.message
    assert "ns/b" not in d.message
    assert d.status.settled_time is None
    assert reasons(d) == ["DistributingBundle"]


def test_distributing_starts_the_propagation_delay_when_every_copy_holds_the_new_root() -> None:
    d = decide(
        inp(
            next=(NEW,),
            stored=(OLD, NEW),
            status=status(Phase.DISTRIBUTING_BUNDLE),
            holders=(holder("a", bundle=(OLD, NEW)),),
        )
    )
    assert (d.action, d.status.phase) == (Action.NONE, Phase.DISTRIBUTING_BUNDLE)
    assert d.status.settled_time == T0
    assert d.wake_at == T0 + DELAY
    assert "propagation delay" in d.message


def test_distributing_promotes_the_next_ca_after_the_delay() -> None:
    d = decide(
        inp(
            now=T0 + DELAY,
            next=(NEW,),
            stored=(OLD, NEW),
            status=status(Phase.DISTRIBUTING_BUNDLE, settled=T0),
            holders=(holder("a", bundle=(OLD, NEW)),),
        )
    )
    assert d.action is Action.PROMOTE
    assert d.status.phase is Phase.REISSUING_LEAVES
    assert not d.keep_next
    assert roots_of(d) == [NEW.fingerprint, OLD.fingerprint]
    assert d.trusted[1].reason.startswith("previous: 1 live certificate")
    assert reasons(d) == ["Promoted", "ReissuingLeaves"]


def test_distributing_goes_back_to_adding_when_a_new_namespace_lacks_the_bundle() -> None:
    d = decide(
        inp(
            next=(NEW,),
            stored=(OLD, NEW),
            status=status(Phase.DISTRIBUTING_BUNDLE, settled=T0 - S),
            copies=copies((OLD, NEW), None),
        )
    )
    assert d.status.phase is Phase.ADDING_ROOT
    assert d.action is Action.NONE
    assert d.status.settled_time is None


def test_a_lagging_peer_resets_the_propagation_delay() -> None:
    d = decide(
        inp(
            now=T0 + DELAY,
            next=(NEW,),
            stored=(OLD, NEW),
            status=status(Phase.DISTRIBUTING_BUNDLE, settled=T0),
            holders=(holder("late", bundle=(OLD,)),),
        )
    )
    assert d.action is Action.NONE
    assert d.status.settled_time is None


def test_a_peer_without_a_readable_bundle_holds_distribution() -> None:
    d = decide(
        inp(
            next=(NEW,),
            stored=(OLD, NEW),
            status=status(Phase.DISTRIBUTING_BUNDLE),
            holders=(holder("broken", bundle=None),),
        )
    )
    assert "ns/broken" in d.message
    assert d.status.settled_time is None


def test_reissuing_waits_while_a_live_leaf_chains_to_the_old_root() -> None:
    d = decide(
        inp(
            current=(NEW,),
            stored=(NEW, OLD),
            status=status(Phase.REISSUING_LEAVES),
            holders=(holder("old-leaf", ttl=2 * S, on_current=False),),
        )
    )
    assert (d.action, d.status.phase) == (Action.NONE, Phase.REISSUING_LEAVES)
    assert roots_of(d) == [NEW.fingerprint, OLD.fingerprint]
    assert "ns/old-leaf" in d.message
    assert d.wake_at == T0 + 2 * S  # its expiry, sooner than the poll


def test_an_expired_leaf_no_longer_counts() -> None:
    d = decide(
        inp(
            now=T0 + 2 * H,
            current=(NEW,),
            stored=(NEW, OLD),
            status=status(Phase.REISSUING_LEAVES),
            holders=(holder("dead", ttl=H, on_current=False),),
        )
    )
    assert d.status.phase is Phase.RETIRING_ROOT


def test_reissuing_waits_for_direct_leaves_still_signed_by_the_old_ca() -> None:
    # An intermediate rolling over under the same root: nothing to retire, leaves to move.
    d = decide(
        inp(
            current=(EXT,),
            stored=(EXT,),
            published=(EXT,),
            status=status(Phase.REISSUING_LEAVES),
            holders=(holder("leaf", signed_by=EXT, bundle=(EXT,), on_current=False),),
        )
    )
    assert d.status.phase is Phase.REISSUING_LEAVES
    assert "not yet signed by the new CA" in d.message


def test_reissuing_moves_to_retiring_when_nothing_chains_to_the_old_root() -> None:
    d = decide(
        inp(
            current=(NEW,),
            stored=(NEW, OLD),
            status=status(Phase.REISSUING_LEAVES),
            holders=(holder("new-leaf", signed_by=NEW, bundle=(NEW, OLD)),),
        )
    )
    assert d.status.phase is Phase.RETIRING_ROOT
    assert d.status.phase_time == T0
    assert d.wake_at == T0 + DELAY
    assert roots_of(d) == [NEW.fingerprint, OLD.fingerprint]  # still trusted during the delay
    assert d.trusted[1].reason.endswith("after the propagation delay")
    assert reasons(d) == ["RetiringRoot"]


def test_retiring_drops_the_old_root_after_the_delay_and_completes() -> None:
    d = decide(
        inp(
            now=T0 + DELAY,
            current=(NEW,),
            stored=(NEW, OLD),
            status=status(Phase.RETIRING_ROOT, phase_time=T0),
        )
    )
    assert d.status == RolloverStatus()
    assert roots_of(d) == [NEW.fingerprint]
    assert reasons(d) == ["RootRetired", "RolloverCompleted"]


def test_retiring_goes_back_to_reissuing_if_a_leaf_of_the_old_root_reappears() -> None:
    d = decide(
        inp(
            now=T0 + DELAY,
            current=(NEW,),
            stored=(NEW, OLD),
            status=status(Phase.RETIRING_ROOT, phase_time=T0),
            holders=(holder("restored", on_current=False),),
        )
    )
    assert d.status.phase is Phase.REISSUING_LEAVES
    assert OLD.fingerprint in roots_of(d)


def test_reissuing_can_end_at_once_when_there_is_nothing_to_retire() -> None:
    d = decide(
        inp(
            current=(EXT,),
            stored=(EXT,),
            published=(EXT,),
            status=status(Phase.REISSUING_LEAVES),
            holders=(holder("leaf", signed_by=EXT, bundle=(EXT,)),),
        )
    )
    assert d.status.phase is None
    assert reasons(d) == ["RolloverCompleted"]


def test_a_promotion_without_leaves_goes_straight_to_retiring() -> None:
    d = decide(
        inp(
            now=T0 + DELAY,
            next=(NEW,),
            stored=(OLD, NEW),
            status=status(Phase.DISTRIBUTING_BUNDLE, settled=T0),
        )
    )
    assert (d.action, d.status.phase) == (Action.PROMOTE, Phase.RETIRING_ROOT)


def test_an_intermediate_with_the_same_root_still_waits_the_delay_then_promotes() -> None:
    same_root = {
        "current": (EXT,),
        "next": (EXT,),
        "stored": (EXT,),
        "published": (EXT,),
        "holders": (holder("leaf", signed_by=EXT, bundle=(EXT,)),),
    }
    waiting = decide(inp(**same_root, status=status(Phase.DISTRIBUTING_BUNDLE)))
    assert (waiting.action, waiting.wake_at) == (Action.NONE, T0 + DELAY)
    d = decide(
        inp(**same_root, now=T0 + DELAY, status=status(Phase.DISTRIBUTING_BUNDLE, settled=T0))
    )
    assert d.action is Action.PROMOTE
    assert d.status.phase is Phase.REISSUING_LEAVES  # its direct leaves move next
    assert roots_of(d) == [EXT.fingerprint]
    assert d.trusted[0].reason.startswith("current")


def test_a_root_the_issuer_just_published_must_reach_every_peer_before_the_switch() -> None:
    # The external root's owner swapped to a new root: the next intermediate chains to it.
    d = decide(
        inp(
            current=(EXT,),
            next=(NEW,),
            stored=(EXT, NEW),
            published=(NEW,),
            status=status(Phase.DISTRIBUTING_BUNDLE),
            holders=(holder("leaf", signed_by=EXT, bundle=(EXT,)),),
        )
    )
    assert d.action is Action.NONE
    assert "ns/leaf" in d.message
    assert roots_of(d) == [EXT.fingerprint, NEW.fingerprint]


def test_a_root_published_by_the_issuer_is_trusted_at_once_without_a_rollover() -> None:
    d = decide(inp(current=(EXT,), stored=(EXT,), published=(EXT, NEW)))
    assert d.status.phase is None
    assert roots_of(d) == [EXT.fingerprint, NEW.fingerprint]
    assert d.trusted[1].reason == "published by the issuer"


def test_a_root_the_issuer_stops_publishing_retires_like_a_previous_root() -> None:
    still_used = decide(
        inp(
            current=(EXT,),
            stored=(EXT, OLD),
            published=(EXT,),
            holders=(holder("x", signed_by=OLD, on_current=False, direct=False),),
        )
    )
    assert still_used.status.phase is Phase.REISSUING_LEAVES
    unused = decide(inp(current=(EXT,), stored=(EXT, OLD), published=(EXT,)))
    assert unused.status.phase is Phase.RETIRING_ROOT


def test_an_expired_previous_root_is_not_needed_even_if_something_chains_to_it() -> None:
    dead = root("dead", lifetime=H)
    d = decide(
        inp(
            now=T0 + 2 * H,
            current=(NEW,),
            stored=(NEW, dead),
            holders=(holder("zombie", signed_by=dead, ttl=10 * H, on_current=False),),
        )
    )
    assert d.status.phase is Phase.RETIRING_ROOT


# --------------------------------------------------------------------------------------------
# Restarts, refusals, emergencies, hand edits


def test_a_rollover_does_not_start_in_the_reconcile_that_ends_the_previous_one() -> None:
    d = decide(
        inp(
            now=T0 + DELAY,
            current=(NEW,),
            stored=(NEW, OLD),
            status=status(Phase.RETIRING_ROOT, phase_time=T0),
            rotate="ManualRenewal",
        )
    )
    assert (d.action, d.status.phase, d.wake_at) == (Action.NONE, None, T0 + DELAY)
    again = decide(inp(now=T0 + DELAY, current=(NEW,), stored=(NEW,), rotate="ManualRenewal"))
    assert again.action is Action.PREPARE_NEXT


def test_a_restart_between_the_secret_write_and_the_status_write_resumes() -> None:
    # The Secret was promoted, status still says DistributingBundle.
    d = decide(
        inp(
            current=(NEW,),
            stored=(NEW, OLD),
            status=status(Phase.DISTRIBUTING_BUNDLE, settled=T0 - DELAY),
            holders=(holder("a", on_current=False),),
        )
    )
    assert (d.action, d.status.phase) == (Action.NONE, Phase.REISSUING_LEAVES)


def test_a_restart_after_preparing_but_before_status_resumes_at_distribution() -> None:
    d = decide(
        inp(next=(NEW,), stored=(OLD, NEW), copies=copies((OLD, NEW)), status=RolloverStatus())
    )
    assert d.status.phase is Phase.DISTRIBUTING_BUNDLE
    assert d.action is Action.NONE  # the delay starts now; nothing is promoted early


def test_a_renew_request_during_a_rollover_is_refused_once() -> None:
    request = T0 - S
    d = decide(
        inp(
            current=(NEW,),
            stored=(NEW, OLD),
            status=status(Phase.REISSUING_LEAVES, start=T0 - 60 * S),
            holders=(holder("a", on_current=False),),
            renew_requested_at=request,
            rotate="ManualRenewal",
        )
    )
    assert d.refused
    assert d.status.refused_request == request
    (refusal,) = [n for n in d.notices if n.reason == "RolloverRefused"]
    assert refusal.type == "Warning"
    assert "already in progress (phase ReissuingLeaves" in refusal.message
    assert d.action is Action.NONE
    again = decide(
        inp(
            current=(NEW,),
            stored=(NEW, OLD),
            status=d.status,
            holders=(holder("a", on_current=False),),
            renew_requested_at=request,
        )
    )
    assert not again.refused
    assert again.status.refused_request == request


def test_the_request_that_started_a_rollover_is_not_refused() -> None:
    d = decide(
        inp(
            next=(NEW,),
            stored=(OLD, NEW),
            status=status(Phase.ADDING_ROOT, start=T0 - S),
            renew_requested_at=T0 - S,
        )
    )
    assert not d.refused


def test_a_refused_request_is_never_served_later() -> None:
    assert rollover.effective_renew_request(T0, T0) is None
    assert rollover.effective_renew_request(T0 - S, T0) is None
    assert rollover.effective_renew_request(T0 + S, T0) == T0 + S
    assert rollover.effective_renew_request(T0, None) == T0
    assert rollover.effective_renew_request(None, T0) is None


def test_an_unusable_ca_with_a_next_one_promotes_it_at_once() -> None:
    d = decide(
        inp(
            current=None,
            next=(NEW,),
            stored=(OLD, NEW),
            status=status(Phase.DISTRIBUTING_BUNDLE),
            holders=(holder("a", bundle=(OLD,)),),
        )
    )
    assert d.action is Action.PROMOTE
    assert reasons(d)[0] == "RolloverForced"
    assert roots_of(d) == [NEW.fingerprint, OLD.fingerprint]


def test_an_unusable_ca_without_a_next_one_is_issued_in_place_keeping_old_roots() -> None:
    d = decide(inp(current=None, stored=(OLD,)))
    assert d.action is Action.ISSUE_IN_PLACE
    assert roots_of(d) == [OLD.fingerprint]
    # Decided again with the new CA: the old root stays while its leaves live.
    after = decide(inp(current=(NEW,), stored=(OLD,), holders=(holder("a", on_current=False),)))
    assert after.status.phase is Phase.REISSUING_LEAVES
    assert roots_of(after) == [NEW.fingerprint, OLD.fingerprint]


def test_a_next_ca_after_the_switch_is_discarded() -> None:
    d = decide(
        inp(
            current=(NEW,),
            next=(root("stray"),),
            stored=(NEW, OLD),
            status=status(Phase.REISSUING_LEAVES),
            holders=(holder("a", on_current=False),),
        )
    )
    assert not d.keep_next
    assert d.status.phase is Phase.REISSUING_LEAVES
    assert reasons(d) == ["NextCADiscarded"]


def test_an_unknown_recorded_phase_reads_as_idle() -> None:
    assert RolloverStatus.parse_phase("WaitForBundles") is None
    assert RolloverStatus.parse_phase("") is None
    assert RolloverStatus.parse_phase("RetiringRoot") is Phase.RETIRING_ROOT


def test_the_propagation_delay_annotation() -> None:
    assert rollover.propagation_delay("5s") == 5 * S
    assert rollover.propagation_delay(None) == rollover.DEFAULT_PROPAGATION_DELAY
    assert rollover.propagation_delay("soon") == rollover.DEFAULT_PROPAGATION_DELAY


def test_long_lists_of_names_are_shortened() -> None:
    many = tuple(holder(f"l{i}", bundle=(OLD,)) for i in range(8))
    d = decide(
        inp(next=(NEW,), stored=(OLD, NEW), status=status(Phase.DISTRIBUTING_BUNDLE), holders=many)
    )
    assert "and 3 more" in d.message
    assert "waiting for 8 certificate(s)" in d.message


@pytest.mark.parametrize(
    ("recorded", "reachable"),
    [
        (None, {None, Phase.ADDING_ROOT, Phase.REISSUING_LEAVES, Phase.RETIRING_ROOT}),
        (Phase.REISSUING_LEAVES, {Phase.REISSUING_LEAVES, Phase.RETIRING_ROOT, None}),
        (Phase.RETIRING_ROOT, {Phase.RETIRING_ROOT, Phase.REISSUING_LEAVES, None}),
    ],
)
def test_the_transition_table_allows_what_the_table_tests_show(recorded, reachable) -> None:
    assert reachable <= TRANSITIONS[recorded]


def test_after_the_switch_a_rollover_never_goes_back() -> None:
    for late in (Phase.REISSUING_LEAVES, Phase.RETIRING_ROOT):
        assert Phase.ADDING_ROOT not in TRANSITIONS[late]
        assert Phase.DISTRIBUTING_BUNDLE not in TRANSITIONS[late]


# --------------------------------------------------------------------------------------------
# Properties over arbitrary inputs

POOL = tuple(root(f"r{i}", lifetime=(i + 1) * H) for i in range(4))
_times = st.integers(min_value=-7200, max_value=7200).map(lambda s: T0 + dt.timedelta(seconds=s))
_subset = st.lists(st.sampled_from(POOL), unique=True, max_size=4).map(tuple)
_fps = _subset.map(lambda rs: frozenset(r.fingerprint for r in rs))


@st.composite
def _holders(draw: st.DrawFn) -> Holder:
    return Holder(
        name=f"ns/{draw(st.integers(0, 5))}",
        not_after=draw(_times),
        chains_to=draw(_fps),
        bundle=draw(st.none() | _fps),
        direct=draw(st.booleans()),
        on_current=draw(st.booleans()),
    )


@st.composite
def inputs(draw: st.DrawFn) -> RolloverInput:
    phase = draw(st.none() | st.sampled_from(Phase))
    return RolloverInput(
        now=T0,
        status=RolloverStatus(
            phase=phase,
            start_time=draw(st.none() | _times),
            phase_time=draw(st.none() | _times),
            settled_time=draw(st.none() | _times),
            refused_request=draw(st.none() | _times),
        ),
        stored=draw(_subset),
        current=draw(st.none() | _subset.filter(bool)),
        next=draw(st.none() | _subset.filter(bool)),
        published=draw(_subset),
        rotate=draw(st.none() | st.just("Renewing")),
        renew_requested_at=draw(st.none() | _times),
        holders=tuple(draw(st.lists(_holders(), max_size=5))),
        copies=tuple(
            draw(
                st.lists(
                    st.builds(Copy, st.just("ns/cm"), st.none() | _fps, st.none() | st.just("x")),
                    max_size=3,
                )
            )
        ),
        propagation_delay=draw(st.sampled_from([dt.timedelta(0), DELAY, H])),
    )


@given(inputs())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_a_root_a_live_certificate_chains_to_is_never_dropped(i: RolloverInput) -> None:
    d = decide(i)
    kept = set(d.roots)
    for r in i.stored:
        chained = any(h.live(i.now) and r.fingerprint in h.chains_to for h in i.holders)
        if chained and r.not_after > i.now:
            assert r.fingerprint in kept


@given(inputs())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_current_next_and_published_roots_are_always_trusted(i: RolloverInput) -> None:
    d = decide(i)
    kept = set(d.roots)
    must = [*(i.current or ()), *i.published]
    if (i.next is not None and d.keep_next) or d.action is Action.PROMOTE:
        must += list(i.next or ())
    assert {r.fingerprint for r in must} <= kept


@given(inputs())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_every_recorded_transition_is_in_the_table(i: RolloverInput) -> None:
    d = decide(i)
    assert d.status.phase in TRANSITIONS[i.status.phase]


@given(inputs())
@settings(max_examples=120, suppress_health_check=[HealthCheck.too_slow])
def test_decisions_are_deterministic(i: RolloverInput) -> None:
    assert decide(i) == decide(i)


@given(inputs())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_a_new_rollover_starts_only_from_recorded_idle(i: RolloverInput) -> None:
    d = decide(i)
    if d.action is Action.PREPARE_NEXT:
        assert i.status.phase is None
        assert i.next is None
        assert i.rotate is not None


@given(inputs())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_promotion_only_after_every_copy_holds_the_new_root_for_the_delay(
    i: RolloverInput,
) -> None:
    d = decide(i)
    if d.action is not Action.PROMOTE or i.current is None:
        return
    assert i.next is not None
    assert i.status.phase not in (Phase.REISSUING_LEAVES, Phase.RETIRING_ROOT)
    base = {r.fingerprint for r in (*i.current, *i.published)}
    new = {r.fingerprint for r in i.next}
    target = set(d.roots)
    assert all(c.roots is not None and c.roots == target for c in i.copies)
    assert {r.fingerprint for r in i.stored} >= target
    trusted = {r.fingerprint for r in (*i.stored, *i.next)} | base
    for h in i.holders:
        if h.live(i.now) and h.chains_to & trusted:
            assert h.bundle is not None
            assert new <= h.bundle
    if i.propagation_delay:
        assert i.status.phase is Phase.DISTRIBUTING_BUNDLE
        assert i.status.settled_time is not None
        assert i.status.settled_time + i.propagation_delay <= i.now


@given(inputs())
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_a_root_is_retired_only_after_the_delay_with_nothing_chaining_to_it(
    i: RolloverInput,
) -> None:
    d = decide(i)
    dropped = {r.fingerprint for r in i.stored} - set(d.roots)
    if not dropped:
        return
    assert "RootRetired" in reasons(d)
    if i.propagation_delay:  # (a zero delay asks for no wait at all)
        assert i.status.phase is Phase.RETIRING_ROOT
        assert i.status.phase_time is not None
        assert i.status.phase_time + i.propagation_delay <= i.now
    for h in i.holders:
        if h.live(i.now):
            assert not (h.chains_to & dropped)


@given(inputs())
@settings(max_examples=120, suppress_health_check=[HealthCheck.too_slow])
def test_a_refusal_names_a_request_newer_than_the_rollover(i: RolloverInput) -> None:
    d = decide(i)
    if d.refused:
        assert d.status.phase is not None
        assert i.renew_requested_at is not None
        assert i.renew_requested_at != i.status.refused_request
        assert d.status.refused_request == i.renew_requested_at
        assert d.action is not Action.PREPARE_NEXT


@given(inputs())
@settings(max_examples=120, suppress_health_check=[HealthCheck.too_slow])
def test_applying_a_decision_and_deciding_again_asks_for_nothing_new(i: RolloverInput) -> None:
    assume(i.current is not None)
    d = decide(i)
    assume(d.action is Action.NONE)
    # The caller writes the trusted set to ca.crt and every ConfigMap, and records status.
    target = frozenset(d.roots)
    by_fp = {r.fingerprint: r for r in (*POOL, *i.stored)}
    written = dataclasses.replace(
        i,
        stored=tuple(by_fp[f] for f in d.roots),
        next=i.next if d.keep_next else None,
        status=d.status,
        copies=tuple(dataclasses.replace(c, roots=target, error=None) for c in i.copies),
        renew_requested_at=None,
    )
    again = decide(written)
    if again.action is Action.NONE and d.status.phase is again.status.phase:
        assert set(again.roots) == set(d.roots) or d.status.phase is Phase.RETIRING_ROOT


# --------------------------------------------------------------------------------------------
# A simulated mesh


@dataclasses.dataclass
class Leaf:
    """A leaf Secret, and the proxy that serves it (which reloads within ``MAX_LAG``)."""

    signed_by: Root
    bundle: frozenset[str]
    not_after: dt.datetime
    #: What the proxy has loaded (it lags the Secret).
    p_signed_by: Root | None = None
    p_bundle: frozenset[str] = frozenset()
    p_not_after: dt.datetime = T0
    #: When the Secret last changed in a way the proxy has not loaded yet.
    changed_at: dt.datetime | None = None

    def reload(self) -> None:
        self.p_signed_by, self.p_bundle, self.p_not_after = (
            self.signed_by,
            self.bundle,
            self.not_after,
        )
        self.changed_at = None


#: A proxy reloads a changed Secret within this long (kubelet sync plus reload); the CA's
#: propagation delay (``DELAY``) must cover it.
MAX_LAG = 10 * S


class Mesh(RuleBasedStateMachine):
    """A self-signed root CA, six leaves, two ConfigMap copies, and an operator that crashes.

    The operator's reconcile is ``decide`` plus the writes the I/O layer does; leaves sync
    their ca.crt from the CA Secret and re-issue whenever they like (their own daemons), and
    only ever under the CA's current signer.
    """

    LEAVES = 4
    TTL = 2 * H
    #: The CA's propagation delay (a test sets 0 to show what it protects).
    delay = DELAY

    @initialize()
    def start(self) -> None:
        self.now = T0
        self.serial = 0
        self.current = self._new_root()
        self.next: Root | None = None
        self.stored: tuple[Root, ...] = (self.current,)
        self.status = RolloverStatus()
        self.copies: dict[str, frozenset[str] | None] = {"a/bundle": self._fps(self.stored)}
        self.blocked: set[str] = set()
        self.rotate = False
        self.request: dt.datetime | None = None
        self.leaves = [
            Leaf(self.current, self._fps(self.stored), self.now + self.TTL)
            for _ in range(self.LEAVES)
        ]
        for leaf in self.leaves:
            leaf.reload()
        self.phases: list[Phase | None] = [None]
        self.completed = 0

    def _new_root(self) -> Root:
        self.serial += 1
        return Root(fp(f"root-{self.serial}"), self.now + 10 * H, f"CN=root {self.serial}")

    @staticmethod
    def _fps(roots: tuple[Root, ...]) -> frozenset[str]:
        return frozenset(r.fingerprint for r in roots)

    def _input(self) -> RolloverInput:
        candidates = {
            r.fingerprint for r in (*self.stored, self.current, *([self.next] if self.next else []))
        }
        holders = tuple(
            Holder(
                name=f"ns/leaf-{i}",
                not_after=leaf.not_after,
                chains_to=frozenset({leaf.signed_by.fingerprint}) & candidates,
                bundle=leaf.bundle,
                direct=True,
                on_current=leaf.signed_by == self.current,
            )
            for i, leaf in enumerate(self.leaves)
        )
        return RolloverInput(
            now=self.now,
            status=self.status,
            stored=self.stored,
            current=(self.current,),
            next=(self.next,) if self.next else None,
            rotate="Renewing" if self.rotate else None,
            renew_requested_at=rollover.effective_renew_request(
                self.request, self.status.refused_request
            ),
            holders=holders,
            copies=tuple(
                Copy(name, roots, "blocked" if roots is None else None)
                for name, roots in self.copies.items()
            ),
            propagation_delay=self.delay,
        )

    def _publish(self) -> None:
        for name in self.copies:
            self.copies[name] = None if name in self.blocked else self._fps(self.stored)

    @rule()
    def operator_runs(self) -> None:
        self.operator_reconciles(crash=False)

    @rule(crash=st.booleans())
    def operator_reconciles(self, crash: bool) -> None:
        self._publish()  # ConfigMaps mirror the CA Secret first
        i = self._input()
        d = decide(i)
        if d.action is Action.PREPARE_NEXT:
            self.next = self._new_root()
            d = decide(dataclasses.replace(i, next=(self.next,), status=d.status, rotate=None))
            self.rotate = False
        if d.action is Action.PROMOTE:
            assert self.next is not None
            self.current, self.next = self.next, None
        elif not d.keep_next:
            self.next = None
        by_fp = {
            r.fingerprint: r
            for r in (*self.stored, self.current, *([self.next] if self.next else []))
        }
        self.stored = tuple(by_fp[f] for f in d.roots)
        self._publish()
        if not crash:  # a crash loses the status write, never the Secret write before it
            if self.status.phase is not None and d.status.phase is None:
                self.completed += 1
            self.status = d.status
            if d.status.phase != self.phases[-1]:
                self.phases.append(d.status.phase)

    def leaf_syncs_its_bundle(self, i: int) -> None:
        leaf = self.leaves[i]
        if leaf.bundle != self._fps(self.stored):
            leaf.bundle = self._fps(self.stored)
            leaf.changed_at = leaf.changed_at or self.now

    def leaf_reissues(self, i: int) -> None:
        # Under whatever signs now, with the CA Secret's ca.crt (the issuer's trusted set).
        leaf = self.leaves[i]
        leaf.signed_by, leaf.bundle = self.current, self._fps(self.stored)
        leaf.not_after = self.now + self.TTL
        leaf.changed_at = leaf.changed_at or self.now

    @rule(which=st.sets(st.integers(0, LEAVES - 1), min_size=1))
    def proxies_reload(self, which: set[int]) -> None:
        for i in which:
            self.leaves[i].reload()

    @rule(which=st.sets(st.integers(0, LEAVES - 1), min_size=1))
    def leaves_sync_their_bundles(self, which: set[int]) -> None:
        for i in which:
            self.leaf_syncs_its_bundle(i)

    @rule(which=st.sets(st.integers(0, LEAVES - 1), min_size=1))
    def leaves_reissue(self, which: set[int]) -> None:
        for i in which:
            self.leaf_reissues(i)

    @rule(seconds=st.sampled_from([1, 31, 600]))
    def time_passes(self, seconds: int) -> None:
        # Proxies reload as late as they may: exactly MAX_LAG after the change, if that
        # falls inside this step; the others stay stale.
        later = self.now + seconds * S
        for leaf in self.leaves:
            if leaf.changed_at is not None and leaf.changed_at + MAX_LAG <= later:
                leaf.reload()
        self.now = later

    @rule()
    def the_propagation_delay_passes(self) -> None:
        self.time_passes(int(DELAY / S))

    @rule(i=st.integers(0, LEAVES - 1))
    def a_leaf_stops_renewing_and_expires(self, i: int) -> None:
        leaf = self.leaves[i]
        leaf.not_after = min(leaf.not_after, self.now)
        if leaf.p_signed_by == leaf.signed_by:  # the proxy serves that same certificate
            leaf.p_not_after = min(leaf.p_not_after, self.now)

    @rule()
    def renewal_is_due(self) -> None:
        self.rotate = True

    @rule()
    def someone_runs_dabba_cert_renew(self) -> None:
        self.request = self.now.replace(microsecond=0)

    @rule(name=st.sampled_from(["a/bundle", "b/bundle"]), blocked=st.booleans())
    def a_namespace_changes(self, name: str, blocked: bool) -> None:
        self.copies.setdefault(name, None)
        if blocked:
            self.blocked.add(name)
        else:
            self.blocked.discard(name)

    @rule(seed=st.integers(0, 2**32 - 1), steps=st.integers(10, 60))
    def a_busy_period(self, seed: int, steps: int) -> None:
        """Many plausible small events in a random order, checked after each one: the
        operator reconciles (sometimes crashing), leaves sync and re-issue (more eagerly when
        their issuer changed), time passes, renewals come due, namespaces get blocked."""
        rng = random.Random(seed)  # noqa: S311 - a schedule, not a secret
        for _ in range(steps):
            x = rng.random()
            if x < 0.3:
                self.operator_reconciles(crash=rng.random() < 0.1)
            elif x < 0.5:
                self.leaf_syncs_its_bundle(rng.randrange(self.LEAVES))
            elif x < 0.65:
                i = rng.randrange(self.LEAVES)
                if self.leaves[i].signed_by != self.current or rng.random() < 0.2:
                    self.leaf_reissues(i)
            elif x < 0.82:
                self.time_passes(rng.choice([1, 5, 31]))
            elif x < 0.87:
                self.renewal_is_due()
            elif x < 0.9:
                self.someone_runs_dabba_cert_renew()
            elif x < 0.95:
                self.a_namespace_changes(rng.choice(["a/bundle", "b/bundle"]), rng.random() < 0.5)
            else:
                self.a_leaf_stops_renewing_and_expires(rng.randrange(self.LEAVES))
            self.every_live_leaf_verifies_against_every_peer()
            self.the_signing_root_is_always_trusted()
            self.recorded_phases_follow_the_table()

    @invariant()
    def every_live_leaf_verifies_against_every_peer(self) -> None:
        live = [leaf for leaf in self.leaves if leaf.not_after > self.now]
        for leaf in live:
            for peer in live:
                assert leaf.signed_by.fingerprint in peer.bundle, (
                    "a live leaf would fail against a peer's bundle"
                )
            for name, copy in self.copies.items():
                if name not in self.blocked and copy is not None:
                    assert leaf.signed_by.fingerprint in copy
        serving = [p for p in self.leaves if p.p_signed_by and p.p_not_after > self.now]
        for proxy in serving:
            assert proxy.p_signed_by is not None
            for peer in serving:
                assert proxy.p_signed_by.fingerprint in peer.p_bundle, (
                    "a proxy would fail a handshake with a peer that has not reloaded yet"
                )

    @invariant()
    def the_signing_root_is_always_trusted(self) -> None:
        assert self.current.fingerprint in self._fps(self.stored)

    @invariant()
    def recorded_phases_follow_the_table(self) -> None:
        for before, after in zip(self.phases, self.phases[1:], strict=False):
            assert after in TRANSITIONS[before]

    @precondition(lambda self: self.status.phase is not None or self.next is not None)
    @rule()
    def drive_to_completion(self) -> None:
        """Fairness: everything eventually syncs and re-issues; the rollover then finishes."""
        self.blocked.clear()
        for _ in range(40):
            self._publish()
            for leaf in self.leaves:
                leaf.bundle = self._fps(self.stored)
            self.operator_reconciles(crash=False)
            for i, leaf in enumerate(self.leaves):
                if leaf.signed_by != self.current:
                    self.leaf_reissues(i)
            self.every_live_leaf_verifies_against_every_peer()
            if self.status.phase is None and self.next is None:
                break
            self.the_propagation_delay_passes()
        assert self.status.phase is None
        assert self.stored == (self.current,)


TestMesh = Mesh.TestCase
TestMesh.settings = settings(
    max_examples=80, stateful_step_count=25, deadline=None, suppress_health_check=list(HealthCheck)
)


def test_a_whole_rollover_in_the_simulated_mesh_visits_every_phase_in_order() -> None:
    mesh = Mesh()
    mesh.start()
    mesh.renewal_is_due()
    mesh.operator_reconciles(crash=False)  # prepare the next CA
    mesh.a_namespace_changes("b/bundle", blocked=True)
    mesh.operator_reconciles(crash=False)  # b/bundle cannot be written: AddingRoot holds
    assert mesh.status.phase is Phase.ADDING_ROOT
    mesh.a_namespace_changes("b/bundle", blocked=False)
    mesh.operator_reconciles(crash=True)  # crash: status lost, the world moved on
    mesh.operator_reconciles(crash=False)
    assert mesh.status.phase is Phase.DISTRIBUTING_BUNDLE
    for i in range(Mesh.LEAVES):
        mesh.leaf_syncs_its_bundle(i)
    mesh.operator_reconciles(crash=False)
    mesh.time_passes(31)
    mesh.operator_reconciles(crash=False)  # promoted
    assert mesh.status.phase is Phase.REISSUING_LEAVES
    mesh.someone_runs_dabba_cert_renew()
    mesh.operator_reconciles(crash=False)
    assert mesh.status.refused_request == mesh.request
    for i in range(Mesh.LEAVES):
        mesh.leaf_reissues(i)
        mesh.every_live_leaf_verifies_against_every_peer()
    mesh.operator_reconciles(crash=False)
    assert mesh.status.phase is Phase.RETIRING_ROOT
    mesh.time_passes(31)
    mesh.operator_reconciles(crash=False)
    assert mesh.status.phase is None
    assert mesh.phases == [
        None,
        Phase.ADDING_ROOT,
        Phase.DISTRIBUTING_BUNDLE,
        Phase.REISSUING_LEAVES,
        Phase.RETIRING_ROOT,
        None,
    ]
    assert len(mesh.stored) == 1
    # The refused request is not served afterwards: no new rollover starts.
    mesh.operator_reconciles(crash=False)
    assert mesh.next is None
    assert mesh.status.phase is None


def test_the_simulation_catches_a_promotion_that_does_not_wait_for_peers(monkeypatch) -> None:
    """The mesh's invariant has teeth: without the peer check a leaf fails a handshake."""
    monkeypatch.setattr(rollover, "_lagging_peers", lambda inp, world: ())
    mesh = Mesh()
    mesh.start()
    mesh.renewal_is_due()
    mesh.operator_reconciles(crash=False)
    mesh.operator_reconciles(crash=False)
    mesh.time_passes(31)
    mesh.operator_reconciles(crash=False)  # promoted although no leaf has the new root
    mesh.leaf_reissues(0)
    with pytest.raises(AssertionError, match="fail against a peer's bundle"):
        mesh.every_live_leaf_verifies_against_every_peer()


@pytest.mark.parametrize("delay", [DELAY, dt.timedelta(0)], ids=["with the delay", "without"])
def test_the_propagation_delay_is_what_protects_proxies_that_reload_late(delay) -> None:
    mesh = Mesh()
    mesh.start()
    mesh.delay = delay
    mesh.renewal_is_due()
    mesh.operator_reconciles(crash=False)  # prepare: the next root in ca.crt
    for i in range(Mesh.LEAVES):
        mesh.leaf_syncs_its_bundle(i)  # every Secret has it; no proxy has reloaded yet
    mesh.operator_reconciles(crash=False)  # distributing: converged
    mesh.time_passes(1)
    mesh.operator_reconciles(crash=False)  # promotes only if there is no delay
    mesh.leaf_reissues(0)
    mesh.leaves[0].reload()  # its proxy is quick; the others are not (yet)
    if delay:
        mesh.every_live_leaf_verifies_against_every_peer()
        mesh.the_propagation_delay_passes()
        mesh.operator_reconciles(crash=False)
        assert mesh.status.phase is Phase.REISSUING_LEAVES
        mesh.drive_to_completion()
    else:
        with pytest.raises(AssertionError, match="has not reloaded yet"):
            mesh.every_live_leaf_verifies_against_every_peer()


def test_losing_the_signing_ca_mid_rollover_is_reported_as_aborted() -> None:
    d = decide(
        inp(current=None, next=None, stored=(OLD, NEW), status=status(Phase.DISTRIBUTING_BUNDLE))
    )
    assert d.action is Action.ISSUE_IN_PLACE
    assert reasons(d) == ["RolloverAborted"]
    assert roots_of(d) == [OLD.fingerprint, NEW.fingerprint]


def _witnesses() -> dict[tuple[Phase | None, Phase | None], RolloverInput]:
    """One input per edge of TRANSITIONS that makes ``decide`` take exactly that edge."""
    A, D, R, T = (  # noqa: N806 - the phases, short
        Phase.ADDING_ROOT,
        Phase.DISTRIBUTING_BUNDLE,
        Phase.REISSUING_LEAVES,
        Phase.RETIRING_ROOT,
    )
    old_leaf = (holder("old-leaf", on_current=False),)
    synced = (holder("old-leaf", bundle=(OLD, NEW)),)
    both = {"next": (NEW,), "stored": (OLD, NEW), "copies": copies((OLD, NEW))}
    promotable = {**both, "now": T0 + DELAY}
    lost_current = {"current": None, "next": (NEW,), "stored": (OLD, NEW)}
    same_root = {"current": (EXT,), "next": (EXT,), "stored": (EXT,), "published": (EXT,)}
    retired = {"current": (NEW,), "stored": (NEW, OLD)}
    return {
        (None, None): inp(),
        (None, A): inp(next=(NEW,)),
        (None, D): inp(**both),
        (None, R): inp(**retired, holders=old_leaf),
        (None, T): inp(**retired),
        (A, A): inp(next=(NEW,), status=status(A)),
        (A, D): inp(**both, status=status(A)),
        (A, R): inp(**lost_current, status=status(A), holders=old_leaf),
        (A, T): inp(**lost_current, status=status(A)),
        (A, None): inp(status=status(A)),
        (D, D): inp(**both, status=status(D)),
        (D, A): inp(**{**both, "copies": copies((OLD,))}, status=status(D)),
        (D, R): inp(**promotable, status=status(D, settled=T0), holders=synced),
        (D, T): inp(**promotable, status=status(D, settled=T0)),
        (D, None): inp(**same_root, now=T0 + DELAY, status=status(D, settled=T0)),
        (R, R): inp(**retired, status=status(R), holders=old_leaf),
        (R, T): inp(**retired, status=status(R)),
        (R, None): inp(status=status(R)),
        (T, T): inp(**retired, status=status(T, phase_time=T0 - S)),
        (T, R): inp(**retired, status=status(T), holders=old_leaf),
        (T, None): inp(**retired, now=T0 + DELAY, status=status(T, phase_time=T0)),
    }


EDGES = [(before, after) for before, afters in TRANSITIONS.items() for after in afters]


@pytest.mark.parametrize(
    ("before", "after"), EDGES, ids=[f"{b or 'idle'}->{a or 'idle'}" for b, a in EDGES]
)
def test_every_allowed_transition_happens_for_a_reason(before, after) -> None:
    witness = _witnesses()[before, after]
    assert witness.status.phase is before
    assert decide(witness).status.phase is after


def test_the_witnesses_cover_exactly_the_table() -> None:
    assert set(_witnesses()) == set(EDGES)
