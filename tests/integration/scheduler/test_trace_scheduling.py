"""`kubeling trace pod` on the scheduling step, against the real apiserver and scheduler:
a pod no node fits traces to the scheduling step with the scheduler's reasons; a
scheduled pod's step says how many nodes were filtered out and why."""
from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from sched_cluster import PODS, eventually, pod

from tests.conftest import REPO


async def trace(cluster, ns: str, name: str) -> dict[str, Any]:
    # A subprocess of its own, awaited: the scheduler under test runs on this event loop.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kubeling", "trace", "pod", name, "-n", ns, "-o", "json", "--no-dns",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO,
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)["timelines"][0]


def step(tl: dict[str, Any], key: str) -> dict[str, Any]:
    return next(s for s in tl["steps"] if s["key"] == key)


async def test_a_pod_no_node_fits_traces_to_the_scheduling_step(cluster, kube, nodes, ns, scheduler):
    for name in ("small-a", "small-b", "small-c"):
        await nodes.add(name, cpu="1")
    await kube.create(PODS, pod("big", cpu="8"), ns)

    async def stuck():
        tl = await trace(cluster, ns, "big")
        return tl if step(tl, "scheduled")["waiting"] else None
    tl = await eventually(stuck, 30, "the trace to show the pod waiting at scheduling")
    s = step(tl, "scheduled")
    assert not s["done"] and s["warning"]
    assert s["waiting"].startswith("no node fits: 0/3 nodes are available: 3 Insufficient cpu."), s
    assert [x["key"] for x in tl["steps"] if x["done"]] == ["received", "stored"]
    assert not tl["complete"] and tl["total"] >= 0


async def test_a_scheduled_pod_says_how_many_nodes_were_filtered_out_and_why(cluster, kube, nodes, ns, scheduler):
    await nodes.add("tiny-a", cpu="1")
    await nodes.add("tiny-b", cpu="1")
    await nodes.add("roomy", cpu="4")
    await kube.create(PODS, pod("mid", cpu="2"), ns)

    async def scheduled():
        tl = await trace(cluster, ns, "mid")
        return tl if step(tl, "scheduled")["done"] else None
    tl = await eventually(scheduled, 30, "the trace to show the pod scheduled")
    s = step(tl, "scheduled")
    assert s["detail"].startswith("to roomy; 2 of 3 nodes filtered out (2 Insufficient cpu); scheduling took "), s
    assert 0 <= s["duration"] <= tl["total"]
    # No agent runs here: the trace waits for the node's agent next.
    assert step(tl, "accepted")["waiting"] == "the agent on roomy"


async def test_watch_follows_a_pod_from_its_creation_to_its_deletion(cluster, kube, nodes, ns, scheduler):
    await nodes.add("watched", cpu="2")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kubeling", "trace", "pod", "w", "-n", ns, "--watch", "--timeout", "60", "--no-dns",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO,
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)})
    assert proc.stdout is not None
    lines: list[str] = []

    async def read_until(text: str) -> None:
        while not any(text in line for line in lines):
            line = await asyncio.wait_for(proc.stdout.readline(), 30)   # type: ignore[union-attr]
            assert line, f"watch ended before {text!r}: {lines}"
            lines.append(line.decode())
    try:
        await kube.create(PODS, pod("w", cpu="100m"), ns)
        await read_until("✓ scheduled")   # each step printed as it happens, while the pod lives
        assert not any("deletion" in line for line in lines)
        await kube.delete(PODS, "w", ns, grace_period=0)
        await read_until("✓ removed from etcd")
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    order = [next(i for i, line in enumerate(lines) if text in line)
             for text in ("— creation", "✓ request received", "✓ stored in etcd", "✓ scheduled", "— deletion",
                          "✓ deletion requested", "✓ removed from etcd")]
    assert order == sorted(order), lines
