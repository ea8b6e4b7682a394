"""Webhook calls against a real HTTP server on loopback: 2xx, non-2xx, timeout, refused."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dabba.canary.model import WebhookSpec, WebhookType
from dabba.canary.webhooks import call

RECEIVED: list[dict[str, object]] = []


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        RECEIVED.append(body)
        if self.path == "/slow":
            time.sleep(1.5)  # the server is slow on purpose; the client's timeout is 0.5 s
        code = {"/ok": 200, "/accepted": 202, "/deny": 403, "/slow": 200}.get(self.path, 500)
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"go away\n" if code == 403 else b"")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def hook(url: str, timeout: float = 2.0) -> WebhookSpec:
    return WebhookSpec(
        name="gate",
        type=WebhookType.CONFIRM_PROMOTION,
        url=url,
        timeout=dt.timedelta(seconds=timeout),
        metadata={"team": "payments"},
    )


@pytest.mark.parametrize(
    ("path", "ok", "text"),
    [
        pytest.param("/ok", True, "HTTP 200", id="200 means go"),
        pytest.param("/accepted", True, "HTTP 202", id="any 2xx means go"),
        pytest.param("/deny", False, "HTTP 403 go away", id="403 holds, with the body"),
        pytest.param("/boom", False, "HTTP 500", id="500 holds"),
    ],
)
def test_status_codes(server: str, path: str, ok: bool, text: str) -> None:
    result = call(hook(server + path), {"name": "podinfo", "phase": "WaitingPromotion"})
    assert result.ok is ok
    assert text in result.message


def test_payload_carries_the_canary_and_the_hook_metadata(server: str) -> None:
    RECEIVED.clear()
    call(
        hook(server + "/ok"),
        {
            "name": "podinfo",
            "namespace": "shop",
            "weight": 10,
            "revision": "abc",
            "phase": "Progressing",
        },
    )
    assert RECEIVED == [
        {
            "name": "podinfo",
            "namespace": "shop",
            "weight": 10,
            "revision": "abc",
            "phase": "Progressing",
            "metadata": {"team": "payments"},
        }
    ]


def test_timeout_is_a_failure_that_says_so(server: str) -> None:
    started = time.monotonic()
    result = call(hook(server + "/slow", timeout=0.5), {})
    assert not result.ok
    assert "no answer within 0.5s" in result.message
    assert time.monotonic() - started < 1.4


def test_refused_connection_is_a_failure_not_an_exception() -> None:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = call(hook(f"http://127.0.0.1:{port}/x"), {})
    assert not result.ok
    assert "ConnectionError" in result.message
