"""kube-scheduler's metrics as the scheduler will report them: attempts by result and
profile, pending pods read from the queue's counts at scrape time."""
from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from controlplane.scheduler import metrics
from controlplane.scheduler.queue import SchedulingQueue


def test_attempts_are_counted_and_timed_by_result():
    labels = {"result": "scheduled", "profile": "default-scheduler"}
    n = REGISTRY.get_sample_value("scheduler_scheduling_attempt_duration_seconds_count", labels) or 0.0
    tries = REGISTRY.get_sample_value("scheduler_schedule_attempts_total", labels) or 0.0
    metrics.observe_attempt(metrics.SCHEDULED, 0.003)
    assert REGISTRY.get_sample_value("scheduler_scheduling_attempt_duration_seconds_count", labels) == n + 1
    assert REGISTRY.get_sample_value("scheduler_schedule_attempts_total", labels) == tries + 1


def test_pending_pods_come_from_the_queue_at_scrape_time():
    queue = SchedulingQueue()
    registry = CollectorRegistry()
    registry.register(metrics.PendingPods(queue.pending_counts))

    def pending() -> dict[str, float]:
        text = generate_latest(registry).decode()
        return {s.labels["queue"]: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert pending() == {"active": 0, "backoff": 0, "unschedulable": 0, "gated": 0}
    queue.add({"metadata": {"name": "p", "namespace": "default", "uid": "u1"}, "spec": {}})
    assert pending()["active"] == 1
