"""The shared informer factory on a fake client: one list+watch per resource however
many handlers, per-handler buffers (a slow handler delays neither the watch nor the
others), `synced` only once every handler has seen the list, late handlers replayed,
the cache read-only, and the jittered back-off's bounds."""
from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from kubeling.informer import Backoff
from kubeling.resources import lookup
from kubeling.shared_informers import SharedInformers

PODS, SERVICES = lookup("pods"), lookup("services")
BOUND = 5.0


def obj(name: str, rv: str, ns: str = "ns") -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name, "resourceVersion": rv}}


class FakeClient:
    """list returns the objects given; watch streams what the test puts in `events[plural]`."""

    def __init__(self, objects: dict[str, list[dict[str, Any]]]) -> None:
        self.objects = objects
        self.lists: dict[str, int] = {}
        self.watches: dict[str, int] = {}
        self.events: dict[str, asyncio.Queue[tuple[str, dict[str, Any]]]] = {}

    async def list(self, res: Any, namespace: Any = None, **_: Any) -> dict[str, Any]:
        self.lists[res.plural] = self.lists.get(res.plural, 0) + 1
        return {"items": list(self.objects.get(res.plural, [])), "metadata": {"resourceVersion": "1"}}

    async def watch(self, res: Any, namespace: Any = None, **_: Any):  # type: ignore[no-untyped-def]
        self.watches[res.plural] = self.watches.get(res.plural, 0) + 1
        q = self.events.setdefault(res.plural, asyncio.Queue())
        while True:
            yield await q.get()


async def running(factory: SharedInformers) -> asyncio.Task[None]:
    task = asyncio.create_task(factory.run())
    await asyncio.wait_for(factory.wait_synced(), BOUND)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_one_list_and_watch_per_resource_for_many_handlers() -> None:
    client = FakeClient({"pods": [obj("a", "1")], "services": [obj("s", "1")]})
    factory = SharedInformers(client)  # type: ignore[arg-type]
    seen1: list[str] = []
    seen2: list[str] = []
    inf1 = factory.add_handlers(PODS, on_add=lambda o: seen1.append(o["metadata"]["name"]))
    inf2 = factory.add_handlers(PODS, on_add=lambda o: seen2.append(o["metadata"]["name"]))
    factory.add_handlers(SERVICES, on_add=lambda o: None)
    assert inf1 is inf2
    task = await running(factory)
    try:
        # synced means every handler has handled the initial list, not just that it was fetched
        assert seen1 == ["a"] and seen2 == ["a"]
        await client.events["pods"].put(("ADDED", obj("b", "2")))
        async def both() -> None:
            while seen1 != ["a", "b"] or seen2 != ["a", "b"]:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(both(), BOUND)
        assert client.lists == {"pods": 1, "services": 1}
        assert client.watches == {"pods": 1, "services": 1}
    finally:
        await stop(task)


async def test_a_slow_handler_delays_neither_the_watch_nor_another_handler() -> None:
    client = FakeClient({"pods": []})
    factory = SharedInformers(client)  # type: ignore[arg-type]
    release = asyncio.Event()
    slow_seen: list[str] = []
    fast_seen: list[str] = []

    async def slow(o: dict[str, Any]) -> None:
        await release.wait()
        slow_seen.append(o["metadata"]["name"])

    inf = factory.add_handlers(PODS, on_add=slow)
    factory.add_handlers(PODS, on_add=lambda o: fast_seen.append(o["metadata"]["name"]))
    task = await running(factory)
    try:
        for i in range(3):
            await client.events["pods"].put(("ADDED", obj(f"p{i}", str(i + 2))))

        async def fast_done() -> None:
            while fast_seen != ["p0", "p1", "p2"]:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(fast_done(), BOUND)
        # The watch went on too: the cache holds all three while the slow handler is stuck on the first.
        assert sorted(n for _, n in inf.cache) == ["p0", "p1", "p2"]
        assert slow_seen == []
        release.set()

        async def slow_done() -> None:
            while slow_seen != ["p0", "p1", "p2"]:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(slow_done(), BOUND)  # in order, nothing lost
    finally:
        await stop(task)


async def test_a_failing_handler_call_does_not_stop_its_later_events() -> None:
    client = FakeClient({"pods": []})
    factory = SharedInformers(client)  # type: ignore[arg-type]
    seen: list[str] = []

    def flaky(o: dict[str, Any]) -> None:
        if o["metadata"]["name"] == "bad":
            raise ValueError("boom")
        seen.append(o["metadata"]["name"])

    factory.add_handlers(PODS, on_add=flaky)
    task = await running(factory)
    try:
        await client.events["pods"].put(("ADDED", obj("bad", "2")))
        await client.events["pods"].put(("ADDED", obj("good", "3")))

        async def done() -> None:
            while seen != ["good"]:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(done(), BOUND)
    finally:
        await stop(task)


async def test_synced_waits_for_a_slow_handler_to_see_the_list() -> None:
    client = FakeClient({"pods": [obj("a", "1")]})
    factory = SharedInformers(client)  # type: ignore[arg-type]
    release = asyncio.Event()

    async def slow(_o: dict[str, Any]) -> None:
        await release.wait()

    inf = factory.add_handlers(PODS, on_add=slow)
    task = asyncio.create_task(factory.run())
    try:
        async def listed() -> None:
            while not inf.cache:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(listed(), BOUND)
        assert not inf.synced.is_set()
        release.set()
        await asyncio.wait_for(inf.synced.wait(), BOUND)
    finally:
        await stop(task)


async def test_a_late_handler_is_replayed_the_cache_and_the_cache_is_read_only() -> None:
    client = FakeClient({"pods": [obj("a", "1"), obj("b", "1")]})
    factory = SharedInformers(client)  # type: ignore[arg-type]
    factory.add_handlers(PODS, on_add=lambda o: None)
    task = await running(factory)
    try:
        late: list[str] = []
        inf = factory.add_handlers(PODS, on_add=lambda o: late.append(o["metadata"]["name"]))

        async def replayed() -> None:
            while sorted(late) != ["a", "b"]:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(replayed(), BOUND)
        with pytest.raises(TypeError):
            inf.cache[("ns", "x")] = obj("x", "9")  # type: ignore[index]
        assert client.watches == {"pods": 1}
    finally:
        await stop(task)


def test_backoff_grows_exponentially_within_jitter_bounds_and_resets() -> None:
    b = Backoff(initial=0.5, cap=8.0, factor=2.0, jitter=0.5, rng=random.Random(7))
    delays = [b.next() for _ in range(8)]
    for n, d in enumerate(delays):
        base = min(0.5 * 2 ** n, 8.0)
        assert base <= d <= base * 1.5, (n, d)
    assert max(delays) <= 12.0
    # jitter actually spreads: two clients failing in step do not retry in step
    other = Backoff(initial=0.5, cap=8.0, factor=2.0, jitter=0.5, rng=random.Random(8))
    assert [other.next() for _ in range(8)] != delays
    b.reset()
    assert 0.5 <= b.next() <= 0.75
