"""The agent's Node: registration, status with heartbeats, the Lease in
kube-node-lease, and the pod CIDR the node network is configured from."""
from __future__ import annotations

import asyncio
import logging
import os
import platform
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from agent.pod_status import now_str
from agent.runtime.types import Runtime
from kubeling import errors
from kubeling.client import Client
from kubeling.resources import lookup
from kubeling.timefmt import format_micro_time

log = logging.getLogger("agent.node")
NODES = lookup("nodes")
LEASES = lookup("leases")
KUBELET_VERSION = "v1.33.0-kubeling"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION = 40
MAX_PODS = 110


def _read(path: str, default: str = "") -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return "Linux"


def memory_ki() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def capacity(root_dir: str) -> dict[str, str]:
    out = {"cpu": str(os.cpu_count() or 1), "memory": f"{memory_ki()}Ki", "pods": str(MAX_PODS)}
    try:
        st = os.statvfs(root_dir if os.path.exists(root_dir) else "/")
        out["ephemeral-storage"] = f"{st.f_blocks * st.f_frsize // 1024}Ki"
    except OSError:
        pass
    return out


def _condition(typ: str, ok: bool, reason: str, message: str, old: dict[str, dict], now: str
               ) -> dict[str, Any]:
    status = "True" if ok else "False"
    prev = old.get(typ)
    since = prev["lastTransitionTime"] if prev and prev.get("status") == status else now
    return {"type": typ, "status": status, "lastHeartbeatTime": now, "lastTransitionTime": since,
            "reason": reason, "message": message}


class NodeStatusReporter:
    def __init__(self, client: Client, runtime: Runtime, node_name: str, host_ip: str, *, root_dir: str,
                 logs_port: int, pod_cidr: str | None, on_pod_cidr: Callable[[str], None],
                 runtime_healthy: Callable[[], bool], network_ready: Callable[[], bool],
                 period: float = 10.0) -> None:
        self.client = client
        self.runtime = runtime
        self.name = node_name
        self.host_ip = host_ip
        self.root_dir = root_dir
        self.logs_port = logs_port
        self.pod_cidr_override = pod_cidr
        self.on_pod_cidr = on_pod_cidr
        self.runtime_healthy = runtime_healthy
        self.network_ready = network_ready
        self.period = period
        self.node: dict[str, Any] | None = None
        self._runtime_version = ""

    async def register(self) -> dict[str, Any]:
        try:
            node = await self.client.get(NODES, self.name)
        except errors.ApiError as exc:
            if exc.code != 404:
                raise
            spec: dict[str, Any] = {}
            if self.pod_cidr_override:
                spec = {"podCIDR": self.pod_cidr_override, "podCIDRs": [self.pod_cidr_override]}
            node = await self.client.create(NODES, {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.name, "labels": {
                    "kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": arch()}},
                "spec": spec})
            log.info("registered node %s", self.name)
        if self.pod_cidr_override and not (node.get("spec") or {}).get("podCIDR"):
            node = await self.client.patch(NODES, self.name, {"spec": {
                "podCIDR": self.pod_cidr_override, "podCIDRs": [self.pod_cidr_override]}})
        self.node = node
        self._notice_cidr(node)
        await self.update_status()
        await self.renew_lease()
        return self.node

    def pod_cidr(self) -> str | None:
        if self.pod_cidr_override:
            return self.pod_cidr_override
        return ((self.node or {}).get("spec") or {}).get("podCIDR") or None

    def _notice_cidr(self, node: dict[str, Any]) -> None:
        cidr = self.pod_cidr_override or (node.get("spec") or {}).get("podCIDR")
        if cidr:
            self.on_pod_cidr(cidr)

    def status(self, ready_runtime: bool) -> dict[str, Any]:
        now = now_str()
        old = {c.get("type"): c for c in ((self.node or {}).get("status") or {}).get("conditions") or []}
        if not ready_runtime:
            ready = _condition("Ready", False, "KubeletNotReady",
                               f"container runtime is down: cannot reach {self.runtime.runtime_name}", old, now)
        elif not self.network_ready():
            ready = _condition("Ready", False, "KubeletNotReady",
                               "container runtime network not ready: NetworkReady=false "
                               "reason:NetworkPluginNotReady message:cni config uninitialized "
                               "(no pod CIDR assigned yet)", old, now)
        else:
            ready = _condition("Ready", True, "KubeletReady", "kubelet is posting ready status", old, now)
        conds = [
            _condition("MemoryPressure", False, "KubeletHasSufficientMemory",
                       "kubelet has sufficient memory available", old, now),
            _condition("DiskPressure", False, "KubeletHasNoDiskPressure", "kubelet has no disk pressure",
                       old, now),
            _condition("PIDPressure", False, "KubeletHasSufficientPID", "kubelet has sufficient PID available",
                       old, now),
            ready]
        cap = capacity(self.root_dir)
        machine_id = _read("/etc/machine-id")
        return {
            "capacity": cap, "allocatable": dict(cap), "conditions": conds,
            "addresses": [{"type": "InternalIP", "address": self.host_ip},
                          {"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.logs_port}},
            "nodeInfo": {
                "machineID": machine_id, "systemUUID": _read("/sys/class/dmi/id/product_uuid", machine_id),
                "bootID": _read("/proc/sys/kernel/random/boot_id"), "kernelVersion": platform.release(),
                "osImage": os_image(),
                "containerRuntimeVersion": f"{self.runtime.runtime_name}://{self._runtime_version}",
                "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux", "architecture": arch()},
        }

    async def update_status(self) -> None:
        ok = self.runtime_healthy() and await self.runtime.ping()
        if ok and not self._runtime_version:
            try:
                self._runtime_version = await self.runtime.version()
            except Exception:
                pass
        node = await self.client.patch(NODES, self.name, {"status": self.status(ok)}, subresource="status")
        self.node = node
        self._notice_cidr(node)

    async def renew_lease(self) -> None:
        now = format_micro_time(datetime.now(timezone.utc))
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_DURATION, "renewTime": now}
        try:
            await self.client.patch(LEASES, self.name, {"spec": spec}, LEASE_NAMESPACE)
        except errors.ApiError as exc:
            if exc.code != 404:
                raise
            owner = []
            if self.node and self.node["metadata"].get("uid"):
                owner = [{"apiVersion": "v1", "kind": "Node", "name": self.name,
                          "uid": self.node["metadata"]["uid"]}]
            await self.client.create(LEASES, {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE, "ownerReferences": owner},
                "spec": {**spec, "acquireTime": now}}, LEASE_NAMESPACE)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                await self.update_status()
            except Exception as exc:
                log.warning("node status not written: %s", exc)
            try:
                await self.renew_lease()
            except Exception as exc:
                log.warning("lease not renewed: %s", exc)
