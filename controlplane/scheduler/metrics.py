"""kube-scheduler's metrics (pkg/scheduler/metrics), on the process's default registry.

The scheduler observes `ATTEMPT_DURATION` once per scheduling attempt with its result
(`scheduled`, `unschedulable` or `error`) and profile (`default-scheduler`);
`PendingPods` reads the queue's sizes (`active`, `backoff`, `unschedulable`, `gated`) at
scrape time."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

SCHEDULED, UNSCHEDULABLE, ERROR = "scheduled", "unschedulable", "error"
DEFAULT_PROFILE = "default-scheduler"

# ExponentialBuckets(0.001, 2, 15): 1 ms to ~16 s, as kube-scheduler's.
ATTEMPT_BUCKETS = tuple(0.001 * 2 ** i for i in range(15))

ATTEMPT_DURATION = Histogram("scheduler_scheduling_attempt_duration_seconds",
                             "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
                             ["result", "profile"], buckets=ATTEMPT_BUCKETS)
SCHEDULE_ATTEMPTS = Counter("scheduler_schedule_attempts",
                            "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod "
                            "could not be scheduled, while 'error' means an internal scheduler problem.",
                            ["result", "profile"])
PENDING_QUEUES = ("active", "backoff", "unschedulable", "gated")


class PendingPods(Collector):
    """scheduler_pending_pods, read from the scheduling queue at scrape time (its
    `pending_counts()`: queue -> pods), so the queue never updates a gauge. Pods being
    scheduled right now (in flight) are not pending, as in kube-scheduler."""

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "scheduler_pending_pods", "Number of pending pods, by the queue type. 'active' means number of pods "
            "in activeQ; 'backoff' means number of pods in backoffQ; 'unschedulable' means number of pods in "
            "unschedulablePods that the scheduler attempted to schedule and failed; 'gated' is the number of "
            "unschedulable pods that the scheduler never attempted to schedule because they are gated.",
            labels=["queue"])
        counts = self.counts()
        for queue in PENDING_QUEUES:
            family.add_metric([queue], counts.get(queue, 0))
        yield family


def observe_attempt(result: str, seconds: float, profile: str = DEFAULT_PROFILE) -> None:
    """One scheduling attempt: its duration and its result."""
    ATTEMPT_DURATION.labels(result, profile).observe(seconds)
    SCHEDULE_ATTEMPTS.labels(result, profile).inc()
