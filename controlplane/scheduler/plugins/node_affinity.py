"""NodeAffinity: spec.nodeSelector and required node affinity must both match."""
from __future__ import annotations

from typing import Any

from ..framework import UNRESOLVABLE, Status
from ..nodeinfo import NodeInfo
from ..podinfo import PodInfo

REASON = "node(s) didn't match Pod's node affinity/selector"


def _to_int(s: Any) -> int | None:
    try:
        return int(str(s))
    except ValueError:
        return None


def requirement_matches(req: dict[str, Any], values_of: dict[str, str]) -> bool:
    key, op = req.get("key") or "", req.get("operator") or ""
    values = req.get("values") or []
    present = key in values_of
    value = values_of.get(key)
    if op == "In":
        return present and value in values
    if op == "NotIn":
        return not present or value not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        have, want = _to_int(value), _to_int(values[0])
        if have is None or want is None:
            return False
        return have > want if op == "Gt" else have < want
    return False  # an unknown operator never matches


def term_matches(term: dict[str, Any], node: NodeInfo) -> bool:
    """A NodeSelectorTerm: all its expressions hold; an empty term matches nothing."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    if not all(requirement_matches(r, node.labels) for r in exprs):
        return False
    node_fields = {"metadata.name": node.name}
    return all(requirement_matches(r, node_fields) for r in fields)


def node_matches(pod: PodInfo, node: NodeInfo) -> bool:
    labels = node.labels
    for k, v in pod.node_selector.items():
        if labels.get(k) != v:
            return False
    if pod.required_affinity is None:
        return True
    return any(term_matches(t, node) for t in pod.required_affinity)


class NodeAffinity:
    name = "NodeAffinity"
    static = True  # reads only the Node object and the pod's static_key fields

    def applies(self, pod: PodInfo) -> bool:
        return bool(pod.node_selector) or pod.required_affinity is not None

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not pod.node_selector and pod.required_affinity is None:
            return None
        if node_matches(pod, node):
            return None
        return Status(UNRESOLVABLE, (REASON,), self.name)
