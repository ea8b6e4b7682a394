"""CA rollover: which roots a CA trusts and why, which phase it is in, what to do next. Pure.

SPEC §2.3: when a CA MeshCertificate gets a new key, no live certificate may fail to verify
against the bundle its peers hold. cert-manager replaces the CA Secret in place (issue 2478),
trust-manager forgets the old root at once (its issue 560), Linkerd documents seven manual
steps. Here one function, :func:`decide`, looks at the world as gathered and answers with the
trusted set, the phase and at most one action::

    idle ─rotate─▶ AddingRoot ─▶ DistributingBundle ─▶ ReissuingLeaves ─▶ RetiringRoot ─▶ idle
    (prepare the   next root in   every copy holds     (promote: the      nothing chains to
     next CA)      ca.crt and     the next root, then  next CA signs)     the old root; after
                   ConfigMaps     the propagation      leaves re-issue,   the delay, it leaves
                                  delay                paced by budget    the trusted set

**Where the state lives.** Everything that matters is in the CA's Secret: ``tls.crt``/``tls.key``
is the signing CA, ``next.crt``/``next.key`` the CA waiting to sign, ``ca.crt`` the *trusted
set* (every root any live certificate may need, PEM). Status keeps only timestamps (phase
entered, wait satisfied, rollover started) and the last refused renew request. The phase is
*derived* from the Secret, the bundle copies and the live certificates on every decision, so an
operator killed at any point resumes from what is really there; the recorded phase only dates
the waits and forbids going back to before the switch once the new CA signs.

**The trusted set** of a CA, in order:

* ``current``   roots the signing CA's chain ends at (the CA itself for a self-signed root);
* ``next``      roots the next CA's chain ends at, from the moment it is generated;
* ``published`` roots the issuer publishes (an intermediate under an external root, the Istio
  plug-in CA case: ``ca.crt``/``root-cert.pem`` of the issuer Secret, so a root the issuer's
  owner adds is trusted before anything is signed under it);
* ``previous``  roots the CA trusted before and that a live certificate still chains to (a
  certificate counts until it is replaced in its Secret or expires), then for one propagation
  delay more (a proxy may still present a certificate its Secret no longer holds).

For an intermediate whose root does not change, a rollover adds and retires nothing: the chain
changes (leaves carry the intermediate in ``tls.crt``), the roots stay; the phases wait for the
propagation delay and then for the direct leaves to move to the new intermediate. If the
issuer's root changes (the external root Secret now signs with a new root, even replaced
outright without publishing both), the intermediate rolls over exactly like a root: the new
root is trusted everywhere before anything chains to it, and the old one stays trusted until
nothing chains to it any more.

**Peers and copies.** The next CA's roots must be in every *bundle copy* before it signs: each
trust-bundle ConfigMap (written by the CA itself) and the ``ca.crt`` of every live certificate
that chains to a root the CA trusts (written by the leaves' own reconciles, which copy their
issuer's trusted set). That is every peer that might meet a certificate of the new CA,
whichever CA signed it.

**Triggers.** Any reason the trigger chain gives while the CA can still sign starts a rollover
(renewal time, ``dabba cert renew``, a spec change, the issuer's certificate changed); a CA that
cannot sign any more (Secret deleted or broken, expired) is issued in place, keeping previous
roots while something chains to them. A renew request that arrives while a rollover runs is
refused (Warning Event, ``RolloverRefused`` condition) and never served later; other reasons
simply wait for the running rollover to end.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from cryptography import x509

from dabba.certs import pki
from dabba.certs.model import TrustedRoot, format_time, parse_duration

#: Default time consumers need to pick up a changed Secret or ConfigMap: the kubelet syncs
#: mounted Secrets and ConfigMaps once a minute (plus its cache), then the workload reloads.
DEFAULT_PROPAGATION_DELAY: Final = dt.timedelta(minutes=2)
#: While waiting on something other reconciles do (leaf ca.crt, re-issues), look again this often
#: even if nothing pokes the CA.
POLL: Final = dt.timedelta(seconds=5)
#: At most this many names in a status message.
_NAMES_SHOWN: Final = 5


class Phase(StrEnum):
    """``status.rolloverPhase``; idle is ``None`` (the field is cleared)."""

    #: The next CA exists and its root is being written into ca.crt and every ConfigMap.
    ADDING_ROOT = "AddingRoot"
    #: Waiting for every peer's ca.crt to hold the next root, then the propagation delay.
    DISTRIBUTING_BUNDLE = "DistributingBundle"
    #: The new CA signs; waiting until no live certificate needs the previous root (leaves
    #: re-issue through the issuer's budget) and every direct leaf is signed by the new CA.
    REISSUING_LEAVES = "ReissuingLeaves"
    #: Nothing chains to the previous root any more; it leaves the set after the delay.
    RETIRING_ROOT = "RetiringRoot"


_ORDER: Final = (
    None,
    Phase.ADDING_ROOT,
    Phase.DISTRIBUTING_BUNDLE,
    Phase.REISSUING_LEAVES,
    Phase.RETIRING_ROOT,
)

#: Which recorded phase may follow which (None: idle). Forward jumps happen when the operator
#: was down while work completed, or when a phase has nothing to wait for. Going back is allowed
#: only before the switch (a new namespace needs the bundle: Distributing -> Adding) and during
#: the retirement (a certificate chaining to the old root reappeared, e.g. a restored Secret).
#: Never allowed: from ReissuingLeaves or RetiringRoot back to AddingRoot or
#: DistributingBundle — once the new CA signs, a rollover only moves towards its end, and a new
#: one starts from idle (recorded idle, not just derived idle).
TRANSITIONS: Final[Mapping[Phase | None, frozenset[Phase | None]]] = MappingProxyType(
    {
        None: frozenset(_ORDER),
        Phase.ADDING_ROOT: frozenset(_ORDER),
        Phase.DISTRIBUTING_BUNDLE: frozenset(_ORDER),
        Phase.REISSUING_LEAVES: frozenset({Phase.REISSUING_LEAVES, Phase.RETIRING_ROOT, None}),
        Phase.RETIRING_ROOT: frozenset({Phase.RETIRING_ROOT, Phase.REISSUING_LEAVES, None}),
    }
)


class Action(StrEnum):
    """The one write :func:`decide` asks for besides publishing the trusted set."""

    #: Nothing beyond writing ``trusted`` to ca.crt and the ConfigMaps (when they differ).
    NONE = "None"
    #: Generate the next CA (key and certificate), then decide again with it present.
    PREPARE_NEXT = "PrepareNext"
    #: The next CA becomes the signer (tls.crt/tls.key), next.* is removed.
    PROMOTE = "Promote"
    #: No usable signer and no next CA: issue a new CA in place, then decide again with it.
    ISSUE_IN_PLACE = "IssueInPlace"


@dataclasses.dataclass(frozen=True, slots=True)
class Root:
    """A trust anchor, by fingerprint."""

    fingerprint: str
    not_after: dt.datetime
    subject: str = ""

    def short(self) -> str:
        """``sha256:0123456789abcdef…`` for messages."""
        return f"sha256:{self.fingerprint[:16]}…"


@dataclasses.dataclass(frozen=True, slots=True)
class Holder:
    """A certificate in one of dabba's Secrets, as far as trust is concerned."""

    #: ``namespace/secret``.
    name: str
    not_after: dt.datetime
    #: Fingerprints of the candidate roots its chain reaches (see :func:`roots_reached`).
    chains_to: frozenset[str]
    #: Fingerprints in its ca.crt; None when missing or unreadable.
    bundle: frozenset[str] | None
    #: Issued by this CA MeshCertificate (its Secret's issuer annotations name it).
    direct: bool = False
    #: Signed by the CA's current signing certificate.
    on_current: bool = False

    def live(self, now: dt.datetime) -> bool:
        """Not expired at ``now``."""
        return now < self.not_after


