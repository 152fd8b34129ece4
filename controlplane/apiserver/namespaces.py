"""A watch-fed cache of Namespaces, so a create does not cost an etcd read.

Like Kubernetes' NamespaceLifecycle admission: trust the cache when it knows the
namespace, ask etcd when it does not (a namespace created a moment ago)."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from .storage import Store

log = logging.getLogger("kubeling.apiserver")
PREFIX = "/registry/namespaces/"


class NamespaceCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.known: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        items, rev = await self.store.list(PREFIX)
        self.known = {i["metadata"]["name"]: i for i in items}
        self._task = asyncio.create_task(self._follow(rev + 1))

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def _follow(self, start: int) -> None:
        while True:
            try:
                async for ev in self.store.watch(PREFIX, start):
                    name = ev.key[len(PREFIX):]
                    if ev.type == "DELETE":
                        self.known.pop(name, None)
                    elif ev.obj is not None:
                        self.known[name] = ev.obj
                    start = ev.revision + 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # compaction or a dropped stream: start over from a list
                log.warning("namespace cache: %s; relisting", exc)
                self.known.clear()
                await asyncio.sleep(0.5)
                try:
                    items, rev = await self.store.list(PREFIX)
                    self.known = {i["metadata"]["name"]: i for i in items}
                    start = rev + 1
                except Exception:
                    continue

    async def get(self, name: str) -> dict[str, Any] | None:
        ns = self.known.get(name)
        if ns is not None:
            return ns
        return await self.store.get(PREFIX + name)
