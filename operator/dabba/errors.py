"""dabba's exceptions.

DabbaError
├── ConfigError        operator flags/environment are unusable (exit before starting)
└── SpecError          a resource's spec is valid for the schema but not for the operator
                       (reported as a status condition and an Event, never a crash)
"""

from __future__ import annotations


class DabbaError(Exception):
    """Base class of every error dabba raises on purpose."""


class ConfigError(DabbaError):
    """The operator's own configuration is unusable."""


class SpecError(DabbaError):
    """A resource asks for something the operator cannot do."""