@dataclasses.dataclass(frozen=True, slots=True)
class Copy:
    """A trust-bundle ConfigMap, after this CA's last attempt to write it."""

    #: ``namespace/configmap``.
    name: str
    #: Fingerprints it holds; None when it could not be written or read.
    roots: frozenset[str] | None
    #: Why it could not be written (quota, a foreign ConfigMap of that name, …).
    error: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class RolloverStatus:
    """The rollover's part of the status: the recorded phase and its timestamps."""

    phase: Phase | None = None
    start_time: dt.datetime | None = None
    phase_time: dt.datetime | None = None
    settled_time: dt.datetime | None = None
    refused_request: dt.datetime | None = None

    @classmethod
    def parse_phase(cls, raw: str | None) -> Phase | None:
        """A recorded phase; anything unknown reads as idle (the world is re-derived anyway)."""
        try:
            return Phase(raw) if raw else None
        except ValueError:
            return None


@dataclasses.dataclass(frozen=True, slots=True)
class RolloverInput:
    """Everything one decision looks at."""

    now: dt.datetime
    status: RolloverStatus
    #: The trusted set as persisted: the roots in the CA Secret's ca.crt.
    stored: tuple[Root, ...]
    #: Roots the signing CA's chain ends at; None: no usable signing CA (missing, broken,
    #: expired).
    current: tuple[Root, ...] | None
    #: Roots the next CA's chain ends at; None: no next CA.
    next: tuple[Root, ...] | None = None
    #: Roots the issuer publishes (empty for a self-signed root).
    published: tuple[Root, ...] = ()
    #: Why the CA needs a new certificate (the trigger chain's reason), or None.
    rotate: str | None = None
    #: The renew-requested-at annotation (for refusing a second rollover).
    renew_requested_at: dt.datetime | None = None
    holders: tuple[Holder, ...] = ()
    copies: tuple[Copy, ...] = ()
    propagation_delay: dt.timedelta = DEFAULT_PROPAGATION_DELAY


