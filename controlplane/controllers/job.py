"""The Job controller (Kubernetes' pkg/controller/job), NonIndexed and Indexed completion modes.

Keeps `min(parallelism, completions - succeeded)` pods running; counts Succeeded
and Failed pods (for restartPolicy OnFailure also container restarts) against
spec.backoffLimit; enforces activeDeadlineSeconds; marks the Job Complete
(SuccessCriteriaMet, then Complete) or Failed (FailureTarget, then Failed, reason
BackoffLimitExceeded or DeadlineExceeded) and stops its remaining pods. A failed
pod is replaced after an exponential back-off (10 s, 20 s, ... like Kubernetes).

Counting is by the pods present, as Kubernetes did before the job-tracking
finalizer: counts never go down, so a finished pod deleted by hand is not forgotten
while the controller runs.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Callable

from kubeling.client import Client
from kubeling.resources import lookup
from kubeling.shared_informers import SharedInformers
from kubeling.timefmt import format_time, parse_time

from . import controller_ref
from .pod_owner import NORMAL, WARNING, PodOwnerController, key_of, pod_from_template, utcnow

JOBS = lookup("jobs")
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
DEFAULT_BACKOFF = 10.0
MAX_BACKOFF = 360.0


def condition(ctype: str, reason: str, message: str, now: str) -> dict[str, Any]:
    return {"type": ctype, "status": "True", "reason": reason, "message": message,
            "lastProbeTime": now, "lastTransitionTime": now}


def has_condition(status: dict[str, Any], ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True" for c in status.get("conditions") or [])


def is_finished(job: dict[str, Any]) -> bool:
    status = job.get("status") or {}
    return has_condition(status, "Complete") or has_condition(status, "Failed")


def wanted_active(spec: dict[str, Any], succeeded: int) -> int:
    """How many pods should run now (Kubernetes' manageJob for NonIndexed jobs)."""
    parallelism = spec.get("parallelism")
    parallelism = 1 if parallelism is None else parallelism
    completions = spec.get("completions")
    if completions is None:
        # Work-queue jobs: once one pod succeeded, no new pods start.
        return 0 if succeeded > 0 else parallelism
    return max(0, min(parallelism, completions - succeeded))


def restarts(pod: dict[str, Any]) -> int:
    status = pod.get("status") or {}
    return sum(int(c.get("restartCount") or 0) for c in (status.get("containerStatuses") or [])
               + (status.get("initContainerStatuses") or []))


def index_of(pod: dict[str, Any]) -> int | None:
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(INDEX_ANNOTATION)
    return int(value) if isinstance(value, str) and value.isdigit() else None


def format_ranges(indexes: set[int]) -> str:
    """status.completedIndexes: sorted, consecutive runs as ranges ("0-2,4")."""
    runs: list[list[int]] = []
    for i in sorted(indexes):
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def parse_ranges(text: str) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            out.update(range(int(lo), int(hi or lo) + 1))
    return out


def indexed_pod(job: dict[str, Any], template: dict[str, Any], index: int) -> dict[str, Any]:
    """A pod of an Indexed job: its index in an annotation and label, JOB_COMPLETION_INDEX
    in every container (from the annotation, as Kubernetes does), hostname `<job>-<index>`."""
    name = job["metadata"]["name"]
    pod = pod_from_template(job, template, generate_name=f"{name}-{index}-",
                            extra_labels={INDEX_ANNOTATION: str(index)})
    pod["metadata"].setdefault("annotations", {})[INDEX_ANNOTATION] = str(index)
    pod["spec"].setdefault("hostname", f"{name}-{index}")
    env = {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
        "fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}}}
    for field in ("initContainers", "containers"):
        for c in pod["spec"].get(field) or []:
            if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in c.get("env") or []):
                c.setdefault("env", []).append(dict(env))
    return pod


class JobController(PodOwnerController):
    res = JOBS
    component = "job-controller"

    def __init__(self, client: Client, informers: SharedInformers, workers: int = 2,
                 clock: Callable[[], datetime] = utcnow, backoff: float = DEFAULT_BACKOFF) -> None:
        super().__init__(client, informers, workers)
        self.clock = clock
        self.backoff = backoff

    async def sync_owner(self, job: dict[str, Any]) -> None:
        if is_finished(job) or (job.get("metadata") or {}).get("deletionTimestamp"):
            return
        spec, old_status = job.get("spec") or {}, job.get("status") or {}
        status = dict(old_status)
        now = self.clock()
        now_s = format_time(now)
        pods = await self.owned_pods(job)
        active = [p for p in pods if controller_ref.is_active(p)]
        terminating = sum(1 for p in pods if (p.get("metadata") or {}).get("deletionTimestamp")
                          and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed"))
        succeeded_pods = [p for p in pods if (p.get("status") or {}).get("phase") == "Succeeded"]
        failed_pods = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed"]
        indexed = spec.get("completionMode") == "Indexed"
        done_indexes = {i for i in (index_of(p) for p in succeeded_pods)
                        if i is not None and i < (spec.get("completions") or 0)}
        if indexed:
            done_indexes |= parse_ranges(old_status.get("completedIndexes") or "")
            succeeded_pods = [p for p in succeeded_pods if index_of(p) in done_indexes]
            status["completedIndexes"] = format_ranges(done_indexes)
            if not status["completedIndexes"]:
                del status["completedIndexes"]
        succeeded = len(done_indexes) if indexed else \
            max(len(succeeded_pods), int(old_status.get("succeeded") or 0))
        failed = max(len(failed_pods), int(old_status.get("failed") or 0))
        conditions = list(status.get("conditions") or [])

        if spec.get("suspend"):
            for p in active:
                await self.delete_pod(job, p)
            if not has_condition(status, "Suspended"):
                conditions = [c for c in conditions if c.get("type") != "Suspended"]
                conditions.append(condition("Suspended", "JobSuspended", "Job suspended", now_s))
                self.events.event(job, NORMAL, "Suspended", "Job suspended")
            status.update(active=0, ready=0, conditions=conditions)
            status.pop("startTime", None)
            await self._finish_status(job, status, succeeded, failed, terminating)
            return
        if has_condition(status, "Suspended"):
            conditions = [c for c in conditions if c.get("type") != "Suspended"]
            self.events.event(job, NORMAL, "Resumed", "Job resumed")
        if not status.get("startTime"):
            status["startTime"] = now_s
        start = parse_time(status["startTime"]) or now

        failure: tuple[str, str] | None = None
        limit = spec.get("backoffLimit")
        limit = 6 if limit is None else limit
        restart_policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
        on_failure_restarts = sum(restarts(p) for p in active) if restart_policy == "OnFailure" else 0
        if failed > limit or (restart_policy == "OnFailure" and on_failure_restarts > limit):
            failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
        deadline = spec.get("activeDeadlineSeconds")
        if failure is None and deadline is not None and now - start >= timedelta(seconds=deadline):
            failure = ("DeadlineExceeded", "Job was active longer than specified deadline")

        completions = spec.get("completions")
        complete = failure is None and (
            (completions is not None and succeeded >= completions)
            or (completions is None and succeeded > 0 and not active))

        if failure is not None:
            for p in active:
                await self.delete_pod(job, p)
            conditions += [condition("FailureTarget", *failure, now_s), condition("Failed", *failure, now_s)]
            status.update(conditions=conditions, active=0, ready=0)
            await self._finish_status(job, status, succeeded, failed, terminating)
            self.events.event(job, WARNING, failure[0], failure[1])  # after the write: a 409 retries first
            return
        if complete:
            for p in active:  # e.g. parallel pods still running when enough succeeded
                await self.delete_pod(job, p)
            conditions += [condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of "
                                     "succeeded pods", now_s),
                           condition("Complete", "CompletionsReached", "Reached expected number of succeeded "
                                     "pods", now_s)]
            status.update(conditions=conditions, active=0, ready=0, completionTime=now_s)
            await self._finish_status(job, status, succeeded, failed, terminating)
            self.events.event(job, NORMAL, "Completed", "Job completed")
            return

        want = wanted_active(spec, succeeded)
        if len(active) > want:
            # Newest first, as Kubernetes' ActivePods ordering prefers to delete young pods.
            extra = sorted(active, key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "",
                           reverse=True)[:len(active) - want]
            for p in extra:
                await self.delete_pod(job, p)
            active = [p for p in active if p not in extra]
        elif len(active) < want:
            wait = self._backoff_left(failed_pods, failed, now)
            if wait > 0:
                self.queue.add_after(key_of(job), wait)
            else:
                template = spec.get("template") or {}
                if indexed:
                    busy = {index_of(p) for p in active} | done_indexes
                    todo = [i for i in range(spec.get("completions") or 0) if i not in busy]
                    new_pods = [indexed_pod(job, template, i) for i in todo[:want - len(active)]]
                else:
                    new_pods = [pod_from_template(job, template, generate_name=f"{job['metadata']['name']}-")
                                for _ in range(want - len(active))]
                for pod in new_pods:
                    created = await self.create_pod(job, pod)
                    if created is not None:
                        active.append(created)
        if deadline is not None:
            left = (start + timedelta(seconds=deadline) - now).total_seconds()
            self.queue.add_after(key_of(job), max(left, 0) + 0.05)
        status["conditions"] = conditions
        status["active"] = len(active)
        status["ready"] = sum(1 for p in active if controller_ref.is_pod_ready(p))
        await self._finish_status(job, status, succeeded, failed, terminating)

    def _backoff_left(self, failed_pods: list[dict[str, Any]], failed: int, now: datetime) -> float:
        """Seconds until a replacement may start after the latest failure (0: now)."""
        if not failed_pods or failed == 0:
            return 0.0
        delay = min(self.backoff * (2 ** (failed - 1)), MAX_BACKOFF)
        last = None
        for p in failed_pods:
            for cs in (p.get("status") or {}).get("containerStatuses") or []:
                t = parse_time(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
                if t is not None and (last is None or t > last):
                    last = t
            for c in (p.get("status") or {}).get("conditions") or []:
                t = parse_time(c.get("lastTransitionTime"))
                if t is not None and (last is None or t > last):
                    last = t
        if last is None:
            return 0.0
        return max(0.0, (last + timedelta(seconds=delay) - now).total_seconds())

    async def _finish_status(self, job: dict[str, Any], status: dict[str, Any], succeeded: int, failed: int,
                             terminating: int = 0) -> None:
        """Counts as Kubernetes serializes them: active/succeeded/failed omitted at 0,
        ready and terminating always present."""
        status["terminating"] = terminating
        for field, value in (("succeeded", succeeded), ("failed", failed), ("active", status.get("active") or 0)):
            if value:
                status[field] = value
            else:
                status.pop(field, None)
        if not status.get("conditions"):
            status.pop("conditions", None)
        status.setdefault("uncountedTerminatedPods", {})
        await self.write_status(job, status)
