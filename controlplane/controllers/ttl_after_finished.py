"""The TTL-after-finished controller (Kubernetes' pkg/controller/ttlafterfinished):
a finished Job (Complete or Failed) with spec.ttlSecondsAfterFinished is deleted,
with its pods (background propagation), that many seconds after it finished."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Callable

from kubeling import errors
from kubeling.client import Client, resource_path
from kubeling.resources import lookup
from kubeling.shared_informers import SharedInformers
from kubeling.timefmt import parse_time

from .pod_owner import Key, key_of, utcnow
from .queue_worker import QueueWorker
from .workqueue import WorkQueue

JOBS = lookup("jobs")


def finish_time(job: dict[str, Any]) -> datetime | None:
    """When the job finished: the time its Complete or Failed condition turned True."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return parse_time(c.get("lastTransitionTime")) or parse_time((job.get("status") or {}).get("completionTime"))
    return None


def expires_at(job: dict[str, Any]) -> datetime | None:
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    finished = finish_time(job)
    if ttl is None or finished is None or (job.get("metadata") or {}).get("deletionTimestamp"):
        return None
    return finished + timedelta(seconds=ttl)


class TTLAfterFinishedController(QueueWorker):
    def __init__(self, client: Client, informers: SharedInformers, clock: Callable[[], datetime] = utcnow) -> None:
        self.client, self.clock = client, clock
        self.log = logging.getLogger("kubeling.ttl-after-finished-controller")
        self.queue = WorkQueue()
        self.informers = informers
        self.jobs = self.watch(JOBS, self._changed, lambda _o, n: self._changed(n))

    def _changed(self, job: dict[str, Any]) -> None:
        if expires_at(job) is not None:
            self.queue.add(key_of(job))

    async def sync(self, key: Key) -> None:
        job = self.jobs.get(*key)
        when = expires_at(job) if job is not None else None
        if when is None:
            return
        left = (when - self.clock()).total_seconds()
        if left > 0:
            self.queue.add_after(key, left + 0.05)
            return
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background",
                "preconditions": {"uid": job["metadata"]["uid"]}}
        try:
            await self.client.request("DELETE", resource_path(JOBS, key[0], key[1]), body)
            self.log.info("deleted finished job %s/%s (ttlSecondsAfterFinished)", *key)
        except errors.ApiError as exc:
            if exc.code not in (404, 409):
                raise
