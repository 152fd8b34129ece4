"""Real local servers for the prober tests (127.0.0.1, kernel-chosen ports)."""
from __future__ import annotations

import asyncio
import socket

from aiohttp import web


class HealthServer:
    """An HTTP server whose /healthz answers `status` (changeable), recording requests."""

    def __init__(self) -> None:
        self.status = 200
        self.delay = 0.0
        self.requests: list[web.Request] = []
        self.paths: list[str] = []
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()

    async def _healthz(self, request: web.Request) -> web.Response:
        self.requests.append(request)
        self.paths.append(request.path_qs)
        if self.delay:
            try:  # a slow server, which close() interrupts
                await asyncio.wait_for(self._closing.wait(), self.delay)
            except asyncio.TimeoutError:
                pass
        return web.Response(status=self.status, text=f"status {self.status}")

    async def _redirect(self, request: web.Request) -> web.Response:
        self.paths.append(request.path_qs)
        raise web.HTTPFound(request.query["to"])

    async def start(self) -> "HealthServer":
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/redirect", self._redirect)
        app.router.add_get("/pre-stop", self._healthz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()


def closed_port() -> int:
    """A port nothing listens on (bound then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_is_free(port: int) -> bool:
    s = socket.socket()
    # TIME_WAIT leftovers are fine; only a listener makes the port busy.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()
