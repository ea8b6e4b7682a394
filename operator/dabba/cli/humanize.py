"""Times, durations and numbers as a person reads them in a terminal. Pure.

Durations follow kubectl's AGE column (two units at most, coarser as they grow) so that
``dabba`` tables line up with ``kubectl get``: ``12s``, ``3m20s``, ``45m``, ``5h12m``,
``2d3h``, ``400d``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Final

_MINUTE: Final = 60
_HOUR: Final = 60 * _MINUTE
_DAY: Final = 24 * _HOUR
#: Below this many seconds a duration keeps its seconds (``3m20s``), above it only minutes.
_SECONDS_PRECISION_UNTIL: Final = 10 * _MINUTE
#: Beyond this a duration is whole days only (``400d``): hours no longer matter.
_HOURS_PRECISION_UNTIL: Final = 30 * _DAY

#: Placeholder for a value that is absent (kubectl prints ``<none>``; a dash reads better).
NONE: Final = "-"


def human_duration(delta: dt.timedelta) -> str:  # noqa: PLR0911 - one exit per precision
    """``12s``, ``3m20s``, ``45m``, ``5h12m``, ``2d3h`` or ``400d`` (negative: ``-45m``)."""
    total = delta.total_seconds()
    if total < 0:
        return "-" + human_duration(-delta)
    seconds = math.floor(total)
    if seconds < _MINUTE:
        return f"{seconds}s"
    if seconds < _SECONDS_PRECISION_UNTIL:
        return _two(seconds // _MINUTE, "m", seconds % _MINUTE, "s")
    if seconds < _HOUR:
        return f"{seconds // _MINUTE}m"
    if seconds < _DAY:
        return _two(seconds // _HOUR, "h", seconds % _HOUR // _MINUTE, "m")
    if seconds < _HOURS_PRECISION_UNTIL:
        return _two(seconds // _DAY, "d", seconds % _DAY // _HOUR, "h")
    return f"{seconds // _DAY}d"


def _two(big: int, big_unit: str, small: int, small_unit: str) -> str:
    return f"{big}{big_unit}{small}{small_unit}" if small else f"{big}{big_unit}"


def age(created: dt.datetime | None, now: dt.datetime) -> str:
    """Time since ``created`` (``-`` when unknown); a clock ahead of ours reads ``0s``."""
    if created is None:
        return NONE
    return human_duration(max(now - created, dt.timedelta(0)))


def relative(when: dt.datetime | None, now: dt.datetime) -> str:
    """``in 3h``, ``5m ago`` or ``-``."""
    if when is None:
        return NONE
    if when >= now:
        return f"in {human_duration(when - now)}"
    return f"{human_duration(now - when)} ago"


_DURATION_RE: Final = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_DURATION_UNITS: Final = (7 * _DAY, _DAY, _HOUR, _MINUTE, 1)


def parse_duration(text: str) -> dt.timedelta:
    """Parse ``24h``, ``90m``, ``1h30m``, ``7d``, ``2w`` or ``45s`` (largest unit first).

    Days and weeks are accepted, unlike the CRD's grammar, because "expiring within 7d" is
    how people ask about certificates.

    Raises:
        ValueError: empty, unknown unit, wrong order, or a fraction.
    """
    cleaned = text.strip().lower()
    match = _DURATION_RE.fullmatch(cleaned)
    if not cleaned or match is None:
        raise ValueError(
            f"invalid duration {text!r}: use whole numbers with units w, d, h, m, s, "
            "largest first (e.g. 24h, 90m, 7d, 1h30m)"
        )
    seconds = sum(
        int(g) * unit for g, unit in zip(match.groups(), _DURATION_UNITS, strict=True) if g
    )
    try:
        return dt.timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"invalid duration {text!r}: too long") from None


def parse_time(value: object) -> dt.datetime | None:
    """An RFC 3339 timestamp from the API as an aware UTC datetime; anything else is None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(dt.UTC) if parsed.tzinfo else None


def format_time(value: dt.datetime) -> str:
    """RFC 3339, UTC, whole seconds: ``2026-01-02T03:04:05Z`` (as Kubernetes writes it)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_number(value: float | None) -> str:
    """A metric value, short: ``99.52``, ``612.3``, ``0.00123``, ``1.5e+06`` or ``-``."""
    if value is None or math.isnan(value):
        return NONE
    if value != 0 and (abs(value) < 0.01 or abs(value) >= 1e6):  # noqa: PLR2004
        return f"{value:.3g}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def short_revision(revision: object, length: int = 10) -> str:
    """The first characters of a revision hash (like ``git log --oneline``), or ``-``."""
    return revision[:length] if isinstance(revision, str) and revision else NONE
