"""The watch cache's own logic on the in-memory store: fan-out by prefix, replay from
the window, 410 past it, read-your-writes lists, slow watchers ended, resuming a broken
etcd watch and relisting after compaction. (Against real etcd and HTTP:
tests/integration/test_watch_cache.py.)"""
from __future__ import annotations

import asyncio

import pytest

from controlplane.apiserver import watch_cache
from controlplane.apiserver.store import Compacted, WatchLost
from controlplane.apiserver.watch_cache import CachedStore

from .memory_store import MemoryStore

ROOT = "/registry/configmaps/"


def cm(name: str, **data: str) -> dict:
    return {"metadata": {"name": name}, "data": data}


async def next_event(w, timeout: float = 2.0):
    return await asyncio.wait_for(w.__anext__(), timeout)


@pytest.fixture
async def stores():
    inner = MemoryStore()
    cached = CachedStore(inner, {ROOT, "/registry/pods/"}, window=4)
    yield inner, cached
    await cached.close()


async def test_one_change_reaches_every_watcher_of_its_prefix_and_only_them(stores):
    inner, cached = stores
    _, rev = await cached.list(ROOT)
    a1, a2 = cached.watch(ROOT + "a/", rev + 1), cached.watch(ROOT + "a/", rev + 1)
    everything, other = cached.watch(ROOT, rev + 1), cached.watch(ROOT + "b/", rev + 1)
    await cached.create(ROOT + "a/x", cm("x"))
    got = [await next_event(w) for w in (a1, a2, everything)]
    assert [(e.type, e.key) for e in got] == [("PUT", ROOT + "a/x")] * 3
    assert got[0].obj is got[1].obj is got[2].obj   # decoded once, shared
    with pytest.raises(asyncio.TimeoutError):
        await next_event(other, 0.2)
    assert cached.cacher(ROOT).watchers == 4
    for w in (a1, a2, everything, other):
        await w.aclose()
    assert cached.cacher(ROOT).watchers == 0


async def test_a_watch_replays_the_window_and_is_compacted_past_it(stores):
    inner, cached = stores
    _, start = await cached.list(ROOT)
    revs = [int((await cached.create(ROOT + f"n/{i}", cm(str(i))))["metadata"]["resourceVersion"]) for i in range(6)]
    assert await cached.cacher(ROOT).wait_for(revs[-1])
    # The window holds the last four changes: from the third on a watch replays them in order.
    w = cached.watch(ROOT, revs[2])
    assert [(await next_event(w)).key for _ in range(4)] == [ROOT + f"n/{i}" for i in range(2, 6)]
    await w.aclose()
    with pytest.raises(Compacted):
        await next_event(cached.watch(ROOT, revs[1]))
    with pytest.raises(Compacted):
        await next_event(cached.watch(ROOT, start))


async def test_the_window_lets_events_go_by_age_as_well_as_by_count(monkeypatch):
    monkeypatch.setattr(watch_cache, "PROGRESS_INTERVAL", 0.05)
    now = [1000.0]
    inner = MemoryStore()
    cacher = watch_cache.Cacher(inner, ROOT, window=100, window_age=75.0, clock=lambda: now[0])
    cacher.start()
    try:
        await asyncio.wait_for(cacher.ready.wait(), 2)
        old = [int((await inner.create(ROOT + f"old/{i}", cm(str(i))))["metadata"]["resourceVersion"]) for i in range(3)]
        assert await cacher.wait_for(old[-1])
        now[0] += 60.0
        new = int((await inner.create(ROOT + "new/0", cm("0")))["metadata"]["resourceVersion"])
        assert await cacher.wait_for(new)
        # 60 s on, all four are still there: a watch from the first replays them all.
        w = cacher.watch(ROOT, old[0])
        assert [(await next_event(w)).key for _ in range(4)][-1] == ROOT + "new/0"
        await w.aclose()
        # 80 s after the first three they go, although far under the count: the resource
        # is idle, and the next tick prunes. A watch from before them is told to relist.
        now[0] += 20.0
        await asyncio.wait_for(_until(lambda: cacher.oldest >= old[-1]), 2)
        with pytest.raises(Compacted):
            await next_event(cacher.watch(ROOT, old[1]))
        w = cacher.watch(ROOT, old[-1] + 1)
        assert (await next_event(w)).key == ROOT + "new/0"
        await w.aclose()
        # ... and once the last one is old too, the window is empty and holds nothing stale.
        now[0] += 80.0
        await asyncio.wait_for(_until(lambda: cacher.oldest == new), 2)
        assert len(cacher._window) == 0
    finally:
        await cacher.stop()


async def _until(cond) -> None:
    while not cond():
        await asyncio.sleep(0.01)


