"""NodePorts: a pod's hostPorts must be free on the node (same protocol and
port, on the same address or either side on 0.0.0.0)."""
from __future__ import annotations

from ..framework import UNSCHEDULABLE, Status
from ..nodeinfo import NodeInfo
from ..podinfo import HostPort, PodInfo

REASON = "node(s) didn't have free ports for the requested pod ports"
WILDCARD = "0.0.0.0"


def conflicts(want: HostPort, used: dict[HostPort, int]) -> bool:
    ip, proto, port = want
    if ip == WILDCARD:
        return any(p == port and pr == proto for (_, pr, p) in used)
    return (ip, proto, port) in used or (WILDCARD, proto, port) in used


class NodePorts:
    name = "NodePorts"

    def applies(self, pod: PodInfo) -> bool:
        return bool(pod.host_ports)

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not pod.host_ports or not node.used_ports:
            return None
        for hp in pod.host_ports:
            if conflicts(hp, node.used_ports):
                return Status(UNSCHEDULABLE, (REASON,), self.name)
        return None
