"""LeastAllocated (NodeResourcesFit's default scoring): prefer nodes with the
larger free share of cpu and memory after placing the pod, weighted equally."""
from __future__ import annotations

from ..framework import MAX_NODE_SCORE
from ..nodeinfo import NodeInfo
from ..podinfo import PodInfo


def _free_share(allocatable: int, requested: int) -> int:
    if allocatable <= 0 or requested > allocatable:
        return 0
    return (allocatable - requested) * MAX_NODE_SCORE // allocatable


class LeastAllocated:
    name = "NodeResourcesLeastAllocated"
    weight = 1

    def score(self, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        cpu, mem = pod.nonzero.milli_cpu, pod.nonzero.memory
        return [(_free_share(n.allocatable.milli_cpu, n.nonzero_requested.milli_cpu + cpu)
                 + _free_share(n.allocatable.memory, n.nonzero_requested.memory + mem)) // 2 for n in nodes]
