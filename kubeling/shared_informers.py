"""One informer per resource for a whole process (client-go's SharedInformerFactory).

Every component of a process (the controllers of the controller manager, the proxy, the
scheduler, ...) registers its handlers with `add_handlers(resource, on_add, on_update,
on_delete)` and gets the shared informer (its read-only cache, `get`, `items`). `run()`
runs each resource's list+watch once, however many handlers it has.

An informer is keyed by its resource AND what it lists: a namespace, a field selector and a
label selector (client-go's filtered factories / tweakListOptions). Callers asking for the
same resource with the same selectors share one informer; a caller with other selectors
(the scheduler's active pods) gets an informer of its own, whose cache holds only what its
selectors match.

Handlers are fed through a buffer each (client-go's processorListener): the watch only
appends an event to every handler's queue, and each handler has its own task taking
events from it in order. A slow handler therefore delays neither the watch nor the other
handlers; it only falls behind. An informer's `synced` is set once its cache is listed
AND every handler registered by then has handled that list (so a controller whose
workers start at `synced` has built its indexes). A handler registered after the list
is first given the cache's current objects as adds, as client-go does.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from kubeling.client import Client
from kubeling.informer import Informer
from kubeling.resources import Resource

log = logging.getLogger("kubeling.informer")

Handler = Callable[..., Any]

_SYNCED = object()  # queued after the initial list: the handler has seen all of it


class Listener:
    """One registration's handlers, its unbounded event buffer and the task draining it."""

    def __init__(self, informer: "SharedInformer", on_add: Handler | None, on_update: Handler | None,
                 on_delete: Handler | None) -> None:
        self.informer = informer
        self.handlers = {"add": on_add, "update": on_update, "delete": on_delete}
        self.buffer: asyncio.Queue[Any] = asyncio.Queue()
        self.synced = asyncio.Event()  # has handled the informer's initial list
        self.task: asyncio.Task[None] | None = None

    def post(self, kind: str, *args: Any) -> None:
        if self.handlers[kind] is not None:
            self.buffer.put_nowait((kind, args))

    def start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self.run(), name=f"{self.informer.res.plural} handler")

    async def run(self) -> None:
        while True:
            item = await self.buffer.get()
            if item is _SYNCED:
                self.synced.set()
                self.informer._listener_synced()
                continue
            kind, args = item
            handler = self.handlers[kind]
            try:
                result = handler(*args)  # type: ignore[misc]
                if inspect.isawaitable(result):
                    await result
            except Exception:  # one bad handler call must not stop this handler's later events
                log.exception("%s informer handler failed", self.informer.res.plural)


class SharedInformer(Informer):
    def __init__(self, client: Client, res: Resource, *, namespace: str | None = None,
                 field_selector: str = "", label_selector: str = "") -> None:
        super().__init__(client, res, namespace=namespace, field_selector=field_selector,
                         label_selector=label_selector,
                         on_add=self._added, on_update=self._updated, on_delete=self._deleted)
        self.listeners: list[Listener] = []
        self._has_listed = False
        self._running = False

    def register(self, on_add: Handler | None = None, on_update: Handler | None = None,
                 on_delete: Handler | None = None) -> Listener:
        listener = Listener(self, on_add, on_update, on_delete)
        self.listeners.append(listener)
        if self._has_listed:
            # Late: replay the cache so this handler starts from the same state as the others.
            for obj in self._cache.values():
                listener.post("add", obj)
            listener.buffer.put_nowait(_SYNCED)
        if self._running:
            listener.start()
        return listener

    # The base informer calls these inline; they only append to the buffers.

    def _added(self, obj: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener.post("add", obj)

    def _updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener.post("update", old, new)

    def _deleted(self, obj: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener.post("delete", obj)

    def _listed(self) -> None:
        if self._has_listed:
            return  # a relist after 410: its differences were posted as events
        self._has_listed = True
        for listener in self.listeners:
            listener.buffer.put_nowait(_SYNCED)
        self._listener_synced()

    def _listener_synced(self) -> None:
        if self._has_listed and all(li.synced.is_set() for li in self.listeners):
            self.synced.set()

    async def run(self) -> None:
        self._running = True
        for listener in self.listeners:
            listener.start()
        try:
            await super().run()
        finally:
            self._running = False
            tasks = [li.task for li in self.listeners if li.task is not None]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


InformerKey = tuple[str, str, str, str, str]  # group, plural, namespace, field selector, label selector


class SharedInformers:
    """The factory: `informer(res)` / `add_handlers(res, ...)` before `run()`, then
    `wait_synced()`."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._informers: dict[InformerKey, SharedInformer] = {}

    def informer(self, res: Resource, *, namespace: str | None = None, field_selector: str = "",
                 label_selector: str = "") -> SharedInformer:
        """The one informer of `res` listing with these selectors (created on first use)."""
        key = (res.group, res.plural, namespace or "", field_selector, label_selector)
        if key not in self._informers:
            self._informers[key] = SharedInformer(self.client, res, namespace=namespace or None,
                                                  field_selector=field_selector,
                                                  label_selector=label_selector)
        return self._informers[key]

    def add_handlers(self, res: Resource, on_add: Handler | None = None, on_update: Handler | None = None,
                     on_delete: Handler | None = None, *, namespace: str | None = None,
                     field_selector: str = "", label_selector: str = "") -> SharedInformer:
        """Register a handler set on the informer of `res` with these selectors (one per
        resource and selectors, however many callers) and return that informer."""
        inf = self.informer(res, namespace=namespace, field_selector=field_selector,
                            label_selector=label_selector)
        inf.register(on_add, on_update, on_delete)
        return inf

    def all(self) -> list[SharedInformer]:
        return list(self._informers.values())

    async def run(self) -> None:
        """Run every informer asked for before this call; ends only by cancellation or failure."""
        tasks = [asyncio.create_task(i.run(), name=f"{i.res.plural} informer") for i in self.all()]
        if not tasks:
            await asyncio.get_running_loop().create_future()  # nothing to watch: run until cancelled
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_synced(self) -> None:
        await asyncio.gather(*(i.synced.wait() for i in self.all()))
