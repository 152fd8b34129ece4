"""Which runtime backend the agent speaks to: a CRI runtime when
--container-runtime-endpoint is given (kubelet's flag), else Docker Engine with
the pod network (CNI) behind it."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from agent.runtime.types import Runtime

if TYPE_CHECKING:
    from agent.agent import AgentConfig
    from agent.runtime.sandbox_network import SandboxNetwork


def make_runtime(cfg: "AgentConfig", network: "SandboxNetwork | None" = None) -> Runtime:
    """network: the SandboxNetwork the Docker backend runs CNI with (a CRI runtime runs
    CNI itself)."""
    if cfg.container_runtime_endpoint:
        from agent.runtime.cri import CriRuntime
        return CriRuntime(cfg.container_runtime_endpoint, pod_log_root=cfg.pod_logs_dir,
                          cgroup_root=os.path.join(cfg.cgroup_root or "/", "kubepods"))
    from agent.runtime.docker import DockerRuntime
    return DockerRuntime(cfg.docker_host, network=network)
