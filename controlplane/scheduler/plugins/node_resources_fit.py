"""NodeResourcesFit: the pod's requests must fit in allocatable minus what the
node's pods (bound or assumed) already request; the pod count too."""
from __future__ import annotations

from ..framework import UNSCHEDULABLE, Status
from ..nodeinfo import NodeInfo
from ..podinfo import PodInfo

TOO_MANY_PODS = "Too many pods"


def insufficient(pod: PodInfo, node: NodeInfo) -> list[str]:
    reasons: list[str] = []
    if len(node.pods) + 1 > node.allowed_pods:
        reasons.append(TOO_MANY_PODS)
    want, alloc, used = pod.requests, node.allocatable, node.requested
    if want.milli_cpu > 0 and want.milli_cpu > alloc.milli_cpu - used.milli_cpu:
        reasons.append("Insufficient cpu")
    if want.memory > 0 and want.memory > alloc.memory - used.memory:
        reasons.append("Insufficient memory")
    for name, amount in want.scalar.items():
        if amount > 0 and amount > alloc.scalar.get(name, 0) - used.scalar.get(name, 0):
            reasons.append(f"Insufficient {name}")
    return reasons


class NodeResourcesFit:
    name = "NodeResourcesFit"

    def applies(self, pod: PodInfo) -> bool:
        return True

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        want, alloc, used = pod.requests, node.allocatable, node.requested
        if (len(node.pods) < node.allowed_pods and not want.scalar
                and want.milli_cpu <= alloc.milli_cpu - used.milli_cpu
                and want.memory <= alloc.memory - used.memory):
            return None  # the common case, decided without building a list
        reasons = insufficient(pod, node)
        return Status(UNSCHEDULABLE, tuple(reasons), self.name) if reasons else None
