"""An evaluation starts from the Canary it knows to be current, without a GET (issue 8):
the newer of kopf's watched body and the object our last status write returned."""

from __future__ import annotations

from typing import Any

from dabba.canary import reconcile


def body(rv: str | None, phase: str) -> dict[str, Any]:
    md: dict[str, Any] = {"name": "c", "namespace": "ns"}
    if rv is not None:
        md["resourceVersion"] = rv
    return {"metadata": md, "status": {"phase": phase}}


def test_our_write_wins_while_the_watch_lags_behind_it() -> None:
    assert reconcile.newest(body("10", "Progressing"), body("12", "Promoting")) == body(
        "12", "Promoting"
    )


def test_a_newer_watched_body_wins_over_our_last_write() -> None:
    assert reconcile.newest(body("13", "Promoting"), body("12", "Promoting")) == body(
        "13", "Promoting"
    )


def test_without_a_write_the_watched_body_is_current() -> None:
    assert reconcile.newest(body("10", "Progressing"), None) == body("10", "Progressing")


def test_versions_that_cannot_be_ordered_mean_read_the_api() -> None:
    assert reconcile.newest(body("x", "Progressing"), body("12", "Promoting")) is None
    assert reconcile.newest(body(None, "Progressing")) is None
    assert reconcile.newest(None, None) is None
