"""Run the API server in the foreground: `kubeling apiserver --etcd ... --bind ...`."""
from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

from aiohttp import web

from .app import build_app
from .storage import Store


def read_tokens(path: str | None) -> frozenset[str]:
    """Static bearer tokens, one per line (`token[,user]`); none means no authentication."""
    if not path:
        return frozenset()
    tokens = set()
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            tokens.add(line.split(",", 1)[0])
    return frozenset(tokens)


async def serve(etcd_host: str, etcd_port: int, bind: str, port: int,
                token_file: str | None = None, ready: asyncio.Event | None = None,
                tls_cert: str | None = None, tls_key: str | None = None) -> None:
    app = build_app(Store(etcd_host, etcd_port), read_tokens(token_file))
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, bind, port, reuse_address=True, ssl_context=tls_context(tls_cert, tls_key))
    await site.start()
    logging.getLogger("kubeling.apiserver").info("serving on %s:%d", bind, port)
    if ready is not None:
        ready.set()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """HTTPS when given a certificate: kubectl and client-go send bearer tokens
    only over TLS, so plain HTTP serves them as anonymous."""
    if not cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def run(etcd: str, bind: str, port: int, token_file: str | None,
        tls_cert: str | None = None, tls_key: str | None = None) -> None:
    host, _, eport = etcd.replace("http://", "").partition(":")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(host or "127.0.0.1", int(eport or 2379), bind, port, token_file,
                      tls_cert=tls_cert, tls_key=tls_key))
