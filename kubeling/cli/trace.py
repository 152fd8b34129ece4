"""`kubeling trace pod NAME`: the pod's walkthrough as a timeline, from the events the
components recorded where each step happened (see kubeling.trace)."""
from __future__ import annotations

import asyncio
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import click

from kubeling.client import Client
from kubeling.trace import collect, render
from kubeling.trace.timeline import CREATION, DELETION, Timeline

from .common import fail, make_client, run_async

WATCH_TICK = 0.25


@click.group("trace")
def trace_cmd() -> None:
    """Show how an object went through the walkthrough, step by step."""


async def _timelines(client: Client, name: str, ns: str, domain: str | None) -> list[Timeline]:
    snap = await collect.snapshot(client, name, ns)
    answers = None
    if domain and snap.pod is not None and not (snap.pod["metadata"].get("deletionTimestamp")):
        # Only the Services the pod got into the endpoints of: before that, its name says nothing of the pod.
        first = collect.timelines(snap)[0]
        joined = [s.key.split(":", 1)[1] for s in first.steps if s.key.startswith("endpoints:") and s.done]
        answers = await collect.dns_check(client, joined, ns, domain) if joined else None
    return collect.timelines(snap, answers)


def _finished(tls: list[Timeline]) -> bool:
    last = tls[-1]
    return last.complete if last.kind == DELETION or len(tls) == 1 else False


def _progress(tl: Timeline) -> str:
    done = sum(1 for s in tl.steps if s.done or s.check)
    n = len(tl.steps) or 1
    bar = "#" * round(20 * done / n)
    return f"{tl.kind} [{bar:<20}] {done}/{n} steps"


async def _watch(client: Client, name: str, ns: str, domain: str | None, timeout: float) -> int:
    """Print each step as it appears (creation, then deletion), with a progress line on
    a terminal, until the last step of the newest timeline happened or `timeout`."""
    tty = sys.stdout.isatty()
    shown: set[tuple[str, str]] = set()
    deadline = time.monotonic() + timeout
    header_shown: set[str] = set()
    while True:
        tls = await _timelines(client, name, ns, domain)
        if tty:
            click.echo("\r\033[K", nl=False)
        for tl in tls:
            if tl.kind not in header_shown and any(s.done for s in tl.steps):
                header_shown.add(tl.kind)
                click.echo(f"pod {ns}/{name} — {tl.kind}")
            for s in tl.steps:
                if (s.done or s.check) and (tl.kind, s.key) not in shown:
                    shown.add((tl.kind, s.key))
                    since = f"+{s.offset:.3f}s" if s.offset is not None else ""
                    took = f"{s.duration:.3f}s" if s.duration is not None else ""
                    click.echo(f"  {since:>9}  {took:>8}  {'?' if s.check else '✓'} {s.title}  "
                               f"{s.check or s.detail}".rstrip())
        current = tls[-1]
        if _finished(tls):
            click.echo(render.text(current, color=tty))
            return 0
        if time.monotonic() > deadline:
            click.echo(render.text(current, color=tty))
            return 1
        if tty:
            waiting = next((s for s in current.steps if not s.done and not s.check), None)
            note = f" — waiting for {waiting.waiting}" if waiting is not None and waiting.waiting else ""
            click.echo(f"{_progress(current)}{note}"[:150], nl=False)
        await asyncio.sleep(WATCH_TICK)


@trace_cmd.command("pod")
@click.argument("name")
@click.argument("file", required=False)
@click.option("-n", "--namespace", default=None)
@click.option("-o", "--output", type=click.Choice(["text", "json", "html"]), default="text",
              help="html needs FILE: one self-contained page with the timeline as bars.")
@click.option("-w", "--watch", is_flag=True, help="Follow the pod live, each step as it happens.")
@click.option("--timeout", type=float, default=300.0, help="How long --watch follows (seconds).")
@click.option("--cluster-domain", default="cluster.local",
              help="Ask the cluster DNS for the Services' names under this domain.")
@click.option("--no-dns", is_flag=True, help="Do not ask the cluster DNS.")
@click.option("--kubeconfig", default=None)
@run_async
async def trace_pod_cmd(name: str, file: str | None, namespace: str | None, output: str, watch: bool,
                        timeout: float, cluster_domain: str, no_dns: bool, kubeconfig: str | None) -> None:
    """A pod's timeline, one line per walkthrough step: the time since the request and each
    step's duration; the slowest step marked; a step not yet done says what it waits for.
    A deleted pod also shows its deletion, step by step."""
    if output == "html" and not file:
        fail("error: -o html needs a FILE to write")
    client, default_ns = make_client(kubeconfig)
    ns = namespace or default_ns
    domain = None if no_dns else cluster_domain
    async with client:
        if watch:
            sys.exit(await _watch(client, name, ns, domain, timeout))
        tls = await _timelines(client, name, ns, domain)
    if not tls[0].uid:
        fail(f'Error from server (NotFound): pods "{name}" not found, and no events recorded under that name')
    if output == "json":
        click.echo(render.as_json(tls))
    elif output == "html":
        assert file is not None
        stamp = datetime.now(timezone.utc).strftime("traced %Y-%m-%d %H:%M:%S UTC")
        Path(file).write_text(render.as_html(tls, stamp), encoding="utf-8")
        click.echo(f"wrote {file}")
    else:
        click.echo("\n\n".join(render.text(t, color=sys.stdout.isatty()) for t in tls))


__all__ = ["trace_cmd", "CREATION"]
