"""Run the API server in the foreground: `kubeling apiserver --etcd ... --bind ...`."""
from __future__ import annotations

import asyncio
import logging
import ssl

from aiohttp import web

from kubeling import eventloop, pki, sdnotify
from kubeling.resources import RESOURCES

from .app import build_app
from . import encryption, mutation_detector
from .authn import Authenticator
from .tokens import ServiceAccountTokens
from .storage import EVENT_TTL, EtcdStore
from .store import Store
from .watch_cache import WINDOW, CachedStore


async def serve(etcd_host: str, etcd_port: int, bind: str, port: int,
                token_file: str | None = None, ready: asyncio.Event | None = None,
                tls_cert: str | None = None, tls_key: str | None = None,
                client_ca: str | None = None, encryption_config: str | None = None,
                service_accounts: ServiceAccountTokens | None = None, count_poll_period: float = 60.0,
                event_ttl: int = EVENT_TTL, watch_cache: bool = True, watch_cache_size: int | None = None) -> None:
    authenticator = Authenticator(token_file, client_ca=bool(client_ca and tls_cert))
    authenticator.service_accounts = service_accounts
    encryption.configure(encryption_config)
    store: Store = EtcdStore(etcd_host, etcd_port, event_ttl=event_ttl)
    if watch_cache:
        store = CachedStore(store, {res.key_prefix(): {"kind": res.kind, "apiVersion": res.api_version}
                                    for res in RESOURCES if "watch" in res.verbs}, watch_cache_size or WINDOW)
    if mutation_detector.enabled():
        store = mutation_detector.MutationDetectingStore(store)
    app = build_app(store, authenticator, count_poll_period)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, bind, port, reuse_address=True,
                       ssl_context=tls_context(tls_cert, tls_key, client_ca))
    await site.start()
    logging.getLogger("kubeling.apiserver").info("serving on %s:%d", bind, port)
    # runner.setup() ran on_startup, which reached etcd: now it really serves (Type=notify unit).
    sdnotify.notify("READY=1")
    if ready is not None:
        ready.set()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def tls_context(cert: str | None, key: str | None, client_ca: str | None = None) -> ssl.SSLContext | None:
    """HTTPS when given a certificate: kubectl and client-go send bearer tokens
    only over TLS, so plain HTTP serves them as anonymous. With a client CA, a
    client may present a certificate signed by it (and is then its CN/O); one
    that does not verify fails the handshake, as with kube-apiserver."""
    return pki.server_tls_context(cert, key, client_ca) if cert else None


def run(etcd: str, bind: str, port: int, token_file: str | None,
        tls_cert: str | None = None, tls_key: str | None = None, client_ca: str | None = None,
        encryption_config: str | None = None, service_accounts: ServiceAccountTokens | None = None,
        count_poll_period: float = 60.0, watch_cache: bool = True, watch_cache_size: int | None = None,
        event_ttl: int = EVENT_TTL) -> None:
    host, _, eport = etcd.replace("http://", "").partition(":")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    eventloop.run(serve(host or "127.0.0.1", int(eport or 2379), bind, port, token_file,
                      tls_cert=tls_cert, tls_key=tls_key, client_ca=client_ca,
                      encryption_config=encryption_config, service_accounts=service_accounts,
                      count_poll_period=count_poll_period, event_ttl=event_ttl, watch_cache=watch_cache,
                      watch_cache_size=watch_cache_size))
