"""A pod's status from what the runtime shows (kubelet's generateAPIPodStatus +
getPhase). Pure: the worker passes the records and its own waiting reasons."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from agent.probe_results import ProbeResults
from agent.runtime.types import ContainerRecord
from kubeling.timefmt import format_time

TERMINAL = ("Succeeded", "Failed")


def now_str() -> str:
    return format_time(datetime.now(timezone.utc))


def api_time(when: float) -> str | None:
    """A runtime time (epoch seconds, 0 when unknown) as the API's RFC 3339."""
    return format_time(datetime.fromtimestamp(when, timezone.utc)) if when else None


@dataclass
class PodRuntimeView:
    """What the worker knows about a pod on this node."""

    records: list[ContainerRecord]
    sandbox: ContainerRecord | None = None
    pod_ips: list[str] = field(default_factory=list)
    # container name -> (reason, message) for containers not running by choice or failure
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)


def by_name(records: list[ContainerRecord]) -> dict[str, list[ContainerRecord]]:
    """Containers per name, newest attempt first (sandboxes left out)."""
    out: dict[str, list[ContainerRecord]] = {}
    for r in records:
        if not r.is_sandbox:
            out.setdefault(r.name, []).append(r)
    for lst in out.values():
        lst.sort(key=lambda r: (r.attempt, r.created_at), reverse=True)
    return out


def terminated(rec: ContainerRecord) -> dict[str, Any]:
    code = rec.exit_code if rec.exit_code is not None else 0
    if rec.oom_killed:
        reason = "OOMKilled"
    elif rec.error:
        reason = "StartError"
    elif code == 0:
        reason = "Completed"
    else:
        reason = "Error"
    out: dict[str, Any] = {"exitCode": code, "reason": reason,
                           "startedAt": api_time(rec.started_at), "finishedAt": api_time(rec.finished_at),
                           "containerID": rec.container_uri}
    if rec.error:
        out["message"] = rec.error
    return out


def container_status(container: dict[str, Any], history: list[ContainerRecord],
                     waiting: tuple[str, str] | None, default_wait: str, probes: ProbeResults
                     ) -> dict[str, Any]:
    latest = history[0] if history else None
    previous = history[1] if len(history) > 1 else None
    st: dict[str, Any] = {"name": container["name"], "image": container.get("image", ""),
                          "imageID": "", "ready": False, "restartCount": latest.attempt if latest else 0,
                          "started": False, "state": {}, "lastState": {}}
    if latest is not None:
        st["containerID"] = latest.container_uri
        st["imageID"] = latest.image_ref
    if latest is None or latest.state in ("created", "unknown"):
        reason, msg = waiting or (default_wait, "")
        st["state"] = {"waiting": _waiting(reason, msg)}
        if previous is not None:
            st["lastState"] = {"terminated": terminated(previous)}
    elif latest.running:
        st["state"] = {"running": {"startedAt": api_time(latest.started_at)}}
        st["started"] = probes.started(container, latest.id)
        st["ready"] = probes.ready(container, latest.id)
        if previous is not None:
            st["lastState"] = {"terminated": terminated(previous)}
    elif waiting is not None:
        # Exited and to be restarted (back-off, pull error): waiting, last run kept.
        st["state"] = {"waiting": _waiting(*waiting)}
        st["lastState"] = {"terminated": terminated(latest)}
    else:
        st["state"] = {"terminated": terminated(latest)}
        if previous is not None:
            st["lastState"] = {"terminated": terminated(previous)}
    return st


def _waiting(reason: str, message: str) -> dict[str, str]:
    w = {"reason": reason}
    if message:
        w["message"] = message
    return w


def init_done(pod: dict[str, Any], hist: dict[str, list[ContainerRecord]]) -> bool:
    spec = pod.get("spec") or {}
    if any(hist.get(c["name"]) for c in spec.get("containers") or []):
        return True  # app containers ran: initialization finished earlier
    for c in spec.get("initContainers") or []:
        h = hist.get(c["name"])
        if not h or h[0].state != "exited" or h[0].exit_code != 0:
            return False
    return True


def init_failed(pod: dict[str, Any], hist: dict[str, list[ContainerRecord]]) -> bool:
    for c in (pod.get("spec") or {}).get("initContainers") or []:
        h = hist.get(c["name"])
        if h and h[0].state == "exited" and h[0].exit_code != 0:
            return True
    return False


