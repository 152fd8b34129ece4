"""The ServiceAccounts controller (Kubernetes' serviceaccounts-controller): every
active namespace has a `default` ServiceAccount; one that is deleted comes back.

A work queue of namespace names, fed by the namespace informer (a new namespace)
and the ServiceAccount informer (a `default` deleted)."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from kubeling import errors
from kubeling.client import Client
from kubeling.resources import lookup

from .shared_informers import SharedInformers
from .workqueue import WorkQueue

log = logging.getLogger("kubeling.serviceaccounts")
NAMESPACES, SERVICEACCOUNTS = lookup("namespaces"), lookup("serviceaccounts")
MANAGED = ("default",)


def _active(ns: dict[str, Any] | None) -> bool:
    if ns is None:
        return False
    return not (ns.get("metadata") or {}).get("deletionTimestamp") and \
        (ns.get("status") or {}).get("phase") != "Terminating"


class ServiceAccountsController:
    def __init__(self, client: Client, informers: SharedInformers | None = None, workers: int = 2) -> None:
        self.client = client
        self.workers = workers
        self.own_informers = informers is None
        self.informers = informers or SharedInformers(client)
        self.queue = WorkQueue()
        self.ns_informer = self.informers.add_handlers(
            NAMESPACES, on_add=self._ns_seen, on_update=lambda _o, n: self._ns_seen(n))
        self.sa_informer = self.informers.add_handlers(SERVICEACCOUNTS, on_delete=self._sa_deleted)

    def _ns_seen(self, ns: dict[str, Any]) -> None:
        if _active(ns):
            self.queue.add(ns["metadata"]["name"])

    def _sa_deleted(self, sa: dict[str, Any]) -> None:
        meta = sa.get("metadata") or {}
        if meta.get("name") in MANAGED:
            self.queue.add(meta.get("namespace") or "")

    async def sync(self, ns: str) -> None:
        if not _active(self.ns_informer.get("", ns)):
            return
        for name in MANAGED:
            if self.sa_informer.get(ns, name) is not None:
                continue
            try:
                await self.client.create(SERVICEACCOUNTS, {"metadata": {"name": name}}, ns)
                log.info("created ServiceAccount %s/%s", ns, name)
            except errors.ApiError as exc:
                # Exists already (our cache lags), or the namespace is going: nothing to do.
                if exc.reason not in ("AlreadyExists", "Forbidden", "NotFound"):
                    raise

    async def _worker(self) -> None:
        while True:
            ns = await self.queue.get()
            try:
                await self.sync(str(ns))
                self.queue.forget(ns)
            except Exception as exc:  # retried with backoff; one namespace never stops the rest
                log.warning("namespace %s: %s", ns, exc)
                self.queue.add_rate_limited(ns)
            finally:
                self.queue.done(ns)

    async def run(self) -> None:
        tasks = [asyncio.create_task(self.informers.run())] if self.own_informers else []
        try:
            await self.informers.wait_synced()
            tasks += [asyncio.create_task(self._worker()) for _ in range(self.workers)]
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            self.queue.shutdown()
