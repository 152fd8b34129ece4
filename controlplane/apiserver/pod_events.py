"""The API server's part of a pod's trace: an Event when a pod is stored (with the
etcd revision and when its request was received), when its deletion is asked for
(grace period) and when it leaves etcd. `creationTimestamp` has only second precision;
these carry microseconds in `eventTime`.

Written after the response is decided, each in its own task: the request never waits
for them, and a failed write is only logged."""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any

from kubeling.resources import lookup
from kubeling.timefmt import format_micro_time, format_time

from .registry import Registry

log = logging.getLogger("kubeling.apiserver.pod_events")
EVENTS = lookup("events")
COMPONENT = "kube-apiserver"
RECEIVED_ANNOTATION = "trace.kubeling.io/received-at"
REVISION_ANNOTATION = "trace.kubeling.io/revision"


class PodEvents:
    def __init__(self, registry: Registry, instance: str = COMPONENT) -> None:
        self.registry = registry
        self.instance = instance
        self._tasks: set[asyncio.Task] = set()

    def stored(self, pod: dict[str, Any], received_at: float) -> None:
        meta = pod.get("metadata") or {}
        rev = str(meta.get("resourceVersion", ""))
        self._record(pod, "Stored", f"Stored in etcd at /registry/pods/{meta.get('namespace')}/"
                     f"{meta.get('name')}, revision {rev}", received_at, {REVISION_ANNOTATION: rev})

    def deleted(self, pod: dict[str, Any], removed: bool, received_at: float) -> None:
        meta = pod.get("metadata") or {}
        if removed:
            self._record(pod, "Removed", f"Removed from etcd (/registry/pods/{meta.get('namespace')}/"
                         f"{meta.get('name')})", received_at, {})
        else:
            grace = meta.get("deletionGracePeriodSeconds")
            self._record(pod, "DeletionRequested", f"Deletion requested, grace period {grace}s",
                         received_at, {})

    def _record(self, pod: dict[str, Any], reason: str, message: str, received_at: float,
                annotations: dict[str, str]) -> None:
        meta = pod.get("metadata") or {}
        when = datetime.now(timezone.utc)
        ns = meta.get("namespace") or "default"
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta.get('name', '')}.{time.time_ns():x}", "namespace": ns,
                         "annotations": {**annotations, RECEIVED_ANNOTATION: format_micro_time(
                             datetime.fromtimestamp(received_at, timezone.utc))}},
            "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": ns, "name": meta.get("name", ""),
                               "uid": meta.get("uid", ""), "resourceVersion": str(meta.get("resourceVersion", ""))},
            "reason": reason, "message": message, "type": "Normal", "action": reason,
            "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
            "reportingInstance": self.instance, "eventTime": format_micro_time(when),
            "firstTimestamp": format_time(when), "lastTimestamp": format_time(when), "count": 1,
        }
        task = asyncio.get_running_loop().create_task(self._write(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, event: dict[str, Any]) -> None:
        try:
            await self.registry.create(EVENTS, event["metadata"]["namespace"], event)
        except Exception as exc:  # best effort, as every event
            log.debug("event %s not recorded: %s", event["reason"], exc)
