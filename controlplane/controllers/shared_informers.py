"""One informer per resource for the whole controller manager (client-go's
SharedInformerFactory): each controller registers its handlers with
`add_handlers(resource, on_add, on_update, on_delete)` and gets the shared informer
(its cache, `get`, `items`); `run()` runs each watch once and every handler sees
every event; `wait_synced()` returns once all of them have listed."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kubeling.client import Client
from kubeling.informer import Informer
from kubeling.resources import Resource

Handler = Callable[..., Any]


class SharedInformer(Informer):
    def __init__(self, client: Client, res: Resource) -> None:
        super().__init__(client, res, on_add=self._added, on_update=self._updated, on_delete=self._deleted)
        self._adds: list[Handler] = []
        self._updates: list[Handler] = []
        self._deletes: list[Handler] = []

    def register(self, on_add: Handler | None = None, on_update: Handler | None = None,
                 on_delete: Handler | None = None) -> None:
        for handlers, h in ((self._adds, on_add), (self._updates, on_update), (self._deletes, on_delete)):
            if h is not None:
                handlers.append(h)

    async def _fan(self, handlers: list[Handler], *args: Any) -> None:
        for h in list(handlers):
            await self._call(h, *args)  # one failing handler does not starve the others

    async def _added(self, obj: dict[str, Any]) -> None:
        await self._fan(self._adds, obj)

    async def _updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        await self._fan(self._updates, old, new)

    async def _deleted(self, obj: dict[str, Any]) -> None:
        await self._fan(self._deletes, obj)


class SharedInformers:
    def __init__(self, client: Client) -> None:
        self.client = client
        self._informers: dict[tuple[str, str], SharedInformer] = {}

    def informer(self, res: Resource) -> SharedInformer:
        key = (res.group, res.plural)
        if key not in self._informers:
            self._informers[key] = SharedInformer(self.client, res)
        return self._informers[key]

    def add_handlers(self, res: Resource, on_add: Handler | None = None, on_update: Handler | None = None,
                     on_delete: Handler | None = None) -> SharedInformer:
        """Register before `run()` (a later handler misses the initial list)."""
        inf = self.informer(res)
        inf.register(on_add, on_update, on_delete)
        return inf

    def all(self) -> list[SharedInformer]:
        return list(self._informers.values())

    async def run(self) -> None:
        await asyncio.gather(*(i.run() for i in self.all()))

    async def wait_synced(self) -> None:
        await asyncio.gather(*(i.synced.wait() for i in self.all()))
