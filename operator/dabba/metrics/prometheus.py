"""The Prometheus adapter (the only importer of prometheus-api-client).

Blocking calls; the Canary controller runs them in worker threads. Every outcome maps to a
:class:`QueryResult`: one sample → its value (NaN and ±Inf pass through for the analysis to
call Inconclusive); an empty vector → no data; several series → an error that names them,
because silently picking one would judge the wrong thing; HTTP or connection failures and
PromQL errors → an error with Prometheus's own message.
"""

from __future__ import annotations

import ast
import json
import math
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from dabba.metrics import QueryResult

#: Per-query timeout, seconds: a tick must not hang on a slow Prometheus.
TIMEOUT = 10.0


class PrometheusProvider:
    """Instant queries against one Prometheus URL."""

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout
        # One quick retry: a tick must fail fast (Error) when Prometheus is down, not hang.
        self._prom = PrometheusConnect(
            url=self.url,
            disable_ssl=False,
            timeout=math.ceil(timeout),
            retry=Retry(total=1, backoff_factor=0.1, status_forcelist=(502, 503, 504)),
        )

    def __repr__(self) -> str:
        return f"PrometheusProvider({self.url!r})"

    def query(self, promql: str) -> QueryResult:
        try:
            result = self._prom.custom_query(
                promql, params={"timeout": f"{math.ceil(self._timeout)}s"}
            )
        except PrometheusApiClientException as exc:
            return QueryResult.failed(f"Prometheus rejected the query: {_api_error(exc)}")
        except requests.RequestException as exc:
            return QueryResult.failed(f"Prometheus at {self.url} unreachable: {_short(exc)}")
        except ValueError as exc:  # a body that is not JSON (a proxy's error page)
            return QueryResult.failed(f"Prometheus at {self.url} answered garbage: {_short(exc)}")
        return _scalar(result)

    def is_online(self) -> bool:
        try:
            return bool(self._prom.check_prometheus_connection())
        except requests.RequestException:
            return False


def _short(exc: BaseException | str, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _api_error(exc: BaseException) -> str:
    """Prometheus's own message out of the client's ``HTTP Status Code 400 (b'{...}')``."""
    text = str(exc)
    start = text.find("(b'")
    if start != -1 and text.endswith("')"):
        try:
            doc = json.loads(ast.literal_eval(text[start + 1 : -1]))
        except (ValueError, SyntaxError):
            doc = None
        if isinstance(doc, dict) and doc.get("error"):
            return _short(str(doc["error"]))
    return _short(text)


def _value(raw: Any) -> float:
    # Prometheus encodes samples as [timestamp, "value"], with "NaN", "+Inf", "-Inf".
    try:
        return float(raw[1])
    except (TypeError, ValueError, IndexError):
        return math.nan


def _scalar(result: Any) -> QueryResult:
    if isinstance(result, list) and result and not isinstance(result[0], dict):
        # resultType "scalar" or "string": [timestamp, "value"] itself.
        return QueryResult.ok(_value(result))
    if isinstance(result, list):
        if not result:
            return QueryResult.no_data()
        if len(result) > 1:
            labels = ", ".join(
                "{" + ",".join(f"{k}={v}" for k, v in sorted(s.get("metric", {}).items())) + "}"
                for s in result[:3]
            )
            return QueryResult.failed(
                f"query returned {len(result)} series, not one scalar: {labels}"
                f"{' …' if len(result) > 3 else ''}; aggregate it with sum() or similar"  # noqa: PLR2004
            )
        return QueryResult.ok(_value(result[0].get("value")))
    return QueryResult.no_data()
