"""The agent's part of a pod's trace: kubeling's own events for the steps kubelet has
no event for (the pod picked up, the sandbox, the network with its CNI ADD, the containers
ready, Ready reported, the containers stopped, the sandbox and network gone). Each carries
eventTime of the moment it happened; the recorder writes them in the background."""
from __future__ import annotations

import time
from typing import Any

from agent.events import EventRecorder

NORMAL = "Normal"
CNI_ANNOTATION = "trace.kubeling.io/cni"            # "<network> (<plugin>,...)"
CNI_ADD_ANNOTATION = "trace.kubeling.io/cni-add-seconds"
IP_ANNOTATION = "trace.kubeling.io/ip"
GRACE_ANNOTATION = "trace.kubeling.io/grace-period-seconds"


def _ready(status: dict[str, Any] | None) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (status or {}).get("conditions") or [])


def _probes(pod: dict[str, Any]) -> list[str]:
    out = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        for kind in ("startupProbe", "readinessProbe"):
            if c.get(kind):
                out.append(f"{kind[:-5]} probe of {c.get('name')}")
    return out


class PodTraceEvents:
    def __init__(self, events: EventRecorder, runtime: Any, node: str) -> None:
        self.events = events
        self.runtime = runtime
        self.node = node
        self._accepted: set[str] = set()
        self._ready_unreported: set[str] = set()   # uids whose containers got ready here

    def accepted(self, pod: dict[str, Any]) -> None:
        """The pod's first sync on this node with nothing of it in the runtime yet."""
        uid = pod["metadata"]["uid"]
        if uid in self._accepted:
            return
        self._accepted.add(uid)
        self.events.pod_event(pod, NORMAL, "Accepted", f"Pod picked up by the agent on node {self.node}")

    def forget(self, uid: str) -> None:
        self._accepted.discard(uid)
        self._ready_unreported.discard(uid)

    def sandbox_created(self, pod: dict[str, Any], sandbox_id: str, began: float, ip: str | None,
                        host_network: bool) -> None:
        """The sandbox's run returned: its container was made, then its network set up (the
        CNI ADD's own times when this agent ran it, else the run's end)."""
        done = time.time()
        took = self._take_add_time(sandbox_id)
        runtime = type(self.runtime).__name__.removesuffix("Runtime").lower() or "runtime"
        made_at = took[0] if took else done
        self.events.pod_event(pod, NORMAL, "SandboxCreated",
                              f"Created pod sandbox {sandbox_id[:12]} ({runtime} runtime)",
                              at=max(began, min(made_at, done)))
        if host_network:
            self.events.pod_event(pod, NORMAL, "NetworkReady", "Pod uses the host's network", at=done)
            return
        notes = {IP_ANNOTATION: ip or ""}
        message = f"Pod network set up, IP {ip or '<none>'}"
        if took:
            started, finished, network, plugins = took
            notes[CNI_ANNOTATION] = f"{network} ({','.join(plugins)})"
            notes[CNI_ADD_ANNOTATION] = f"{finished - started:.6f}"
            message += f" by CNI network {network} ({', '.join(plugins)}), ADD took {finished - started:.3f}s"
            done = finished
        self.events.pod_event(pod, NORMAL, "NetworkReady", message, at=done, annotations=notes)

    def _take_add_time(self, sandbox_id: str) -> tuple[float, float, str, list[str]] | None:
        cni = getattr(getattr(self.runtime, "network", None), "cni", None)
        take = getattr(cni, "take_add_time", None)
        return take(sandbox_id) if callable(take) else None

    def status_computed(self, pod: dict[str, Any], before: dict[str, Any] | None,
                        after: dict[str, Any]) -> None:
        """Ready turned True in the status the agent computed: the probes passed."""
        if _ready(after) and not _ready(before):
            probes = _probes(pod)
            why = f"{', '.join(probes)} passed" if probes else "all containers running, no readiness probes"
            self.events.pod_event(pod, NORMAL, "ContainersReady", f"Containers ready: {why}")
            self._ready_unreported.add(pod["metadata"]["uid"])

    def status_written(self, uid: str, namespace: str, name: str, before: dict[str, Any] | None,
                       after: dict[str, Any]) -> None:
        """The API server accepted a status: the first with Ready after the containers got
        ready here is the Ready the endpoints controller will see."""
        if uid in self._ready_unreported and _ready(after) and not _ready(before):
            self._ready_unreported.discard(uid)
            pod = {"metadata": {"name": name, "namespace": namespace, "uid": uid}}
            self.events.pod_event(pod, NORMAL, "Ready", "Ready reported to the API server")

    def stopped(self, pod: dict[str, Any], began: float, grace: int) -> None:
        self.events.pod_event(pod, NORMAL, "ContainersStopped",
                              f"All containers stopped {time.time() - began:.3f}s after the kill began "
                              f"(grace period {grace}s)", annotations={GRACE_ANNOTATION: str(grace)})

    def torn_down(self, pod: dict[str, Any]) -> None:
        self.events.pod_event(pod, NORMAL, "SandboxRemoved",
                              "Sandbox removed and pod network torn down (CNI DEL), IP released")
