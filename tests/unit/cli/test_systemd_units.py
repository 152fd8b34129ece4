"""The systemd units shipped with kubeling, their flag files, and sd_notify."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from kubeling import sdnotify, systemd


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


@pytest.mark.parametrize("component", systemd.EVERY)
def test_every_unit_restarts_forever_and_takes_its_flags_from_its_defaults_file(component):
    d = _directives(systemd.packaged_unit(component))
    assert d["Restart"] == ["always"]
    assert d["StartLimitIntervalSec"] == ["0"], "a unit that keeps failing must keep being restarted"
    assert int(d["RestartSec"][0]) > 0
    assert d["EnvironmentFile"] == [f"/etc/default/kubeling-{component}"]
    var = systemd.env_var(component)
    binary = "/usr/bin/etcd" if component == "etcd" else f"{systemd.KUBELING_BIN} {component}"
    # The process itself, no shell in between (NotifyAccess=main, signals reach it).
    assert d["ExecStart"] == [f"{binary} ${var}"]
    assert d["WantedBy"] == ["multi-user.target"]


def test_etcd_and_apiserver_tell_systemd_when_they_serve_and_the_agent_waits_for_docker_and_join():
    assert _directives(systemd.packaged_unit("etcd"))["Type"] == ["notify"]
    api = _directives(systemd.packaged_unit("apiserver"))
    assert api["Type"] == ["notify"] and api["NotifyAccess"] == ["main"]
    assert "kubeling-etcd.service" in api["After"][0].split()
    agent = _directives(systemd.packaged_unit("agent"))
    assert agent["ConditionPathExists"] == ["/etc/kubeling/node.kubeconfig"]
    assert "docker.service" in agent["After"][0].split() and "docker.service" in agent["Wants"][0].split()
    for component in ("controller-manager", "scheduler", "dns", "cni-daemon", "agent", "proxy"):
        assert "Type" not in _directives(systemd.packaged_unit(component)), component


def test_containerd_unit_is_ready_when_containerd_serves_comes_before_the_agent_and_spares_the_shims():
    d = _directives(systemd.packaged_unit("containerd"))
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert "kubeling-agent.service" in d["Before"][0].split()
    # Stopping or restarting it must not kill the pods' shims (they live in its cgroup).
    assert d["KillMode"] == ["process"] and d["Delegate"] == ["yes"]
    assert systemd.with_runtime(systemd.NODE, "containerd") == ("cni-daemon", "containerd", "agent", "proxy")
    assert systemd.with_runtime(systemd.NODE, "docker") == systemd.NODE
    assert systemd.with_runtime(systemd.CONTROL_PLANE, "containerd") == systemd.CONTROL_PLANE
    assert systemd.EVERY.index("containerd") < systemd.EVERY.index("agent")


def test_kubelings_containerd_paths_are_the_agents_defaults():
    from agent.runtime import containerd_config
    assert systemd.CONTAINERD_STATE == containerd_config.DEFAULT_STATE
    assert systemd.CONTAINERD_ENDPOINT == containerd_config.DEFAULT_ENDPOINT


def test_render_unit_moves_the_config_and_defaults_paths_only():
    dirs = systemd.Dirs(Path("/u"), Path("/tmp/x/default"), Path("/tmp/x/etc"))
    text = systemd.render_unit("agent", dirs)
    d = _directives(text)
    assert d["EnvironmentFile"] == ["/tmp/x/default/kubeling-agent"]
    assert d["ConditionPathExists"] == ["/tmp/x/etc/node.kubeconfig"]
    assert d["ExecStart"] == ["/usr/local/bin/kubeling agent $KUBELING_AGENT_ARGS"]
    assert systemd.render_unit("agent") == systemd.packaged_unit("agent")


def test_defaults_file_round_trips_and_refuses_what_systemd_would_split_or_quote():
    args = ["--kubeconfig", "/etc/kubeling/node.kubeconfig", "--node-ip", "192.168.56.11"]
    text = systemd.render_defaults("agent", args)
    assert 'KUBELING_AGENT_ARGS="--kubeconfig /etc/kubeling/node.kubeconfig --node-ip 192.168.56.11"' in text
    assert systemd.parse_defaults(text, "agent") == args
    assert systemd.parse_defaults(systemd.render_defaults("cni-daemon", []), "cni-daemon") == []
    for bad in ("a b", 'x"y', "", "$HOME", "tab\there"):
        with pytest.raises(ValueError, match="EnvironmentFile"):
            systemd.render_defaults("agent", ["--x", bad])


def test_systemd_analyze_verifies_the_rendered_units(tmp_path):
    """systemd's own parser (it needs no running systemd): unknown keys, bad values and
    missing executables are reported on stderr."""
    exe = shutil.which("systemd-analyze")
    assert exe, "systemd-analyze is missing (Debian: systemd)"
    for binary in (systemd.KUBELING_BIN, "/usr/bin/etcd"):
        assert os.access(binary, os.X_OK), f"{binary} is missing: run scripts/setup"
    dirs = systemd.Dirs(tmp_path / "units", tmp_path / "default", tmp_path / "etc")
    dirs.unit_dir.mkdir()
    dirs.defaults_dir.mkdir()
    for c in systemd.EVERY:
        dirs.unit(c).write_text(systemd.render_unit(c, dirs))
        dirs.defaults(c).write_text(systemd.render_defaults(c, ["--flag", "value"]))
    proc = subprocess.run([exe, "verify", *(str(dirs.unit(c)) for c in systemd.EVERY)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
    # ...and the check can fail: a misspelt key is reported.
    bad = dirs.unit_dir / "kubeling-bad.service"
    bad.write_text(systemd.render_unit("proxy", dirs).replace("RestartSec=", "RestartSecs="))
    proc = subprocess.run([exe, "verify", str(bad)], capture_output=True, text=True, timeout=60)
    assert "Unknown key" in proc.stderr


@pytest.mark.parametrize("abstract", [False, True])
def test_sd_notify_sends_one_ready_datagram(tmp_path, monkeypatch, abstract):
    name = f"kubeling-test-{os.getpid()}" if abstract else str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name if abstract else name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name if abstract else name)
        assert sdnotify.notify("READY=1") is True
        assert sock.recv(4096) == b"READY=1"


def test_sd_notify_outside_systemd_does_nothing(monkeypatch, tmp_path):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify() is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert sdnotify.notify() is False  # logged, not raised: the unit's start timeout says the rest
