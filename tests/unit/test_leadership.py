"""dabba.leadership: kopf's peering rule, as the certificate runner applies it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dabba.leadership import leads

NOW = dt.datetime(2026, 11, 21, 12, 0, 0, tzinfo=dt.UTC)
ME, MINE = "dabba-me", 100


def peer(priority: int, seconds_ago: float = 1, lifetime: int = 20) -> dict[str, Any]:
    seen = NOW - dt.timedelta(seconds=seconds_ago)
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen.isoformat()}


def peering(**peers: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "dabba"}, "status": peers}


@pytest.mark.parametrize(
    ("peerings", "expected", "why"),
    [
        ([peering()], True, "no peers at all"),
        ([None], True, "no peering object"),
        ([peering(**{ME: peer(MINE)})], True, "only ourselves"),
        ([peering(**{ME: peer(MINE), "other": peer(MINE - 1)})], True, "the other is lower"),
        ([peering(**{ME: peer(MINE), "other": peer(MINE + 1)})], False, "the other is higher"),
        ([peering(other=peer(MINE))], False, "same priority: kopf pauses both"),
        ([peering(other=peer(MINE + 1, seconds_ago=21))], True, "the higher one is dead"),
        ([peering(other=peer(MINE + 1, seconds_ago=19))], False, "the higher one is alive"),
        ([peering(other=peer(MINE + 1, seconds_ago=100, lifetime=120))], False, "long lifetime"),
        (
            [peering(other={"priority": MINE + 1, "lifetime": 20})],
            False,
            "no lastseen reads as just now (kopf)",
        ),
        ([peering(other={"lastseen": NOW.isoformat()})], True, "no priority reads as 0"),
        ([peering(other={"priority": "high"})], True, "unreadable entries are ignored"),
        ([peering(other="garbage")], True, "a non-mapping entry is ignored"),
        ([{"status": "garbage"}], True, "a non-mapping status is ignored"),
        (
            [peering(a=peer(MINE - 5)), peering(b=peer(MINE + 5))],
            False,
            "any of several namespaced peering objects pauses",
        ),
        (
            [peering(other={**peer(MINE + 1), "lastseen": "2026-11-21T11:59:59Z"})],
            False,
            "Z-suffixed timestamps parse",
        ),
        (
            [peering(other={**peer(MINE + 1), "lastseen": "2026-11-21T11:59:59"})],
            False,
            "naive timestamps are UTC",
        ),
    ],
)
def test_leads(peerings: list[dict[str, Any] | None], expected: bool, why: str) -> None:
    assert leads(peerings, ME, MINE, NOW) is expected, why
