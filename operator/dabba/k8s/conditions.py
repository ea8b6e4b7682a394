"""Status conditions (the Kubernetes ``metav1.Condition`` shape) as pure list transformations.

``lastTransitionTime`` moves only when ``status`` changes, as the API conventions require, so
a controller that re-asserts the same condition every tick does not make it look fresh.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Literal

ConditionStatus = Literal["True", "False", "Unknown"]


def rfc3339(t: dt.datetime) -> str:
    """UTC timestamp as Kubernetes writes it (``2026-01-01T00:00:00Z``)."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    """The condition of ``type_``, or ``None``."""
    for cond in conditions or ():
        if cond.get("type") == type_:
            return cond
    return None


def is_true(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> bool:
    cond = find(conditions, type_)
    return cond is not None and cond.get("status") == "True"


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: dt.datetime,
    observed_generation: int | None = None,
) -> list[dict[str, Any]]:
    """Return a new list with ``type_`` set; other conditions keep their order and content."""
    out: list[dict[str, Any]] = []
    previous = find(conditions, type_)
    changed = previous is None or previous.get("status") != status
    new: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": rfc3339(now)
        if changed or previous is None
        else previous.get("lastTransitionTime", rfc3339(now)),
    }
    if observed_generation is not None:
        new["observedGeneration"] = observed_generation
    placed = False
    for cond in conditions or ():
        if cond.get("type") == type_:
            out.append(new)
            placed = True
        else:
            out.append(dict(cond))
    if not placed:
        out.append(new)
    return out
