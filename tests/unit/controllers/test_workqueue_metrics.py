"""client-go's work-queue metrics from a named WorkQueue; an unnamed one reports nothing."""
from __future__ import annotations

from prometheus_client import REGISTRY

from controlplane.controllers.workqueue import WorkQueue


def sample(name: str, queue: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"name": queue})


async def test_a_named_queue_counts_adds_retries_and_times_waiting_and_work():
    q = WorkQueue(name="unit_test_queue")
    q.add("a")
    q.add("a")  # coalesced: still one key waiting
    q.add("b")
    assert sample("workqueue_adds_total", "unit_test_queue") == 2
    assert sample("workqueue_depth", "unit_test_queue") == 2
    key = await q.get()
    assert sample("workqueue_depth", "unit_test_queue") == 1
    assert sample("workqueue_queue_duration_seconds_count", "unit_test_queue") == 1
    assert sample("workqueue_longest_running_processor_seconds", "unit_test_queue") >= 0
    q.add(key)  # added while being processed: waits for done(), counted once
    assert sample("workqueue_adds_total", "unit_test_queue") == 3
    q.done(key)
    assert sample("workqueue_work_duration_seconds_count", "unit_test_queue") == 1
    assert sample("workqueue_unfinished_work_seconds", "unit_test_queue") == 0
    q.add_rate_limited("c")
    assert sample("workqueue_retries_total", "unit_test_queue") == 1
    q.shutdown()


async def test_an_unnamed_queue_reports_nothing_until_named():
    q = WorkQueue()
    q.add("x")
    await q.get()
    q.done("x")
    assert q.metrics is None
    q.name = "unit_test_named_later"
    q.add("y")
    assert sample("workqueue_adds_total", "unit_test_named_later") == 1
    assert sample("workqueue_depth", "unit_test_named_later") == 1
    q.shutdown()
