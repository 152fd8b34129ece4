"""The watch cache (kube-apiserver's cacher): one etcd watch per resource, its objects
and a window of recent events in memory, every API watch and LIST served from it.

Without it each API watch opened its own etcd watch and each LIST read every object
from etcd and decoded it again; a thousand informers of pods cost a thousand etcd
watches and a thousand decodes of every change. With it a change is decoded once and
handed to every watcher whose prefix (namespace) it falls under.

- A watch from revision R is served from the window when the window still reaches R;
  older is `Compacted` (the API's 410 Expired: the client lists again), as Kubernetes
  answers a watch older than its cache.
- A LIST is consistent: it waits until the cache holds every write this apiserver has
  made under the resource (read-your-writes; kubeling runs one apiserver), bounded,
  and reads etcd when the cache cannot catch up (etcd away).
- A watcher that falls too far behind is ended (`WatchLost`: the API watch ends, the
  client watches again from its last revision), so one slow client cannot hold the
  others' events or grow the apiserver's memory without bound.
- The etcd watch breaking (etcd killed, restarted, frozen) is resumed from the cache's
  revision: API watches continue across it. When etcd no longer holds that revision
  the cache lists again and ends its watchers, who then get 410 and relist.
"""
from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from .store import Compacted, Store, StoreWrapper, WatchEvent, WatchLost

log = logging.getLogger("kubeling.apiserver")
Matcher = Callable[[dict[str, Any]], bool]

WINDOW = 10_000          # events kept per resource for watches that resume, at most
WINDOW_AGE = 75.0        # seconds an event stays in the window (kube-apiserver's eventFreshDuration)
WATCHER_BACKLOG = 10_000  # events queued for one watcher before it is ended as too slow
CATCH_UP = 3.0           # how long a read waits for the cache to reach a revision
PROGRESS_INTERVAL = 5.0  # how often idle watchers learn the cache's revision (bookmarks)
RETRY = (0.2, 2.0)       # first and longest pause before the etcd watch is opened again


class CacheWatch:
    """One watcher's events: an async iterator of WatchEvent under `prefix`.
    `progress` is the revision up to which everything under the prefix was delivered
    (what a bookmark may report), also when no event of its own arrived."""

    def __init__(self, cacher: "Cacher", prefix: str, match: Matcher | None = None) -> None:
        self._cacher = cacher
        self.prefix = prefix
        self._match = match
        self._queue: deque[WatchEvent] = deque()
        self._wake = asyncio.Event()
        self._lost: Exception | None = None
        self._progress = 0

    @property
    def progress(self) -> int:
        return self._progress

    def wants(self, ev: WatchEvent) -> bool:
        """Under the prefix, and matching the selectors before or after the change (the
        API watch tells ADDED, MODIFIED or DELETED from the two)."""
        if not ev.key.startswith(self.prefix):
            return False
        m = self._match
        return m is None or (ev.obj is not None and m(ev.obj)) or (ev.prev is not None and m(ev.prev))

    def push(self, ev: WatchEvent) -> None:
        self._queue.append(ev)
        self._wake.set()

    def advance(self, revision: int) -> None:
        """Nothing under the prefix happened up to `revision` beyond what is queued."""
        if not self._queue:
            self._progress = max(self._progress, revision)

    def end(self, exc: Exception) -> None:
        self._lost = exc
        self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._queue)

    def __aiter__(self) -> "CacheWatch":
        return self

    async def __anext__(self) -> WatchEvent:
        while not self._queue:
            if self._lost is not None:
                raise self._lost
            self._wake.clear()
            await self._wake.wait()
        ev = self._queue.popleft()
        self._progress = ev.revision
        return ev

    async def aclose(self) -> None:
        self._cacher.forget(self)


