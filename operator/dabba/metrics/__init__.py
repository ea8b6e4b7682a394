"""Where analysis numbers come from: one Protocol, one adapter per backend.

The Canary controller asks a :class:`MetricsProvider` for a scalar per rendered query; the
adapter turns every failure mode into a value the pure analysis understands (no data, or an
error with a message), so nothing above this package handles HTTP or PromQL errors.
"""

from __future__ import annotations

from typing import Protocol

from dabba.canary.analysis import QueryResult


class MetricsProvider(Protocol):
    """Runs instant queries that must return one scalar."""

    def query(self, promql: str) -> QueryResult:
        """One scalar (``ok``), no data (empty result), or ``failed`` with the reason."""
        ...

    def is_online(self) -> bool:
        """Whether the backend answers at all (for status messages)."""
        ...
