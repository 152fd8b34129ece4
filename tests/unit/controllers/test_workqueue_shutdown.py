"""The work queue's stop: shutdown releases workers waiting in get(), keys already
queued are still handed out first, and a drain waits for the keys in flight."""
from __future__ import annotations

import asyncio

import pytest

from controlplane.controllers.workqueue import ShutDown, WorkQueue

BOUND = 5.0


async def test_shutdown_releases_a_waiting_get() -> None:
    q = WorkQueue()
    waiting = asyncio.ensure_future(q.get())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    q.shutdown()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(waiting, BOUND)
    q.add("late")  # ignored once shut down
    assert len(q) == 0
    with pytest.raises(ShutDown):
        await asyncio.wait_for(q.get(), BOUND)


async def test_queued_keys_are_handed_out_before_shutdown_shows() -> None:
    q = WorkQueue()
    q.add("a")
    q.add_after("timer", 30)  # a pending delayed add is dropped on shutdown
    q.shutdown()
    assert await q.get() == "a"
    q.done("a")
    with pytest.raises(ShutDown):
        await asyncio.wait_for(q.get(), BOUND)


async def test_drain_waits_for_keys_in_flight() -> None:
    q = WorkQueue()
    q.add("a")
    q.add("b")
    key = await q.get()
    drain = asyncio.ensure_future(q.shut_down_with_drain(BOUND))
    await asyncio.sleep(0.05)
    assert not drain.done()  # "a" is still being processed
    q.add(key)  # re-added while in flight: not queued again once shut down
    q.done(key)
    assert await asyncio.wait_for(drain, BOUND) is True
    assert await q.get() == "b"  # still handed out: a worker may finish the queue


async def test_drain_gives_up_after_its_timeout() -> None:
    q = WorkQueue()
    q.add("stuck")
    await q.get()
    assert await q.shut_down_with_drain(0.05) is False


async def test_a_stopped_controller_lets_the_key_in_flight_finish() -> None:
    import logging

    from controlplane.controllers.queue_worker import QueueWorker
    from kubeling.shared_informers import SharedInformers

    started, release, finished = asyncio.Event(), asyncio.Event(), []

    class Ctl(QueueWorker):
        def __init__(self) -> None:
            self.queue = WorkQueue()
            self.log = logging.getLogger("test.ctl")
            self.informers = SharedInformers(None)  # type: ignore[arg-type]  # watches nothing

        async def sync(self, key: str) -> None:
            started.set()
            await release.wait()
            finished.append(key)

    ctl = Ctl()
    ctl.queue.add("k")
    run = asyncio.ensure_future(ctl.run())
    await asyncio.wait_for(started.wait(), BOUND)
    run.cancel()  # stop while "k" is being synced
    await asyncio.sleep(0.05)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run, BOUND)
    assert finished == ["k"] and ctl.queue.shutting_down()