@dataclasses.dataclass(frozen=True, slots=True)
class Notice:
    """An Event to post: type (Normal/Warning), reason, message."""

    type: str
    reason: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class RolloverDecision:
    """What to write and what to report."""

    action: Action
    #: The trusted set to publish (ca.crt, root-cert.pem, every ConfigMap), in order, with the
    #: reason each root is there (``status.trustedRoots``).
    trusted: tuple[TrustedRoot, ...]
    #: The status after the action (phase derived from the world the action leaves).
    status: RolloverStatus
    #: Keep next.crt/next.key in the Secret (False: remove them).
    keep_next: bool
    #: What the phase waits for (the RollingOver condition's message).
    message: str
    #: When to look again at the latest (None: nothing scheduled by the rollover).
    wake_at: dt.datetime | None
    notices: tuple[Notice, ...] = ()
    #: True when this decision refused a renew request (RolloverRefused condition).
    refused: bool = False

    @property
    def roots(self) -> tuple[str, ...]:
        """Fingerprints of the trusted set, in order."""
        return tuple(r.fingerprint_sha256 for r in self.trusted)


# ---------------------------------------------------------------------------------------------
# Helpers over certificates (pure: parsing and signature checks in memory)


def root_of(certificate: x509.Certificate) -> Root:
    """The :class:`Root` view of a certificate."""
    try:
        subject = certificate.subject.rfc4514_string()
    except Exception:  # why: undecodable attribute values in a hostile certificate
        subject = ""
    return Root(pki.fingerprint_sha256(certificate), certificate.not_valid_after_utc, subject)


def roots_reached(
    chain: Sequence[x509.Certificate], candidates: Iterable[x509.Certificate]
) -> frozenset[str]:
    """Fingerprints of the candidate roots that ``chain`` (leaf first) ends at.

    The top of the chain either is a candidate or is directly signed by one. Several
    candidates can match: two roots with the same name and key (a root re-issued with its
    key kept) both verify. Signatures are checked, names alone never count.
    """
    if not chain:
        return frozenset()
    top = chain[-1]
    top_fingerprint = pki.fingerprint_sha256(top)
    found = set()
    for candidate in candidates:
        fingerprint = pki.fingerprint_sha256(candidate)
        if fingerprint == top_fingerprint or (
            candidate.subject == top.issuer and pki.issued_by(top, candidate)
        ):
            found.add(fingerprint)
    return frozenset(found)


def effective_renew_request(
    requested: dt.datetime | None, refused: dt.datetime | None
) -> dt.datetime | None:
    """A renew request, unless it is one a rollover already refused (never served later)."""
    if requested is None or (refused is not None and requested <= refused):
        return None
    return requested


def propagation_delay(raw: str | None) -> dt.timedelta:
    """``dabba.io/trust-propagation-delay`` or the default; junk reads as the default."""
    if not raw:
        return DEFAULT_PROPAGATION_DELAY
    try:
        return parse_duration(raw)
    except ValueError:
        return DEFAULT_PROPAGATION_DELAY


# ---------------------------------------------------------------------------------------------
# The decision


