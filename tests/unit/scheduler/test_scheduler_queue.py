"""The scheduling queue: order, backoff, parking and moving back on events."""
from __future__ import annotations

import asyncio

from sched_helpers import pod_obj

from controlplane.scheduler.queue import ACTIVE, BACKOFF, IN_FLIGHT, UNSCHEDULABLE, SchedulingQueue


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make() -> tuple[SchedulingQueue, Clock]:
    clock = Clock()
    return SchedulingQueue(clock=clock), clock


async def pop(q: SchedulingQueue):
    return await asyncio.wait_for(q.pop(), 1)


async def test_fifo_within_a_priority_and_priority_first():
    q, clock = make()
    a, b, c = pod_obj("a"), pod_obj("b"), pod_obj("c")
    c["spec"]["priority"] = 10
    for p in (a, b, c):
        q.add(p)
        clock.t += 1
    assert [(await pop(q)).info.name for _ in range(3)] == ["c", "a", "b"]


async def test_pop_waits_for_a_pod():
    q, _ = make()
    waiter = asyncio.create_task(q.pop())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    q.add(pod_obj("late"))
    assert (await asyncio.wait_for(waiter, 1)).info.name == "late"


async def test_unschedulable_pod_parks_until_an_event_and_then_waits_out_its_backoff():
    q, clock = make()
    q.add(pod_obj("p"))
    qp = await pop(q)
    assert q.where(qp.uid) == IN_FLIGHT
    q.requeue_unschedulable(qp, {"NodeAffinity"})
    assert q.where(qp.uid) == UNSCHEDULABLE
    assert q.move_all({"NodeResourcesFit"}) == 0  # cannot help an affinity failure
    assert q.where(qp.uid) == UNSCHEDULABLE
    assert q.move_all({"NodeAffinity"}) == 1
    assert q.where(qp.uid) == BACKOFF  # first failure: 1 s backoff still running
    clock.t += 1.01
    q.flush()
    assert q.where(qp.uid) == ACTIVE
    assert (await pop(q)).attempts == 2


async def test_event_after_backoff_goes_straight_to_active():
    q, clock = make()
    q.add(pod_obj("p"))
    qp = await pop(q)
    q.requeue_unschedulable(qp, {"NodeResourcesFit"})
    clock.t += 5
    q.move_all()
    assert q.where(qp.uid) == ACTIVE


async def test_backoff_doubles_up_to_the_cap():
    q, _ = make()
    assert [q.backoff_duration(n) for n in (1, 2, 3, 4, 5, 6)] == [1, 2, 4, 8, 10, 10]


async def test_move_request_during_the_cycle_is_not_lost():
    q, clock = make()
    q.add(pod_obj("p"))
    qp = await pop(q)
    q.move_all()  # e.g. a node was added while the pod was being scheduled
    q.requeue_unschedulable(qp, {"NodeAffinity"})
    assert q.where(qp.uid) in (BACKOFF, ACTIVE)


async def test_update_of_spec_moves_parked_pod_but_status_write_does_not():
    q, clock = make()
    p = pod_obj("p")
    q.add(p)
    qp = await pop(q)
    q.requeue_unschedulable(qp, {"NodeAffinity"})
    status_only = {**p, "status": {"conditions": [{"type": "PodScheduled", "status": "False"}]}}
    q.update(status_only)
    assert q.where(qp.uid) == UNSCHEDULABLE
    relabelled = {**p, "metadata": {**p["metadata"], "labels": {"x": "y"}}}
    clock.t += 2
    q.update(relabelled)
    assert q.where(qp.uid) == ACTIVE


async def test_parked_pods_retry_after_the_maximum_time():
    q, clock = make()
    q.add(pod_obj("p"))
    qp = await pop(q)
    q.requeue_unschedulable(qp, {"NodeAffinity"})
    clock.t += 299
    q.flush()
    assert q.where(qp.uid) == UNSCHEDULABLE
    clock.t += 2
    q.flush()
    assert q.where(qp.uid) == ACTIVE


async def test_deleted_pods_are_never_popped():
    q, _ = make()
    a, b = pod_obj("a"), pod_obj("b")
    q.add(a)
    q.add(b)
    q.delete(a["metadata"]["uid"])
    assert (await pop(q)).info.name == "b"
    assert len(q) == 1
    q.done(b["metadata"]["uid"])
    assert len(q) == 0


async def test_pod_deleted_in_flight_is_not_requeued():
    q, _ = make()
    q.add(pod_obj("p"))
    qp = await pop(q)
    q.delete(qp.uid)
    q.requeue_unschedulable(qp, {"NodeAffinity"})
    assert q.where(qp.uid) is None


async def test_requeue_after_bind_error_backs_off():
    q, clock = make()
    p = pod_obj("p")
    q.add(p)
    qp = await pop(q)
    q.done(qp.uid)
    q.requeue_backoff(p, qp.attempts)
    assert q.where(qp.uid) == BACKOFF
    clock.t += 1.5
    q.flush()
    assert q.where(qp.uid) == ACTIVE
