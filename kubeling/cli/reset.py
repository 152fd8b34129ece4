"""`kubeling reset`: take kubeling off this machine (control plane or worker).

Units stop first (the agent before anything it needs), then the node's pods, pod network,
routes and iptables chains go (`agent --teardown`, `proxy --cleanup`, as `kubeling down`
runs them), then the units and files. Idempotent: on a clean machine it does nothing."""
from __future__ import annotations

import click

from kubeling import systemd

from .cluster import Layout, _teardown_node
from .machine import Machine, fail, machine_from, machine_options, remove_path, step


def _stop_units(m: Machine) -> None:
    units = systemd.installed(m.dirs)
    if not units:
        return
    if systemd.booted():
        # Reverse start order: nothing is left running against a part already stopped.
        for c in reversed(systemd.ALL):
            if c in units:
                step(f"stopping {systemd.unit_name(c)}")
                systemd.systemctl("disable", "--now", systemd.unit_name(c), check=False)
    for c in units:
        remove_path(m.dirs.unit(c))
    if systemd.booted():
        systemd.systemctl("daemon-reload", check=False)
        systemd.systemctl("reset-failed", *(systemd.unit_name(c) for c in units), check=False)


def _teardown(m: Machine) -> list[str]:
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
    return _teardown_node(layout, kubeconfig)


@click.command("reset")
@machine_options
def reset_cmd(**kw: object) -> None:
    """Remove kubeling from this machine: units, pods, pod network, files."""
    m = machine_from(kw)
    _stop_units(m)
    failed = _teardown(m)
    for path in (*(m.dirs.defaults(c) for c in systemd.ALL), m.cni_conf, m.config_dir, m.data_dir):
        if remove_path(path):
            step(f"removed {path}")
    if failed:
        fail("; ".join(failed))
    click.echo("kubeling is reset on this machine")
