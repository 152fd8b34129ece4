"""Namespace deletion: empty a Terminating namespace, then finalize it.

The apiserver marks a deleted namespace Terminating and keeps it while
`spec.finalizers` holds "kubernetes"; this controller deletes everything in it
(pods still get their grace period from the agent), and once nothing is left
clears the finalizer so the namespace goes.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from kubeling import errors
from kubeling.client import Client, resource_path
from kubeling.informer import Informer
from kubeling.resources import RESOURCES, lookup

log = logging.getLogger("kubeling.namespaces")
NAMESPACES = lookup("namespaces")


class NamespaceController:
    def __init__(self, client: Client, recheck: float = 1.0) -> None:
        self.client = client
        self.recheck = recheck
        self.pending: set[str] = set()
        self.wake = asyncio.Event()
        self.informer = Informer(client, NAMESPACES, on_add=self._seen,
                                 on_update=lambda _o, n: self._seen(n))

    def _seen(self, ns: dict[str, Any]) -> None:
        if (ns.get("metadata") or {}).get("deletionTimestamp"):
            self.pending.add(ns["metadata"]["name"])
            self.wake.set()

    async def _empty(self, ns: str) -> bool:
        """Delete what is left; True when nothing remains."""
        left = 0
        for res in RESOURCES:
            if not res.namespaced:
                continue
            listed = await self.client.list(res, ns)
            for item in listed["items"]:
                left += 1
                if not item["metadata"].get("deletionTimestamp"):
                    try:
                        await self.client.delete(res, item["metadata"]["name"], ns)
                    except errors.ApiError as exc:
                        if exc.code != 404:
                            raise
        return left == 0

    async def _finalize(self, ns: str) -> None:
        body = await self.client.get(NAMESPACES, ns)
        body.setdefault("spec", {})["finalizers"] = []
        await self.client.request("PUT", resource_path(NAMESPACES, None, ns, "finalize"), body)
        log.info("namespace %s finalized", ns)

    async def run(self) -> None:
        task = asyncio.create_task(self.informer.run())
        try:
            while True:
                try:
                    await asyncio.wait_for(self.wake.wait(), self.recheck)
                except asyncio.TimeoutError:
                    pass
                self.wake.clear()
                for ns in sorted(self.pending):
                    try:
                        if await self._empty(ns):
                            await self._finalize(ns)
                            self.pending.discard(ns)
                    except errors.ApiError as exc:
                        if exc.code == 404:
                            self.pending.discard(ns)
                        else:
                            log.warning("namespace %s: %s", ns, exc.message)
        finally:
            task.cancel()
