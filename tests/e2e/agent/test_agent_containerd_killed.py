"""Issue 17's fault for the CRI runtime: `kill -9` of the node's containerd during a burst of
pod creations and deletions, then containerd again from the same command line (as its
systemd unit's Restart= would). The fault suite (tests/e2e/faults/) does the same to every
other component on a Docker node; this node runs containerd through CRI.

Afterwards, within a bound: every pod that should run runs exactly once (one sandbox and
one app container running in containerd, restartCount 0, the pod that ran through the
fault in the same container), every deleted pod is gone with its containers and its IP
allocation, and a pod created after the fault runs."""
from __future__ import annotations

import asyncio

from agent_nodes import condition, container_status, pod_gone, pod_manifest, wait_pod, wait_until
from kubeling.resources import lookup

PODS = lookup("pods")
CONVERGE_SECONDS = 90
DOWNTIME = 2.0  # kubeling-containerd.service's RestartSec


def sleeper(name: str, node: str) -> dict:
    return pod_manifest(name, node, [{"name": "c", "command": ["sleep", "3600"]}])


async def test_containerd_killed_during_a_burst_converges(client, namespace, make_node):
    node = make_node(runtime="containerd")
    ready = lambda p: condition(p, "Ready") == "True"  # noqa: E731
    for name in ("keep", "old-0", "old-1", "old-2"):
        await client.create(PODS, sleeper(name, node.name), namespace)
    keep = await wait_pod(client, namespace, "keep", ready, 90, "keep Ready")
    for name in ("old-0", "old-1", "old-2"):
        await wait_pod(client, namespace, name, ready, 90, f"{name} Ready")
    keep_cid = container_status(keep, "c")["containerID"]
    old_uids = {(await client.get(PODS, n, namespace))["metadata"]["uid"] for n in ("old-0", "old-1", "old-2")}

    burst = asyncio.gather(*(client.create(PODS, sleeper(f"new-{i}", node.name), namespace) for i in range(3)),
                           *(client.delete(PODS, f"old-{i}", namespace) for i in range(3)))
    killed = node.containerd.proc
    killed.kill()
    killed.wait(30)
    node.containerd.stop_daemon()   # nothing left to stop: the sockets go, as on a fresh start
    await asyncio.sleep(DOWNTIME)   # the outage itself, not a wait for a condition
    node.containerd.start_daemon()
    await burst
    await client.create(PODS, sleeper("after", node.name), namespace)

    expected = {"keep", "new-0", "new-1", "new-2", "after"}

    async def problems() -> list[str]:
        out = []
        pods = {p["metadata"]["name"]: p for p in (await client.list(PODS, namespace))["items"]}
        if set(pods) != expected:
            out.append(f"pods {sorted(pods)}, want {sorted(expected)}")
        rows = node.containers()
        for name, p in pods.items():
            uid = p["metadata"]["uid"]
            mine = [r for r in rows if r["LabelMap"].get("io.kubernetes.pod.uid") == uid]
            sandboxes = [r for r in mine if r["Container"] == "POD"]
            apps = [r for r in mine if r["Container"] == "c"]
            if not ready(p) or container_status(p, "c").get("restartCount") != 0:
                out.append(f"{name}: Ready {condition(p, 'Ready')}, status {container_status(p, 'c')}")
            if len(sandboxes) != 1 or len(apps) != 1 or any(r["State"] != "running" for r in mine):
                out.append(f"{name}: in containerd {[(r['Container'], r['State']) for r in mine]}")
        left = [r for r in rows if r["LabelMap"].get("io.kubernetes.pod.uid") in old_uids]
        if left:
            out.append(f"deleted pods' containers left: {[(r['Container'], r['State']) for r in left]}")
        ips = {p["status"].get("podIP") for p in pods.values()}
        files = {f.rsplit("/", 1)[-1] for f in node.ipam_files()}
        if files != ips:
            out.append(f"IP allocations {sorted(files)} vs pod IPs {sorted(map(str, ips))}")
        return out

    last: list[str] = []

    async def converged() -> bool:
        nonlocal last
        last = await problems()
        return not last
    try:
        await wait_until(converged, CONVERGE_SECONDS, "convergence after containerd's kill -9", interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}:\n  " + "\n  ".join(last)) from None
    for i in range(3):
        assert await pod_gone(client, namespace, f"old-{i}")
    keep = await client.get(PODS, "keep", namespace)
    assert container_status(keep, "c")["containerID"] == keep_cid   # ran through the fault untouched
