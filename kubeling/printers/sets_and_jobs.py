"""Rows for DaemonSets, StatefulSets, Jobs and CronJobs, with the columns of
Kubernetes' printers.go (printDaemonSet, printStatefulSet, printJob, printCronJob)."""
from __future__ import annotations

from datetime import datetime

from kubeling import timefmt
from kubeling.printers.access import format_labels, get, integer, items, mapping, text
from kubeling.printers.columns import age_column, column, name_column
from kubeling.selectors import label_selector_from_dict

_CONTAINERS = column("Containers", "Names of each container in the template.", priority=1)
_IMAGES = column("Images", "Images referenced by each container in the template.", priority=1)

DAEMONSET_COLUMNS = [
    name_column(),
    column("Desired", "The total number of nodes that should be running the daemon pod (including nodes "
                      "correctly running the daemon pod).", type="integer"),
    column("Current", "The number of nodes that are running at least 1 daemon pod and are supposed to "
                      "run the daemon pod.", type="integer"),
    column("Ready", "numberReady is the number of nodes that should be running the daemon pod and have one "
                    "or more of the daemon pod running with a Ready Condition.", type="integer"),
    column("Up-to-date", "The total number of nodes that are running updated daemon pod", type="integer"),
    column("Available", "The number of nodes that should be running the daemon pod and have one or more of "
                        "the daemon pod running and available (ready for at least spec.minReadySeconds)",
           type="integer"),
    column("Node Selector", "NodeSelector is a selector which must be true for the pod to fit on a node. "
                            "Selector which must match a node's labels for the pod to be scheduled on that "
                            "node."),
    age_column(),
    _CONTAINERS, _IMAGES,
    column("Selector", "A label query over pods that are managed by the daemon set. Must match in order to "
                       "be controlled.", priority=1),
]

STATEFULSET_COLUMNS = [
    name_column(),
    column("Ready", "Number of the pod with ready state"),
    age_column(),
    _CONTAINERS, _IMAGES,
]

JOB_COLUMNS = [
    name_column(),
    column("Status", "Status of the job."),
    column("Completions", "The desired number of successfully finished pods the job should be run with."),
    column("Duration", "Time required to complete the job."),
    age_column(),
    _CONTAINERS, _IMAGES,
    column("Selector", "A label query over pods that should match the pod count.", priority=1),
]

CRONJOB_COLUMNS = [
    name_column(),
    column("Schedule", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
    column("Timezone", "The time zone name for the given schedule, see "
                       "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
    column("Suspend", "This flag tells the controller to suspend subsequent executions.", type="boolean"),
    column("Active", "A list of pointers to currently running jobs.", type="integer"),
    column("Last Schedule", "Information when was the last time the job was successfully scheduled."),
    age_column(),
    _CONTAINERS, _IMAGES,
    column("Selector", "A label query over pods that should match the pod count.", priority=1),
]


def _age(obj: dict, now: datetime) -> str:
    return timefmt.since(get(obj, "metadata", "creationTimestamp"), now)


def _containers(template: object) -> list[str]:
    containers = items(template, "spec", "containers")
    return [",".join(text(c, "name") for c in containers), ",".join(text(c, "image") for c in containers)]


def _selector(sel: object) -> str:
    """metav1.FormatLabelSelector: `<none>` for none, `<error>` when unparsable."""
    if sel is None:
        return "<none>"
    try:
        return str(label_selector_from_dict(sel)) or "<none>"
    except ValueError:
        return "<error>"


def daemonset_row(ds: dict, now: datetime) -> dict:
    st = mapping(ds, "status")
    return {"cells": [text(ds, "metadata", "name"), integer(st, "desiredNumberScheduled"),
                      integer(st, "currentNumberScheduled"), integer(st, "numberReady"),
                      integer(st, "updatedNumberScheduled"), integer(st, "numberAvailable"),
                      format_labels(get(ds, "spec", "template", "spec", "nodeSelector")), _age(ds, now),
                      *_containers(get(ds, "spec", "template")), _selector(get(ds, "spec", "selector"))]}


def statefulset_row(sts: dict, now: datetime) -> dict:
    desired = integer(sts, "spec", "replicas")
    ready = integer(sts, "status", "readyReplicas")
    return {"cells": [text(sts, "metadata", "name"), f"{ready}/{desired}", _age(sts, now),
                      *_containers(get(sts, "spec", "template"))]}


def _has_condition(job: dict, ctype: str) -> bool:
    return any(text(c, "type") == ctype and text(c, "status") == "True" for c in items(job, "status", "conditions"))


def job_status(job: dict) -> str:
    """The STATUS column of kubectl ≥ 1.30 (printJob)."""
    if _has_condition(job, "Complete"):
        return "Complete"
    if _has_condition(job, "Failed"):
        return "Failed"
    if get(job, "metadata", "deletionTimestamp"):
        return "Terminating"
    for ctype in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if _has_condition(job, ctype):
            return ctype
    return "Running"


def job_completions(job: dict) -> str:
    succeeded = integer(job, "status", "succeeded")
    completions = get(job, "spec", "completions")
    if isinstance(completions, int) and not isinstance(completions, bool):
        return f"{succeeded}/{completions}"
    parallelism = integer(job, "spec", "parallelism")
    if parallelism > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def job_duration(job: dict, now: datetime) -> str:
    start = timefmt.parse_time(get(job, "status", "startTime"))
    if start is None:
        return ""
    end = timefmt.parse_time(get(job, "status", "completionTime")) or now
    return timefmt.human_duration(end - start)


def job_row(job: dict, now: datetime) -> dict:
    return {"cells": [text(job, "metadata", "name"), job_status(job), job_completions(job),
                      job_duration(job, now), _age(job, now), *_containers(get(job, "spec", "template")),
                      _selector(get(job, "spec", "selector"))]}


def cronjob_row(cj: dict, now: datetime) -> dict:
    last = get(cj, "status", "lastScheduleTime")
    tz = get(cj, "spec", "timeZone")
    return {"cells": [text(cj, "metadata", "name"), text(cj, "spec", "schedule"),
                      tz if isinstance(tz, str) else "<none>", get(cj, "spec", "suspend") is True,
                      len(items(cj, "status", "active")),
                      timefmt.since(last, now) if last else "<none>", _age(cj, now),
                      *_containers(get(cj, "spec", "jobTemplate", "spec", "template")),
                      _selector(get(cj, "spec", "jobTemplate", "spec", "selector"))]}
