"""Watch streams when etcd misbehaves: a lost etcd watch ends the API watch, quiet
streams get BOOKMARKs, a silent stream is given up by the client and the informer
watches again. Real aiohttp servers on 127.0.0.1; the etcd side is a stand-in."""
from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from controlplane.apiserver import watch
from controlplane.apiserver.storage import WatchEvent, WatchLost
from kubeling import errors
from kubeling.client import Client
from kubeling.informer import Informer
from kubeling.resources import lookup

PODS = lookup("pods")


class FakeStore:
    """What watch.py uses of Store; watch events (or exceptions to raise) are fed in."""

    def __init__(self, revision: int = 7) -> None:
        self.current = revision
        self.feed: asyncio.Queue[WatchEvent | Exception] = asyncio.Queue()
        self.watch_closed = asyncio.Event()

    async def list(self, prefix: str) -> tuple[list[dict[str, Any]], int]:
        return [], self.current

    async def revision(self) -> int:
        return self.current

    async def watch(self, prefix: str, start: int, stop=None, match=None):
        try:
            while True:
                item = await self.feed.get()
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            self.watch_closed.set()


def put(name: str, rev: int, labels: dict[str, str] | None = None) -> WatchEvent:
    obj = {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rev), "labels": labels or {}}}
    return WatchEvent("PUT", f"/registry/pods/ns/{name}", obj, None, rev)


async def drain(stream: watch.WatchStream) -> list[tuple[str, str]]:
    return [(t, o["metadata"]["name"]) async for t, o in stream]


async def test_a_lost_etcd_watch_ends_the_api_watch_normally():
    store = FakeStore()
    stream = watch.events(store, PODS, "/registry/pods/ns/", "7", lambda o: True)  # type: ignore[arg-type]
    store.feed.put_nowait(put("a", 8))
    store.feed.put_nowait(WatchLost("etcd went away"))
    assert await asyncio.wait_for(drain(stream), 5) == [("ADDED", "a")]
    assert stream.revision == 8 and store.watch_closed.is_set()


async def test_a_version_etcd_has_not_reached_is_expired():
    # etcd restored from an older backup or reset: a silent wait would never end; list again.
    stream = watch.events(FakeStore(revision=5), PODS, "/registry/pods/ns/", "9", lambda o: True)  # type: ignore[arg-type]
    with pytest.raises(errors.ApiError) as e:
        await drain(stream)
    assert e.value.code == 410 and "too large resource version" in e.value.message


class WatchServer:
    """watch.serve() over a FakeStore, as the apiserver runs it."""

    def __init__(self, store: FakeStore, match=lambda o: True, timeout: float = 30) -> None:
        self.store, self.match, self.timeout = store, match, timeout
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        stream = watch.events(self.store, PODS, "/registry/pods/ns/",  # type: ignore[arg-type]
                              request.query.get("resourceVersion", ""), self.match)
        return await watch.serve(request, stream, PODS, self.timeout, lambda o: o)

    async def __aenter__(self) -> "WatchServer":
        app = web.Application()
        app.router.add_get("/api/v1/namespaces/ns/pods", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.runner.cleanup()


class Reader:
    """One watch request, its JSON lines collected as they come."""

    def __init__(self, url: str, params: dict[str, str]) -> None:
        self.lines: list[dict] = []
        self.task = asyncio.create_task(self._run(url, params))

    async def _run(self, url: str, params: dict[str, str]) -> None:
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/api/v1/namespaces/ns/pods", params={"watch": "true", **params}) as resp:
                async for line in resp.content:
                    self.lines.append(json.loads(line))

    async def wait(self, n: int, timeout: float = 5) -> list[dict]:
        for _ in range(int(timeout / 0.02)):
            if len(self.lines) >= n:
                return self.lines
            await asyncio.sleep(0.02)
        raise AssertionError(f"only {self.lines} within {timeout}s")

    async def ended(self, timeout: float = 5) -> list[dict]:
        await asyncio.wait_for(self.task, timeout)
        return self.lines


async def test_bookmarks_carry_the_newest_revision_even_of_filtered_events(monkeypatch):
    monkeypatch.setattr(watch, "BOOKMARK_INTERVAL", 0.2)
    store = FakeStore()
    only_web = lambda o: o["metadata"]["labels"].get("app") == "web"  # noqa: E731
    async with WatchServer(store, only_web) as srv:
        r = Reader(srv.url, {"resourceVersion": "7", "allowWatchBookmarks": "true"})
        assert await r.wait(1) == [{"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1",
                                                                  "metadata": {"resourceVersion": "7"}}}]
        n = len(r.lines)
        store.feed.put_nowait(put("other", 9))           # filtered out, yet the stream is past it
        store.feed.put_nowait(put("web", 10, {"app": "web"}))
        store.feed.put_nowait(put("other2", 11))
        lines = (await r.wait(n + 2))[n:n + 2]
        assert [(ln["type"], ln["object"]["metadata"]["resourceVersion"]) for ln in lines] == \
            [("ADDED", "10"), ("BOOKMARK", "11")]
        store.feed.put_nowait(WatchLost("etcd went away"))
        await r.ended()
        assert store.watch_closed.is_set()


