"""The scheduling queue, after Kubernetes' PriorityQueue.

activeQ: pods to try now, by priority then arrival. backoffQ: pods that failed
and wait out an exponential backoff (1 s doubling to 10 s). unschedulable:
pods no node fits, parked until an event that could help (a node added or
changed, a bound pod gone) moves them back, or 5 minutes pass. A move request
that lands while a pod is being scheduled sends that pod to backoffQ instead
of parking it, so an event racing a cycle is never lost.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .podinfo import PodInfo, pod_info

ACTIVE, BACKOFF, UNSCHEDULABLE, IN_FLIGHT = "active", "backoff", "unschedulable", "in-flight"


@dataclass(eq=False)
class QueuedPod:
    pod: dict[str, Any]
    info: PodInfo
    added: float
    attempts: int = 0
    where: str = ACTIVE
    entry: int = 0  # the heap entry that is current; older ones are stale
    cycle: int = 0  # scheduling cycle in which it was last popped
    backoff_until: float = 0.0
    parked_at: float = 0.0
    rejected_by: set[str] = field(default_factory=set)
    changed_in_flight: bool = False

    @property
    def uid(self) -> str:
        return self.info.uid


def _relevant(pod: dict[str, Any]) -> tuple[Any, Any]:
    # What can change the outcome of scheduling: the spec and the labels; a
    # status write (our own PodScheduled=False) cannot.
    return pod.get("spec"), (pod.get("metadata") or {}).get("labels")


class SchedulingQueue:
    def __init__(self, *, initial_backoff: float = 1.0, max_backoff: float = 10.0,
                 max_unschedulable: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.initial_backoff, self.max_backoff = initial_backoff, max_backoff
        self.max_unschedulable = max_unschedulable
        self.clock = clock
        self._pods: dict[str, QueuedPod] = {}
        self._active: list[tuple[int, float, int, str]] = []
        self._backoff: list[tuple[float, int, str]] = []
        self._entries = itertools.count(1)
        self._has_active = asyncio.Event()
        self._backoff_changed = asyncio.Event()
        self.scheduling_cycle = 0
        self.move_request_cycle = -1

    # ---- introspection (tests, logs) ----------------------------------------

    def where(self, uid: str) -> str | None:
        qp = self._pods.get(uid)
        return qp.where if qp else None

    def __len__(self) -> int:
        return len(self._pods)

    def pending_counts(self) -> dict[str, int]:
        out = {ACTIVE: 0, BACKOFF: 0, UNSCHEDULABLE: 0, IN_FLIGHT: 0}
        for qp in self._pods.values():
            out[qp.where] += 1
        return out

    # ---- informer-driven changes --------------------------------------------

    def add(self, pod: dict[str, Any]) -> None:
        info = pod_info(pod)
        if info.uid in self._pods:
            self.update(pod)
            return
        qp = QueuedPod(pod=pod, info=info, added=self.clock())
        self._pods[info.uid] = qp
        self._push_active(qp)

    def update(self, pod: dict[str, Any]) -> None:
        uid = (pod.get("metadata") or {}).get("uid") or ""
        qp = self._pods.get(uid)
        if qp is None:
            self.add(pod)
            return
        changed = _relevant(qp.pod) != _relevant(pod)
        qp.pod, qp.info = pod, pod_info(pod)
        if not changed:
            return
        if qp.where == IN_FLIGHT:
            qp.changed_in_flight = True
        elif qp.where == UNSCHEDULABLE:
            self._to_active_or_backoff(qp)
        elif qp.where == ACTIVE:
            self._push_active(qp)  # re-sort: the priority may have changed

    def delete(self, uid: str) -> None:
        self._pods.pop(uid, None)  # heap entries of a removed pod are skipped on pop

    # ---- the scheduling loop's side -----------------------------------------

    async def pop(self) -> QueuedPod:
        while True:
            while self._active:
                _, _, entry, uid = heapq.heappop(self._active)
                qp = self._pods.get(uid)
                if qp is None or qp.entry != entry or qp.where != ACTIVE:
                    continue
                qp.where = IN_FLIGHT
                qp.attempts += 1
                qp.changed_in_flight = False
                self.scheduling_cycle += 1
                qp.cycle = self.scheduling_cycle
                return qp
            self._has_active.clear()
            await self._has_active.wait()

    def done(self, uid: str) -> None:
        """The pod left scheduling (assumed on a node): it is no longer queued."""
        qp = self._pods.get(uid)
        if qp is not None and qp.where == IN_FLIGHT:
            del self._pods[uid]

    def requeue_unschedulable(self, qp: QueuedPod, rejected_by: set[str]) -> None:
        if self._pods.get(qp.uid) is not qp:
            return  # deleted while it was being scheduled
        now = self.clock()
        qp.rejected_by = set(rejected_by)
        qp.backoff_until = now + self.backoff_duration(qp.attempts)
        if self.move_request_cycle >= qp.cycle or qp.changed_in_flight:
            self._to_active_or_backoff(qp)
        else:
            qp.where, qp.parked_at = UNSCHEDULABLE, now

    def requeue_backoff(self, pod: dict[str, Any], attempts: int) -> None:
        """A pod whose binding failed for a reason worth retrying."""
        info = pod_info(pod)
        qp = self._pods.get(info.uid)
        if qp is None:
            qp = self._pods[info.uid] = QueuedPod(pod=pod, info=info, added=self.clock(), attempts=attempts)
        qp.backoff_until = self.clock() + self.backoff_duration(qp.attempts)
        self._to_active_or_backoff(qp)

    def backoff_duration(self, attempts: int) -> float:
        return min(self.initial_backoff * (2 ** max(0, attempts - 1)), self.max_backoff)

    # ---- cluster events -------------------------------------------------------

    def move_all(self, plugins: set[str] | None = None) -> int:
        """Give parked pods another chance after an event; with `plugins`, only
        pods rejected by one of those plugins (others cannot be helped)."""
        self.move_request_cycle = self.scheduling_cycle
        moved = 0
        for qp in list(self._pods.values()):
            if qp.where != UNSCHEDULABLE:
                continue
            if plugins is not None and qp.rejected_by and not (qp.rejected_by & plugins):
                continue
            self._to_active_or_backoff(qp)
            moved += 1
        return moved

    def flush(self) -> float | None:
        """Move due backoffs and long-parked pods to activeQ; the time of the
        next backoff expiry, if any."""
        now = self.clock()
        while self._backoff and self._backoff[0][0] <= now:
            _, entry, uid = heapq.heappop(self._backoff)
            qp = self._pods.get(uid)
            if qp is not None and qp.entry == entry and qp.where == BACKOFF:
                self._push_active(qp)
        for qp in list(self._pods.values()):
            if qp.where == UNSCHEDULABLE and now - qp.parked_at >= self.max_unschedulable:
                self._to_active_or_backoff(qp)
        return self._backoff[0][0] if self._backoff else None

    async def run_flusher(self, idle: float = 1.0) -> None:
        while True:
            nxt = self.flush()
            delay = idle if nxt is None else max(0.0, min(idle, nxt - self.clock()))
            self._backoff_changed.clear()
            try:
                await asyncio.wait_for(self._backoff_changed.wait(), delay)
            except asyncio.TimeoutError:
                pass

    # ---- internals ------------------------------------------------------------

    def _push_active(self, qp: QueuedPod) -> None:
        qp.where, qp.entry = ACTIVE, next(self._entries)
        heapq.heappush(self._active, (-qp.info.priority, qp.added, qp.entry, qp.uid))
        self._has_active.set()

    def _to_active_or_backoff(self, qp: QueuedPod) -> None:
        if qp.backoff_until > self.clock():
            qp.where, qp.entry = BACKOFF, next(self._entries)
            heapq.heappush(self._backoff, (qp.backoff_until, qp.entry, qp.uid))
            self._backoff_changed.set()
        else:
            self._push_active(qp)
