"""Plugin statuses and the "0/N nodes are available" diagnosis, with the reason
strings and message shape of Kubernetes' scheduler framework (FitError)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from .nodeinfo import NodeInfo
from .podinfo import PodInfo

MAX_NODE_SCORE = 100

# A plugin says Unschedulable when preemption (removing pods) could make the
# node fit, UnschedulableAndUnresolvable when nothing about other pods could.
UNSCHEDULABLE = "Unschedulable"
UNRESOLVABLE = "UnschedulableAndUnresolvable"

NO_NODES_AVAILABLE = "no nodes available to schedule pods"
PREEMPTION_NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_PREEMPTION_VICTIMS = "No preemption victims found for incoming pod"


@dataclass(frozen=True, slots=True)
class Status:
    code: str
    reasons: tuple[str, ...]
    plugin: str = ""


class FilterPlugin(Protocol):
    """A filter may also say `static = True`: its verdict depends only on the Node object and
    on the pod's PodInfo.static_key fields (tolerations, nodeSelector, required node affinity,
    nodeName), never on the pods placed on the node. The scheduler then reuses the verdicts
    of a leading run of static filters for every pod of the same shape until a node changes
    (a ReplicaSet's pods are checked against the nodes' taints and labels once, not per pod)."""
    name: str

    def applies(self, pod: PodInfo) -> bool:
        """False when the filter would pass every node for this pod, so the
        cycle skips it (Kubernetes' PreFilter returning Skip)."""

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        """None when the pod fits the node, else why not."""


class ScorePlugin(Protocol):
    name: str
    weight: int

    def score(self, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        """A score in [0, MAX_NODE_SCORE] for each feasible node, in order."""


@dataclass
class Diagnosis:
    """Why each node was rejected: the first failing filter's status per node."""
    num_nodes: int
    node_statuses: dict[str, Status] = field(default_factory=dict)

    @property
    def plugins(self) -> set[str]:
        return {s.plugin for s in self.node_statuses.values()}

    def message(self) -> str:
        if self.num_nodes == 0:
            return NO_NODES_AVAILABLE
        reasons: dict[str, int] = {}
        preemption: dict[str, int] = {}
        for st in self.node_statuses.values():
            for r in st.reasons:
                reasons[r] = reasons.get(r, 0) + 1
            # We do not preempt, and every pod has the same priority, so the
            # post-filter step would find no victims wherever it could look.
            p = PREEMPTION_NOT_HELPFUL if st.code == UNRESOLVABLE else NO_PREEMPTION_VICTIMS
            preemption[p] = preemption.get(p, 0) + 1
        head = f"0/{self.num_nodes} nodes are available: {_histogram(reasons)}."
        return f"{head} preemption: 0/{self.num_nodes} nodes are available: {_histogram(preemption)}."


def _histogram(counts: dict[str, int]) -> str:
    # Kubernetes sorts the "N reason" strings themselves.
    return ", ".join(sorted(f"{n} {r}" for r, n in counts.items()))
