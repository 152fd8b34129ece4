"""Events about pods, as kubelet's recorder sends them (source kubelet/<node>),
with repeats of the same event folded into count + lastTimestamp.

Each event carries `eventTime` (microseconds) taken when the step happened, not when
the write got through: `kubeling trace` builds a pod's timeline from these."""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any

from kubeling import errors
from kubeling.client import Client
from kubeling.resources import lookup
from kubeling.timefmt import format_micro_time, format_time

log = logging.getLogger("agent.events")
EVENTS = lookup("events")
FOLD_WINDOW = 600.0
MAX_REMEMBERED = 4096


def _at(when: float | None) -> datetime:
    return datetime.fromtimestamp(time.time() if when is None else when, timezone.utc)


class EventRecorder:
    def __init__(self, client: Client, node_name: str, component: str = "kubelet") -> None:
        self.client = client
        self.node = node_name
        self.component = component
        self._seen: dict[tuple, tuple[str, int, float]] = {}
        self._tasks: set[asyncio.Task] = set()

    def pod_event(self, pod: dict[str, Any], typ: str, reason: str, message: str,
                  container: str = "", init: bool = False, at: float | None = None,
                  annotations: dict[str, str] | None = None) -> None:
        """Record an event about `pod`; `at` (epoch seconds) when the step happened
        earlier than now."""
        meta = pod.get("metadata") or {}
        involved = {"kind": "Pod", "apiVersion": "v1", "namespace": meta.get("namespace"),
                    "name": meta.get("name"), "uid": meta.get("uid"),
                    "resourceVersion": meta.get("resourceVersion")}
        if container:
            involved["fieldPath"] = f"spec.{'initContainers' if init else 'containers'}{{{container}}}"
        self._spawn(involved, typ, reason, message, _at(at), annotations)

    def object_event(self, involved: dict[str, Any], typ: str, reason: str, message: str,
                     at: float | None = None, annotations: dict[str, str] | None = None) -> None:
        """Record an event about any object (kind, apiVersion, namespace, name, uid). Each is
        an Event of its own, never folded into an earlier one: its time is what it says."""
        self._spawn(dict(involved), typ, reason, message, _at(at), annotations, fold=False)

    def _spawn(self, involved: dict[str, Any], typ: str, reason: str, message: str, when: datetime,
               annotations: dict[str, str] | None, fold: bool = True) -> None:
        task = asyncio.create_task(self._send(involved, typ, reason, message, when, annotations, fold))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, involved: dict[str, Any], typ: str, reason: str, message: str,
                    when: datetime, annotations: dict[str, str] | None, fold: bool = True) -> None:
        ns = involved["namespace"]
        key = (involved.get("kind"), ns, involved.get("name"), involved.get("uid"), involved.get("fieldPath"),
               typ, reason, message)
        now = format_time(when)
        seen = self._seen.get(key) if fold else None
        try:
            if seen and time.monotonic() - seen[2] < FOLD_WINDOW:
                name, count, _ = seen
                self._seen[key] = (name, count + 1, time.monotonic())
                await self.client.patch(EVENTS, name, {"count": count + 1, "lastTimestamp": now}, ns)
                return
            # kubelet names events <object>.<unix nanos in hex>: names sort in time order,
            # which is how kubectl describe orders events of the same second.
            name = f"{involved['name']}.{time.time_ns():x}"
            if fold:
                self._remember(key, name)
            metadata: dict[str, Any] = {"name": name, "namespace": ns}
            if annotations:
                metadata["annotations"] = dict(annotations)
            await self.client.create(EVENTS, {
                "apiVersion": "v1", "kind": "Event",
                "metadata": metadata,
                "involvedObject": involved, "reason": reason, "message": message, "type": typ,
                "source": {"component": self.component, "host": self.node},
                "firstTimestamp": now, "lastTimestamp": now, "count": 1,
                "eventTime": format_micro_time(when), "action": reason,
                "reportingComponent": self.component, "reportingInstance": self.node}, ns)
        except errors.ApiError as exc:
            log.debug("event %s/%s not recorded: %s", reason, involved.get("name"), exc.message)
        except Exception as exc:  # events are best effort
            log.debug("event not recorded: %s", exc)

    def _remember(self, key: tuple, name: str) -> None:
        now = time.monotonic()
        if len(self._seen) >= MAX_REMEMBERED:   # past the fold window they fold no more: forget them
            for k in [k for k, v in self._seen.items() if now - v[2] >= FOLD_WINDOW]:
                del self._seen[k]
            while len(self._seen) >= MAX_REMEMBERED:
                del self._seen[next(iter(self._seen))]
        self._seen[key] = (name, 1, now)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
