"""NodeUnschedulable: a cordoned node (spec.unschedulable) takes only pods that
tolerate the node.kubernetes.io/unschedulable:NoSchedule taint."""
from __future__ import annotations

from ..framework import UNRESOLVABLE, Status
from ..nodeinfo import UNSCHEDULABLE_TAINT, NodeInfo
from ..podinfo import PodInfo
from .taint_toleration import tolerated

REASON = "node(s) were unschedulable"
_TAINT = {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}


class NodeUnschedulable:
    name = "NodeUnschedulable"
    static = True  # reads only the Node object and the pod's static_key fields

    def applies(self, pod: PodInfo) -> bool:
        return True

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        if node.unschedulable and not tolerated(pod.tolerations, _TAINT):
            return Status(UNRESOLVABLE, (REASON,), self.name)
        return None
