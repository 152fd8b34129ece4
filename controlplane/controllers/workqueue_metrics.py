"""client-go's work-queue metrics (k8s.io/client-go/util/workqueue/metrics.go), label `name`.

Counters and histograms are updated as keys move; the gauges (depth, unfinished work,
longest running processor) are read from the live queues at scrape time, so adding a
key costs a counter increment and a timestamp, nothing more. Only named queues report,
as with client-go (an unnamed queue gets its no-op metrics provider)."""
from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from typing import Hashable, Protocol

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# client-go's ExponentialBuckets(10e-9, 10, 10): 10 ns to 10 s.
DURATION_BUCKETS = tuple(1e-8 * 10 ** i for i in range(10))

ADDS = Counter("workqueue_adds", "Total number of adds handled by workqueue", ["name"])
RETRIES = Counter("workqueue_retries", "Total number of retries handled by workqueue", ["name"])
QUEUE_DURATION = Histogram("workqueue_queue_duration_seconds",
                           "How long in seconds an item stays in workqueue before being requested.",
                           ["name"], buckets=DURATION_BUCKETS)
WORK_DURATION = Histogram("workqueue_work_duration_seconds",
                          "How long in seconds processing an item from workqueue takes.",
                          ["name"], buckets=DURATION_BUCKETS)


class QueueMetrics:
    """The metrics of one named queue: the queue calls these as a key is added, handed
    out, finished, or retried."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._adds = ADDS.labels(name)
        self._retries = RETRIES.labels(name)
        self._queue_duration = QUEUE_DURATION.labels(name)
        self._work_duration = WORK_DURATION.labels(name)
        self._added_at: dict[Hashable, float] = {}
        self.started_at: dict[Hashable, float] = {}

    def add(self, key: Hashable) -> None:
        self._adds.inc()
        self._added_at.setdefault(key, time.monotonic())

    def get(self, key: Hashable) -> None:
        now = time.monotonic()
        added = self._added_at.pop(key, None)
        if added is not None:
            self._queue_duration.observe(now - added)
        self.started_at[key] = now

    def done(self, key: Hashable) -> None:
        started = self.started_at.pop(key, None)
        if started is not None:
            self._work_duration.observe(time.monotonic() - started)

    def retry(self) -> None:
        self._retries.inc()


class _Queue(Protocol):
    metrics: QueueMetrics | None

    def depth(self) -> int: ...


_queues: "weakref.WeakSet[_Queue]" = weakref.WeakSet()


def track(queue: _Queue) -> None:
    """Report `queue`'s gauges while it lives."""
    _queues.add(queue)


class _GaugeCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("workqueue_depth", "Current depth of workqueue", labels=["name"])
        unfinished = GaugeMetricFamily(
            "workqueue_unfinished_work_seconds",
            "How many seconds of work has been done that is in progress and hasn't been observed by "
            "work_duration. Large values indicate stuck threads.", labels=["name"])
        longest = GaugeMetricFamily(
            "workqueue_longest_running_processor_seconds",
            "How many seconds has the longest running processor for workqueue been running.", labels=["name"])
        now = time.monotonic()
        # Several queues may share a name (two instances of a controller): their values add up,
        # the longest running processor is the longest of them all.
        totals: dict[str, list[float]] = {}
        for queue in list(_queues):
            m = queue.metrics
            if m is None:
                continue
            running = [now - t for t in m.started_at.values()]
            t = totals.setdefault(m.name, [0.0, 0.0, 0.0])
            t[0] += queue.depth()
            t[1] += sum(running)
            t[2] = max([t[2], *running])
        for name, (d, u, lg) in sorted(totals.items()):
            depth.add_metric([name], d)
            unfinished.add_metric([name], u)
            longest.add_metric([name], lg)
        yield depth
        yield unfinished
        yield longest


GAUGES = _GaugeCollector()
REGISTRY.register(GAUGES)
