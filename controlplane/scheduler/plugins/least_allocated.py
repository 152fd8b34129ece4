"""LeastAllocated (NodeResourcesFit's default scoring): prefer nodes with the
larger free share of cpu and memory after placing the pod, weighted equally."""
from __future__ import annotations

from ..framework import MAX_NODE_SCORE
from ..nodeinfo import NodeInfo
from ..podinfo import PodInfo


class LeastAllocated:
    name = "NodeResourcesLeastAllocated"
    weight = 1

    def score(self, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        cpu, mem = pod.nonzero.milli_cpu, pod.nonzero.memory
        out = []
        # Per resource: the free share after placing the pod, 0 when it would not fit;
        # inlined, as this runs for every feasible node of every pod.
        for n in nodes:
            alloc, used = n.allocatable, n.nonzero_requested
            a, r = alloc.milli_cpu, used.milli_cpu + cpu
            s = (a - r) * MAX_NODE_SCORE // a if 0 < a and r <= a else 0
            a, r = alloc.memory, used.memory + mem
            s += (a - r) * MAX_NODE_SCORE // a if 0 < a and r <= a else 0
            out.append(s // 2)
        return out
