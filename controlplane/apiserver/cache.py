"""A list-and-watch view of one resource inside the apiserver (the Namespace cache of
NamespaceLifecycle admission, RBAC's policy): listed once through the registry, then
followed by a watch through it, so a lookup costs no etcd round trip.

The objects are the store's: readers never change them. A lost watch resumes from the
last resourceVersion; a watch that is too old (410) or fails lists again, keeping the
old view until the new list replaces it whole.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Protocol

from kubeling import errors
from kubeling.resources import Resource

log = logging.getLogger("kubeling.apiserver")
RETRY_DELAY = 0.5


class WatchStream(Protocol):
    def __aiter__(self) -> AsyncIterator[tuple[str, dict[str, Any]]]: ...

    async def aclose(self) -> None: ...


class Source(Protocol):
    """What the cache needs of the registry."""

    async def list(self, res: Resource, ns: str | None, label_selector: str = "",
                   field_selector: str = "") -> dict[str, Any]: ...

    def watch(self, res: Resource, ns: str | None, resource_version: str,
              match: Callable[[dict[str, Any]], bool]) -> WatchStream: ...


def _everything(_: dict[str, Any]) -> bool:
    return True


class ResourceCache:
    """Every object of one resource, by namespace ("" for cluster-scoped) and name."""

    def __init__(self, source: Source, resource: Resource) -> None:
        self.source = source
        self.resource = resource
        self.by_ns: dict[str, dict[str, dict[str, Any]]] = {}
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _where(self, obj: dict[str, Any]) -> tuple[str, str]:
        meta = obj.get("metadata") or {}
        ns = (meta.get("namespace") or "") if self.resource.namespaced else ""
        return ns, meta.get("name") or ""

    async def _list(self) -> str:
        listed = await self.source.list(self.resource, None)
        by_ns: dict[str, dict[str, dict[str, Any]]] = {}
        for item in listed["items"]:
            ns, name = self._where(item)
            by_ns.setdefault(ns, {})[name] = item
        self.by_ns = by_ns  # swapped whole: a reader never sees a half-filled view
        self.ready.set()
        return str(listed["metadata"]["resourceVersion"])

    async def start(self) -> None:
        rv = await self._list()
        self._task = asyncio.create_task(self._follow(rv))

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def _follow(self, rv: str) -> None:
        while True:
            try:
                stream = self.source.watch(self.resource, None, rv, _everything)
                try:
                    async for typ, obj in stream:
                        ns, name = self._where(obj)
                        if typ == "DELETED":
                            self.by_ns.get(ns, {}).pop(name, None)
                        else:
                            self.by_ns.setdefault(ns, {})[name] = obj
                        rv = obj["metadata"]["resourceVersion"]
                finally:
                    await stream.aclose()
                # The etcd watch was lost (etcd stopped or restarted): resume where it ended.
                await asyncio.sleep(RETRY_DELAY)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # compaction (410) or etcd away: relist, keep serving the old view
                if not (isinstance(exc, errors.ApiError) and exc.code == 410):
                    log.warning("%s cache: %s; relisting", self.resource.plural, exc)
                await asyncio.sleep(RETRY_DELAY)
                try:
                    rv = await self._list()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    continue

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.by_ns.get(namespace, {}).get(name)

    def in_namespace(self, namespace: str) -> Iterable[dict[str, Any]]:
        return list(self.by_ns.get(namespace, {}).values())
