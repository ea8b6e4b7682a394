"""Issuance bookkeeping shared by leaves and CAs: budgets, failures, the Event recorder.

The budgets live in memory, per operator process (a restart starts them full, which is at
most one extra burst); failures live in status (``failedIssuanceAttempts``,
``lastFailureTime``, ``lastFailureReason``) and drive :func:`rotation.backoff`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Mapping
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
        self._issuers: Mapping[str, IssuanceBudget] = {}
        self._certificates: Mapping[str, IssuanceBudget] = {}
        self._issuer_template, self._certificate_template = issuer, certificate

    def spend(self, issuer_key: str, certificate_key: str, now: dt.datetime) -> dt.datetime | None:
        """Take one issuance from both budgets; None if granted, else when to try again."""
        with self._lock:
            mine = spend(
                self._certificates, certificate_key, now, template=self._certificate_template
            )
            if not mine.granted:
                self._certificates = mine.budgets
                return mine.retry_at
            theirs = spend(self._issuers, issuer_key, now, template=self._issuer_template)
            if not theirs.granted:
                return theirs.retry_at  # the certificate's token is not spent either
            self._certificates, self._issuers = mine.budgets, theirs.budgets
            return None

    def spend_own(self, certificate_key: str, now: dt.datetime) -> dt.datetime | None:
        """Take one write from the certificate's own budget only (no signing involved, e.g.
        copying the issuer's trusted set into ca.crt); None if granted, else when to retry.
        Stops a fight with another writer of the same Secret from becoming a hot loop."""
        with self._lock:
            mine = spend(
                self._certificates, certificate_key, now, template=self._certificate_template
            )
            self._certificates = mine.budgets
            return None if mine.granted else mine.retry_at


def failed(status: MeshCertificateStatus, now: dt.datetime, reason: str) -> MeshCertificateStatus:
    """``status`` with one more failed issuance, at ``now``, for ``reason``."""
    return dataclasses.replace(
        status,
        failed_issuance_attempts=status.failed_issuance_attempts + 1,
        last_failure_time=now,
        last_failure_reason=reason,
    )
