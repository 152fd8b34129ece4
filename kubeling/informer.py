"""List + watch informer: a local cache of one resource kept current by a watch.

Like client-go's reflector: list, then watch from the list's resourceVersion;
on a broken stream resume from the last seen version; on 410 Expired list again
and report the differences as adds, updates and deletes. Errors are retried after a
jittered exponential back-off (the reflector's), reset once the watch works again.

The cache is read-only to callers: `cache` is a read-only view, and the objects in it
are shared with every handler and reader, so copy one before changing it.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from kubeling import errors
from kubeling.client import WATCH_SILENCE_MARGIN, Client
from kubeling.resources import Resource

log = logging.getLogger("kubeling.informer")

Handler = Callable[..., Any]


def key_of(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


class Backoff:
    """Jittered exponential back-off (client-go's wait.Backoff as the reflector uses it):
    each failure waits `initial * factor**n` seconds, capped at `cap`, stretched by up to
    `jitter` of itself so that many clients of one restarted apiserver do not retry in step."""

    def __init__(self, initial: float = 0.5, cap: float = 8.0, factor: float = 2.0, jitter: float = 0.5,
                 rng: random.Random | None = None) -> None:
        self.initial, self.cap, self.factor, self.jitter = initial, cap, factor, jitter
        self._rng = rng or random.Random()
        self._failures = 0

    def next(self) -> float:
        """The delay before the next retry (and count one more failure)."""
        base = min(self.initial * self.factor ** self._failures, self.cap)
        self._failures += 1
        return base * (1 + self.jitter * self._rng.random())

    def reset(self) -> None:
        self._failures = 0


class Informer:
    def __init__(self, client: Client, res: Resource, *, namespace: str | None = None,
                 label_selector: str = "", field_selector: str = "",
                 on_add: Handler | None = None, on_update: Handler | None = None,
                 on_delete: Handler | None = None, watch_timeout: int = 300,
                 silence_margin: float = WATCH_SILENCE_MARGIN, backoff: Backoff | None = None) -> None:
        self.client = client
        self.res = res
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.on_add, self.on_update, self.on_delete = on_add, on_update, on_delete
        self._cache: dict[tuple[str, str], dict[str, Any]] = {}
        self.synced = asyncio.Event()
        self.backoff = backoff or Backoff()
        self.resource_version = ""
        self._watch_timeout = watch_timeout
        self._silence_margin = silence_margin

    @property
    def cache(self) -> Mapping[tuple[str, str], dict[str, Any]]:
        """(namespace, name) -> object, read-only (only the watch changes it)."""
        return MappingProxyType(self._cache)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._cache.get((namespace or "", name))

    def items(self) -> list[dict[str, Any]]:
        return list(self._cache.values())

    async def _call(self, handler: Handler | None, *args: Any) -> None:
        if handler is None:
            return
        try:
            result = handler(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:  # one bad handler call must not stop the informer
            log.exception("%s informer handler failed", self.res.plural)

    async def _relist(self) -> None:
        listed = await self.client.list(self.res, self.namespace, label_selector=self.label_selector,
                                        field_selector=self.field_selector)
        fresh = {key_of(o): o for o in listed["items"]}
        old = self._cache
        self._cache = fresh
        self.resource_version = listed["metadata"]["resourceVersion"]
        for k, obj in fresh.items():
            if k not in old:
                await self._call(self.on_add, obj)
            elif old[k]["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                await self._call(self.on_update, old[k], obj)
        for k, obj in old.items():
            if k not in fresh:
                await self._call(self.on_delete, obj)
        self.backoff.reset()
        self._listed()

    def _listed(self) -> None:
        """The cache holds a full list and the handlers have seen it."""
        self.synced.set()

    async def _apply(self, typ: str, obj: dict[str, Any]) -> None:
        k = key_of(obj)
        rv = obj.get("metadata", {}).get("resourceVersion")
        if rv:
            self.resource_version = rv
        if typ == "BOOKMARK":
            return
        if typ == "DELETED":
            old = self._cache.pop(k, None)
            await self._call(self.on_delete, old or obj)
            return
        old = self._cache.get(k)
        self._cache[k] = obj
        if old is None:
            await self._call(self.on_add, obj)
        else:
            await self._call(self.on_update, old, obj)

    async def run(self) -> None:
        need_list = True
        loop = asyncio.get_running_loop()
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                started, seen = loop.time(), 0
                # The client gives up a stream silent for longer than the timeout asked of the
                # server plus a margin (504): a dead connection is watched again, never waited on.
                async for typ, obj in self.client.watch(
                        self.res, self.namespace, resource_version=self.resource_version,
                        label_selector=self.label_selector, field_selector=self.field_selector,
                        timeout_seconds=self._watch_timeout, bookmarks=True,
                        read_timeout=self._watch_timeout + self._silence_margin):
                    seen += 1
                    if seen == 1:
                        self.backoff.reset()  # the watch works again
                    await self._apply(typ, obj)
                # A normal end (timeout, or the apiserver lost its etcd watch): watch again from
                # the last resourceVersion. One that ended at once, empty, backs off first.
                if not seen and loop.time() - started < 1:
                    await asyncio.sleep(self.backoff.next())
            except asyncio.CancelledError:
                raise
            except errors.ApiError as exc:
                if exc.code == 410:
                    need_list = True
                    continue
                delay = self.backoff.next()
                log.warning("%s watch failed: %s; retrying in %.1fs", self.res.plural, exc.message, delay)
                await asyncio.sleep(delay)
            except Exception as exc:  # a broken stream: resume from the last version
                delay = self.backoff.next()
                log.warning("%s watch broke: %s; retrying in %.1fs", self.res.plural, exc, delay)
                await asyncio.sleep(delay)