async def test_a_list_holds_every_write_made_before_it(stores):
    inner, cached = stores
    await cached.list(ROOT)
    for i in range(20):
        await cached.create(ROOT + f"ns/{i:02d}", cm(str(i)))
        items, rev = await cached.list(ROOT + "ns/")
        assert [o["metadata"]["name"] for o in items] == [str(j) for j in range(i + 1)] or \
            sorted(o["metadata"]["name"] for o in items) == sorted(str(j) for j in range(i + 1))
        assert rev >= int(items[-1]["metadata"]["resourceVersion"])
    obj = await cached.get(ROOT + "ns/05")
    await cached.delete(ROOT + "ns/05", int(obj["metadata"]["resourceVersion"]))
    items, _ = await cached.list(ROOT + "ns/")
    assert "5" not in {o["metadata"]["name"] for o in items} and len(items) == 19
    # In key order, as etcd lists: "ns/" objects only, not a neighbouring prefix.
    await cached.create(ROOT + "ns2/z", cm("z"))
    keys = [o["metadata"]["name"] for o in (await cached.list(ROOT + "ns/"))[0]]
    assert keys == sorted(keys, key=lambda n: f"{int(n):02d}") and "z" not in keys


async def test_a_watcher_too_far_behind_is_ended_and_the_others_go_on(stores, monkeypatch):
    inner, cached = stores
    _, rev = await cached.list(ROOT)
    cacher = cached.cacher(ROOT)
    monkeypatch.setattr(cacher, "_backlog", 3)
    assert await cacher.wait_for(rev)
    slow, fast = cacher.watch(ROOT, rev + 1), cacher.watch(ROOT, rev + 1)   # registered at once
    for i in range(5):
        await cached.create(ROOT + f"s/{i}", cm(str(i)))
        assert (await next_event(fast)).key == ROOT + f"s/{i}"
    for _ in range(3):   # what it had queued before it was ended is still delivered
        await next_event(slow)
    with pytest.raises(WatchLost):
        await next_event(slow)
    assert cacher.watchers == 1


async def test_a_broken_etcd_watch_resumes_and_watchers_go_on(stores):
    inner, cached = stores
    _, rev = await cached.list(ROOT)
    w = cached.watch(ROOT, rev + 1)
    inner.break_watches()
    await inner.create(ROOT + "after/x", cm("x"))   # written while the cache's watch was broken
    assert (await next_event(w, 5)).key == ROOT + "after/x"


async def test_after_compaction_the_cache_relists_and_ends_its_watchers(stores):
    inner, cached = stores
    _, rev = await cached.list(ROOT)
    w = cached.watch(ROOT, rev + 1)
    cacher = cached.cacher(ROOT)
    await inner.create(ROOT + "gone/x", cm("x"))
    assert (await next_event(w)).key == ROOT + "gone/x"
    inner.compacted = inner.rev + 5   # etcd lost the history the cache would resume from
    inner.break_watches()
    with pytest.raises(WatchLost):
        await next_event(w, 5)
    # The relisted cache serves again; a watch from before the relist is 410.
    assert await cacher.wait_for(inner.rev)
    items, _ = await cached.list(ROOT)
    assert [o["metadata"]["name"] for o in items] == ["x"]
    with pytest.raises(Compacted):
        await next_event(cached.watch(ROOT, rev + 1))


async def test_idle_watchers_learn_the_cache_revision_for_bookmarks(stores, monkeypatch):
    monkeypatch.setattr(watch_cache, "PROGRESS_INTERVAL", 0.05)
    inner, cached = MemoryStore(), None
    cached = CachedStore(inner, {ROOT})
    try:
        _, rev = await cached.list(ROOT)
        quiet = cached.watch(ROOT + "quiet/", rev + 1)
        first = asyncio.ensure_future(quiet.__anext__())   # opens the watch
        await asyncio.sleep(0)
        made = await cached.create(ROOT + "busy/x", cm("x"))
        made_rev = int(made["metadata"]["resourceVersion"])

        async def progressed():
            while quiet.progress < made_rev:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(progressed(), 2)
        assert not first.done()
        first.cancel()
        await quiet.aclose()
    finally:
        await cached.close()


async def test_prefixes_outside_the_cached_roots_go_to_the_store(stores):
    inner, cached = stores
    await inner.create("/registry/ranges/serviceips/10.0.0.1", {"metadata": {"name": "x"}})
    items, rev = await cached.list("/registry/ranges/serviceips/")
    assert len(items) == 1 and rev == inner.rev
    assert cached.cacher("/registry/ranges/serviceips/") is None


async def test_a_watcher_queues_only_what_its_selectors_match_before_or_after(stores):
    inner, cached = stores
    _, rev = await cached.list(ROOT)
    cacher = cached.cacher(ROOT)
    assert await cacher.wait_for(rev)

    def labelled(obj: dict) -> bool:
        return (obj["metadata"].get("labels") or {}).get("app") == "web"
    w = cacher.watch(ROOT, rev + 1, labelled)
    await cached.create(ROOT + "ns/other", cm("other"))
    made = await cached.create(ROOT + "ns/web", {"metadata": {"name": "web", "labels": {"app": "web"}}})
    assert await cacher.wait_for(int(made["metadata"]["resourceVersion"]))
    assert w.backlog == 1 and (await next_event(w)).key == ROOT + "ns/web"
    # Leaving the selection is still this watcher's (the API watch says DELETED).
    moved = await cached.update(ROOT + "ns/web", {"metadata": {"name": "web", "labels": {"app": "db"}}},
                                int(made["metadata"]["resourceVersion"]))
    ev = await next_event(w)
    assert ev.prev["metadata"]["labels"] == {"app": "web"} and ev.obj["metadata"]["labels"] == {"app": "db"}
    assert int(moved["metadata"]["resourceVersion"]) == ev.revision
    await w.aclose()
