"""Events about any object, written the way client-go's recorder writes them
(`source.component`, `involvedObject`, `reason`, `message`), without blocking the
controller: each write is its own task, failures are logged and dropped."""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any

from kubeling.client import Client
from kubeling.resources import lookup
from kubeling.timefmt import format_micro_time

EVENTS = lookup("events")
log = logging.getLogger("kubeling.events")


class EventRecorder:
    def __init__(self, client: Client, component: str) -> None:
        self.client, self.component = client, component
        self._tasks: set[asyncio.Task] = set()

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str,
              annotations: dict[str, str] | None = None) -> None:
        """`annotations`: kubeling's details for `kubeling trace`, on the Event object."""
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        when = datetime.now(timezone.utc)
        now = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        metadata: dict[str, Any] = {"name": f"{meta.get('name', '')}.{time.time_ns():x}", "namespace": ns}
        if annotations:
            metadata["annotations"] = dict(annotations)
        ev = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": metadata, "eventTime": format_micro_time(when), "action": reason,
            "involvedObject": {"kind": obj.get("kind", ""), "apiVersion": obj.get("apiVersion", ""),
                               "namespace": ns, "name": meta.get("name", ""), "uid": meta.get("uid", ""),
                               "resourceVersion": meta.get("resourceVersion", "")},
            "reason": reason, "message": message, "type": type_,
            "source": {"component": self.component}, "reportingComponent": self.component,
            "reportingInstance": self.component,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        task = asyncio.get_running_loop().create_task(self._write(ev))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, ev: dict[str, Any]) -> None:
        try:
            await self.client.create(EVENTS, ev)
        except Exception as exc:  # an event is best effort, as in client-go
            log.info("event %s dropped: %s", ev["reason"], exc)
