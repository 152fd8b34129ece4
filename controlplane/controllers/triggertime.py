"""The `endpoints.kubernetes.io/last-change-trigger-time` annotation, computed
as Kubernetes' TriggerTimeTracker does: the earliest time of the changes that
this sync is the first to see — a new Service's creation time, and each pod's
Ready condition transition time that moved since the previous sync."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from kubeling.timefmt import parse_time

ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"


def _pod_time(pod: dict[str, Any]) -> datetime | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return parse_time(cond.get("lastTransitionTime"))
    return None


def format_rfc3339_nano(when: datetime) -> str:
    """Go's time.RFC3339Nano in UTC: fraction digits only when non-zero, trailing zeros cut."""
    when = when.astimezone(timezone.utc)
    base = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        base += "." + f"{when.microsecond:06d}".rstrip("0")
    return base + "Z"


class TriggerTimeTracker:
    def __init__(self) -> None:
        # (namespace, service) -> (service creation time, {pod name: trigger time})
        self._state: dict[tuple[str, str], tuple[datetime | None, dict[str, datetime | None]]] = {}

    def compute(self, namespace: str, svc: dict[str, Any], pods: list[dict[str, Any]]) -> str | None:
        """The annotation value for this sync, None when nothing new triggered it."""
        key = (namespace, (svc.get("metadata") or {}).get("name", ""))
        known = key in self._state
        last_svc, last_pods = self._state.get(key, (None, {}))
        svc_time = parse_time((svc.get("metadata") or {}).get("creationTimestamp"))
        times: list[datetime] = []
        if svc_time is not None and (not known or svc_time != last_svc):
            times.append(svc_time)
        now_pods: dict[str, datetime | None] = {}
        for pod in pods:
            name = (pod.get("metadata") or {}).get("name", "")
            t = _pod_time(pod)
            now_pods[name] = t
            before = last_pods.get(name)
            if t is not None and (before is None or t > before):
                times.append(t)
        self._state[key] = (svc_time, now_pods)
        return format_rfc3339_nano(min(times)) if times else None

    def forget(self, namespace: str, name: str) -> None:
        self._state.pop((namespace, name), None)
