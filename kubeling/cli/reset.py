"""`kubeling reset`: take kubeling off this machine (control plane or worker).

Units stop first (the agent before anything it needs), then the node's pods, pod network,
routes and iptables chains go (`agent --teardown`, `proxy --cleanup`, as `kubeling down`
runs them), then kubeling's containerd if the node ran on it, then the units and files.
Idempotent: on a clean machine it does nothing."""
from __future__ import annotations

import subprocess
from pathlib import Path

import click

from kubeling import systemd

from .cluster import Layout, _teardown_node
from .components import component_argv
from .machine import Machine, fail, machine_from, machine_options, remove_path, step


def _stop_units(units: list[str], keep: tuple[str, ...] = ()) -> None:
    if not systemd.booted():
        return
    # Reverse start order: nothing is left running against a part already stopped.
    for c in reversed(units):
        if c not in keep:
            step(f"stopping {systemd.unit_name(c)}")
            systemd.systemctl("disable", "--now", systemd.unit_name(c), check=False)


def _remove_units(m: Machine, units: list[str]) -> None:
    for c in units:
        remove_path(m.dirs.unit(c))
    if units and systemd.booted():
        systemd.systemctl("daemon-reload", check=False)
        systemd.systemctl("reset-failed", *(systemd.unit_name(c) for c in units), check=False)


def _teardown(m: Machine, runtime_endpoint: str | None) -> list[str]:
    """Pods and their network, with the credentials this machine has (admin on the control
    plane, the node's own on a worker: the teardown works even when the API is gone)."""
    if not ((m.data_dir / "agent").exists() or m.cni_conf.exists()):
        # No agent ever ran here (it makes its root dir at start, the conflist once it has a
        # pod CIDR): no pods, no pod network, no service rules of ours.
        return []
    kubeconfig = next((p for p in (m.kubeconfig("node"), m.kubeconfig("admin")) if p.exists()), None)
    if kubeconfig is None:
        return ["cannot remove the pods: no kubeconfig left in " + str(m.config_dir)]
    layout = Layout(run_dir=m.data_dir, log_dir=m.data_dir, data_dir=m.data_dir, config_dir=m.config_dir,
                    etcd_port=0, apiserver_port=0)
    return _teardown_node(layout, kubeconfig, runtime_endpoint)


def _containerd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(component_argv("containerd", [*args, "--address", systemd.CONTAINERD_ENDPOINT]),
                          capture_output=True, text=True, timeout=300)


def _stop_containerd() -> list[str]:
    """After the teardown: what sandbox is left goes, then the unit (KillMode=process, so a
    shim still running would survive it: check none does)."""
    failed = []
    proc = _containerd("remove-sandboxes")
    if proc.returncode != 0:
        failed.append(f"containerd remove-sandboxes failed: {proc.stderr.strip()[-300:]}")
    step(f"stopping {systemd.unit_name(systemd.CONTAINERD)}")
    systemd.systemctl("disable", "--now", systemd.unit_name(systemd.CONTAINERD), check=False)
    shims = _containerd("shims", "--wait", "15")
    if shims.returncode != 0:
        failed.append(f"containerd shims left running: pids {shims.stdout.strip()}")
    return failed


@click.command("reset")
@machine_options
def reset_cmd(**kw: object) -> None:
    """Remove kubeling from this machine: units, pods, pod network, files."""
    m = machine_from(kw)
    units = systemd.installed(m.dirs)
    # The node's pods are in kubeling's containerd when it has one: it runs until they are gone.
    on_containerd = systemd.CONTAINERD in units and systemd.booted()
    _stop_units(units, keep=(systemd.CONTAINERD,))
    failed = _teardown(m, systemd.CONTAINERD_ENDPOINT if on_containerd else None)
    if on_containerd:
        left = _stop_containerd()
        if left:
            # Its root holds the mounts of whatever still runs: keep every file for another reset.
            fail("; ".join(failed + left) + "; nothing was removed, run `kubeling reset` again")
    _remove_units(m, units)
    paths = [*(m.dirs.defaults(c) for c in systemd.EVERY), m.cni_conf, m.config_dir, m.data_dir]
    if on_containerd:
        paths.append(Path(systemd.CONTAINERD_STATE))
    for path in paths:
        if remove_path(path):
            step(f"removed {path}")
    if failed:
        fail("; ".join(failed))
    click.echo("kubeling is reset on this machine")
