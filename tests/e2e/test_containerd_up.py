"""`kubeling up --runtime containerd`'s containerd component: started with a pid file and
a log like the others, ready once CRI answers, fed the images, and stopped by `down`'s
path with no shim left. (The agent on it is tested on nodes of their own, in netns.)"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from kubeling.cli import cluster

pytestmark = pytest.mark.e2e


@pytest.fixture
def layout():
    base = Path(tempfile.mkdtemp(prefix="kubeling-up-", dir="/var/tmp"))
    lay = cluster.Layout(base / "run", base / "log", base / "data", base / "etc", 0, 0, runtime="containerd")
    for d in (lay.run_dir, lay.log_dir, lay.data_dir, lay.config_dir):
        d.mkdir(parents=True)
    try:
        yield lay
    finally:
        pid = cluster._running_pid(lay, "containerd")
        if pid is not None:
            cluster._stop_containerd(lay)
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(base))]
        for m in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", m], check=False)
        shutil.rmtree(base, ignore_errors=True)
        assert not mounts, f"mounts left: {mounts}"


def _ctr_images(lay: cluster.Layout) -> list[str]:
    sock = lay.containerd_endpoint.removeprefix("unix://")
    return subprocess.run(["ctr", "-a", sock, "-n", "k8s.io", "images", "ls", "-q"], capture_output=True, text=True,
                          check=True, timeout=30).stdout.split()


def test_up_starts_our_containerd_with_images_and_down_stops_it_leaving_nothing(layout, capsys):
    comp = next(c for c in cluster.COMPONENTS if c.name == "containerd")
    assert comp.node and comp.runtime == "containerd"
    cluster._start(layout, comp)
    pid = cluster._running_pid(layout, "containerd")
    assert pid is not None
    # The pid file names containerd itself (the CLI exec'd it), not a wrapper.
    assert os.path.basename(os.readlink(f"/proc/{pid}/exe")) == "containerd"
    assert layout.containerd_config.exists() and str(layout.data_dir / "containerd") in \
        layout.containerd_config.read_text()
    assert {"docker.io/kubeling/pause:3.9", "docker.io/library/busybox:latest"} <= set(_ctr_images(layout))
    out = capsys.readouterr().out
    assert "containerd: started" in out and "imported kubeling/pause:3.9" in out

    cluster._start(layout, comp)  # idempotent: the same daemon, nothing imported again
    out = capsys.readouterr().out
    assert f"already running (pid {pid})" in out and "imported" not in out

    agent = cluster._agent_argv(layout)
    assert agent[agent.index("--container-runtime-endpoint") + 1] == layout.containerd_endpoint
    from dataclasses import replace
    assert "--container-runtime-endpoint" not in cluster._agent_argv(replace(layout, runtime="docker"))

    assert cluster._stop_containerd(layout) == []
    assert cluster._running_pid(layout, "containerd") is None and not layout.pid_file("containerd").exists()
    # (a zombie until this process reaps it: _running_pid counts that as gone)
    assert not os.path.exists(f"/proc/{pid}") or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    shims = subprocess.run(["pgrep", "-f", f"containerd-shim-runc-v2 .*-address {layout.run_dir}/"],
                           capture_output=True, text=True).stdout.split()
    assert shims == []
