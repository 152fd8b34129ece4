"""Watch streams: etcd events turned into Kubernetes watch events.

A watch from resourceVersion N starts at etcd revision N+1; "" or "0" first
sends the current state as ADDED events. Selectors are applied to both the old
and the new state, so an object that stops matching is seen as DELETED and one
that starts matching as ADDED, as Kubernetes' watch cache does.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from kubeling import errors, fastjson
from kubeling.resources import Resource

from .storage import Compacted, Store, WatchEvent, WatchLost

log = logging.getLogger("kubeling.apiserver")
Matcher = Callable[[dict[str, Any]], bool]


def classify(ev: WatchEvent, match: Matcher) -> tuple[str, dict[str, Any]] | None:
    """The Kubernetes event type for one etcd event, or None when neither the
    old nor the new state matches the selectors."""
    old_ok = ev.prev is not None and match(ev.prev)
    if ev.type == "DELETE":
        if not old_ok or ev.prev is None:
            return None
        # The store's object is shared: the deletion's revision goes on a copy.
        obj = {**ev.prev, "metadata": {**ev.prev["metadata"], "resourceVersion": str(ev.revision)}}
        return "DELETED", obj
    assert ev.obj is not None
    new_ok = match(ev.obj)
    if new_ok and old_ok:
        return "MODIFIED", ev.obj
    if new_ok:
        return "ADDED", ev.obj
    if old_ok:
        return "DELETED", ev.obj
    return None


# Kubernetes sends a BOOKMARK about once a minute to a watch that allows them: it carries
# the newest resourceVersion (so a client re-watches from there, not from an old one) and
# shows a quiet stream is alive.
BOOKMARK_INTERVAL = 60.0


class WatchStream:
    """(type, object) pairs for one API watch. `revision` is the etcd revision up to
    which every change has been sent or filtered out: what a BOOKMARK reports."""

    def __init__(self, store: Store, prefix: str, resource_version: str, match: Matcher,
                 res: Resource | None = None) -> None:
        self._revision = 0
        self._source: Any = None
        self._res = res
        self._gen = self._events(store, prefix, resource_version, match)

    @property
    def revision(self) -> int:
        # A watch cache knows how far its watcher is complete even when none of the
        # changes since were this watcher's (another namespace's): bookmarks say so.
        return max(self._revision, getattr(self._source, "progress", 0))

    def __aiter__(self) -> "WatchStream":
        return self

    async def __anext__(self) -> tuple[str, dict[str, Any]]:
        typ, obj = await self._gen.__anext__()
        res = self._res
        if res is not None and ("kind" not in obj or "apiVersion" not in obj):
            # Typed on a copy: the object is the store's.
            obj = {"kind": res.kind, "apiVersion": res.api_version, **obj}
        return typ, obj

    async def aclose(self) -> None:
        await self._gen.aclose()

    async def _events(self, store: Store, prefix: str, resource_version: str,
                      match: Matcher) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        if resource_version in ("", "0"):
            items, rev = await store.list(prefix)
            for obj in items:
                if match(obj):
                    yield "ADDED", obj
            start = rev + 1
        else:
            try:
                start = int(resource_version) + 1
            except ValueError:
                raise errors.bad_request(f"invalid resourceVersion: {resource_version!r}")
            current = await store.revision()
            if start - 1 > current:
                # etcd has not reached this version: it was reset or restored from a backup.
                # An etcd watch would wait for it in silence; the client must list again.
                raise errors.expired(f"too large resource version: {resource_version} (current {current})")
        self._revision = start - 1
        # The match goes with the watch: a watch cache filters before it queues (a thousand
        # watchers of one pod do not each queue every change of the namespace).
        self._source = store.watch(prefix, start, match=match)
        try:
            async for ev in self._source:
                out = classify(ev, match)
                self._revision = ev.revision
                if out is not None:
                    yield out
        except Compacted as exc:
            raise errors.expired(
                f"too old resource version: {resource_version} ({exc.revision})")
        except WatchLost as exc:
            # The etcd watch is gone (etcd killed or restarted). End this watch normally,
            # as Kubernetes terminates its watchers: the client watches again from the last
            # resourceVersion it got (etcd keeps its history across a restart) or, if that
            # is compacted away, gets 410 Expired and lists again.
            log.warning("ending watch on %s: %s", prefix, exc)
        finally:
            # Released now, not when collected: a cache's watcher or an etcd watch.
            await self._source.aclose()


def events(store: Store, res: Resource, prefix: str, resource_version: str,
           match: Matcher) -> WatchStream:
    """The events of a watch; raises ApiError(410) when too old."""
    return WatchStream(store, prefix, resource_version, match, res)


def _wants_bookmarks(request: web.Request) -> bool:
    return request.query.get("allowWatchBookmarks", "").lower() in ("true", "1")


async def serve(request: web.Request, stream: AsyncIterator[tuple[str, dict[str, Any]]],
                res: Resource, timeout: float,
                transform: Callable[[dict[str, Any]], dict[str, Any]]) -> web.StreamResponse:
    """Write events as JSON lines, flushed one by one, until timeout or hang-up; a
    BOOKMARK every BOOKMARK_INTERVAL seconds when the client allows them."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                   "Cache-Control": "no-cache, private"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    bookmarks = _wants_bookmarks(request) and isinstance(stream, WatchStream)

    async def send(typ: str, obj: dict[str, Any]) -> None:
        await resp.write(fastjson.dumps({"type": typ, "object": obj}) + b"\n")

    async def bookmark() -> None:
        assert isinstance(stream, WatchStream)
        out = transform({"kind": res.kind, "apiVersion": res.api_version,
                         "metadata": {"resourceVersion": str(stream.revision)}})
        if "rows" in out:  # a Table watch: a bookmark carries no row
            out["rows"] = []
        await send("BOOKMARK", out)

    writing = asyncio.Lock()   # an event and a bookmark never interleave on the wire
    last_sent = asyncio.get_running_loop().time()

    async def pump() -> None:
        nonlocal last_sent
        loop = asyncio.get_running_loop()
        try:
            # A plain loop: a task and a timed wait per event (as a first version had, to
            # fit bookmarks in) cost a thousand watchers of one change 200 ms more at p99.
            async for typ, obj in stream:
                async with writing:
                    await send(typ, transform(obj))
                last_sent = loop.time()
        except errors.ApiError as exc:
            await send("ERROR", exc.status())
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # headers are sent: a Status in the stream is all that is left
            log.exception("watch on %s failed", request.path)
            await send("ERROR", errors.internal(f"{type(exc).__name__}: {exc}").status())

    async def bookmarks_when_quiet() -> None:
        """A BOOKMARK after every BOOKMARK_INTERVAL without an event."""
        nonlocal last_sent
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(0.0, last_sent + BOOKMARK_INTERVAL - loop.time()))
            if loop.time() - last_sent < BOOKMARK_INTERVAL:
                continue   # an event went out meanwhile
            if stream.revision:  # type: ignore[attr-defined]
                async with writing:
                    await bookmark()
            last_sent = loop.time()

    async def run() -> None:
        ticker = asyncio.create_task(bookmarks_when_quiet()) if bookmarks else None
        try:
            await pump()
        finally:
            if ticker is not None:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)

    try:
        await asyncio.wait_for(run(), timeout)
    except (asyncio.TimeoutError, ConnectionResetError):
        pass  # the watch's time is up, or the client hung up: end the stream normally
    # A cancellation (the server shutting down, the client gone) closes the stream below and
    # then propagates: swallowing it would leave the handler's task running after it was cancelled.
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    try:
        await resp.write_eof()
    except (ConnectionResetError, RuntimeError):
        pass
    return resp
