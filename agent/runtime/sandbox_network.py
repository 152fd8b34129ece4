"""The pod network of sandboxes, kept behind the runtime (dockershim's network
plugin manager did the same for kubelet): CNI ADD when a sandbox starts, DEL when
it stops, and a checkpoint per sandbox on disk with what DEL needs and the IPs,
kept across agent restarts and after the pause container is gone."""
from __future__ import annotations

import os

from agent.checkpoints import CheckpointStore, SandboxCheckpoint
from agent.cni import CniInvoker, pod_ips


class SandboxNetwork:
    def __init__(self, cni: CniInvoker, checkpoints: CheckpointStore, conf_path: str) -> None:
        """conf_path: the conflist this node's pod CIDR is written to; the network is
        ready once it exists."""
        self.cni = cni
        self.checkpoints = checkpoints
        self.conf_path = conf_path

    def ready(self) -> bool:
        return os.path.exists(self.conf_path)

    async def setup(self, sandbox_id: str, pid: int, pod_uid: str, pod_name: str, pod_namespace: str,
                    host_network: bool) -> list[str]:
        """Checkpoint first (so a crash mid-ADD still gets its DEL), then ADD; returns the IPs."""
        cp = SandboxCheckpoint(sandbox_id, pod_uid, pod_name, pod_namespace, host_network)
        self.checkpoints.save(cp)
        if host_network:
            return []
        result = await self.cni.add(sandbox_id, f"/proc/{pid}/ns/net", pod_namespace, pod_name)
        cp.pod_ips = pod_ips(result)
        self.checkpoints.save(cp)
        return cp.pod_ips

    async def teardown(self, sandbox_id: str, pid: int = 0) -> None:
        """DEL once (inside the netns while it still exists, if it does)."""
        cp = self.checkpoints.get(sandbox_id)
        if cp is None or cp.host_network or cp.network_torn_down:
            return
        await self.cni.delete(sandbox_id, f"/proc/{pid}/ns/net" if pid else "", cp.pod_namespace, cp.pod_name)
        cp.network_torn_down = True
        self.checkpoints.save(cp)

    def ips(self, sandbox_id: str) -> list[str]:
        cp = self.checkpoints.get(sandbox_id)
        if cp is not None and not cp.recovered:
            return list(cp.pod_ips)
        return pod_ips(self.cni.cached_result(sandbox_id))

    def forget(self, sandbox_id: str) -> None:
        self.checkpoints.remove(sandbox_id)

    def checkpointed(self, pod_uid: str | None = None) -> list[SandboxCheckpoint]:
        return self.checkpoints.for_pod(pod_uid) if pod_uid else self.checkpoints.all()

    def unowned(self) -> list[str]:
        """Sandboxes remembered by a checkpoint that names no pod (found corrupt)."""
        return self.checkpoints.unreadable()
