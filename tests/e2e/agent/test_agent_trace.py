"""`kubeling trace pod` on a real node: a pod whose image is missing traces to the image
step, waiting with ImagePullBackOff/ErrImagePull, after the sandbox and network steps
the agent recorded."""
from __future__ import annotations

import asyncio
import json
import os
import sys

from agent_nodes import pod_manifest

from kubeling.resources import lookup
from tests.conftest import REPO

PODS = lookup("pods")


async def trace(apiserver, ns: str, name: str) -> dict:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kubeling", "trace", "pod", name, "-n", ns, "-o", "json", "--no-dns",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO,
        env={**os.environ, "KUBECONFIG": str(apiserver.kubeconfig)})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)["timelines"][0]


async def test_a_pod_stuck_on_a_missing_image_traces_to_the_image_step(apiserver, client, namespace, node):
    await client.create(PODS, pod_manifest("noimg", node.name, [
        {"name": "c", "image": "kubeling/does-not-exist:1.0"}]), namespace)
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        tl = await trace(apiserver, namespace, "noimg")
        image = next(s for s in tl["steps"] if s["key"] == "image:c")
        if image["waiting"] and image["waiting"].split(":")[0] in ("ImagePullBackOff", "ErrImagePull"):
            break
        assert asyncio.get_running_loop().time() < deadline, tl
        await asyncio.sleep(0.5)
    assert not image["done"] and image["warning"], image
    assert "kubeling/does-not-exist:1.0" in image["waiting"], image
    done = [s["key"] for s in tl["steps"] if s["done"]]
    assert done == ["received", "stored", "accepted", "sandbox", "network"], tl
    scheduled = next(s for s in tl["steps"] if s["key"] == "scheduled")
    assert scheduled["check"] == f"not scheduled: created bound to {node.name}"
    network = next(s for s in tl["steps"] if s["key"] == "network")
    assert network["detail"].startswith("IP 10.244."), network
    assert all(s["duration"] >= 0 for s in tl["steps"] if s["done"])
    assert not tl["complete"]
    await client.delete(PODS, "noimg", namespace)
