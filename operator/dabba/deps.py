"""What every handler gets through ``memo.deps``: configuration, API clients, the clock."""

from __future__ import annotations

import dataclasses

from dabba.clock import Clock
from dabba.config import OperatorConfig
from dabba.k8s.client import Clients


@dataclasses.dataclass(frozen=True)
class Deps:
    config: OperatorConfig
    clients: Clients
    clock: Clock
