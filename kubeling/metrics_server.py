"""`/metrics` for every component: a Prometheus registry in the text exposition format
(OpenMetrics when the scraper asks for it), as an aiohttp handler or a small server.

The apiserver and the agent mount `handler` behind their own authentication; the
controller manager and the DNS server, which have no authentication of their own, serve
it with `start` on a loopback address only: metrics name objects of the cluster.
"""
from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger("kubeling.metrics")

PATH = "/metrics"


def render(registry: CollectorRegistry, accept: str = "") -> tuple[bytes, str]:
    """The registry's samples and their content type (CONTENT_TYPE_LATEST unless `accept`
    asks for OpenMetrics)."""
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


def handler(registry: CollectorRegistry = REGISTRY) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler answering a scrape of `registry`."""
    async def metrics(request: web.Request) -> web.Response:
        body, content_type = render(registry, request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})
    return metrics


def add_route(app: web.Application, registry: CollectorRegistry = REGISTRY) -> None:
    app.router.add_get(PATH, handler(registry))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def start(host: str, port: int, registry: CollectorRegistry = REGISTRY) -> web.AppRunner | None:
    """Serve `registry` over plain HTTP on host:port (port 0: a free one; read it with
    `bound_port`). Only a loopback host: plain HTTP has no authentication.

    A port already taken is logged and None returned instead of failing: the component's
    real work (controllers, DNS answers) matters more than its metrics, and on a test
    machine several instances run side by side."""
    if not is_loopback(host):
        raise ValueError(f"metrics are served over plain HTTP on a loopback address only, not {host!r}")
    app = web.Application()
    add_route(app, registry)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        log.warning("not serving metrics on %s:%d: %s", host, port, exc)
        return None
    log.info("serving metrics on http://%s:%d%s", host, bound_port(runner), PATH)
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port the runner's first site listens on."""
    for address in runner.addresses:
        return int(address[1])
    raise RuntimeError("the metrics server listens on no socket")
