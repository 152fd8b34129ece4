"""TaintToleration: a node's NoSchedule/NoExecute taints must each be tolerated."""
from __future__ import annotations

from typing import Any

from ..framework import UNRESOLVABLE, Status
from ..nodeinfo import NodeInfo
from ..podinfo import PodInfo

FILTERED_EFFECTS = ("NoSchedule", "NoExecute")


def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    """Kubernetes' Toleration.ToleratesTaint: an empty effect or key matches any;
    Exists ignores the value, Equal (the default) compares it."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def tolerated(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


class TaintToleration:
    name = "TaintToleration"
    static = True  # reads only the Node object and the pod's static_key fields

    def applies(self, pod: PodInfo) -> bool:
        return True

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        for taint in node.taints:
            if taint.get("effect") in FILTERED_EFFECTS and not tolerated(pod.tolerations, taint):
                reason = f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"
                return Status(UNRESOLVABLE, (reason,), self.name)
        return None
