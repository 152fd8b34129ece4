"""`kubeling node ps|pods|images`: what this node's container runtime holds, as crictl
shows it, read through the agent's own Runtime interface (agent/runtime/node_view.py, run
as a process of its own: kubeling/ imports nothing of the agent)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import click

DOCKER_ENDPOINT = "unix:///var/run/docker.sock"
# kubeling's own containerd (init/join/up --runtime containerd): see kubeling/systemd.
CONTAINERD_SOCKET = "/run/kubeling/containerd/containerd.sock"


def default_endpoint(containerd_socket: str = CONTAINERD_SOCKET) -> str:
    """Our containerd's socket when this node runs on it, else Docker's."""
    return f"unix://{containerd_socket}" if os.path.exists(containerd_socket) else DOCKER_ENDPOINT


def short_id(value: str) -> str:
    """An id as crictl and docker print it: no algorithm prefix, 13 characters."""
    return value.split(":", 1)[-1][:13]


def human_size(n: float) -> str:
    """Decimal units, four significant digits (docker's and crictl's go-units HumanSize)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.4g}{units[i]}"


def human_ago(created: float, now: float) -> str:
    if not created:
        return "Unknown"
    s = max(0.0, now - created)
    if s < 1:
        return "Less than a second ago"
    if s < 60:
        return f"{int(s)} second{'s' if int(s) != 1 else ''} ago"
    m = s / 60
    if m < 2:
        return "About a minute ago"
    if m < 60:
        return f"{int(m)} minutes ago"
    h = m / 60
    if h < 2:
        return "About an hour ago"
    if h < 48:
        return f"{int(h)} hours ago"
    return f"{int(h / 24)} days ago"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns three spaces apart (crictl's tabwriter), no trailing blanks."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["   ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    return "\n".join(lines) + "\n"


def _image_name(image: str) -> str:
    return short_id(image) if image.startswith("sha256:") else image


def format_ps(items: list[dict[str, Any]], now: float, all_: bool = False) -> str:
    rows = [[short_id(c["id"]), _image_name(c["image"]), human_ago(c["created_at"], now), c["state"].capitalize(),
             c["name"], str(c["attempt"]), short_id(c["pod_id"]), c["pod"]]
            for c in sorted(items, key=lambda c: -c["created_at"]) if all_ or c["state"] == "running"]
    return table(["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD"], rows)


def format_pods(items: list[dict[str, Any]], now: float) -> str:
    # A sandbox is Ready while it runs (CRI's SANDBOX_READY), NotReady once stopped.
    rows = [[short_id(p["id"]), human_ago(p["created_at"], now), "Ready" if p["state"] == "running" else "NotReady",
             p["name"], p["namespace"], str(p["attempt"])]
            for p in sorted(items, key=lambda p: -p["created_at"])]
    return table(["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT"], rows)


def split_tag(ref: str) -> tuple[str, str]:
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag
    return ref, "<none>"


def format_images(items: list[dict[str, Any]], now: float = 0) -> str:
    rows = []
    for img in items:
        refs = [r for r in img.get("repo_tags") or [] if r != "<none>:<none>"] or ["<none>:<none>"]
        for ref in refs:
            repo, tag = split_tag(ref) if ref != "<none>:<none>" else ("<none>", "<none>")
            rows.append([repo, tag, short_id(img["id"]), human_size(img["size"])])
    return table(["IMAGE", "TAG", "IMAGE ID", "SIZE"], sorted(rows))


def _read(what: str, endpoint: str) -> list[dict[str, Any]]:
    proc = subprocess.run([sys.executable, "-m", "agent.runtime.node_view", what, "--runtime-endpoint", endpoint],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise click.ClickException((proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
                                   .removeprefix("error: "))
    return json.loads(proc.stdout)["items"]


endpoint_option = click.option(
    "--runtime-endpoint", "endpoint", envvar="CONTAINER_RUNTIME_ENDPOINT", default=None,
    help=f"the runtime's socket  [default: unix://{CONTAINERD_SOCKET} when this node runs kubeling's "
         f"containerd, else {DOCKER_ENDPOINT}]")


@click.group("node")
def node_cmd() -> None:
    """What this node's container runtime holds (like crictl)."""


def _show(what: str, fmt: Callable[[list[dict[str, Any]], float], str], endpoint: str | None) -> None:
    click.echo(fmt(_read(what, endpoint or default_endpoint()), time.time()), nl=False)


@node_cmd.command("ps")
@click.option("-a", "--all", "all_", is_flag=True, help="also containers that do not run")
@endpoint_option
def ps_cmd(all_: bool, endpoint: str | None) -> None:
    """List the pods' containers."""
    _show("ps", lambda items, now: format_ps(items, now, all_), endpoint)


@node_cmd.command("pods")
@endpoint_option
def pods_cmd(endpoint: str | None) -> None:
    """List the pod sandboxes."""
    _show("pods", format_pods, endpoint)


@node_cmd.command("images")
@endpoint_option
def images_cmd(endpoint: str | None) -> None:
    """List the images."""
    _show("images", format_images, endpoint)
