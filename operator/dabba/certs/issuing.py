"""Issuance bookkeeping shared by leaves and CAs: budgets, failures, the Event recorder.

The budgets live in memory, per operator process (a restart starts them full, which is at
most one extra burst); failures live in status (``failedIssuanceAttempts``,
``lastFailureTime``, ``lastFailureReason``) and drive :func:`rotation.backoff`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from typing import Protocol

from dabba.certs.model import MeshCertificateStatus
from dabba.certs.rotation import IssuanceBudget, spend

#: Per issuer: 500 back to back, then 100 per second (bench goal: 1,000 leaves at >= 100/s).
ISSUER_BUDGET = IssuanceBudget(capacity=500, per_second=100.0)
#: Per certificate: 5 back to back, then one per 10 s (a 60 s certificate renews every ~40 s).
CERTIFICATE_BUDGET = IssuanceBudget(capacity=5, per_second=0.1)
#: A write that lost a race (409) is retried after this long, without counting a failure.
CONFLICT_RETRY = dt.timedelta(seconds=1)


class Recorder(Protocol):
    """Posts a Kubernetes Event about the object being reconciled."""

    def __call__(self, type_: str, reason: str, message: str) -> None: ...


class Budgets:
    """Issuance budgets shared by all reconciles of this process (thread-safe).

    Two token buckets must both grant an issuance: the issuer's, which paces a storm (a CA
    rotation re-issuing every leaf at once), and the certificate's own, which stops a loop
    (something rewriting one Secret forever) from spending the issuer's budget.
    """

    def __init__(
        self,
        issuer: IssuanceBudget = ISSUER_BUDGET,
        certificate: IssuanceBudget = CERTIFICATE_BUDGET,
    ) -> None:
        self._lock = threading.Lock()
        # Updated in place: a copy per issuance cost O(certificates) each (issue 8).
        self._issuers: dict[str, IssuanceBudget] = {}
        self._certificates: dict[str, IssuanceBudget] = {}
        self._issuer_template, self._certificate_template = issuer, certificate
        self._spent = 0

    def spend(self, issuer_key: str, certificate_key: str, now: dt.datetime) -> dt.datetime | None:
        """Take one issuance from both budgets; None if granted, else when to try again."""
        with self._lock:
            # Peek at the certificate's bucket: its token is spent only if the issuer's
            # budget grants too.
            mine = self._certificates.get(certificate_key) or self._certificate_template
            if mine.available(now) < 1:
                return mine.next_available(now)
            retry = spend(self._issuers, issuer_key, now, template=self._issuer_template)
            if retry is not None:
                return retry
            spend(self._certificates, certificate_key, now, template=self._certificate_template)
            self._prune(now)
            return None

    def spend_own(self, certificate_key: str, now: dt.datetime) -> dt.datetime | None:
        """Take one write from the certificate's own budget only (no signing involved, e.g.
        copying the issuer's trusted set into ca.crt); None if granted, else when to retry.
        Stops a fight with another writer of the same Secret from becoming a hot loop."""
        with self._lock:
            retry = spend(
                self._certificates, certificate_key, now, template=self._certificate_template
            )
            self._prune(now)
            return retry

    def _prune(self, now: dt.datetime) -> None:
        """Now and then forget buckets that are full again: a full bucket is the template."""
        self._spent += 1
        if self._spent % 1000:
            return
        for table in (self._certificates, self._issuers):
            for key in [k for k, b in table.items() if b.available(now) >= b.capacity]:
                del table[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._certificates) + len(self._issuers)


def failed(status: MeshCertificateStatus, now: dt.datetime, reason: str) -> MeshCertificateStatus:
    """``status`` with one more failed issuance, at ``now``, for ``reason``."""
    return dataclasses.replace(
        status,
        failed_issuance_attempts=status.failed_issuance_attempts + 1,
        last_failure_time=now,
        last_failure_reason=reason,
    )
