"""Node lifecycle: a Node whose agent stopped reporting (no status heartbeat and no Lease
renewal for longer than the node-monitor grace period) gets its conditions set to Unknown,
as kube-controller-manager's node lifecycle controller does, so `kubectl get nodes` shows
NotReady and the scheduler treats the node as unreachable.

Only Nodes with a Lease in kube-node-lease (every agent keeps one) are watched over.
Silence is measured on this controller's own clock: when it last saw the heartbeat or the
Lease change, not the timestamps the agent wrote (clocks of nodes may differ). Taint-based
eviction and marking the node's pods not ready are left out: pods keep running and serving
on a node that only lost the apiserver.
"""
from __future__ import annotations

import asyncio
import copy
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from kubeling import errors
from kubeling.client import Client
from kubeling.informer import Informer
from kubeling.resources import lookup
from kubeling.timefmt import format_time

log = logging.getLogger("kubeling.nodelifecycle")
NODES = lookup("nodes")
LEASES = lookup("leases")
LEASE_NAMESPACE = "kube-node-lease"
DEFAULT_GRACE = 40.0   # kube-controller-manager's --node-monitor-grace-period
DEFAULT_PERIOD = 5.0   # its --node-monitor-period
UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."


def ready_condition(node: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)


def heartbeat_of(node: dict[str, Any], lease: dict[str, Any] | None) -> tuple[str, str]:
    """What changes each time the agent reports: its Ready heartbeat and its Lease's renewal."""
    ready = ready_condition(node) or {}
    renew = ((lease or {}).get("spec") or {}).get("renewTime") or ""
    return ready.get("lastHeartbeatTime") or "", renew


@dataclass
class Observed:
    heartbeat: tuple[str, str]
    at: float  # this controller's clock when the heartbeat was first seen so


def silent_nodes(nodes: list[dict[str, Any]], leases: dict[str, dict[str, Any]], seen: dict[str, Observed],
                 now: float, grace: float) -> list[dict[str, Any]]:
    """Nodes silent for longer than `grace` whose Ready is not Unknown yet; updates `seen`
    (a node seen for the first time gets the whole grace period from now). A Node without a
    Lease has never had an agent report for it (registered by hand, as tests and tools do):
    there is no silence to judge, and it is left as it is."""
    out = []
    names = set()
    for node in nodes:
        name = node["metadata"]["name"]
        if name not in leases:
            continue
        names.add(name)
        hb = heartbeat_of(node, leases.get(name))
        prev = seen.get(name)
        if prev is None or prev.heartbeat != hb:
            seen[name] = Observed(hb, now)
            continue
        ready = ready_condition(node)
        if now - prev.at > grace and (ready is None or ready.get("status") != "Unknown"):
            out.append(node)
    for gone in set(seen) - names:
        del seen[gone]
    return out


def unknown_status(node: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The Node with every condition Unknown (a missing Ready added so), heartbeats kept."""
    node = copy.deepcopy(node)
    status = node.setdefault("status", {})
    conds = status.setdefault("conditions", [])
    if not any(c.get("type") == "Ready" for c in conds):
        conds.append({"type": "Ready", "lastHeartbeatTime": None})
    stamp = format_time(now)
    for c in conds:
        if c.get("status") != "Unknown":
            c["lastTransitionTime"] = stamp
        c.update(status="Unknown", reason=UNKNOWN_REASON, message=UNKNOWN_MESSAGE)
    return node


class NodeLifecycleController:
    def __init__(self, client: Client, grace: float = DEFAULT_GRACE, period: float = DEFAULT_PERIOD) -> None:
        self.client = client
        self.grace, self.period = grace, period
        self.nodes = Informer(client, NODES)
        self.leases = Informer(client, LEASES, namespace=LEASE_NAMESPACE)
        self.seen: dict[str, Observed] = {}

    async def run(self) -> None:
        await asyncio.gather(self.nodes.run(), self.leases.run(), self._monitor())

    async def _monitor(self) -> None:
        await self.nodes.synced.wait()
        await self.leases.synced.wait()
        loop = asyncio.get_running_loop()
        while True:
            leases = {o["metadata"]["name"]: o for o in self.leases.items()}
            for node in silent_nodes(self.nodes.items(), leases, self.seen, loop.time(), self.grace):
                await self._mark_unknown(node)
            await asyncio.sleep(self.period)

    async def _mark_unknown(self, node: dict[str, Any]) -> None:
        name = node["metadata"]["name"]
        try:
            # A PUT with the cached resourceVersion: a status the agent wrote meanwhile wins (409).
            await self.client.update(NODES, unknown_status(node, datetime.now(timezone.utc)), subresource="status")
            log.warning("node %s: no status for %.0fs, its conditions are Unknown", name, self.grace)
        except errors.ApiError as exc:
            if exc.code not in (404, 409):
                log.warning("node %s not marked Unknown: %s", name, exc.message)
