"""Events yield to bindings: while a binding is in flight one writer works, so a burst's
Events do not crowd its bindings at the apiserver; once none is, every writer does.
None is dropped and each keeps the time its step happened."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import pytest
from sched_helpers import BOUND, pod_obj

from controlplane.scheduler.events import EventRecorder
from controlplane.scheduler.scheduler import Scheduler
from tests.conftest import eventually


class SlowClient:
    """Event creates (and bindings) that wait until released; counts those in flight."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most_in_flight = 0
        self.created: list[dict[str, Any]] = []
        self.release = asyncio.Event()
        self.bindings: list[str] = []
        self.binding_release = asyncio.Event()

    async def create(self, res: Any, obj: dict[str, Any], namespace: str | None = None, **_: Any) -> dict[str, Any]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        self.created.append(obj)
        return obj

    async def create_binding(self, namespace: str, name: str, node: str, uid: str | None = None) -> None:
        await self.binding_release.wait()
        self.bindings.append(name)


@pytest.mark.parametrize("quiet_before", [False, True], ids=["busy-from-start", "busy-after-idle-writers"])
async def test_one_writer_while_not_quiet_all_once_quiet(quiet_before: bool) -> None:
    client = SlowClient()
    quiet = asyncio.Event()
    rec = EventRecorder(client, "default-scheduler", "unit", workers=4, quiet=quiet)  # type: ignore[arg-type]
    writers = asyncio.create_task(rec.run())
    try:
        if quiet_before:  # every writer already waits for work when the bindings begin
            quiet.set()
            await asyncio.sleep(0.05)
            quiet.clear()
        happened = datetime(2030, 1, 2, 3, 4, 5, 600000, tzinfo=timezone.utc)
        for i in range(8):
            rec.record(pod_obj(f"p{i}"), "Normal", "Scheduled", "Binding", f"assigned p{i}", at=happened)
        await eventually(lambda: client.in_flight == 1, BOUND, "the one writer")
        await asyncio.sleep(0.1)  # room for a second writer, if one were wrongly let through
        assert client.most_in_flight == 1
        quiet.set()
        await eventually(lambda: client.in_flight == 4, BOUND, "every writer")
        client.release.set()
        await eventually(lambda: len(client.created) == 8, BOUND, "every event written")
        assert rec.dropped == 0
        assert {e["eventTime"] for e in client.created} == {"2030-01-02T03:04:05.600000Z"}
    finally:
        writers.cancel()
        await asyncio.gather(writers, return_exceptions=True)


async def test_the_scheduler_is_quiet_only_with_no_binding_in_flight() -> None:
    client = SlowClient()
    s = Scheduler(client)  # type: ignore[arg-type]
    quiet = s.events._quiet
    assert quiet is not None and quiet.is_set()
    info = type("Info", (), {"namespace": "default", "name": "p", "uid": "u"})()
    posts = [asyncio.create_task(s._post_binding(info, "n1")) for _ in range(2)]
    await eventually(lambda: s._bindings_in_flight == 2, BOUND, "two bindings in flight")
    assert not quiet.is_set()
    client.binding_release.set()
    await asyncio.wait_for(asyncio.gather(*posts), BOUND)
    assert quiet.is_set() and client.bindings == ["p", "p"]
