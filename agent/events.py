"""Events about pods, as kubelet's recorder sends them (source kubelet/<node>),
with repeats of the same event folded into count + lastTimestamp."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from agent.pod_status import now_str
from kubeling import errors
from kubeling.client import Client
from kubeling.resources import lookup

log = logging.getLogger("agent.events")
EVENTS = lookup("events")
FOLD_WINDOW = 600.0


class EventRecorder:
    def __init__(self, client: Client, node_name: str) -> None:
        self.client = client
        self.node = node_name
        self._seen: dict[tuple, tuple[str, int, float]] = {}
        self._tasks: set[asyncio.Task] = set()

    def pod_event(self, pod: dict[str, Any], typ: str, reason: str, message: str,
                  container: str = "", init: bool = False) -> None:
        meta = pod.get("metadata") or {}
        involved = {"kind": "Pod", "apiVersion": "v1", "namespace": meta.get("namespace"),
                    "name": meta.get("name"), "uid": meta.get("uid"),
                    "resourceVersion": meta.get("resourceVersion")}
        if container:
            involved["fieldPath"] = f"spec.{'initContainers' if init else 'containers'}{{{container}}}"
        task = asyncio.create_task(self._send(involved, typ, reason, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, involved: dict[str, Any], typ: str, reason: str, message: str) -> None:
        ns = involved["namespace"]
        key = (involved.get("uid"), involved.get("fieldPath"), typ, reason, message)
        now = now_str()
        seen = self._seen.get(key)
        try:
            if seen and time.monotonic() - seen[2] < FOLD_WINDOW:
                name, count, _ = seen
                self._seen[key] = (name, count + 1, time.monotonic())
                await self.client.patch(EVENTS, name, {"count": count + 1, "lastTimestamp": now}, ns)
                return
            # kubelet names events <object>.<unix nanos in hex>: names sort in time order,
            # which is how kubectl describe orders events of the same second.
            name = f"{involved['name']}.{time.time_ns():x}"
            self._seen[key] = (name, 1, time.monotonic())
            await self.client.create(EVENTS, {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": ns},
                "involvedObject": involved, "reason": reason, "message": message, "type": typ,
                "source": {"component": "kubelet", "host": self.node},
                "firstTimestamp": now, "lastTimestamp": now, "count": 1,
                "reportingComponent": "kubelet", "reportingInstance": self.node}, ns)
        except errors.ApiError as exc:
            log.debug("event %s/%s not recorded: %s", reason, involved.get("name"), exc.message)
        except Exception as exc:  # events are best effort
            log.debug("event not recorded: %s", exc)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
