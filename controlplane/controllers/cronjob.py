"""The CronJob controller (Kubernetes' pkg/controller/cronjob, the v2 controller).

Per CronJob: reconcile status.active with the Jobs it owns (SawCompletedJob when one
finishes), then, unless suspended, find the most recent scheduled time not yet run
(from lastScheduleTime or creation, no earlier than now - startingDeadlineSeconds),
apply concurrencyPolicy (Allow, Forbid, Replace) and create the Job
`<cronjob>-<minutes since epoch>` with the `batch.kubernetes.io/cronjob-scheduled-timestamp`
annotation; trim finished Jobs beyond the history limits; requeue for the next time.
The clock is injectable, and the schedule arithmetic is pure functions.
"""
from __future__ import annotations

import copy
import logging
from datetime import datetime, timedelta, tzinfo
from typing import Any, Callable

from kubeling import cron, errors
from kubeling.client import Client
from kubeling.resources import lookup
from kubeling.shared_informers import SharedInformers
from kubeling.timefmt import format_time, parse_time

from . import controller_ref
from .event_recorder import EventRecorder
from .job import has_condition
from .pod_owner import NORMAL, WARNING, Key, key_of, utcnow
from .queue_worker import QueueWorker
from .workqueue import WorkQueue

CRONJOBS, JOBS = lookup("cronjobs"), lookup("jobs")
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
MAX_MISSED = 100
NEXT_DELTA = 0.1  # seconds after the scheduled time, so the sync sees it as due


def most_recent_schedule(schedule: cron.Schedule, tz: tzinfo, earliest: datetime, now: datetime
                         ) -> tuple[datetime | None, int]:
    """(the latest activation in (earliest, now], how many there were) — capped count:
    Kubernetes only needs to know there were more than MAX_MISSED."""
    t = schedule.next(earliest, tz)
    if t is None or t > now:
        return None, 0
    latest, count = t, 1
    while True:
        t = schedule.next(t, tz)
        if t is None or t > now:
            return latest, count
        latest, count = t, count + 1
        if count > MAX_MISSED:
            # Jump: the most recent one is found by stepping back from now.
            last = _last_before(schedule, tz, now, t)
            return last, count


def _last_before(schedule: cron.Schedule, tz: tzinfo, now: datetime, floor: datetime) -> datetime:
    step = timedelta(minutes=1)
    lo = max(floor, now - timedelta(days=1))
    candidate = floor
    t = schedule.next(lo - step, tz)
    while t is not None and t <= now:
        candidate = t
        t = schedule.next(t, tz)
    return candidate


def earliest_time(cj: dict[str, Any], now: datetime) -> datetime:
    meta, spec, status = cj.get("metadata") or {}, cj.get("spec") or {}, cj.get("status") or {}
    earliest = parse_time(status.get("lastScheduleTime")) or parse_time(meta.get("creationTimestamp")) or now
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None:
        floor = now - timedelta(seconds=deadline)
        if floor > earliest:
            earliest = floor
    return earliest


def next_schedule_delay(schedule: cron.Schedule, tz: tzinfo, now: datetime) -> float | None:
    t = schedule.next(now, tz)
    return None if t is None else (t - now).total_seconds() + NEXT_DELTA


def job_name(cj_name: str, scheduled: datetime) -> str:
    return f"{cj_name}-{int(scheduled.timestamp()) // 60}"


def is_finished(job: dict[str, Any]) -> tuple[bool, str]:
    status = job.get("status") or {}
    for ctype in ("Complete", "Failed"):
        if has_condition(status, ctype):
            return True, ctype
    return False, ""


def object_ref(job: dict[str, Any]) -> dict[str, Any]:
    meta = job["metadata"]
    return {"kind": "Job", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"],
            "apiVersion": "batch/v1", "resourceVersion": meta.get("resourceVersion", "")}


