"""The agent's runtime choice (agent/runtime/select.py) from its flags."""
from __future__ import annotations

from agent.__main__ import parse_args
from agent.runtime.cri import CriRuntime
from agent.runtime.docker import DockerRuntime
from agent.runtime.select import make_runtime


async def test_endpoint_selects_cri_with_its_paths():
    cfg, _ = parse_args(["--container-runtime-endpoint", "unix:///run/x/containerd.sock",
                         "--pod-logs-dir", "/tmp/pods", "--cgroup-root", "/test"])
    rt = make_runtime(cfg)
    try:
        assert isinstance(rt, CriRuntime) and rt.endpoint == "unix:///run/x/containerd.sock"
        assert rt.pod_log_root == "/tmp/pods" and rt.cgroup_root == "/test/kubepods"
        assert rt.runtime_name == "containerd"
    finally:
        await rt.close()


async def test_default_is_docker():
    cfg, _ = parse_args(["--docker-host", "unix:///run/y/docker.sock"])
    rt = make_runtime(cfg)
    try:
        assert isinstance(rt, DockerRuntime) and rt.host == "unix:///run/y/docker.sock"
        assert rt.runtime_name == "docker"
    finally:
        await rt.close()
