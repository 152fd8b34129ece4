"""Informers keyed by resource AND selectors (client-go's filtered factories): the same
selectors share one informer and one list+watch; other selectors get an informer of their
own, which lists and watches with them; the unfiltered informer the controllers use is
unchanged."""
from __future__ import annotations

import asyncio
from typing import Any

from kubeling.resources import lookup
from kubeling.shared_informers import SharedInformers

PODS = lookup("pods")
BOUND = 5.0
ACTIVE = "status.phase!=Succeeded,status.phase!=Failed"


class SelectorClient:
    """Records the selectors of every list and watch; lists `objects` filtered by a stand-in
    for the server's field selector (the pods whose phase is not in `done_phases`)."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects
        self.calls: list[tuple[str, str, str, str]] = []  # (verb, namespace, field, label)

    def _match(self, o: dict[str, Any], field_selector: str) -> bool:
        return not field_selector or o["status"]["phase"] not in ("Succeeded", "Failed")

    async def list(self, res: Any, namespace: Any = None, *, label_selector: str = "",
                   field_selector: str = "", **_: Any) -> dict[str, Any]:
        self.calls.append(("list", namespace or "", field_selector, label_selector))
        return {"items": [o for o in self.objects if self._match(o, field_selector)],
                "metadata": {"resourceVersion": "1"}}

    async def watch(self, res: Any, namespace: Any = None, *, label_selector: str = "",
                    field_selector: str = "", **_: Any):  # type: ignore[no-untyped-def]
        self.calls.append(("watch", namespace or "", field_selector, label_selector))
        await asyncio.get_running_loop().create_future()  # no events
        yield  # pragma: no cover


def pod(name: str, phase: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": "1"}, "status": {"phase": phase}}


async def test_selectors_key_the_informer_and_reach_the_server() -> None:
    client = SelectorClient([pod("running", "Running"), pod("done", "Succeeded")])
    factory = SharedInformers(client)  # type: ignore[arg-type]
    all_seen: list[str] = []
    active_seen: list[str] = []
    everything = factory.add_handlers(PODS, on_add=lambda o: all_seen.append(o["metadata"]["name"]))
    active = factory.add_handlers(PODS, on_add=lambda o: active_seen.append(o["metadata"]["name"]),
                                  field_selector=ACTIVE)
    # The same resource and selectors: the same informer, however it is asked for.
    assert factory.informer(PODS) is everything
    assert factory.informer(PODS, field_selector=ACTIVE) is active
    assert factory.add_handlers(PODS, field_selector=ACTIVE) is active
    assert everything is not active
    assert factory.informer(PODS, label_selector="app=web") not in (everything, active)
    assert factory.informer(PODS, namespace="ns", field_selector=ACTIVE) not in (everything, active)
    task = asyncio.create_task(factory.run())
    try:
        await asyncio.wait_for(factory.wait_synced(), BOUND)
        assert sorted(all_seen) == ["done", "running"]
        assert active_seen == ["running"]
        assert sorted(n for _, n in active.cache) == ["running"]

        async def watching() -> None:
            while sum(1 for c in client.calls if c[0] == "watch") < 4:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(watching(), BOUND)
        # One list and one watch per informer, each with its own selectors.
        assert sorted(client.calls) == sorted([
            ("list", "", "", ""), ("watch", "", "", ""),
            ("list", "", ACTIVE, ""), ("watch", "", ACTIVE, ""),
            ("list", "", "", "app=web"), ("watch", "", "", "app=web"),
            ("list", "ns", ACTIVE, ""), ("watch", "ns", ACTIVE, ""),
        ])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
