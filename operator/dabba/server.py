"""``/metrics`` and ``/healthz`` on one port, served from kopf's event loop with aiohttp.

Health means: the operator has finished starting (kopf's ready flag) and its event loop is
responsive (this handler runs on it). kopf's own liveness endpoint would need a second port.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dabba import telemetry


class HealthServer:
    """Started on operator startup, stopped on cleanup."""

    def __init__(self, host: str, port: int, ready: asyncio.Event) -> None:
        self._host, self._port, self._ready = host, port, ready
        self._runner: web.AppRunner | None = None

    async def _metrics(self, _: web.Request) -> web.Response:
        body = await asyncio.to_thread(generate_latest, telemetry.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _: web.Request) -> web.Response:
        if not self._ready.is_set():
            return web.Response(status=503, text="starting\n")
        return web.Response(text="ok\n")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
