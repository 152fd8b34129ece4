"""NodeName: a pod naming a node fits only that node."""
from __future__ import annotations

from ..framework import UNRESOLVABLE, Status
from ..nodeinfo import NodeInfo
from ..podinfo import PodInfo

REASON = "node(s) didn't match the requested node name"


class NodeName:
    name = "NodeName"
    static = True  # reads only the Node object and the pod's static_key fields

    def applies(self, pod: PodInfo) -> bool:
        return bool(pod.node_name)

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        if pod.node_name and pod.node_name != node.name:
            return Status(UNRESOLVABLE, (REASON,), self.name)
        return None