async def test_without_allow_watch_bookmarks_a_quiet_stream_stays_quiet_until_etcd_is_lost(monkeypatch):
    monkeypatch.setattr(watch, "BOOKMARK_INTERVAL", 0.1)
    store = FakeStore()
    async with WatchServer(store) as srv:
        r = Reader(srv.url, {"resourceVersion": "7"})
        await asyncio.sleep(0.5)
        assert r.lines == [] and not r.task.done()
        store.feed.put_nowait(WatchLost("etcd went away"))
        assert await r.ended() == []


async def test_an_unexpected_failure_after_the_headers_ends_the_stream_with_a_status():
    store = FakeStore()
    async with WatchServer(store) as srv:
        r = Reader(srv.url, {"resourceVersion": "7"})
        store.feed.put_nowait(RuntimeError("boom"))
        [line] = await r.ended()
    assert line["type"] == "ERROR" and line["object"]["code"] == 500 and "boom" in line["object"]["message"]


class SilentThenTalking:
    """A fake API: the list answers at once; the first watch sends its headers and then
    nothing, ever (a dead stream); later watches send one pod."""

    def __init__(self) -> None:
        self.watches: list[str] = []
        self.closing = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "true":
            return web.json_response({"kind": "PodList", "metadata": {"resourceVersion": "5"}, "items": []})
        self.watches.append(request.query.get("resourceVersion", ""))
        resp = web.StreamResponse()
        await resp.prepare(request)
        if len(self.watches) > 1:
            pod = {"metadata": {"name": "late", "namespace": "ns", "resourceVersion": "6"}}
            await resp.write(json.dumps({"type": "ADDED", "object": pod}).encode() + b"\n")
        await self.closing.wait()
        return resp


async def test_a_silent_stream_is_given_up_and_watched_again():
    api = SilentThenTalking()
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/ns/pods", api.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    client = Client(url, "t")
    try:
        # The client alone: silence past read_timeout is a 504, not a hang.
        with pytest.raises(errors.ApiError) as e:
            async def first() -> None:
                async for _ in client.watch(PODS, "ns", resource_version="5", read_timeout=0.5):
                    pass
            await asyncio.wait_for(first(), 5)
        assert e.value.code == 504 and "silent" in e.value.message
        # The informer: asked the server for 1 s; silent for 1 s + 0.5 s margin -> watch again,
        # from the version it had.
        api.watches.clear()
        added: list[str] = []
        inf = Informer(client, PODS, namespace="ns", watch_timeout=1, silence_margin=0.5,
                       on_add=lambda o: added.append(o["metadata"]["name"]))
        task = asyncio.create_task(inf.run())
        for _ in range(100):
            if added:
                break
            await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert added == ["late"] and api.watches == ["5", "5"]
    finally:
        api.closing.set()
        await client.close()
        await runner.cleanup()