@dataclasses.dataclass(frozen=True, slots=True)
class _World:
    """The roots in play (after an action, when deciding what it leaves behind)."""

    current: tuple[Root, ...]
    next: tuple[Root, ...] | None
    stored: tuple[Root, ...]
    published: tuple[Root, ...]

    @property
    def base(self) -> tuple[Root, ...]:
        return _unique((*self.current, *self.published))

    @property
    def next_only(self) -> tuple[Root, ...]:
        """Next roots not already trusted as current or published (the new trust)."""
        base = {r.fingerprint for r in self.base}
        return tuple(r for r in self.next or () if r.fingerprint not in base)

    @property
    def extras(self) -> tuple[Root, ...]:
        """Stored roots that are neither current, next nor published: previous roots."""
        keep = {r.fingerprint for r in (*self.base, *(self.next or ()))}
        return tuple(r for r in self.stored if r.fingerprint not in keep)

    def target(self, *, drop_extras: bool = False) -> tuple[Root, ...]:
        """The trusted set: current, next, published, then previous roots (unless dropped)."""
        return _unique(
            (
                *self.current,
                *(self.next or ()),
                *self.published,
                *(() if drop_extras else self.extras),
            )
        )

    def promoted(self) -> _World:
        """The world once the next CA signs."""
        return _World(self.next or (), None, self.stored, self.published)


def _unique(roots: Iterable[Root]) -> tuple[Root, ...]:
    seen: dict[str, Root] = {}
    for root in roots:
        seen.setdefault(root.fingerprint, root)
    return tuple(seen.values())


def _short(roots: Iterable[Root]) -> str:
    return ", ".join(r.short() for r in roots)


def _names(items: Sequence[str]) -> str:
    unique = list(dict.fromkeys(items))
    shown = ", ".join(unique[:_NAMES_SHOWN])
    more = len(unique) - _NAMES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def _chained(holders: Iterable[Holder], root: Root, now: dt.datetime) -> list[Holder]:
    return [h for h in holders if h.live(now) and root.fingerprint in h.chains_to]


@dataclasses.dataclass(frozen=True, slots=True)
class _Derived:
    """The phase the world is in, and what that phase is waiting for."""

    phase: Phase | None
    #: Previous roots a live certificate still chains to.
    needed: tuple[Root, ...] = ()
    #: Live direct leaves not yet signed by the signing CA.
    behind: tuple[Holder, ...] = ()
    #: ConfigMaps (AddingRoot) or peers (DistributingBundle) that lack the new trust.
    lagging: tuple[str, ...] = ()


def _derive(
    inp: RolloverInput, world: _World, recorded: Phase | None, *, switched: bool = False
) -> _Derived:
    """Which phase ``world`` is in. ``switched``: the next CA was promoted in this decision
    (no direct leaf is signed by it yet)."""
    now = inp.now
    needed = tuple(r for r in world.extras if r.not_after > now and _chained(inp.holders, r, now))
    behind = tuple(
        h for h in inp.holders if h.live(now) and h.direct and (switched or not h.on_current)
    )
    if world.next is not None:
        target = frozenset(r.fingerprint for r in world.target())
        copies = _lagging_copies(inp.copies, target)
        if copies or not target <= {r.fingerprint for r in world.stored}:
            return _Derived(Phase.ADDING_ROOT, needed, behind, copies)
        return _Derived(Phase.DISTRIBUTING_BUNDLE, needed, behind, _lagging_peers(inp, world))
    if needed:
        return _Derived(Phase.REISSUING_LEAVES, needed, behind)
    if behind and recorded in (Phase.DISTRIBUTING_BUNDLE, Phase.REISSUING_LEAVES):
        return _Derived(Phase.REISSUING_LEAVES, needed, behind)
    if world.extras:
        return _Derived(Phase.RETIRING_ROOT, needed, behind)
    return _Derived(None, needed, behind)


def _lagging_copies(copies: Iterable[Copy], target: frozenset[str]) -> tuple[str, ...]:
    """ConfigMaps that do not hold exactly the trusted set."""
    out = []
    for copy in copies:
        if copy.roots is None:
            out.append(f"{copy.name} ({copy.error or 'not written'})")
        elif copy.roots != target:
            out.append(copy.name)
    return tuple(out)


def _lagging_peers(inp: RolloverInput, world: _World) -> tuple[str, ...]:
    """Live certificates this CA trusts whose ca.crt lacks a root of the next CA.

    Every next root counts, even one already trusted as published: a root the issuer has just
    started publishing may not have reached every copy yet.
    """
    wanted = {r.fingerprint for r in world.next or ()}
    trusted = {r.fingerprint for r in (*world.stored, *world.base, *(world.next or ()))}
    return tuple(
        h.name
        for h in inp.holders
        if h.live(inp.now)
        and h.chains_to & trusted
        and (h.bundle is None or not wanted <= h.bundle)
    )


