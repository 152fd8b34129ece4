"""The agent on a containerd node (CRI): pods run with an IP from the node's pod CIDR,
statuses name the runtime as kubelet's do, logs come from the CRI log files through
the agent's server, restarts count, and deleting the pod leaves nothing behind."""
from __future__ import annotations

import asyncio
import ipaddress
import subprocess

import pytest

from agent_nodes import container_status, pod_manifest, wait_pod, wait_until
from kubeling.resources import lookup

pytestmark = pytest.mark.e2e
PODS = lookup("pods")
NODES = lookup("nodes")


async def test_pod_lifecycle_on_containerd(client, namespace, containerd_node):
    node = containerd_node
    await client.create(PODS, pod_manifest("web", node.name, [
        {"name": "web", "command": ["sh", "-c", "echo serving; mkdir -p /www && echo hello-from-cri > "
                                                "/www/index.html && exec httpd -f -p 8080 -h /www"]},
        {"name": "crasher", "command": ["sh", "-c", "echo crash; exit 2"]}],
        terminationGracePeriodSeconds=2), namespace)

    pod = await wait_pod(client, namespace, "web", lambda p: container_status(p, "web").get("ready"),
                         90, "web Ready")
    st = pod["status"]
    ip = st["podIP"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(node.pod_cidr)
    assert st["hostIP"] == node.node_ip
    cs = container_status(pod, "web")
    assert cs["containerID"].startswith("containerd://") and cs["imageID"].startswith("sha256:")
    assert await wait_until(lambda: _get(node, f"http://{ip}:8080/"), 30, "httpd on the pod IP") == \
        "hello-from-cri\n"

    # The crashing container restarts: attempts count through the CRI annotations.
    pod = await wait_pod(client, namespace, "web",
                         lambda p: (container_status(p, "crasher").get("restartCount") or 0) >= 1, 90,
                         "a restart of the crasher")
    last = container_status(pod, "crasher")["lastState"]["terminated"]
    assert last["exitCode"] == 2 and last["reason"] == "Error"
    assert last["containerID"].startswith("containerd://")

    # Logs through the API server and the agent's server, from the CRI log file.
    assert await client.request("GET", f"/api/v1/namespaces/{namespace}/pods/web/log",
                                params={"container": "web"}, accept="text/plain") == "serving\n"

    info = (await client.get(NODES, node.name))["status"]["nodeInfo"]
    assert info["containerRuntimeVersion"].startswith("containerd://1.6")

    await client.delete(PODS, "web", namespace)

    async def gone():
        from kubeling import errors
        try:
            await client.get(PODS, "web", namespace)
            return False
        except errors.ApiError as exc:
            return exc.code == 404
    await wait_until(gone, 60, "the pod deleted")
    assert node.containers() == []
    assert node.ipam_files() == []


async def _get(node, url: str) -> str | None:
    try:
        return await asyncio.to_thread(node.http_get, url)
    except subprocess.CalledProcessError:
        return None


async def test_teardown_on_containerd(client, namespace, containerd_node):
    """`agent --teardown` (what `kubeling down` runs) with the CRI runtime: the pods go
    through StopPodSandbox/RemovePodSandbox, then the pod network and the agent's state."""
    node = containerd_node
    for name in ("t1", "t2"):
        await client.create(PODS, pod_manifest(name, node.name, [{"name": "c", "command": ["sleep", "3600"]}]),
                            namespace)
    for name in ("t1", "t2"):
        await wait_pod(client, namespace, name, lambda p: container_status(p, "c").get("ready"), 90, "Ready")
    assert len(node.ipam_files()) == 2
    node.stop_agent()
    out = await asyncio.to_thread(node.agent_teardown)
    assert "removed 2 pod(s)" in out.stdout, out.stderr
    assert node.containers() == []
    assert node.containerd.remove_all_sandboxes() == 0
    assert "veth" not in node.ns("ip", "-o", "link").stdout
    assert "KUBELING" not in node.ns("iptables-save").stdout
    assert not list(node.cni_conf_dir.glob("*.conflist")) and not node.agent_root.exists()
    assert not list(node.containerd.log_root.glob("*")), "pod log directories left"
