"""A Store wrapper that catches callers changing objects the store handed out
(client-go's cache mutation detector, KUBE_CACHE_MUTATION_DETECTOR, for the apiserver).

Objects from get, list, watch, create and update belong to the store: once a watch
cache shares them between readers, a change made for one request would leak into
others. The wrapper keeps a deep copy of each object it hands out and compares them
a little later (when the request that got it is done); a difference is logged and
raised. Off unless KUBELING_STORE_MUTATION_DETECTOR=true: it costs a copy of everything.
"""
from __future__ import annotations

import asyncio
import collections
import copy
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from .store import Store, StoreWrapper, WatchEvent

log = logging.getLogger("kubeling.apiserver")
ENV = "KUBELING_STORE_MUTATION_DETECTOR"


class StoreObjectMutated(AssertionError):
    pass


def enabled() -> bool:
    return os.environ.get(ENV, "").lower() in ("1", "true")


class MutationDetectingStore(StoreWrapper):
    """A Store that hands out the inner store's objects and checks them unchanged."""

    def __init__(self, inner: Store, settle: float = 2.0) -> None:
        super().__init__(inner)
        self.settle = settle  # how long after handing out an object it is compared
        self.mutations: list[str] = []
        self._handed: collections.deque[tuple[float, str, dict[str, Any], dict[str, Any]]] = \
            collections.deque()

    def _hand(self, where: str, obj: dict[str, Any] | None) -> None:
        if obj is not None:
            self._handed.append((time.monotonic(), where, obj, copy.deepcopy(obj)))

    def check(self, everything: bool = False) -> None:
        """Compare the objects handed out at least `settle` seconds ago (all of them
        with everything=True) and forget them; raise on the first changed one."""
        horizon = time.monotonic() - self.settle
        found = []
        while self._handed and (everything or self._handed[0][0] <= horizon):
            _, where, obj, snapshot = self._handed.popleft()
            if obj != snapshot:
                found.append(f"{where}: {snapshot} became {obj}")
        if found:
            self.mutations.extend(found)
            for f in found:
                log.error("store object mutated after it left the store: %s", f)
            raise StoreObjectMutated(found[0])

    async def get(self, key: str) -> dict[str, Any] | None:
        self.check()
        obj = await self.inner.get(key)
        self._hand(f"get {key}", obj)
        return obj

    async def list(self, prefix: str) -> tuple[list[dict[str, Any]], int]:
        self.check()
        items, rev = await self.inner.list(prefix)
        for obj in items:
            self._hand(f"list {prefix}", obj)
        return items, rev

    async def create(self, key: str, obj: dict[str, Any], claims: tuple[str, ...] = ()) -> dict[str, Any]:
        self.check()
        out = await self.inner.create(key, obj, claims)
        self._hand(f"create {key}", out)
        return out

    async def update(self, key: str, obj: dict[str, Any], revision: int,
                     claims: tuple[str, ...] = (), releases: tuple[str, ...] = ()) -> dict[str, Any]:
        self.check()
        out = await self.inner.update(key, obj, revision, claims, releases)
        self._hand(f"update {key}", out)
        return out

    async def delete(self, key: str, revision: int, releases: tuple[str, ...] = ()) -> int:
        self.check()
        return await self.inner.delete(key, revision, releases)

    def watch(self, prefix: str, start_revision: int, stop: asyncio.Event | None = None,
              match: Callable[[dict[str, Any]], bool] | None = None) -> AsyncIterator[WatchEvent]:
        return _CheckedWatch(self, self.inner.watch(prefix, start_revision, stop, match))

    async def items(self, prefix: str) -> tuple[list[tuple[str, dict[str, Any]]], int]:
        self.check()
        items, rev = await self.inner.items(prefix)
        for key, obj in items:
            self._hand(f"items {key}", obj)
        return items, rev


class _CheckedWatch:
    """The inner watch's events, each handed out under the detector's eye; its
    `progress` (a watch cache's) shows through."""

    def __init__(self, detector: MutationDetectingStore, events: AsyncIterator[WatchEvent]) -> None:
        self._detector = detector
        self._events = events

    @property
    def progress(self) -> int:
        return getattr(self._events, "progress", 0)

    def __aiter__(self) -> "_CheckedWatch":
        return self

    async def __anext__(self) -> WatchEvent:
        ev = await self._events.__anext__()
        self._detector.check()
        self._detector._hand(f"watch {ev.key}@{ev.revision}", ev.obj)
        self._detector._hand(f"watch {ev.key}@{ev.revision} (previous)", ev.prev)
        return ev

    async def aclose(self) -> None:
        # Closed now, not when collected: the etcd watch is released at once.
        await self._events.aclose()  # type: ignore[attr-defined]
