"""Which condition changes become Events (reconcile._condition_events)."""

from __future__ import annotations

import datetime as dt

import pytest

from dabba.certs.model import Condition, ConditionStatus, MeshCertificateStatus
from dabba.certs.reconcile import _condition_events

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
T, F, U = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN


def status(**conds: ConditionStatus) -> MeshCertificateStatus:
    return MeshCertificateStatus(
        conditions=tuple(Condition(t, s, f"{t}{s}", f"{t} is {s}", T0) for t, s in conds.items())
    )


def events(old: MeshCertificateStatus, new: MeshCertificateStatus) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    _condition_events(old, new, lambda type_, reason, _message: seen.append((type_, reason)))
    return seen


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            status(),
            status(Ready=T, Expired=F, RenewalOverdue=F),
            [],
            id="a new certificate's good first values are not news",
        ),
        pytest.param(
            status(),
            status(Ready=F, Expired=T, RenewalOverdue=T),
            [
                ("Warning", "ReadyFalse"),
                ("Warning", "ExpiredTrue"),
                ("Warning", "RenewalOverdueTrue"),
            ],
            id="bad first values are",
        ),
        pytest.param(
            status(Ready=F, Expired=F),
            status(Ready=T, Expired=F),
            [("Normal", "ReadyTrue")],
            id="recovering is news, an unchanged condition is not",
        ),
        pytest.param(
            status(Ready=T, RenewalOverdue=F),
            status(Ready=F, RenewalOverdue=T),
            [("Warning", "ReadyFalse"), ("Warning", "RenewalOverdueTrue")],
            id="getting worse is news",
        ),
        pytest.param(status(Ready=T), status(Ready=U), [], id="unknown is never an Event"),
    ],
)
def test_condition_events(
    old: MeshCertificateStatus, new: MeshCertificateStatus, expected: list[tuple[str, str]]
) -> None:
    assert events(old, new) == expected
