"""Durations, times and numbers as the CLI prints them."""

from __future__ import annotations

import datetime as dt

import pytest

from dabba.cli.humanize import (
    age,
    format_number,
    format_time,
    human_duration,
    parse_duration,
    parse_time,
    relative,
    short_revision,
)

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (12, "12s"),
        (12.9, "12s"),
        (59, "59s"),
        (60, "1m"),
        (200, "3m20s"),
        (599, "9m59s"),
        (45 * 60, "45m"),
        (45 * 60 + 30, "45m"),
        (3600, "1h"),
        (5 * 3600 + 12 * 60 + 9, "5h12m"),
        (86400, "1d"),
        (2 * 86400 + 3 * 3600 + 59 * 60, "2d3h"),
        (29 * 86400 + 23 * 3600, "29d23h"),
        (30 * 86400 + 5 * 3600, "30d"),
        (400 * 86400, "400d"),
        (-45 * 60, "-45m"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(dt.timedelta(seconds=seconds)) == text


def test_relative_and_age() -> None:
    assert relative(NOW + dt.timedelta(hours=3), NOW) == "in 3h"
    assert relative(NOW - dt.timedelta(minutes=5), NOW) == "5m ago"
    assert relative(NOW, NOW) == "in 0s"
    assert relative(None, NOW) == "-"
    assert age(NOW - dt.timedelta(days=2, hours=3), NOW) == "2d3h"
    assert age(NOW + dt.timedelta(seconds=5), NOW) == "0s"  # a clock ahead of ours
    assert age(None, NOW) == "-"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", dt.timedelta(hours=24)),
        ("90m", dt.timedelta(minutes=90)),
        ("1h30m", dt.timedelta(minutes=90)),
        ("7d", dt.timedelta(days=7)),
        ("2w", dt.timedelta(weeks=2)),
        ("45s", dt.timedelta(seconds=45)),
        ("1d12h", dt.timedelta(hours=36)),
        (" 24H ", dt.timedelta(hours=24)),
        ("0s", dt.timedelta(0)),
    ],
)
def test_parse_duration(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1.5h", "30m1h", "abc", "1y", "-5m", "5", "h"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (99.52, "99.52"),
        (612.3, "612.3"),
        (100.0, "100"),
        (0, "0"),
        (0.00123, "0.00123"),
        (12_345_678.0, "1.23e+07"),
        (-3.5, "-3.5"),
        (None, "-"),
        (float("nan"), "-"),
    ],
)
def test_format_number(value: float | None, text: str) -> None:
    assert format_number(value) == text


def test_times_round_trip_and_refuse_naive() -> None:
    assert parse_time("2026-03-01T12:00:00Z") == NOW
    assert format_time(NOW) == "2026-03-01T12:00:00Z"
    assert parse_time("2026-03-01T13:00:00+01:00") == NOW
    assert parse_time("2026-03-01T12:00:00") is None  # no offset: ambiguous
    assert parse_time("yesterday") is None
    assert parse_time(None) is None


def test_short_revision() -> None:
    assert short_revision("7c9f0a1b2c3d4e5f") == "7c9f0a1b2c"
    assert short_revision(None) == "-"
    assert short_revision("") == "-"