class Cacher:
    """One resource's objects by key, the recent events, and the watchers."""

    def __init__(self, inner: Store, prefix: str, window: int = WINDOW,
                 backlog: int = WATCHER_BACKLOG, type_meta: dict[str, str] | None = None,
                 window_age: float = WINDOW_AGE, clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.prefix = prefix
        # kind and apiVersion, put on each object once as it enters the cache rather than
        # on a copy of every object in every LIST and watch event.
        self._type_meta = type_meta or {}
        self.objects: dict[str, dict[str, Any]] = {}
        self.revision = 0       # every change up to here is applied
        self.oldest = 0         # the window holds every change after this revision
        self.ready = asyncio.Event()
        # The first list failed (etcd away, or an object no key here can decrypt): until
        # one succeeds, reads go to etcd at once rather than waiting for the cache.
        self.unlisted = False
        # False from a broken etcd watch until the resumed one delivers: meanwhile a LIST
        # cannot know the cache is current, so etcd answers it.
        self.live = False
        # The window is bounded by count and by age, as kube-apiserver's: by count alone a
        # busy resource's window holds a whole old version of thousands of objects long
        # after any watcher could still want them, and the apiserver's memory grows until
        # it is full; by age its memory follows the rate of change.
        self._window: deque[WatchEvent] = deque()
        self._stamps: deque[float] = deque()   # when each event of the window arrived
        self._window_size = window
        self._window_age = window_age
        self._clock = clock
        self._backlog = backlog
        self._watchers: set[CacheWatch] = set()
        self._advanced = asyncio.Event()
        self._sorted_keys: list[str] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name=f"cacher {self.prefix}"),
                       asyncio.create_task(self._tell_progress(), name=f"cacher progress {self.prefix}")]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for w in list(self._watchers):
            w.end(WatchLost("the apiserver is stopping"))
        self._watchers.clear()

    # ---- following etcd ------------------------------------------------------

    async def _run(self) -> None:
        pause = RETRY[0]
        listed = False
        while True:
            try:
                if not listed:
                    self._reset(*await self.inner.items(self.prefix))
                    listed = True
                async for ev in self.inner.watch(self.prefix, self.revision + 1):
                    self._apply(ev)
                    self.live = True
                    pause = RETRY[0]
            except asyncio.CancelledError:
                raise
            except Compacted:
                # etcd no longer has the changes after our revision: start again from a list.
                log.warning("watch cache %s: revision %d compacted; listing again", self.prefix, self.revision)
                listed = False
            except WatchLost as exc:
                log.warning("watch cache %s: %s; resuming from revision %d", self.prefix, exc, self.revision)
            except Exception as exc:  # etcd unavailable (503) while listing or opening the watch
                log.warning("watch cache %s: %s; retrying", self.prefix, exc)
            self.live = False
            if not listed:
                self.unlisted = True
            self._signal()   # readers waiting for the cache go to etcd now
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY[1])

    def _reset(self, items: list[tuple[str, dict[str, Any]]], revision: int) -> None:
        """A fresh list replaces everything. Watchers of the old state are ended: the
        changes between the two are unknown, so they must list again (410 on re-watch)."""
        for w in list(self._watchers):
            w.end(WatchLost(f"the watch cache of {self.prefix} was relisted"))
        self._watchers.clear()
        self.objects = {key: self._typed(obj) for key, obj in items}
        self._sorted_keys = None
        self._window.clear()
        self._stamps.clear()
        self.revision = self.oldest = revision
        self.unlisted = False
        self.live = True
        self.ready.set()
        self._signal()

    def _typed(self, obj: dict[str, Any]) -> dict[str, Any]:
        if not self._type_meta or ("kind" in obj and "apiVersion" in obj):
            return obj
        return {**self._type_meta, **obj}

    def _apply(self, ev: WatchEvent) -> None:
        # The cache's own previous state is the one watchers saw: it is the event's prev.
        prev = self.objects.get(ev.key, ev.prev)
        obj = None
        if ev.type == "DELETE":
            if self.objects.pop(ev.key, None) is not None:
                self._sorted_keys = None
        else:
            assert ev.obj is not None
            if ev.key not in self.objects:
                self._sorted_keys = None
            obj = self.objects[ev.key] = self._typed(ev.obj)
        ev = WatchEvent(ev.type, ev.key, obj, prev, ev.revision)
        now = self._clock()
        self._window.append(ev)
        self._stamps.append(now)
        self._prune(now)
        self.revision = ev.revision
        for w in list(self._watchers):
            if w.wants(ev):
                if w.backlog >= self._backlog:
                    self._drop(w, WatchLost(f"watcher of {w.prefix} fell {w.backlog} events behind"))
                    continue
                w.push(ev)
        self._signal()

    def _prune(self, now: float) -> None:
        """Drop the window's events beyond its size or older than its age; `oldest` moves
        with them, so a watch from before it gets 410 and lists again."""
        too_old = now - self._window_age
        while self._window and (len(self._window) > self._window_size or self._stamps[0] < too_old):
            self.oldest = self._window.popleft().revision
            self._stamps.popleft()

    def _signal(self) -> None:
        self._advanced.set()
        self._advanced = asyncio.Event()

    def _drop(self, w: CacheWatch, exc: Exception) -> None:
        self._watchers.discard(w)
        w.end(exc)

    async def _tell_progress(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            self._prune(self._clock())   # a resource that stopped changing lets its history go too
            for w in self._watchers:
                w.advance(self.revision)

    # ---- serving ---------------------------------------------------------------

    async def wait_for(self, revision: int, timeout: float = CATCH_UP) -> bool:
        """Whether the cache reached `revision` within `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (self.ready.is_set() and self.revision >= revision):
            if self.unlisted:
                return False
            left = deadline - loop.time()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._advanced.wait(), left)
            except asyncio.TimeoutError:
                return False
        return True

    def list(self, prefix: str) -> list[dict[str, Any]]:
        """The objects under `prefix`, in key order (as etcd lists them)."""
        if self._sorted_keys is None:
            self._sorted_keys = sorted(self.objects)
        keys = self._sorted_keys
        if prefix == self.prefix:
            return [self.objects[k] for k in keys]
        lo = bisect.bisect_left(keys, prefix)
        out = []
        for k in keys[lo:]:
            if not k.startswith(prefix):
                break
            out.append(self.objects[k])
        return out

    def watch(self, prefix: str, start: int, match: Matcher | None = None) -> CacheWatch:
        """Events under `prefix` from revision `start` on: the window's first, then live.
        Compacted when the window no longer reaches back to `start`."""
        if start - 1 < self.oldest:
            raise Compacted(self.oldest + 1)
        w = CacheWatch(self, prefix, match)
        # No await from here to the registration: no event can slip between the two.
        for ev in self._replay(start):
            if w.wants(ev):
                w.push(ev)
        w.advance(max(start - 1, 0))
        w.advance(self.revision)
        self._watchers.add(w)
        return w

    def _replay(self, start: int) -> list[WatchEvent]:
        """The window's events from revision `start` on (the window is in revision order)."""
        if not self._window or self._window[-1].revision < start:
            return []
        return list(self._window)[self._bisect(start):]

    def _bisect(self, start: int) -> int:
        lo, hi = 0, len(self._window)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._window[mid].revision < start:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def forget(self, w: CacheWatch) -> None:
        self._watchers.discard(w)

    @property
    def watchers(self) -> int:
        return len(self._watchers)


class CachedStore(StoreWrapper):
    """A Store whose LIST and watch of each resource come from its Cacher; gets, writes
    and everything else go to the inner store. Caches start when the store connects
    (or on a resource's first LIST or watch) and follow it for the apiserver's life."""

    def __init__(self, inner: Store, roots: Iterable[str] | dict[str, dict[str, str]],
                 window: int = WINDOW) -> None:
        """roots: the key prefix of each resource to cache, or a mapping of each to the
        kind and apiVersion its objects are served with."""
        super().__init__(inner)
        self._type_meta: dict[str, dict[str, str]] = roots if isinstance(roots, dict) else {}
        self._roots = sorted(set(roots), key=len, reverse=True)
        self._window = window
        self._cachers: dict[str, Cacher] = {}
        self._written: dict[str, int] = {}   # root -> the newest revision this apiserver wrote there

    def _root(self, key: str) -> str | None:
        for r in self._roots:
            if key.startswith(r):
                return r
        return None

    def cacher(self, prefix: str) -> Cacher | None:
        root = self._root(prefix)
        if root is None:
            return None
        c = self._cachers.get(root)
        if c is None:
            c = self._cachers[root] = Cacher(self.inner, root, self._window,
                                             type_meta=self._type_meta.get(root))
            c.start()
        return c

    def _wrote(self, key: str, revision: int) -> None:
        root = self._root(key)
        if root is not None and revision > self._written.get(root, 0):
            self._written[root] = revision

    # ---- the Store ----------------------------------------------------------------

    async def connect(self) -> None:
        await self.inner.connect()
        # Every resource is followed from the start, as kube-apiserver's caches are: a
        # cache started later could not serve a watch from a version read before it (410).
        for root in self._roots:
            self.cacher(root)

    async def close(self) -> None:
        for c in self._cachers.values():
            await c.stop()
        await self.inner.close()

    async def list(self, prefix: str) -> tuple[list[dict[str, Any]], int]:
        c = self.cacher(prefix)
        # A cache whose etcd watch broke cannot tell it is current: etcd answers until it
        # delivers again. One not listed yet is waited for (briefly: see wait_for).
        if c is not None and (c.live or not c.ready.is_set()) and await c.wait_for(self._written.get(c.prefix, 0)):
            return c.list(prefix), c.revision
        # No cache for this prefix, or it cannot catch up (etcd away): etcd itself answers.
        return await self.inner.list(prefix)

    async def create(self, key: str, obj: dict[str, Any], claims: tuple[str, ...] = ()) -> dict[str, Any]:
        out = await self.inner.create(key, obj, claims)
        self._wrote(key, int(out["metadata"]["resourceVersion"]))
        return out

    async def update(self, key: str, obj: dict[str, Any], revision: int,
                     claims: tuple[str, ...] = (), releases: tuple[str, ...] = ()) -> dict[str, Any]:
        out = await self.inner.update(key, obj, revision, claims, releases)
        self._wrote(key, int(out["metadata"]["resourceVersion"]))
        return out

    async def delete(self, key: str, revision: int, releases: tuple[str, ...] = ()) -> int:
        rev = await self.inner.delete(key, revision, releases)
        self._wrote(key, rev)
        return rev

    def watch(self, prefix: str, start_revision: int, stop: asyncio.Event | None = None,
              match: Matcher | None = None) -> AsyncIterator[WatchEvent]:
        c = self.cacher(prefix)
        if c is None:
            return self.inner.watch(prefix, start_revision, stop, match)
        return _ServedWatch(self.inner, c, prefix, start_revision, stop, match)


class _ServedWatch:
    """A watch from the cache once it has reached the revision before `start`; if it
    cannot within CATCH_UP (etcd slow or away), etcd serves this one watch itself."""

    def __init__(self, inner: Store, cacher: Cacher, prefix: str, start: int,
                 stop: asyncio.Event | None, match: Matcher | None) -> None:
        self._inner, self._cacher = inner, cacher
        self._prefix, self._start, self._stop, self._match = prefix, start, stop, match
        self._events: Any = None
        self._cached: CacheWatch | None = None

    @property
    def progress(self) -> int:
        return self._cached.progress if self._cached is not None else 0

    def __aiter__(self) -> "_ServedWatch":
        return self

    async def __anext__(self) -> WatchEvent:
        if self._events is None:
            if await self._cacher.wait_for(self._start - 1):
                self._events = self._cached = self._cacher.watch(self._prefix, self._start, self._match)
            else:
                self._events = self._inner.watch(self._prefix, self._start, self._stop, self._match).__aiter__()
        ev: WatchEvent = await self._events.__anext__()
        return ev

    async def aclose(self) -> None:
        if self._events is not None:
            await self._events.aclose()
