"""Pods become real containers on a test node, with an IP from its pod CIDR."""
from __future__ import annotations

import ipaddress

import pytest

from agent_nodes import condition, container_status, get_or_none, pod_manifest, wait_pod, wait_until
from kubeling.resources import lookup

pytestmark = pytest.mark.e2e
PODS = lookup("pods")
NODES = lookup("nodes")


async def test_pod_runs_with_ip(client, namespace, node):
    await client.create(PODS, pod_manifest("web", node.name, [
        {"name": "web", "command": ["sh", "-c", "mkdir -p /www && echo hello-from-pod > /www/index.html"
                                             " && exec httpd -f -p 8080 -h /www"]}]), namespace)

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
    assert "running" in cs["state"] and cs["containerID"].startswith(node.container_id_prefix)
    assert cs["imageID"].startswith(node.image_id_prefix)
    for typ in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready", "PodScheduled"):
        assert condition(pod, typ) == "True", typ
    # The containers are real, labelled as Kubernetes labels them, and serve on the pod IP.
    rows = node.containers()
    uid = pod["metadata"]["uid"]
    sandbox = [r for r in rows if r["Container"] == "POD"]
    app = [r for r in rows if r["Container"] == "web"]
    assert len(sandbox) == 1 and len(app) == 1
    assert sandbox[0]["Names"] == node.kube_container_name(pod, "POD")
    assert app[0]["Names"] == node.kube_container_name(pod, "web")
    assert app[0]["SandboxID"] == sandbox[0]["ID"]
    assert app[0]["LabelMap"]["io.kubernetes.pod.uid"] == uid
    assert cs["containerID"] == f"{node.container_id_prefix}{app[0]['ID']}"
    out = node.http_get(f"http://{st['podIP']}:8080/")
    assert out.strip() == "hello-from-pod"
    # hostname is the pod name and /etc/hosts carries the pod IP
    hosts = node.container_exec(app[0]["ID"], "cat", "/etc/hosts").stdout
    assert f"{st['podIP']}\tweb" in hosts
    assert node.container_exec(app[0]["ID"], "hostname").stdout.strip() == "web"


async def test_two_pods_on_one_node_reach_each_other(client, namespace, node):
    for name in ("a", "b"):
        await client.create(PODS, pod_manifest(name, node.name, [
            {"name": "srv", "command": ["sh", "-c", f"mkdir -p /w && echo I-am-{name} > /w/index.html"
                                                    " && exec httpd -f -p 80 -h /w"]}]), namespace)
    a = await wait_pod(client, namespace, "a", lambda p: condition(p, "Ready") == "True")
    b = await wait_pod(client, namespace, "b", lambda p: condition(p, "Ready") == "True")
    assert a["status"]["podIP"] != b["status"]["podIP"]
    net = ipaddress.ip_network(node.pod_cidr)
    assert ipaddress.ip_address(a["status"]["podIP"]) in net and ipaddress.ip_address(b["status"]["podIP"]) in net
    a_id = container_status(a, "srv")["containerID"].split("//")[1]
    # Ready means running here (no probe): httpd may need a moment to listen.
    url = f"http://{b['status']['podIP']}/"
    await wait_until(lambda: node.container_exec(a_id, "wget", "-q", "-O", "-", url, check=False
                                                 ).stdout.strip() == "I-am-b", 10, "pod a to reach pod b")
    assert len(node.ipam_files()) == 2