def decide(inp: RolloverInput) -> RolloverDecision:  # noqa: PLR0912, PLR0915 - one table
    """The trusted set, phase, action and report for one CA at ``inp.now``.

    Invariants (tested with hypothesis): a root that a live certificate chains to is always in
    ``trusted``, and so are the current, next and published roots; the recorded phase moves
    only along :data:`TRANSITIONS`; a new rollover starts only from a recorded idle state; the
    next CA is promoted only after every copy has held its root for the propagation delay (or
    at once when the current CA cannot sign at all); the same input gives the same decision.
    """
    now, s = inp.now, inp.status
    recorded = s.phase
    notices: list[Notice] = []
    next_roots = inp.next
    if next_roots is not None and recorded in (Phase.REISSUING_LEAVES, Phase.RETIRING_ROOT):
        # Prepare happens only from idle: after the switch a next CA can only be a hand edit.
        # Using it would restart distribution behind the leaves' backs.
        notices.append(
            Notice(
                "Warning",
                "NextCADiscarded",
                "next.crt/next.key appeared during the rollover's second half; removed",
            )
        )
        next_roots = None

    # 1. Look at the world and pick the one action.
    action = Action.NONE
    drop = False
    if inp.current is None:
        if next_roots is None:
            world = _World((), None, inp.stored, inp.published)
            if recorded is not None:
                notices.append(
                    Notice(
                        "Warning",
                        "RolloverAborted",
                        f"the signing CA was lost during {recorded} and no next CA is left: "
                        "issuing one in place; previous roots stay trusted while anything "
                        "chains to them",
                    )
                )
            return RolloverDecision(
                action=Action.ISSUE_IN_PLACE,
                trusted=_reasons(inp, world, world.target(), (), None),
                status=s,
                keep_next=False,
                message="no usable signing CA: issuing one in place",
                wake_at=now,
                notices=tuple(notices),
            )
        notices.append(
            Notice(
                "Warning",
                "RolloverForced",
                "the signing CA can no longer sign (expired, removed or broken): the next CA "
                "signs now, whether or not every bundle copy holds its root",
            )
        )
        world = _World((), next_roots, inp.stored, inp.published)
        action, before = Action.PROMOTE, _Derived(Phase.DISTRIBUTING_BUNDLE)
    else:
        world = _World(inp.current, next_roots, inp.stored, inp.published)
        before = _derive(inp, world, recorded)
        if before.phase is Phase.DISTRIBUTING_BUNDLE and not before.lagging:
            since = (s.settled_time if recorded is before.phase else None) or now
            due = since + inp.propagation_delay
            if now >= due:
                action = Action.PROMOTE
        elif before.phase is Phase.RETIRING_ROOT:
            since = (s.phase_time if recorded is before.phase else None) or now
            drop = now >= since + inp.propagation_delay
        elif before.phase is None and recorded is None and inp.rotate:
            action = Action.PREPARE_NEXT

    # 2. The world the action leaves, and its phase.
    if action is Action.PROMOTE:
        world = world.promoted()
        after = _derive(inp, world, before.phase, switched=True)
        notices.append(
            Notice("Normal", "Promoted", f"the new CA signs from now on ({_short(world.current)})")
        )
    elif drop:
        after = _Derived(None)
        notices.append(Notice("Normal", "RootRetired", f"{_short(world.extras)} left the set"))
    else:
        after = before
    phase = after.phase
    moved = phase != recorded or action is Action.PROMOTE

    # 3. Timestamps: a phase dates from when it was entered, a wait from when it was satisfied.
    phase_time = now if moved or s.phase_time is None else s.phase_time
    settled: dt.datetime | None = None
    if phase is Phase.DISTRIBUTING_BUNDLE and not after.lagging:
        settled = (None if moved else s.settled_time) or now
    start = s.start_time if s.start_time is not None and recorded is not None else now
    if action is Action.PREPARE_NEXT:
        start = phase_time = now

    # 4. What the phase waits for, and when to look again.
    message, wake = _progress(inp, world, after, phase_time, settled)
    if action is Action.PREPARE_NEXT:
        message, wake = f"generating the next CA ({inp.rotate})", now
    elif phase is None and recorded is not None and inp.rotate:
        wake = now  # record idle first; the next reconcile starts the new rollover

    # 5. A renew request during a rollover is refused, once, with the reason.
    refused = (
        phase is not None
        and action is not Action.PREPARE_NEXT
        and inp.renew_requested_at is not None
        and inp.renew_requested_at > start
        and inp.renew_requested_at != s.refused_request
    )
    if refused:
        assert inp.renew_requested_at is not None  # noqa: S101 - refused implies it
        notices.append(
            Notice(
                "Warning",
                "RolloverRefused",
                f"renewal requested at {format_time(inp.renew_requested_at)} refused: a CA "
                f"rollover is already in progress (phase {phase}, started {format_time(start)}); "
                "request it again once rolloverPhase is empty",
            )
        )
    if phase is not None and moved:
        notices.append(Notice("Normal", str(phase), message or str(phase)))
    if phase is None and recorded is not None:
        notices.append(Notice("Normal", "RolloverCompleted", "the CA rollover is complete"))

    active = phase is not None
    return RolloverDecision(
        action=action,
        trusted=_reasons(inp, world, world.target(drop_extras=drop), after.needed, phase),
        status=RolloverStatus(
            phase=phase,
            start_time=start if active else None,
            phase_time=phase_time if active else None,
            settled_time=settled,
            refused_request=inp.renew_requested_at if refused else s.refused_request,
        ),
        keep_next=world.next is not None,
        message=message,
        wake_at=wake,
        notices=tuple(notices),
        refused=refused,
    )


