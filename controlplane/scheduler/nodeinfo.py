"""A node as the scheduler sees it: its parsed allocatable, labels and taints,
and the sum of what the pods placed on it (bound or assumed) request."""
from __future__ import annotations

from typing import Any

from .podinfo import HostPort, PodInfo, Requests, requests_from

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"


def ready_status(node: dict[str, Any]) -> str:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") or "Unknown"
    return "Missing"


def effective_taints(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The node's taints plus the one Kubernetes' node lifecycle controller would
    add for a node that is not Ready (not-ready when False or not reported yet,
    unreachable when Unknown), so readiness is judged the way tolerations
    expect, and pods that tolerate it (daemons) still fit."""
    taints = list((node.get("spec") or {}).get("taints") or [])
    status = ready_status(node)
    if status != "True":
        key = UNREACHABLE_TAINT if status == "Unknown" else NOT_READY_TAINT
        if not any(t.get("key") == key and t.get("effect") == "NoSchedule" for t in taints):
            taints.append({"key": key, "effect": "NoSchedule"})
    return taints


class NodeInfo:
    __slots__ = ("name", "node", "labels", "taints", "unschedulable", "allocatable", "allowed_pods",
                 "requested", "nonzero_requested", "pods", "used_ports", "spread_counts", "generation")

    def __init__(self, name: str) -> None:
        self.name = name
        self.node: dict[str, Any] | None = None  # None: pods reference a node we have not seen
        self.labels: dict[str, str] = {}
        self.taints: list[dict[str, Any]] = []
        self.unschedulable = False
        self.allocatable = Requests()
        self.allowed_pods = 0
        self.requested = Requests()
        self.nonzero_requested = Requests()
        self.pods: dict[str, PodInfo] = {}
        self.used_ports: dict[HostPort, int] = {}
        self.spread_counts: dict[tuple[str, ...], int] = {}
        self.generation = 0

    def set_node(self, node: dict[str, Any] | None) -> bool:
        """Take the node's new state; True when what static filters read (labels, taints,
        unschedulable) changed, so their cached verdicts are stale."""
        self.node = node
        self.generation += 1
        if node is None:
            return False
        meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
        labels = dict(meta.get("labels") or {})
        unschedulable = bool(spec.get("unschedulable"))
        taints = effective_taints(node)
        changed = labels != self.labels or unschedulable != self.unschedulable or taints != self.taints
        self.labels, self.unschedulable, self.taints = labels, unschedulable, taints
        alloc = dict(status.get("allocatable") or status.get("capacity") or {})
        pods = alloc.pop("pods", 0)
        try:
            self.allowed_pods = int(str(pods))
        except ValueError:
            self.allowed_pods = 0
        self.allocatable = requests_from(alloc)
        return changed

    def add_pod(self, p: PodInfo) -> None:
        self.pods[p.uid] = p
        self.requested.add(p.requests)
        self.nonzero_requested.milli_cpu += p.nonzero.milli_cpu
        self.nonzero_requested.memory += p.nonzero.memory
        for hp in p.host_ports:
            self.used_ports[hp] = self.used_ports.get(hp, 0) + 1
        if p.spread_key is not None:
            self.spread_counts[p.spread_key] = self.spread_counts.get(p.spread_key, 0) + 1
        self.generation += 1

    def remove_pod(self, uid: str) -> PodInfo | None:
        p = self.pods.pop(uid, None)
        if p is None:
            return None
        self.requested.sub(p.requests)
        self.nonzero_requested.milli_cpu -= p.nonzero.milli_cpu
        self.nonzero_requested.memory -= p.nonzero.memory
        for hp in p.host_ports:
            n = self.used_ports.get(hp, 0) - 1
            if n > 0:
                self.used_ports[hp] = n
            else:
                self.used_ports.pop(hp, None)
        if p.spread_key is not None:
            n = self.spread_counts.get(p.spread_key, 0) - 1
            if n > 0:
                self.spread_counts[p.spread_key] = n
            else:
                self.spread_counts.pop(p.spread_key, None)
        self.generation += 1
        return p
