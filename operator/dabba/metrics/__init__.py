"""Where analysis numbers come from: one Protocol, one adapter per backend.

The Canary controller asks a :class:`MetricsProvider` for a scalar per rendered query; the
adapter turns every failure mode into a value the pure analysis understands (no data, or an
error with a message), so nothing above this package handles HTTP or PromQL errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class QueryResult:
    """What one query returned: a value, no data (``value is None``), or an error."""

    value: float | None = None
    error: str | None = None

    @classmethod
    def ok(cls, value: float) -> QueryResult:
        """A scalar came back (it may still be NaN or infinite)."""
        return cls(value=value)

    @classmethod
    def no_data(cls) -> QueryResult:
        """The query ran and matched nothing (empty vector)."""
        return cls()

    @classmethod
    def failed(cls, error: str) -> QueryResult:
        """The query could not run: Prometheus down, invalid query, several series."""
        return cls(error=error)

    @property
    def finite(self) -> float | None:
        """The value when it is a real number, else ``None`` (no data, NaN, ±Inf)."""
        if self.value is None or not math.isfinite(self.value):
            return None
        return self.value


class MetricsProvider(Protocol):
    """Runs instant queries that must return one scalar."""

    def query(self, promql: str) -> QueryResult:
        """One scalar (``ok``), no data (empty result), or ``failed`` with the reason."""
        ...

    def is_online(self) -> bool:
        """Whether the backend answers at all (for status messages)."""
        ...
