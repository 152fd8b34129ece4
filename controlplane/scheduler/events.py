"""Events about pods (Scheduled, FailedScheduling) as core/v1 Event objects.

Recording never blocks the scheduling cycle: events go through a bounded queue
to a few writer tasks, and are dropped when it is full, as client-go's
broadcaster drops them. A repeat of the same event for the same pod bumps
`count` and `lastTimestamp` of the existing object, as client-go's correlator does.

Events yield to bindings: while `quiet` (when given) is clear, only one writer
works, so a burst's bindings do not queue at the apiserver behind its Events.
Each Event keeps the time its step happened (eventTime), however late it is written.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

from kubeling import errors
from kubeling.client import Client
from kubeling.resources import lookup
from kubeling.timefmt import format_micro_time

log = logging.getLogger("kubeling.scheduler.events")

EVENTS = lookup("events")
NORMAL, WARNING = "Normal", "Warning"


# kubeling's details on a Scheduled event, read by `kubeling trace`.
NODES_TOTAL = "trace.kubeling.io/nodes"
NODES_FILTERED = "trace.kubeling.io/filtered-out"
SCHEDULING_SECONDS = "trace.kubeling.io/scheduling-seconds"


def trace_details(diagnosis: Any) -> dict[str, str]:
    """How many nodes the filters left out and why (a histogram of reasons, as in
    FailedScheduling's message), from a cycle's Diagnosis."""
    reasons: dict[str, int] = {}
    for st in diagnosis.node_statuses.values():
        for r in st.reasons:
            reasons[r] = reasons.get(r, 0) + 1
    why = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))
    return {NODES_TOTAL: str(diagnosis.num_nodes),
            NODES_FILTERED: f"{len(diagnosis.node_statuses)}" + (f": {why}" if why else "")}


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_for(pod: dict[str, Any], type_: str, reason: str, action: str, message: str,
              component: str, instance: str, timestamp: str, event_time: datetime | None = None,
              annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """The Event; `event_time` (microseconds, when the step happened) goes in eventTime,
    `annotations` carry kubeling's details for `kubeling trace`."""
    meta = pod.get("metadata") or {}
    ns, name = meta.get("namespace") or "default", meta.get("name") or ""
    metadata: dict[str, Any] = {"name": f"{name}.{time.time_ns():x}", "namespace": ns}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": metadata,
        "eventTime": format_micro_time(event_time or datetime.now(timezone.utc)),
        "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": ns, "name": name,
                           "uid": meta.get("uid", ""), "resourceVersion": meta.get("resourceVersion", "")},
        "reason": reason, "message": message, "type": type_, "action": action,
        "source": {"component": component},
        "reportingComponent": component, "reportingInstance": instance,
        "firstTimestamp": timestamp, "lastTimestamp": timestamp, "count": 1,
    }


class EventRecorder:
    def __init__(self, client: Client, component: str, instance: str, *, workers: int = 4,
                 max_pending: int = 10000, remember: int = 4096, quiet: asyncio.Event | None = None) -> None:
        self.client, self.component, self.instance = client, component, instance
        self._quiet = quiet
        self._queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue(max_pending)
        self._workers = workers
        self._seen: OrderedDict[tuple[str, str, str], dict[str, Any]] = OrderedDict()
        self._remember = remember
        self.dropped = 0

    def record(self, pod: dict[str, Any], type_: str, reason: str, action: str, message: str,
               annotations: dict[str, str] | None = None, at: datetime | None = None) -> None:
        """`at`: when the step happened, if before now (eventTime)."""
        try:
            self._queue.put_nowait((pod, type_, reason, action, message, at or datetime.now(timezone.utc),
                                    annotations))
        except asyncio.QueueFull:
            self.dropped += 1

    async def run(self) -> None:
        await asyncio.gather(*(self._worker(i) for i in range(self._workers)))

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (a little) for queued events to be written, e.g. before exiting."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except asyncio.TimeoutError:
            pass

    async def _worker(self, index: int) -> None:
        while True:
            if index and self._quiet is not None:
                await self._quiet.wait()
            item = await self._queue.get()
            try:
                if index and self._quiet is not None and not self._quiet.is_set():
                    await self._quiet.wait()  # bindings began while this writer waited for work
                await self._write(*item)
            except asyncio.CancelledError:
                raise
            except errors.ApiError as exc:
                log.debug("event not written: %s", exc.message)
            except Exception:
                log.exception("event not written")
            finally:
                self._queue.task_done()

    async def _write(self, pod: dict[str, Any], type_: str, reason: str, action: str, message: str,
                     when: datetime | None = None, annotations: dict[str, str] | None = None) -> None:
        meta = pod.get("metadata") or {}
        key = (meta.get("uid", ""), reason, message)
        ts = now_rfc3339()
        prior = self._seen.get(key)
        if prior is not None:
            prior["count"] += 1
            try:
                await self.client.patch(EVENTS, prior["metadata"]["name"],
                                        {"count": prior["count"], "lastTimestamp": ts},
                                        prior["metadata"]["namespace"])
                self._seen.move_to_end(key)
                return
            except errors.ApiError as exc:
                if exc.code != 404:
                    raise
                del self._seen[key]
        ev = event_for(pod, type_, reason, action, message, self.component, self.instance, ts,
                       when, annotations)
        await self.client.create(EVENTS, ev)
        self._seen[key] = {"metadata": ev["metadata"], "count": 1}
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)
