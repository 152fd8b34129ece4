"""Helpers of the scheduler's integration tests: Node objects with a Ready
status, pod manifests, and polling."""
from __future__ import annotations

import asyncio
from typing import Any

from kubeling.client import Client
from kubeling.resources import lookup

NODES, PODS, NAMESPACES = lookup("nodes"), lookup("pods"), lookup("namespaces")
EVENTS, LEASES = lookup("events"), lookup("leases")


def ready_status(cpu: str = "4", memory: str = "8Gi", pods: str = "110", ready: str = "True",
                 extra: dict[str, str] | None = None) -> dict[str, Any]:
    alloc = {"cpu": cpu, "memory": memory, "pods": pods, **(extra or {})}
    return {"capacity": alloc, "allocatable": alloc,
            "conditions": [{"type": "Ready", "status": ready, "reason": "Test",
                            "lastHeartbeatTime": "2024-01-01T00:00:00Z",
                            "lastTransitionTime": "2024-01-01T00:00:00Z"}]}


class Nodes:
    """Creates Node objects (with status through the status subresource) and
    deletes them all at the end of the test."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.names: list[str] = []
        # The scheduler under test, when one runs: add() returns only once its cache holds the
        # node as created, so a pod created next is judged against every node the test made
        # ("0/N nodes are available" counts what the scheduler has seen).
        self.scheduler: Any = None

    async def add(self, name: str, *, labels: dict[str, str] | None = None,
                  taints: list[dict[str, Any]] | None = None, unschedulable: bool = False,
                  **status: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        if taints:
            spec["taints"] = taints
        if unschedulable:
            spec["unschedulable"] = True
        # Status goes with the create, as a kubelet registers its node (a
        # not-yet-Ready node would make the scheduler back off first).
        want = ready_status(**status)
        obj = await self.client.create(NODES, {"apiVersion": "v1", "kind": "Node",
                                               "metadata": {"name": name, "labels": labels or {}},
                                               "spec": spec, "status": want})
        self.names.append(name)
        if obj.get("status") != want:
            obj["status"] = want
            obj = await self.client.update(NODES, obj, subresource="status")
        if self.scheduler is not None:
            rv = obj["metadata"]["resourceVersion"]

            async def seen() -> bool:
                info = self.scheduler.cache.nodes.get(name)
                return info is not None and info.node is not None \
                    and info.node["metadata"].get("resourceVersion") == rv
            await eventually(seen, 10, f"the scheduler to see node {name}")
        return obj

    async def cleanup(self) -> None:
        for name in self.names:
            try:
                await self.client.delete(NODES, name)
            except Exception:
                pass
        left = {n["metadata"]["name"] for n in (await self.client.list(NODES))["items"]}
        assert not left & set(self.names), f"nodes left behind: {left & set(self.names)}"


def pod(name: str, *, cpu: str | None = None, memory: str | None = None, **spec: Any) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    container: dict[str, Any] = {"name": "app", "image": "busybox:latest"}
    if requests:
        container["resources"] = {"requests": requests}
    ports = spec.pop("host_ports", None)
    if ports:
        container["ports"] = [{"containerPort": p, "hostPort": p} for p in ports]
    labels = spec.pop("labels", None)
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": [container], **spec}}


async def eventually(check, timeout: float = 10, what: str = "condition", interval: float = 0.05):
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while True:
        try:
            last = await check()
        except AssertionError:
            last = None
        if last:
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)



async def bound_node(client: Client, ns: str, name: str) -> str | None:
    p = await client.get(PODS, name, ns)
    return (p.get("spec") or {}).get("nodeName")


async def wait_bound(client: Client, ns: str, name: str, timeout: float = 10) -> str:
    async def check() -> str | None:
        return await bound_node(client, ns, name)
    return await eventually(check, timeout, f"pod {ns}/{name} to be bound")


async def pod_events(client: Client, ns: str, name: str, reason: str | None = None) -> list[dict[str, Any]]:
    items = (await client.list(EVENTS, ns))["items"]
    return [e for e in items if e["involvedObject"].get("name") == name
            and (reason is None or e.get("reason") == reason)]


def condition(pod: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


async def wait_unschedulable(client: Client, ns: str, name: str, timeout: float = 10) -> str:
    """The FailedScheduling message, once the event and the condition both say it."""
    async def check() -> str | None:
        evs = await pod_events(client, ns, name, "FailedScheduling")
        cond = condition(await client.get(PODS, name, ns), "PodScheduled")
        if evs and cond and cond.get("status") == "False":
            assert cond["reason"] == "Unschedulable"
            assert cond["message"] == evs[-1]["message"]
            return evs[-1]["message"]
        return None
    return await eventually(check, timeout, f"pod {ns}/{name} to be reported unschedulable")
