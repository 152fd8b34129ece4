"""The scheduler on the shared informer factory (fake API client): its pods informer lists and
watches only active pods (a field selector, so an informer of its own), its nodes informer is
the one other components of the process share, it runs a factory only when it made it, and
`start` returns only once its cache holds the nodes listed."""
from __future__ import annotations

import asyncio
from typing import Any

from controlplane.scheduler.scheduler import ACTIVE_PODS, NODES, PODS, Scheduler
from kubeling.shared_informers import SharedInformers
from tests.conftest import eventually

from sched_helpers import BOUND, node_obj, pod_obj


class FakeClient:
    def __init__(self, objects: dict[str, list[dict[str, Any]]]) -> None:
        self.objects = objects
        self.calls: list[tuple[str, str, str]] = []  # (verb, plural, field selector)
        self.bindings: list[tuple[str, str, str]] = []
        self.events: dict[str, asyncio.Queue[tuple[str, dict[str, Any]]]] = {}

    async def list(self, res: Any, namespace: Any = None, *, field_selector: str = "", **_: Any) -> dict[str, Any]:
        self.calls.append(("list", res.plural, field_selector))
        return {"items": list(self.objects.get(res.plural, [])), "metadata": {"resourceVersion": "1"}}

    async def watch(self, res: Any, namespace: Any = None, *, field_selector: str = "", **_: Any):  # type: ignore[no-untyped-def]
        self.calls.append(("watch", res.plural, field_selector))
        q = self.events.setdefault(res.plural, asyncio.Queue())
        while True:
            yield await q.get()

    async def create_binding(self, namespace: str, name: str, node: str, uid: str | None = None) -> None:
        self.bindings.append((namespace, name, node))

    async def create(self, res: Any, obj: dict[str, Any], namespace: str | None = None, **_: Any) -> dict[str, Any]:
        return obj  # events

    async def patch(self, *_: Any, **__: Any) -> dict[str, Any]:
        return {}


def with_meta(obj: dict[str, Any], uid: str) -> dict[str, Any]:
    obj["metadata"].update(uid=uid, resourceVersion="1")
    return obj


async def test_scheduler_on_a_shared_factory() -> None:
    client = FakeClient({"nodes": [with_meta(node_obj("n1"), "node-1")],
                         "pods": [with_meta(pod_obj("p1"), "pod-1")]})
    factory = SharedInformers(client)  # type: ignore[arg-type]
    other_nodes: list[str] = []
    shared_nodes = factory.add_handlers(NODES, on_add=lambda o: other_nodes.append(o["metadata"]["name"]))
    s = Scheduler(client, identity="unit", informers=factory)  # type: ignore[arg-type]
    assert s.nodes is shared_nodes
    assert s.pods is factory.informer(PODS, field_selector=ACTIVE_PODS)
    assert s.pods is not factory.informer(PODS)  # what others get for all pods is another informer
    runner = asyncio.create_task(factory.run())  # the factory's owner runs it
    loop = asyncio.create_task(s.run())
    try:
        await asyncio.wait_for(s.start(), BOUND)
        assert s.cache.nodes["n1"].node is not None  # synced: the handler has seen the list
        await eventually(lambda: client.bindings == [("default", "p1", "n1")], BOUND, "the pod bound")
        assert other_nodes == ["n1"]
        await eventually(lambda: sum(c[0] == "watch" for c in client.calls) == 3, BOUND, "the watches")
        assert sorted(client.calls) == sorted([
            ("list", "nodes", ""), ("watch", "nodes", ""),
            ("list", "pods", ACTIVE_PODS), ("watch", "pods", ACTIVE_PODS),
            ("list", "pods", ""), ("watch", "pods", ""),  # the unfiltered informer asked for above
        ])
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await s.stop()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_scheduler_runs_the_factory_it_made() -> None:
    client = FakeClient({"nodes": [with_meta(node_obj("n1"), "node-1")]})
    s = Scheduler(client, identity="unit")  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(s.start(), BOUND)
        assert "n1" in s.cache.nodes
        assert ("list", "pods", ACTIVE_PODS) in client.calls
    finally:
        await s.stop()
