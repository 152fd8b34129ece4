"""The scheduler's picture of the cluster: nodes and the pods placed on them.

Pods are placed when the informer reports them bound, or earlier when the
scheduler *assumes* one on the node it chose, so the next cycles see the
node's resources taken before the binding round-trip ends. An assumed pod is
confirmed when the informer reports it bound, or forgotten when binding fails.
"""
from __future__ import annotations

import logging
from typing import Any

from .nodeinfo import NodeInfo
from .podinfo import PodInfo, pod_info

log = logging.getLogger("kubeling.scheduler.cache")


class Cache:
    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self._pod_node: dict[str, str] = {}  # uid -> node name, for every placed pod
        self._assumed: set[str] = set()
        self._node_list: list[NodeInfo] | None = None
        # Bumped whenever the schedulable nodes or what static filters read of them change:
        # static verdicts cached at an older version are stale.
        self.static_version = 0

    # ---- nodes -------------------------------------------------------------

    def schedulable_nodes(self) -> list[NodeInfo]:
        """Nodes with a Node object, in a stable order (rebuilt only on change)."""
        if self._node_list is None:
            self._node_list = [n for _, n in sorted(self.nodes.items()) if n.node is not None]
        return self._node_list

    def set_node(self, node: dict[str, Any]) -> NodeInfo:
        name = node["metadata"]["name"]
        info = self.nodes.get(name)
        if info is None:
            info = self.nodes[name] = NodeInfo(name)
            self._node_list = None
        elif info.node is None:
            self._node_list = None
        if info.set_node(node) or self._node_list is None:
            self.static_version += 1
        return info

    def remove_node(self, name: str) -> None:
        info = self.nodes.get(name)
        if info is None:
            return
        self._node_list = None
        self.static_version += 1
        if info.pods:
            info.set_node(None)  # its pods stay accounted until they are deleted
        else:
            del self.nodes[name]

    # ---- pods --------------------------------------------------------------

    def is_assumed(self, uid: str) -> bool:
        return uid in self._assumed

    def node_of(self, uid: str) -> str | None:
        return self._pod_node.get(uid)

    def assume(self, p: PodInfo, node_name: str) -> None:
        if p.uid in self._pod_node:
            raise ValueError(f"pod {p.key} is already in the cache")
        self._place(p, node_name)
        self._assumed.add(p.uid)

    def forget(self, uid: str) -> None:
        """Undo an assumption whose binding failed."""
        if uid not in self._assumed:
            return
        self._assumed.discard(uid)
        self._unplace(uid)

    def add_pod(self, pod: dict[str, Any]) -> None:
        """A bound pod reported by the informer (confirms an assumption)."""
        p = pod_info(pod)
        node = p.node_name
        if p.uid in self._pod_node:
            self._unplace(p.uid)
        self._assumed.discard(p.uid)
        self._place(p, node)

    def remove_pod(self, pod: dict[str, Any]) -> None:
        uid = (pod.get("metadata") or {}).get("uid") or ""
        self._assumed.discard(uid)
        self._unplace(uid)

    def _place(self, p: PodInfo, node_name: str) -> None:
        info = self.nodes.get(node_name)
        if info is None:
            info = self.nodes[node_name] = NodeInfo(node_name)
        info.add_pod(p)
        self._pod_node[p.uid] = node_name

    def _unplace(self, uid: str) -> None:
        name = self._pod_node.pop(uid, None)
        if name is None:
            return
        info = self.nodes.get(name)
        if info is None:
            return
        info.remove_pod(uid)
        if info.node is None and not info.pods:
            del self.nodes[name]
