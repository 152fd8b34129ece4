"""Pods become real containers on a test node, with an IP from its pod CIDR."""
from __future__ import annotations

import ipaddress

import pytest

from agent_nodes import condition, container_status, pod_manifest, wait_until
from kubeling.resources import lookup

pytestmark = pytest.mark.e2e
PODS = lookup("pods")
NODES = lookup("nodes")


async def test_pod_runs_with_ip(client, namespace, node):
    await client.create(PODS, pod_manifest("web", node.name, [
        {"name": "web", "command": ["sh", "-c", "echo hello; httpd -f -p 8080"]}]), namespace)

    async def running():
        p = await client.get(PODS, "web", namespace)
        return p if condition(p, "Ready") == "True" else None
    pod = await wait_until(running, 60, "pod Ready")
    st = pod["status"]
    assert st["phase"] == "Running"
    ip = ipaddress.ip_address(st["podIP"])
    assert ip in ipaddress.ip_network(node.pod_cidr)
    assert st["podIPs"] == [{"ip": st["podIP"]}]
    assert st["hostIP"] == node.node_ip
    cs = container_status(pod, "web")
    assert cs["ready"] is True and cs["started"] is True and cs["restartCount"] == 0
    assert "running" in cs["state"] and cs["containerID"].startswith("docker://")
    assert cs["imageID"].startswith("docker://sha256:")
    for typ in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready", "PodScheduled"):
        assert condition(pod, typ) == "True", typ
    # The containers are real, labelled as Kubernetes labels them, and serve on the pod IP.
    rows = node.containers()
    uid = pod["metadata"]["uid"]
    sandbox = [r for r in rows if r["LabelMap"].get("io.kubernetes.container.name") == "POD"]
    app = [r for r in rows if r["LabelMap"].get("io.kubernetes.container.name") == "web"]
    assert len(sandbox) == 1 and len(app) == 1
    assert sandbox[0]["Names"] == f"k8s_POD_web_{namespace}_{uid}_0"
    assert app[0]["Names"] == f"k8s_web_web_{namespace}_{uid}_0"
    assert app[0]["LabelMap"]["io.kubernetes.sandbox.id"] == sandbox[0]["ID"]
    assert app[0]["LabelMap"]["io.kubernetes.pod.uid"] == uid
    assert cs["containerID"] == f"docker://{app[0]['ID']}"
    out = node.ns("sh", "-c", f"busybox wget -q -O - http://{st['podIP']}:8080/ 2>&1 || true").stdout
    assert "404" in out or "Not Found" in out or out == ""  # httpd answers (no index) — connection works
    # hostname is the pod name and /etc/hosts carries the pod IP
    hosts = node.docker("exec", app[0]["ID"], "cat", "/etc/hosts").stdout
    assert f"{st['podIP']}\tweb" in hosts
    assert node.docker("exec", app[0]["ID"], "hostname").stdout.strip() == "web"