def _progress(  # noqa: PLR0911 - one exit per phase and wait
    inp: RolloverInput,
    world: _World,
    derived: _Derived,
    phase_time: dt.datetime,
    settled: dt.datetime | None,
) -> tuple[str, dt.datetime | None]:
    """The RollingOver message and the next wake-up for the phase ``derived`` is in."""
    now, phase = inp.now, derived.phase
    if phase is Phase.ADDING_ROOT:
        message = f"adding {_short(world.next_only) or 'the next CA'} to the trusted set"
        blocked = [name for name in derived.lagging if name.endswith(")")]
        if blocked:
            return f"{message}; cannot write {_names(blocked)}", now + POLL
        return message, now
    if phase is Phase.DISTRIBUTING_BUNDLE:
        if derived.lagging or settled is None:
            return (
                f"waiting for {len(set(derived.lagging))} certificate(s) to trust "
                f"{_short(world.next or ())}: {_names(derived.lagging)}",
                now + POLL,
            )
        due = settled + inp.propagation_delay
        return (
            f"every bundle copy holds {_short(world.next or ())}; the new CA "
            f"signs at {format_time(due)} (after the propagation delay)",
            due,
        )
    if phase is Phase.REISSUING_LEAVES:
        if derived.needed:
            chained = {
                h.name: h for root in derived.needed for h in _chained(inp.holders, root, now)
            }
            last = max(h.not_after for h in chained.values())
            return (
                f"{len(chained)} live certificate(s) still chain to {_short(derived.needed)}: "
                f"{_names(list(chained))} (the last expires at {format_time(last)})",
                min(*(h.not_after for h in chained.values()), now + POLL),
            )
        return (
            f"{len(derived.behind)} leaf certificate(s) not yet signed by the new CA: "
            f"{_names([h.name for h in derived.behind])}",
            now + POLL,
        )
    if phase is Phase.RETIRING_ROOT:
        due = phase_time + inp.propagation_delay
        return (
            f"no live certificate chains to {_short(world.extras)}; it leaves the trusted set "
            f"at {format_time(due)}",
            due,
        )
    return "", None


def _reasons(
    inp: RolloverInput,
    world: _World,
    trusted: Sequence[Root],
    needed: Sequence[Root],
    phase: Phase | None,
) -> tuple[TrustedRoot, ...]:
    current = {r.fingerprint for r in world.current}
    nxt = {r.fingerprint for r in world.next or ()}
    published = {r.fingerprint for r in world.published}
    needed_fps = {r.fingerprint for r in needed}
    out = []
    for root in trusted:
        fp = root.fingerprint
        if fp in current:
            why = "current: the signing CA chains to it"
        elif fp in nxt:
            why = "next: root of the new CA, trusted before the new CA signs"
        elif fp in published:
            why = "published by the issuer"
        elif fp in needed_fps:
            chained = _chained(inp.holders, root, inp.now)
            last = max(h.not_after for h in chained)
            why = (
                f"previous: {len(chained)} live certificate(s) still chain to it "
                f"(the last expires at {format_time(last)})"
            )
        elif phase is Phase.RETIRING_ROOT:
            why = "previous: nothing live chains to it; leaves after the propagation delay"
        else:
            why = "previous: nothing live chains to it; leaves once the rollover ends"
        out.append(TrustedRoot(fp, root.not_after, why))
    return tuple(out)
