"""Node IPAM: give every Node a pod CIDR of its own (`spec.podCIDR`).

/24s are cut from the cluster CIDR (10.244.0.0/16). What is in use is read
from the Nodes themselves, so a deleted Node's range is free again and a
restarted controller picks up where the cluster is; no two Nodes ever get the
same range because assignments are made one at a time by the single leader.
"""
from __future__ import annotations

import ipaddress
import logging
from typing import Any

from kubeling import errors
from kubeling.client import Client
from kubeling.informer import Informer
from kubeling.resources import lookup

log = logging.getLogger("kubeling.nodeipam")
NODES = lookup("nodes")


class RangeFull(Exception):
    pass


class CidrSet:
    def __init__(self, cluster_cidr: str = "10.244.0.0/16", node_prefix: int = 24) -> None:
        self.cluster = ipaddress.ip_network(cluster_cidr)
        self.prefix = node_prefix
        self.used: dict[str, str] = {}  # cidr -> node name

    def occupy(self, cidr: str, node: str) -> None:
        self.used[cidr] = node

    def release_node(self, node: str) -> None:
        for cidr in [c for c, n in self.used.items() if n == node]:
            del self.used[cidr]

    def of(self, node: str) -> str | None:
        return next((c for c, n in self.used.items() if n == node), None)

    def allocate(self, node: str) -> str:
        for net in self.cluster.subnets(new_prefix=self.prefix):
            cidr = str(net)
            if cidr not in self.used:
                self.used[cidr] = node
                return cidr
        raise RangeFull(f"no free /{self.prefix} left in {self.cluster}")


class NodeIpamController:
    def __init__(self, client: Client, cluster_cidr: str = "10.244.0.0/16", node_prefix: int = 24) -> None:
        self.client = client
        self.cidrs = CidrSet(cluster_cidr, node_prefix)
        self.informer = Informer(client, NODES, on_add=self._sync, on_update=self._updated,
                                 on_delete=self._deleted)

    async def _updated(self, _old: dict[str, Any], new: dict[str, Any]) -> None:
        await self._sync(new)

    async def _deleted(self, node: dict[str, Any]) -> None:
        self.cidrs.release_node(node["metadata"]["name"])

    async def _sync(self, node: dict[str, Any]) -> None:
        name = node["metadata"]["name"]
        cidr = (node.get("spec") or {}).get("podCIDR")
        if cidr:
            self.cidrs.occupy(cidr, name)
            return
        if not self.informer.synced.is_set():
            return  # wait until every existing range is known
        await self._assign(name)

    async def _assign(self, name: str) -> None:
        # An update of the Node (its agent's status) can arrive before the watch shows our
        # own patch: the range it already holds is in flight, and a second one would be
        # refused ("may not change podCIDR") and leave a hole.
        if self.cidrs.of(name) is not None:
            return
        try:
            cidr = self.cidrs.allocate(name)
        except RangeFull as exc:
            log.error("node %s: %s", name, exc)
            return
        try:
            await self.client.patch(NODES, name, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
            log.info("node %s: podCIDR %s", name, cidr)
        except errors.ApiError as exc:
            self.cidrs.release_node(name)
            log.warning("node %s: could not set podCIDR: %s", name, exc.message)

    async def run(self) -> None:
        import asyncio
        task = asyncio.create_task(self.informer.run())
        await self.informer.synced.wait()
        for node in self.informer.items():
            if not (node.get("spec") or {}).get("podCIDR"):
                await self._assign(node["metadata"]["name"])
        await task
