"""kubelet's metrics (pkg/kubelet/metrics) for the agent, on the process's default registry.

`POD_START_SLI_DURATION`: from a pod's creation to all its containers reported started,
without the time its images took to pull (the SLI of pod startup latency), observed once
per pod. `POD_WORKER_DURATION`: one pod sync, by operation_type `create` (the pod's first
sync) or `update` (every later one: kubeling's agent does not tell periodic resyncs
apart). `PodStartTracker` and `TimedSyncer` observe them; the agent wires them in."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Histogram

from kubeling.timefmt import parse_time

POD_START_SLI_BUCKETS = (0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900,
                         1200, 1800, 2700, 3600)
# Prometheus' default buckets (metrics.DefBuckets), which kubelet uses for pod worker syncs.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

POD_START_SLI_DURATION = Histogram(
    "kubelet_pod_start_sli_duration_seconds",
    "Duration in seconds to start a pod, excluding time to pull images and run init containers, measured from "
    "pod creation timestamp to when all its containers are reported as started and observed via watch",
    buckets=POD_START_SLI_BUCKETS)
POD_START_DURATION = Histogram(
    "kubelet_pod_start_duration_seconds",
    "Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
    buckets=POD_START_SLI_BUCKETS)
POD_WORKER_DURATION = Histogram(
    "kubelet_pod_worker_duration_seconds",
    "Duration in seconds to sync a single pod. Broken down by operation type: create, update, or sync",
    ["operation_type"], buckets=DEFAULT_BUCKETS)

CREATE, UPDATE, SYNC = "create", "update", "sync"


def _all_started(pod: dict[str, Any]) -> bool:
    spec = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    statuses = {s.get("name"): s for s in (pod.get("status") or {}).get("containerStatuses") or []}
    return bool(spec) and all(
        name in statuses and (statuses[name].get("started") or "running" in (statuses[name].get("state") or {}))
        for name in spec)


class PodStartTracker:
    """Observes kubelet_pod_start_sli_duration_seconds once per pod: the first time the pod,
    as the agent's watch sees it, has every container started. Measured from the pod's
    creationTimestamp, less the time its images took to pull (`pulled`). Pods that were
    already running when the agent first saw them (an agent restart) are not observed."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._pending: dict[str, float] = {}  # uid -> seconds spent pulling images so far
        self._done: set[str] = set()

    def observe(self, pod: dict[str, Any]) -> None:
        """Call with every version of a pod the agent's informer sees (add and update)."""
        meta = pod.get("metadata") or {}
        uid = meta.get("uid")
        if not uid or uid in self._done:
            return
        if uid not in self._pending:
            if _all_started(pod):  # running before we looked: its start was not ours to time
                self._done.add(uid)
                return
            self._pending[uid] = 0.0
            return
        if not _all_started(pod):
            return
        created = parse_time(meta.get("creationTimestamp"))
        pulling = self._pending.pop(uid)
        self._done.add(uid)
        if created is not None:
            elapsed = self._now() - created.timestamp() - pulling
            POD_START_SLI_DURATION.observe(max(elapsed, 0.0))

    def pulled(self, uid: str, seconds: float) -> None:
        """An image of the pod took `seconds` to pull (left out of the SLI)."""
        if uid in self._pending:
            self._pending[uid] += seconds

    def forget(self, uid: str) -> None:
        self._pending.pop(uid, None)
        self._done.discard(uid)


class TimedSyncer:
    """A pod syncer whose syncs are observed into kubelet_pod_worker_duration_seconds
    (`create`: a pod's first sync, `update`: any later one); everything else is the inner
    syncer's."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._synced: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def sync(self, pod: dict[str, Any]) -> Any:
        uid = (pod.get("metadata") or {}).get("uid", "")
        operation = UPDATE if uid in self._synced else CREATE
        start = time.perf_counter()
        try:
            return await self.inner.sync(pod)
        finally:
            self._synced.add(uid)
            POD_WORKER_DURATION.labels(operation).observe(time.perf_counter() - start)

    async def teardown(self, uid: str, *args: Any, **kwargs: Any) -> Any:
        self._synced.discard(uid)
        return await self.inner.teardown(uid, *args, **kwargs)

    async def terminate(self, pod: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        # The inner terminate tears down without coming back through this wrapper.
        self._synced.discard((pod.get("metadata") or {}).get("uid", ""))
        return await self.inner.terminate(pod, *args, **kwargs)