async def test_node_registration_and_lease(client, namespace, node_factory):
    node = node_factory(extra_args=["--node-status-period", "1"])
    leases = lookup("leases")

    async def ready():
        n = await client.get(NODES, node.name)
        return n if condition(n, "Ready") == "True" else None
    n = await wait_until(ready, 30, "node Ready")
    st = n["status"]
    assert st["capacity"]["pods"] == "110" and int(st["capacity"]["cpu"]) >= 1
    assert st["capacity"]["memory"].endswith("Ki") and st["allocatable"]["pods"] == "110"
    assert {"type": "InternalIP", "address": node.node_ip} in st["addresses"]
    assert {"type": "Hostname", "address": node.name} in st["addresses"]
    info = st["nodeInfo"]
    assert info["containerRuntimeVersion"] == f"{node.runtime}://{node.runtime_version()}"
    assert info["kubeletVersion"].startswith("v1.")
    assert info["operatingSystem"] == "linux" and info["kernelVersion"]
    assert st["daemonEndpoints"]["kubeletEndpoint"]["Port"] == node.logs_port
    assert n["spec"]["podCIDR"] == node.pod_cidr
    conf = (node.cni_conf_dir / "10-kubeling.conflist").read_text()
    assert node.pod_cidr in conf and '"type": "kubeling-bridge"' in conf
    # The lease loop starts after registration, so Ready may come first.
    lease = await wait_until(lambda: get_or_none(client, leases, node.name, "kube-node-lease"), 10, "node lease")
    assert lease["spec"]["holderIdentity"] == node.name and lease["spec"]["leaseDurationSeconds"] == 40
    first = lease["spec"]["renewTime"]
    await wait_until(lambda: _lease_renewed(client, leases, node.name, first), 10, "lease renewal")
    await _runtime_down_then_back(client, namespace, node, ready)


async def _runtime_down_then_back(client, namespace, node, ready) -> None:
    """The runtime's daemon stops (its containers keep running): the Node goes NotReady
    saying so; the pod is not lost, and when the daemon returns the node is Ready again,
    the pod still runs in the same container (nothing recreated) and new pods start."""
    await client.create(PODS, pod_manifest("keep", node.name, [{"name": "c", "command": ["sleep", "3600"]}]),
                        namespace)
    pod = await wait_pod(client, namespace, "keep", lambda p: condition(p, "Ready") == "True", 60, "keep Ready")
    cid = container_status(pod, "c")["containerID"]
    ids_before = {r["ID"] for r in node.containers()}
    assert len(ids_before) == 2
    node.stop_runtime()

    await _runtime_down_reported(client, node)
    pod = await client.get(PODS, "keep", namespace)
    assert pod["status"]["phase"] == "Running" and container_status(pod, "c")["containerID"] == cid
    node.start_runtime()
    await wait_until(ready, 30, "node Ready again")
    # A pod made now runs: the agent works with the runtime again (and has synced its pods).
    await client.create(PODS, pod_manifest("after", node.name, [{"name": "c", "command": ["sleep", "3600"]}]),
                        namespace)
    await wait_pod(client, namespace, "after", lambda p: condition(p, "Ready") == "True", 60, "after Ready")
    pod = await client.get(PODS, "keep", namespace)
    cs = container_status(pod, "c")
    assert cs["containerID"] == cid and cs["restartCount"] == 0 and condition(pod, "Ready") == "True"
    kept = [r for r in node.containers() if r["ID"] in ids_before]
    assert len(kept) == 2 and all(r["State"] == "running" for r in kept), kept
    assert node.container_exec(cid.split("//")[1], "true").returncode == 0


async def test_wrong_runtime_socket_reports_the_runtime_down(client, node_factory):
    """The agent pointed at a socket nobody serves: the Node registers NotReady saying the
    runtime is down, and the agent keeps running; on the right socket the Node is Ready."""
    node = node_factory(start_agent=False, extra_args=["--node-status-period", "1"])
    node.start_agent(*node.runtime_args(socket=f"unix://{node.run_dir}/nobody.sock"))

    await _runtime_down_reported(client, node)
    assert node.agent_alive(), node.log_text()[-3000:]
    node.stop_agent()
    node.start_agent()

    async def ready():
        return condition(await client.get(NODES, node.name), "Ready") == "True"
    await wait_until(ready, 30, "node Ready on the runtime's own socket")


async def _runtime_down_reported(client, node) -> None:
    """The Node goes NotReady saying its runtime is down."""
    async def not_ready():
        n = await client.get(NODES, node.name)
        return n if condition(n, "Ready") == "False" else None
    n = await wait_until(not_ready, 30, "node NotReady")
    ready_cond = [c for c in n["status"]["conditions"] if c["type"] == "Ready"][0]
    assert ready_cond["reason"] == "KubeletNotReady"
    assert ready_cond["message"] == f"container runtime is down: cannot reach {node.runtime}"


async def _lease_renewed(client, leases, name, first):
    return (await client.get(leases, name, "kube-node-lease"))["spec"]["renewTime"] != first
