"""Wait at start-up until etcd answers, so the apiserver never exits for being started first.

systemd's `After=kubeling-etcd.service` orders starts but a restarting etcd, or a machine
booting slowly, can still leave the apiserver alone for a while: it retries (with backoff)
instead of exiting and relying on its unit's restart loop."""
from __future__ import annotations

import asyncio
import logging

from kubeling import errors

from .storage import EtcdStore

log = logging.getLogger("kubeling.apiserver")


async def wait_for_etcd(host: str, port: int, max_delay: float = 5.0) -> None:
    delay = 0.2
    while True:
        store = EtcdStore(host, port)
        try:
            await store.connect()
            await store.get("/registry/health")
            return
        except (errors.ApiError, OSError, ConnectionError) as exc:
            log.warning("etcd at %s:%d does not answer yet (%s); retrying in %.1fs", host, port, exc, delay)
        finally:
            await store.close()
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)


def wait(etcd_url: str) -> None:
    """Block until the etcd at `etcd_url` (http://host:port) answers a read."""
    host, _, port = etcd_url.replace("http://", "").partition(":")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(wait_for_etcd(host or "127.0.0.1", int(port or 2379)))
