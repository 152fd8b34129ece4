"""Builders for realistic objects in printer tests."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from kubeling.timefmt import format_time

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def ago(**delta: float) -> str:
    return format_time(NOW - timedelta(**delta))


def meta(name: str, namespace: str | None = "default", age: timedelta = timedelta(minutes=5),
         **extra: object) -> dict:
    m: dict = {"name": name, "uid": f"uid-{name}", "resourceVersion": "42",
               "creationTimestamp": format_time(NOW - age)}
    if namespace:
        m["namespace"] = namespace
    m.update(extra)
    return m


def running(started: str | None = None) -> dict:
    return {"running": {"startedAt": started or ago(minutes=4)}}


def container_status(name: str, *, ready: bool, state: dict, restarts: int = 0,
                     last_state: dict | None = None) -> dict:
    return {"name": name, "ready": ready, "restartCount": restarts, "image": "busybox",
            "imageID": "", "started": ready, "state": state, "lastState": last_state or {}}


def pod(name: str = "web", *, phase: str = "Running", containers: int = 1,
        statuses: list[dict] | None = None, conditions: list[dict] | None = None,
        init: list[dict] | None = None, init_statuses: list[dict] | None = None,
        node: str = "node-1", pod_ip: str = "10.244.0.5", **meta_extra: object) -> dict:
    spec: dict = {"containers": [{"name": f"c{i}", "image": "busybox"} for i in range(containers)],
                  "restartPolicy": "Always", "schedulerName": "default-scheduler",
                  "serviceAccountName": "default"}
    if node:
        spec["nodeName"] = node
    if init is not None:
        spec["initContainers"] = init
    status: dict = {"phase": phase}
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    if statuses is not None:
        status["containerStatuses"] = statuses
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    if conditions is not None:
        status["conditions"] = conditions
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta(name, **meta_extra),
            "spec": spec, "status": status}


def cond(ctype: str, status: str = "True", reason: str = "") -> dict:
    c = {"type": ctype, "status": status}
    if reason:
        c["reason"] = reason
    return c
