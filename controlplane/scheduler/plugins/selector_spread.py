"""SelectorSpread: prefer nodes running fewer pods of the same group (the same
controller, or else the same label set in the namespace), so replicas spread."""
from __future__ import annotations

from ..framework import MAX_NODE_SCORE
from ..nodeinfo import NodeInfo
from ..podinfo import PodInfo


class SelectorSpread:
    name = "SelectorSpread"
    weight = 2  # Kubernetes' default weight for its spreading plugin

    def score(self, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        key = pod.spread_key
        if key is None:
            return [0] * len(nodes)
        counts = [n.spread_counts.get(key, 0) for n in nodes]
        top = max(counts, default=0)
        if top == 0:
            return [MAX_NODE_SCORE] * len(nodes)
        return [MAX_NODE_SCORE * (top - c) // top for c in counts]
