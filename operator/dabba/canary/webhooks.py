"""Calling a Canary's webhooks: POST a JSON payload, 2xx within the timeout means go. I/O.

Used for gates (``confirm-rollout``, ``confirm-promotion``), checks (``pre-rollout``,
``rollout``, ``rollback``) and notifications (``post-rollout``, ``event``). Failures are
values with a message for status and Events, never exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from dabba.canary.model import WebhookSpec
from dabba.canary.state_machine import WebhookResult

MAX_MESSAGE = 200


def call(hook: WebhookSpec, payload: Mapping[str, Any]) -> WebhookResult:
    """POST ``payload`` (plus the hook's metadata) to the hook's URL."""
    body = {**payload, "metadata": dict(hook.metadata)}
    timeout = hook.timeout.total_seconds()
    try:
        resp = requests.post(hook.url, json=body, timeout=timeout)
    except requests.Timeout:
        return WebhookResult(ok=False, message=f"{hook.name}: no answer within {timeout:g}s")
    except requests.RequestException as exc:
        return WebhookResult(
            ok=False, message=f"{hook.name}: {type(exc).__name__}: {str(exc)[:MAX_MESSAGE]}"
        )
    if 200 <= resp.status_code < 300:  # noqa: PLR2004 - the 2xx range
        return WebhookResult(ok=True, message=f"{hook.name}: HTTP {resp.status_code}")
    text = " ".join(resp.text.split())[:MAX_MESSAGE]
    return WebhookResult(ok=False, message=f"{hook.name}: HTTP {resp.status_code} {text}".strip())