def phase(pod: dict[str, Any], statuses: list[dict[str, Any]], initialized: bool, init_fail: bool) -> str:
    spec = pod.get("spec") or {}
    policy = spec.get("restartPolicy") or "Always"
    if not initialized:
        return "Failed" if init_fail and policy == "Never" else "Pending"
    running = waiting = stopped = succeeded = 0
    for st in statuses:
        state = st["state"]
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif "terminated" in (st.get("lastState") or {}):
            stopped += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(old: dict[str, dict[str, Any]], typ: str, status: bool, reason: str = "",
               message: str = "") -> dict[str, Any]:
    value = "True" if status else "False"
    prev = old.get(typ)
    when = prev.get("lastTransitionTime") if prev and prev.get("status") == value else now_str()
    c: dict[str, Any] = {"type": typ, "status": value, "lastProbeTime": None, "lastTransitionTime": when}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def pod_status(pod: dict[str, Any], view: PodRuntimeView, probes: ProbeResults, host_ip: str
               ) -> dict[str, Any]:
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    hist = by_name(view.records)
    initialized = init_done(pod, hist)
    init_specs = spec.get("initContainers") or []
    app_specs = spec.get("containers") or []
    init_statuses = []
    for c in init_specs:
        st = container_status(c, hist.get(c["name"], []), view.waiting.get(c["name"]),
                              "PodInitializing", probes)
        if initialized and not hist.get(c["name"]):
            st["state"] = {"terminated": {"exitCode": 0, "reason": "Completed"}}
        st["started"] = "running" in st["state"]
        st["ready"] = "terminated" in st["state"] and st["state"]["terminated"].get("exitCode") == 0
        init_statuses.append(st)
    default_wait = "ContainerCreating" if initialized else "PodInitializing"
    app_statuses = [container_status(c, hist.get(c["name"], []), view.waiting.get(c["name"]),
                                     default_wait, probes) for c in app_specs]
    new_phase = phase(pod, app_statuses, initialized, init_failed(pod, hist))
    if old.get("phase") in TERMINAL:
        new_phase = old["phase"]  # kubelet never leaves a terminal phase
    if new_phase in TERMINAL:
        for st in app_statuses:
            st["ready"] = False
    status: dict[str, Any] = {k: v for k, v in old.items()
                              if k in ("qosClass", "nominatedNodeName", "resize")}
    status["phase"] = new_phase
    old_conds = {c.get("type"): c for c in old.get("conditions") or []}
    sandbox_up = view.sandbox is not None and view.sandbox.running and (
        bool(view.pod_ips) or spec.get("hostNetwork") is True)
    conds = [_condition(old_conds, "PodReadyToStartContainers", sandbox_up)]
    incomplete = [s["name"] for s in init_statuses if not s["ready"]]
    if initialized:
        conds.append(_condition(old_conds, "Initialized", True))
    else:
        conds.append(_condition(old_conds, "Initialized", False, "ContainersNotInitialized",
                                f"containers with incomplete status: [{' '.join(incomplete)}]"))
    unready = [s["name"] for s in app_statuses if not s["ready"]]
    if new_phase == "Succeeded":
        reason, msg = "PodCompleted", ""
    elif unready:
        reason, msg = "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]"
    else:
        reason = msg = ""
    all_ready = not unready and new_phase == "Running"
    conds.append(_condition(old_conds, "Ready", all_ready, reason, msg))
    conds.append(_condition(old_conds, "ContainersReady", all_ready, reason, msg))
    for typ, c in old_conds.items():
        if typ not in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady"):
            conds.append(c)
    if "PodScheduled" not in old_conds:
        # A pod bound by nodeName at creation never met the scheduler; kubelet adds it.
        conds.append(_condition(old_conds, "PodScheduled", True))
    status["conditions"] = conds
    status["hostIP"] = host_ip
    status["hostIPs"] = [{"ip": host_ip}]
    ips = view.pod_ips or ([host_ip] if spec.get("hostNetwork") and view.sandbox is not None else [])
    if ips:
        status["podIP"] = ips[0]
        status["podIPs"] = [{"ip": ip} for ip in ips]
    elif old.get("podIP"):
        status["podIP"], status["podIPs"] = old["podIP"], old.get("podIPs") or [{"ip": old["podIP"]}]
    status["startTime"] = old.get("startTime") or now_str()
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    status["containerStatuses"] = app_statuses
    return status
