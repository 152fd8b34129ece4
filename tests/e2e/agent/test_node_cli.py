"""`kubeling node ps|pods|images` on a node whose agent runs pods through CRI on a
containerd of its own: the tables show the pod the agent made, as crictl would."""
from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from agent_nodes import container_status, pod_manifest, wait_pod, wait_until
from kubeling.resources import lookup
from tests.conftest import REPO

pytestmark = pytest.mark.e2e
PODS = lookup("pods")


def _table(*args: str) -> list[list[str]]:
    proc = subprocess.run([sys.executable, "-m", "kubeling", "node", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [[c.strip() for c in line.split("   ") if c.strip()] for line in proc.stdout.splitlines()]


async def test_node_tables_show_the_agents_pod_on_containerd(client, namespace, containerd_node):
    node = containerd_node
    await client.create(PODS, pod_manifest("nv", node.name, [{"name": "app", "command": ["sleep", "3600"]}]),
                        namespace)
    pod = await wait_pod(client, namespace, "nv", lambda p: container_status(p, "app").get("ready"), 90, "Ready")
    cid = container_status(pod, "app")["containerID"].removeprefix("containerd://")
    ep = ["--runtime-endpoint", node.containerd.endpoint]

    ps = await asyncio.to_thread(_table, "ps", *ep)
    row = next(r for r in ps[1:] if r[0] == cid[:13])
    assert row[3:6] == ["Running", "app", "0"] and row[7] == "nv", ps
    sandbox = row[6]
    pods = await asyncio.to_thread(_table, "pods", *ep)
    assert [sandbox, "Ready", "nv", namespace, "0"] in [r[:1] + r[2:] for r in pods[1:]], pods
    images = await asyncio.to_thread(_table, "images", *ep)
    assert {("docker.io/library/busybox", "latest"), ("docker.io/kubeling/pause", "3.9")} <= \
        {(r[0], r[1]) for r in images[1:]}

    # A graceful delete: the pod leaves the API only once the agent has stopped its containers
    # (a forced one leaves at once, the agent's kill still to come).
    await client.delete(PODS, "nv", namespace, grace_period=1)
    await wait_pod_gone(client, namespace, "nv")
    assert not [r for r in (await asyncio.to_thread(_table, "ps", *ep))[1:] if r[0] == cid[:13]], "still running"

    async def removed() -> bool:
        return not [r for r in (await asyncio.to_thread(_table, "ps", "-a", *ep))[1:] if r[0] == cid[:13]]
    await wait_until(removed, 60, "the pod's container removed")


async def wait_pod_gone(client, namespace: str, name: str) -> None:
    from kubeling import errors

    async def gone() -> bool:
        try:
            await client.get(PODS, name, namespace)
            return False
        except errors.ApiError as exc:
            return exc.code == 404
    await wait_until(gone, 60, f"pod {name} deleted")
