"""The `kubeling` command."""
from __future__ import annotations

import click

from .apply import apply_cmd, delete_cmd
from .cluster import down_cmd, up_cmd
from .components import commands as component_commands
from .get import get_cmd
from .init import init_cmd
from .join import join_cmd
from .node import node_cmd
from .reset import reset_cmd
from .trace import trace_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """kubeling: a small, real Kubernetes."""


for command in (apply_cmd, delete_cmd, get_cmd, up_cmd, down_cmd, init_cmd, join_cmd, reset_cmd, node_cmd,
                *component_commands):
    cli.add_command(command)
cli.add_command(trace_cmd)


def main() -> None:
    cli(prog_name="kubeling")
