"""Which runtime `up`/`down`/`reset` hand the agent: Docker by default, kubeling's own
containerd (its CRI socket) with --runtime containerd."""
from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

from kubeling.cli import cluster


def _layout(tmp_path: Path, runtime: str = "docker") -> cluster.Layout:
    return cluster.Layout(tmp_path / "run", tmp_path / "log", tmp_path / "data", tmp_path / "etc", 2379, 6443,
                          runtime=runtime)


def _teardown_argvs(monkeypatch, *args, **kw) -> list[list[str]]:
    seen: list[list[str]] = []

    def run(argv, **_):
        seen.append(list(argv))
        return subprocess.CompletedProcess(argv, 0, "", "")
    monkeypatch.setattr(cluster.subprocess, "run", run)
    assert cluster._teardown_node(*args, **kw) == []
    return seen


def test_the_agent_and_its_teardown_get_the_containerd_endpoint_only_on_containerd(tmp_path, monkeypatch):
    docker, cd = _layout(tmp_path), _layout(tmp_path, "containerd")
    assert cd.containerd_endpoint == f"unix://{tmp_path}/run/containerd/containerd.sock"
    assert "--container-runtime-endpoint" not in cluster._agent_argv(docker)
    argv = cluster._agent_argv(cd)
    assert argv[argv.index("--container-runtime-endpoint") + 1] == cd.containerd_endpoint

    agent = _teardown_argvs(monkeypatch, docker)[0]
    assert "--teardown" in agent and "--container-runtime-endpoint" not in agent
    agent = _teardown_argvs(monkeypatch, cd)[0]
    assert agent[agent.index("--container-runtime-endpoint") + 1] == cd.containerd_endpoint
    # reset names the socket its containerd unit serves on.
    agent = _teardown_argvs(monkeypatch, docker, None, "unix:///run/kubeling/containerd/containerd.sock")[0]
    assert agent[agent.index("--container-runtime-endpoint") + 1] == "unix:///run/kubeling/containerd/containerd.sock"


def test_containerd_is_a_node_component_started_before_the_agent_with_the_real_paths(tmp_path):
    names = [c.name for c in cluster.COMPONENTS]
    assert names.index("cni-daemon") < names.index("containerd") < names.index("agent")
    comp = cluster.COMPONENTS[names.index("containerd")]
    assert comp.node and comp.runtime == "containerd" and comp.after is not None
    assert all(c.runtime is None for c in cluster.COMPONENTS if c.name != "containerd")
    real = cluster.Layout(Path("/run/kubeling"), Path("/var/log/kubeling"), Path("/var/lib/kubeling"),
                          Path("/etc/kubeling"), 2379, 6443, runtime="containerd")
    assert real.containerd_endpoint == "unix:///run/kubeling/containerd/containerd.sock"
    argv = comp.argv(real)
    assert argv[argv.index("--root") + 1] == "/var/lib/kubeling/containerd"
    assert argv[argv.index("--state") + 1] == "/run/kubeling/containerd"
    assert argv[argv.index("--config") + 1] == "/etc/kubeling/containerd/config.toml"
    assert replace(real, runtime="docker").containerd_endpoint == real.containerd_endpoint