class CronJobController(QueueWorker):
    component = "cronjob-controller"

    def __init__(self, client: Client, informers: SharedInformers, workers: int = 2,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.client = client
        self.workers = workers
        self.clock = clock
        self.log = logging.getLogger(f"kubeling.{self.component}")
        self.events = EventRecorder(client, self.component)
        self.queue = WorkQueue()
        self.informers = informers
        self._created: set[str] = set()  # uids of jobs we made (the informer may not show them yet)
        self.cronjobs = self.watch(CRONJOBS, self._changed, lambda _o, n: self._changed(n),
                                               self._changed)
        self.jobs = self.watch(JOBS, self._job_changed, lambda _o, n: self._job_changed(n),
                                           self._job_changed)

    def _changed(self, cj: dict[str, Any]) -> None:
        self.queue.add(key_of(cj))

    def _job_changed(self, job: dict[str, Any]) -> None:
        ref = controller_ref.controller_of(job)
        if ref is not None and ref.get("kind") == "CronJob":
            self.queue.add((key_of(job)[0], ref.get("name") or ""))

    def owned_jobs(self, cj: dict[str, Any]) -> list[dict[str, Any]]:
        ns, uid = key_of(cj)[0], cj["metadata"]["uid"]
        return [j for j in self.jobs.items() if key_of(j)[0] == ns
                and (controller_ref.controller_of(j) or {}).get("uid") == uid]

    async def sync(self, key: Key) -> None:
        cj = self.cronjobs.get(*key)
        if cj is None:
            return
        cj = copy.deepcopy(cj)
        cj.setdefault("kind", "CronJob")
        cj.setdefault("apiVersion", "batch/v1")
        status = copy.deepcopy(cj.get("status") or {})
        jobs = self.owned_jobs(cj)
        delay = await self.sync_cronjob(cj, status, jobs)
        await self._write_status(cj, status)
        await self._cleanup(cj, jobs)
        if delay is not None:
            self.queue.add_after(key, delay)

    async def sync_cronjob(self, cj: dict[str, Any], status: dict[str, Any], jobs: list[dict[str, Any]]
                           ) -> float | None:
        """Mutates `status`; returns seconds until the next sync is needed (None: never)."""
        name = cj["metadata"]["name"]
        active = {r.get("uid"): r for r in status.get("active") or []}
        by_uid = {j["metadata"]["uid"]: j for j in jobs}
        for job in jobs:
            done, how = is_finished(job)
            uid = job["metadata"]["uid"]
            if not done and uid not in active:
                if uid not in self._created:
                        self.events.event(cj, WARNING, "UnexpectedJob", "Saw a job that the controller did not "
                                      f"create or forgot: {job['metadata']['name']}")
                active[uid] = object_ref(job)
            elif done and uid in active:
                del active[uid]
                self.events.event(cj, NORMAL, "SawCompletedJob",
                                  f"Saw completed job: {job['metadata']['name']}, status: {how}")
                if how == "Complete":
                    finished = parse_time((job.get("status") or {}).get("completionTime"))
                    last = parse_time(status.get("lastSuccessfulTime"))
                    if finished is not None and (last is None or finished > last):
                        status["lastSuccessfulTime"] = format_time(finished)
        for uid in list(active):
            if uid not in by_uid:
                del active[uid]  # gone (deleted): forget it
        status["active"] = sorted(active.values(), key=lambda r: r.get("name") or "")
        if not status["active"]:
            del status["active"]
        if cj["metadata"].get("deletionTimestamp"):
            return None
        spec = cj.get("spec") or {}
        if spec.get("suspend"):
            return None
        try:
            schedule = cron.parse(spec.get("schedule") or "")
            tz = cron.zone(spec.get("timeZone"))
        except cron.CronError as exc:
            self.events.event(cj, WARNING, "UnparseableSchedule", f"unparseable schedule: {exc}")
            return None
        now = self.clock()
        scheduled, missed = most_recent_schedule(schedule, tz, earliest_time(cj, now), now)
        next_delay = next_schedule_delay(schedule, tz, now)
        if scheduled is None:
            return next_delay
        if missed > MAX_MISSED:
            self.events.event(cj, WARNING, "TooManyMissedTimes",
                              "too many missed start times. Set or decrease .spec.startingDeadlineSeconds "
                              "or check clock skew")
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and scheduled + timedelta(seconds=deadline) < now:
            self.events.event(cj, WARNING, "MissSchedule",
                              f"Missed scheduled time to start a job: {format_time(scheduled)}")
            return next_delay
        wanted = job_name(name, scheduled)
        if any(j["metadata"]["name"] == wanted for j in jobs):
            return next_delay  # this time was already run
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and status.get("active"):
            self.events.event(cj, NORMAL, "JobAlreadyActive",
                              "Not starting job because prior execution is running and concurrency policy is Forbid")
            return next_delay
        if policy == "Replace":
            for ref in list(status.get("active") or []):
                await self._delete_job(cj, ref["name"])
            status.pop("active", None)
        job = self._job_from_template(cj, wanted, scheduled)
        try:
            created = await self.client.create(JOBS, job, key_of(cj)[0])
        except errors.ApiError as exc:
            if exc.reason != "AlreadyExists":
                self.events.event(cj, WARNING, "FailedCreate", f"Error creating job: {exc.message}")
                raise
            return next_delay
        self._created.add(created["metadata"]["uid"])
        self.events.event(cj, NORMAL, "SuccessfulCreate", f"Created job {wanted}")
        status.setdefault("active", []).append(object_ref(created))
        status["lastScheduleTime"] = format_time(scheduled)
        return next_delay

    @staticmethod
    def _job_from_template(cj: dict[str, Any], name: str, scheduled: datetime) -> dict[str, Any]:
        template = copy.deepcopy((cj.get("spec") or {}).get("jobTemplate") or {})
        tmeta = template.get("metadata") or {}
        annotations = dict(tmeta.get("annotations") or {})
        annotations[SCHEDULED_TIMESTAMP] = format_time(scheduled)
        return {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": name, "labels": dict(tmeta.get("labels") or {}), "annotations": annotations,
                             "ownerReferences": [controller_ref.owner_ref(cj)]},
                "spec": template.get("spec") or {}}

    async def _delete_job(self, cj: dict[str, Any], name: str) -> None:
        from kubeling.client import resource_path
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            await self.client.request("DELETE", resource_path(JOBS, key_of(cj)[0], name), body)
        except errors.ApiError as exc:
            if exc.code != 404:
                raise
            return
        self.events.event(cj, NORMAL, "SuccessfulDelete", f"Deleted job {name}")

    async def _cleanup(self, cj: dict[str, Any], jobs: list[dict[str, Any]]) -> None:
        """Keep the newest finished jobs up to the history limits (by start time)."""
        spec = cj.get("spec") or {}
        limits = {"Complete": spec.get("successfulJobsHistoryLimit"), "Failed": spec.get("failedJobsHistoryLimit")}
        for how, limit in limits.items():
            if limit is None:
                continue
            done = [j for j in jobs if is_finished(j) == (True, how) and not j["metadata"].get("deletionTimestamp")]
            done.sort(key=lambda j: (j.get("status") or {}).get("startTime") or j["metadata"].get("creationTimestamp")
                      or "")
            for job in done[:max(0, len(done) - limit)]:
                await self._delete_job(cj, job["metadata"]["name"])

    async def _write_status(self, cj: dict[str, Any], status: dict[str, Any]) -> None:
        if (cj.get("status") or {}) == status:
            return
        new = copy.deepcopy(cj)
        new["status"] = status
        try:
            await self.client.update(CRONJOBS, new, "status")
        except errors.ApiError as exc:
            if exc.code != 404:
                raise
