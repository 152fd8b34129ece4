"""Where probe outcomes meet the status manager (kubelet's results managers).

The prober (agent/prober.py, a separate component) writes results keyed by
container id; the status code reads them. A container with a readinessProbe
is unready until the prober says otherwise; without one it is ready when
running. A startupProbe holds `started` (and readiness) until it succeeds.
Liveness failures go to `on_liveness_failure`, which the agent wires to a
container kill; the pod worker then restarts per restartPolicy."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


class ProbeResults:
    def __init__(self) -> None:
        self.readiness: dict[str, bool] = {}
        self.startup: dict[str, bool] = {}
        # Set by the agent: (pod_uid) -> None, asks for a status sync of the pod.
        self.on_change: Callable[[str], None] = lambda uid: None
        # Set by the agent: (pod_uid, container_name, message) -> None.
        self.on_liveness_failure: Callable[[str, str, str], None] = lambda uid, name, msg: None

    def set_readiness(self, pod_uid: str, container_id: str, ready: bool) -> None:
        if self.readiness.get(container_id) != ready:
            self.readiness[container_id] = ready
            self.on_change(pod_uid)

    def set_startup(self, pod_uid: str, container_id: str, ok: bool) -> None:
        if self.startup.get(container_id) != ok:
            self.startup[container_id] = ok
            self.on_change(pod_uid)

    def liveness_failed(self, pod_uid: str, container_name: str, message: str) -> None:
        self.on_liveness_failure(pod_uid, container_name, message)

    def forget(self, container_ids: list[str]) -> None:
        for cid in container_ids:
            self.readiness.pop(cid, None)
            self.startup.pop(cid, None)

    def started(self, container: dict[str, Any], container_id: str) -> bool:
        if not container.get("startupProbe"):
            return True
        return self.startup.get(container_id) is True

    def ready(self, container: dict[str, Any], container_id: str) -> bool:
        if not self.started(container, container_id):
            return False
        if not container.get("readinessProbe"):
            return True
        return self.readiness.get(container_id) is True
