"""Pod rows, computed like kube-apiserver's printPod: READY, the STATUS
reason a user reads (Init:0/1, CrashLoopBackOff, Terminating ...) and
RESTARTS with the time of the last restart."""
from __future__ import annotations

from datetime import datetime

from kubeling import timefmt
from kubeling.printers.access import get, integer, items, mapping, text
from kubeling.printers.columns import age_column, column, name_column

COLUMNS = [
    name_column(),
    column("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    column("Status", "The aggregate status of the containers in this pod."),
    column("Restarts", "The number of times the containers in this pod have been "
                       "restarted and when the last container in this pod has restarted."),
    age_column(),
    column("IP", "IP address allocated to the pod. Routable at least within the cluster.",
           priority=1),
    column("Node", "NodeName indicates in which node this pod is scheduled.", priority=1),
    column("Nominated Node", "nominatedNodeName is set only when this pod preempts other "
                             "pods on the node.", priority=1),
    column("Readiness Gates", "If specified, all readiness gates will be evaluated for "
                              "pod readiness.", priority=1),
]

# status.reason the node lifecycle controller sets on pods of an unreachable node.
NODE_UNREACHABLE_REASON = "NodeLost"

_SUCCEEDED = [{"type": "Completed", "status": "True", "reason": "Succeeded",
               "message": "The pod has completed successfully."}]
_FAILED = [{"type": "Completed", "status": "True", "reason": "Failed",
            "message": "The pod failed."}]


def _condition_true(pod: dict, ctype: str) -> bool:
    return any(text(c, "type") == ctype and text(c, "status") == "True"
               for c in items(pod, "status", "conditions"))


def _later(current: datetime | None, status: dict) -> datetime | None:
    """The later of `current` and this container's last termination time."""
    finished = timefmt.parse_time(get(status, "lastState", "terminated", "finishedAt"))
    if finished is None:
        return current
    if current is None or finished > current:
        return finished
    return current


def _terminated_reason(terminated: dict, prefix: str) -> str:
    reason = text(terminated, "reason")
    if reason:
        return prefix + reason
    signal = integer(terminated, "signal")
    if signal:
        return f"{prefix}Signal:{signal}"
    return f"{prefix}ExitCode:{integer(terminated, 'exitCode')}"


def status_reason(pod: dict) -> tuple[str, int, datetime | None, int, int]:
    """(STATUS, restarts, last restart time, ready containers, total containers)."""
    spec_containers = items(pod, "spec", "containers")
    init_specs = items(pod, "spec", "initContainers")
    total = len(spec_containers)
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    phase = text(pod, "status", "phase")
    reason = text(pod, "status", "reason") or phase
    for cond in items(pod, "status", "conditions"):
        if text(cond, "type") == "PodScheduled" and text(cond, "reason") == "SchedulingGated":
            reason = "SchedulingGated"

    # Sidecars (init containers with restartPolicy Always) count as containers.
    sidecars = {text(c, "name") for c in init_specs if text(c, "restartPolicy") == "Always"}
    total += sum(1 for c in init_specs if text(c, "restartPolicy") == "Always")

    initializing = False
    for i, cs in enumerate(items(pod, "status", "initContainerStatuses")):
        restarts += integer(cs, "restartCount")
        last_restart = _later(last_restart, cs)
        is_sidecar = text(cs, "name") in sidecars
        if is_sidecar:
            sidecar_restarts += integer(cs, "restartCount")
            last_sidecar_restart = _later(last_sidecar_restart, cs)
        terminated = get(cs, "state", "terminated")
        waiting = get(cs, "state", "waiting")
        if isinstance(terminated, dict) and integer(terminated, "exitCode") == 0:
            continue
        if is_sidecar and get(cs, "started") is True:
            if get(cs, "ready") is True:
                ready += 1
            continue
        if isinstance(terminated, dict):
            reason = _terminated_reason(terminated, "Init:")
        elif isinstance(waiting, dict) and text(waiting, "reason") not in ("", "PodInitializing"):
            reason = "Init:" + text(waiting, "reason")
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(pod, "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        # Walk backwards so the first container's state is the one shown.
        for cs in reversed(items(pod, "status", "containerStatuses")):
            restarts += integer(cs, "restartCount")
            last_restart = _later(last_restart, cs)
            waiting = mapping(cs, "state", "waiting")
            terminated = get(cs, "state", "terminated")
            if text(waiting, "reason"):
                reason = text(waiting, "reason")
            elif isinstance(terminated, dict) and text(terminated, "reason"):
                reason = text(terminated, "reason")
            elif isinstance(terminated, dict):
                reason = _terminated_reason(terminated, "")
            elif get(cs, "ready") is True and isinstance(get(cs, "state", "running"), dict):
                has_running = True
                ready += 1
        # A finished container next to a running one: the pod is still running.
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(pod, "Ready") else "NotReady"

    if get(pod, "metadata", "deletionTimestamp"):
        if text(pod, "status", "reason") == NODE_UNREACHABLE_REASON:
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    return reason, restarts, last_restart, ready, total


def row(pod: dict, now: datetime) -> dict:
    reason, restarts, last_restart, ready, total = status_reason(pod)
    restarts_cell = str(restarts)
    if restarts != 0 and last_restart is not None:
        restarts_cell = f"{restarts} ({timefmt.human_duration(now - last_restart)} ago)"

    pod_ip = text(pod, "status", "podIPs", 0, "ip") or text(pod, "status", "podIP")
    gates = items(pod, "spec", "readinessGates")
    readiness_gates = "<none>"
    if gates:
        conditions = items(pod, "status", "conditions")
        true_count = 0
        for gate in gates:
            for cond in conditions:
                if text(cond, "type") == text(gate, "conditionType"):
                    true_count += text(cond, "status") == "True"
                    break
        readiness_gates = f"{true_count}/{len(gates)}"

    result: dict = {"cells": [
        text(pod, "metadata", "name"),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        timefmt.since(get(pod, "metadata", "creationTimestamp"), now),
        pod_ip or "<none>",
        text(pod, "spec", "nodeName") or "<none>",
        text(pod, "status", "nominatedNodeName") or "<none>",
        readiness_gates,
    ]}
    phase = text(pod, "status", "phase")
    if phase == "Succeeded":
        result["conditions"] = [dict(c) for c in _SUCCEEDED]
    elif phase == "Failed":
        result["conditions"] = [dict(c) for c in _FAILED]
    return result
