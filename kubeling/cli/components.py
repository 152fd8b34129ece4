"""Each component runnable alone in the foreground (what systemd units call).

The CLI only execs the component's module: kubeling/ imports nothing of the
control plane or the agent, so each runs as its own process with its own flags.
"""
from __future__ import annotations

import os
import sys

import click

COMPONENTS = {
    "apiserver": "controlplane.apiserver",
    "controller-manager": "controlplane.controllers",
    "scheduler": "controlplane.scheduler",
    "agent": "agent",
    "proxy": "agent.proxy",
    "cni-daemon": "cni.daemon",
    "dns": "clusterdns",
    # kubeling's own containerd (`--runtime containerd`): config, start, images, stop.
    "containerd": "agent.runtime.containerd_host",
}


def component_argv(name: str, args: list[str]) -> list[str]:
    return [sys.executable, "-m", COMPONENTS[name], *args]


def _exec_command(name: str) -> click.Command:
    @click.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                           "help_option_names": []})
    @click.pass_context
    def run(ctx: click.Context) -> None:
        argv = component_argv(name, list(ctx.args))
        os.execv(argv[0], argv)
    run.help = f"Run the {name} in the foreground (see `kubeling {name} --help`)."
    return run


commands = [_exec_command(n) for n in COMPONENTS]
