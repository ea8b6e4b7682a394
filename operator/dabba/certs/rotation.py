"""When to renew, how long to wait after a failure, and how fast one issuer may sign. Pure.

Three small calculators, each taking the time as an argument (never reading a clock):

``renewal_time``
    cert-manager's rule (``pkg/util/pki/renewaltime.go``): ``notAfter - renewBefore``, where
    renewBefore defaults to a third of the *issued* lifetime — then minus a deterministic
    jitter of up to 5 % of the lifetime, taken from a hash of the object's UID. cert-manager
    has no jitter (its issues 8402, 3800): ten thousand certificates created by one Helm
    install renew in the same second. A hash (not a random draw) keeps the time stable
    across restarts and replicas, so the persisted ``status.renewalTime`` never moves::

        notBefore                                 renewal          notAfter
        |───────────── lifetime ──────────────────|◀─jitter─|◀─ renewBefore ─|
                                                  ≤ 5 %        default ⅓

``backoff``
    5 s doubling to 5 min after consecutive failures (cert-manager: 1 h to 32 h, which can
    overshoot a short certificate's whole life) and never past the deadline (expiry): while
    the certificate is still valid, the next attempt happens no later than its notAfter.

``IssuanceBudget``
    A token bucket per issuer, state in and state out, so a CA rotation, a bulk edit or a
    foreign writer fighting over a Secret cannot turn into a signing storm (cert-manager
    issues 8380, 2941: millions of requests).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import MutableMapping
from typing import Final

#: Largest jitter, as a fraction of the certificate's lifetime.
JITTER_FRACTION_PERCENT: Final = 5
#: First retry delay after a failed issuance.
BACKOFF_INITIAL: Final = dt.timedelta(seconds=5)
#: Longest retry delay.
BACKOFF_MAX: Final = dt.timedelta(minutes=5)

_MICROSECOND: Final = dt.timedelta(microseconds=1)


def jitter(uid: str, lifetime: dt.timedelta) -> dt.timedelta:
    """The per-certificate renewal jitter: in [0, 5 % of ``lifetime``], fixed per UID.

    Args:
        uid: ``metadata.uid`` of the MeshCertificate (stable for the object's life).
        lifetime: the issued lifetime; non-positive lifetimes get no jitter.
    """
    if lifetime <= dt.timedelta(0):
        return dt.timedelta(0)
    digest = int.from_bytes(hashlib.sha256(uid.encode()).digest()[:8], "big")
    # Integer arithmetic: fraction = digest / 2**64 < 1, so the result is floor()ed below 5 %.
    micros = (lifetime // _MICROSECOND) * JITTER_FRACTION_PERCENT * digest // (100 * 2**64)
    return dt.timedelta(microseconds=micros)


def renewal_time(
    not_before: dt.datetime,
    not_after: dt.datetime,
    renew_before: dt.timedelta | None,
    uid: str,
) -> dt.datetime:
    """When to renew a certificate valid from ``not_before`` to ``not_after``.

    ``renew_before`` applies only when it is shorter than the issued lifetime (a certificate
    clamped to its issuer's expiry may be shorter than requested); otherwise one third of
    the lifetime is used, as cert-manager does.

    The result is always strictly before ``not_after`` and never before ``not_before``
    (for a degenerate lifetime ≤ 0 it is ``not_after`` minus one second: renew at once).
    It is truncated to whole seconds because ``status.renewalTime`` stores seconds; comparing
    "is it time?" against an untruncated value made cert-manager requeue early (PR 4399).

    Args:
        not_before: the certificate's notBefore (aware).
        not_after: its notAfter (aware).
        renew_before: ``spec.renewBefore``, or None for the default third.
        uid: ``metadata.uid``, the jitter seed.
    """
    lifetime = not_after - not_before
    if lifetime <= dt.timedelta(0):
        try:
            return not_after - dt.timedelta(seconds=1)
        except OverflowError:  # a hostile notAfter of 0001-01-01T00:00:00
            return not_after
    if renew_before is not None and dt.timedelta(0) < renew_before < lifetime:
        before = renew_before
    else:
        # max(): a third of a microsecond-scale lifetime rounds to zero, i.e. to notAfter.
        before = max(lifetime / 3, _MICROSECOND)
    when = max(not_after - before - jitter(uid, lifetime), not_before)
    truncated = when.replace(microsecond=0)
    # Truncation only moves earlier, so it stays < notAfter; it could only cross notBefore
    # when notBefore itself has sub-second precision (never for X.509 times).
    return truncated if truncated >= not_before else when


def backoff_delay(failed_attempts: int) -> dt.timedelta:
    """5 s * 2^(n-1), capped at 5 min; zero for no failures."""
    if failed_attempts <= 0:
        return dt.timedelta(0)
    # Cap the exponent first: 1 << 10**6 would be computed before min() could cap it.
    exponent = min(failed_attempts - 1, 16)
    return min(BACKOFF_INITIAL * (1 << exponent), BACKOFF_MAX)


def backoff(
    failed_attempts: int,
    last_failure: dt.datetime | None,
    deadline: dt.datetime | None,
) -> dt.datetime | None:
    """The earliest time the next issuance attempt may start, or None for "now".

    The caller skips issuance while ``now`` is before the result, except when the spec
    changed since the failure (a user edit retries at once, as in cert-manager).

    Args:
        failed_attempts: ``status.failedIssuanceAttempts``.
        last_failure: ``status.lastFailureTime``.
        deadline: the current certificate's notAfter, or None when there is none.

    Returns:
        ``last_failure + backoff_delay(n)``, pulled in to ``deadline`` if the failure happened
        before it: backoff never makes a still-valid certificate expire. After the deadline
        the full delay applies again, so an expired certificate with a broken issuer retries
        at a bounded rate instead of in a hot loop.
    """
    if failed_attempts <= 0 or last_failure is None:
        return None
    retry_at = last_failure + backoff_delay(failed_attempts)
    if deadline is not None and last_failure < deadline:
        retry_at = min(retry_at, deadline)
    return retry_at


@dataclasses.dataclass(frozen=True, slots=True)
class IssuanceBudget:
    """A token bucket for one issuer: ``capacity`` issuances at once, ``per_second`` after.

    Immutable: every operation returns the new state, which the caller keeps (in memory, per
    operator process; a restart starts full, which is at most one extra burst).
    """

    #: Burst size: issuances allowed back to back from a full bucket.
    capacity: int = 50
    #: Sustained rate, in issuances per second.
    per_second: float = 10.0
    #: Tokens left; None means a full bucket.
    tokens: float | None = None
    #: When ``tokens`` was last brought up to date.
    updated_at: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError("an issuance budget needs a capacity of at least 1")
        if self.per_second <= 0:
            raise ValueError("an issuance budget needs a positive refill rate")

    def available(self, now: dt.datetime) -> float:
        """Tokens available at ``now`` (refill included, never above capacity)."""
        tokens = float(self.capacity) if self.tokens is None else self.tokens
        if self.updated_at is not None and now > self.updated_at:
            tokens += (now - self.updated_at).total_seconds() * self.per_second
        return min(tokens, float(self.capacity))

    def take(self, now: dt.datetime, cost: float = 1.0) -> tuple[bool, IssuanceBudget]:
        """Try to spend ``cost`` tokens at ``now``.

        Returns:
            (granted, new state). A refusal still returns the refilled state.
        """
        tokens = self.available(now)
        # why: a clock that stepped backwards must not refill twice; keep the later stamp.
        stamp = now if self.updated_at is None or now > self.updated_at else self.updated_at
        granted = tokens >= cost
        if granted:
            tokens -= cost
        return granted, dataclasses.replace(self, tokens=tokens, updated_at=stamp)

    def next_available(self, now: dt.datetime, cost: float = 1.0) -> dt.datetime:
        """The earliest time :meth:`take` of ``cost`` would succeed (``now`` if it would now)."""
        missing = cost - self.available(now)
        if missing <= 0:
            return now
        return now + dt.timedelta(seconds=missing / self.per_second)


def spend(
    budgets: MutableMapping[str, IssuanceBudget],
    key: str,
    now: dt.datetime,
    *,
    template: IssuanceBudget | None = None,
) -> dt.datetime | None:
    """Spend one issuance from ``budgets[key]``; None if granted, else when to try again.

    Updates ``budgets`` in place: it holds an entry per certificate, and a copy per issuance
    cost O(certificates) each (issuance benchmark, issue 8). A refused spend stores only the
    refill, which changes nothing a later spend would see. ``template`` gives the capacity
    and rate for a key seen for the first time.
    """
    granted, after = (budgets.get(key) or template or IssuanceBudget()).take(now)
    budgets[key] = after
    return None if granted else after.next_available(now)
