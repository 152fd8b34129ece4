"""Deletion with a grace period, agent restarts that adopt running pods, and
the logs endpoint."""
from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request

import pytest

from agent_nodes import condition, pod_gone, container_status, pod_manifest, wait_pod, wait_until
from kubeling.resources import lookup

pytestmark = pytest.mark.e2e
PODS = lookup("pods")
EVENTS = lookup("events")


def app_containers(node, pod_name):
    return [r for r in node.containers() if r["LabelMap"].get("io.kubernetes.pod.name") == pod_name]


async def test_delete_with_grace_sigterm_then_sigkill(client, namespace, node):
    await client.create(PODS, pod_manifest("polite", node.name, [
        {"name": "c", "command": ["sh", "-c", "trap 'echo got-term; exit 0' TERM; while true; do sleep 0.1; done"]}],
        terminationGracePeriodSeconds=120), namespace)
    await client.create(PODS, pod_manifest("stubborn", node.name, [
        {"name": "c", "command": ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]}],
        terminationGracePeriodSeconds=3), namespace)
    await wait_pod(client, namespace, "polite", lambda p: condition(p, "Ready") == "True")
    await wait_pod(client, namespace, "stubborn", lambda p: condition(p, "Ready") == "True")
    assert len(node.ipam_files()) == 2
    t0 = time.monotonic()
    await client.delete(PODS, "polite", namespace)
    await client.delete(PODS, "stubborn", namespace)
    p = await client.get(PODS, "stubborn", namespace)
    assert p["metadata"]["deletionTimestamp"] and p["metadata"]["deletionGracePeriodSeconds"] == 3
    # Bounds far from the machine's speed: the polite pod is gone long before its 120 s
    # grace period could end (so SIGTERM stopped it), the stubborn one not before its 3 s
    # grace period ended, and well before the polite one's would (so SIGKILL came on time).
    await wait_until(lambda: pod_gone(client, namespace, "polite"), 60, "polite pod gone (exited on SIGTERM)")
    await wait_until(lambda: pod_gone(client, namespace, "stubborn"), 60, "stubborn pod gone (SIGKILL after 3 s)")
    stubborn_s = time.monotonic() - t0
    assert stubborn_s >= 2.8, stubborn_s
    assert node.containers() == []
    assert node.ipam_files() == []
    assert not list((node.agent_root / "sandboxes").glob("*.json"))
    assert not list((node.agent_root / "cni" / "results").glob("*"))
    evs = (await client.list(EVENTS, namespace, field_selector="involvedObject.name=stubborn"))["items"]
    assert any(e["reason"] == "Killing" and e["message"] == "Stopping container c" for e in evs)


async def test_agent_restart_adopts_pods_and_cleans_up(client, namespace, node):
    names = [f"p{i}" for i in range(5)]
    for n in names:
        await client.create(PODS, pod_manifest(n, node.name, [
            {"name": "c", "command": ["sh", "-c", "sleep 3600"]}]), namespace)
    before = {}
    for n in names:
        p = await wait_pod(client, namespace, n, lambda p: condition(p, "Ready") == "True")
        before[n] = (container_status(p, "c")["containerID"], p["status"]["podIP"])
    ids_before = {r["ID"] for r in node.containers()}
    assert len(ids_before) == 10
    node.stop_agent(kill=True)
    # While the agent is away: one pod is force-deleted, one deleted gracefully.
    await client.delete(PODS, "p3", namespace, grace_period=0)
    await client.delete(PODS, "p4", namespace, grace_period=5)
    node.start_agent()
    await wait_until(lambda: pod_gone(client, namespace, "p4"), 20, "p4 confirmed deleted by the agent")
    await wait_until(lambda: not app_containers(node, "p3") and not app_containers(node, "p4"), 20,
                     "containers of deleted pods removed")
    await wait_until(lambda: len(node.ipam_files()) == 3, 10, "their IPs released")
    for n in names[:3]:
        p = await client.get(PODS, n, namespace)
        assert (container_status(p, "c")["containerID"], p["status"]["podIP"]) == before[n]
        assert container_status(p, "c")["restartCount"] == 0 and condition(p, "Ready") == "True"
    ids_after = {r["ID"] for r in node.containers()}
    assert ids_after < ids_before and len(ids_after) == 6  # nothing recreated
    # and the adopted pods still behave: deleting one works end to end
    await client.delete(PODS, "p0", namespace, grace_period=1)
    await wait_until(lambda: pod_gone(client, namespace, "p0"), 15, "p0 gone")
    assert len(node.ipam_files()) == 2
    assert "Traceback" not in node.log_text()


async def test_a_corrupt_checkpoint_of_a_vanished_sandbox_gives_its_ip_back(client, namespace, make_node):
    """The agent away, the pod force-deleted, its containers removed by hand and its
    checkpoint corrupted: nothing names the pod any more, yet the agent's next start
    runs CNI DEL for the sandbox (the IPAM keys on its ID) and forgets it. (Docker alone:
    the agent keeps the checkpoints for it; under CRI containerd keeps its sandboxes.)"""
    node = make_node(runtime="docker")
    await client.create(PODS, pod_manifest("lost", node.name, [
        {"name": "c", "command": ["sh", "-c", "sleep 3600"]}]), namespace)
    await wait_pod(client, namespace, "lost", lambda p: condition(p, "Ready") == "True")
    assert len(node.ipam_files()) == 1
    [checkpoint] = list((node.agent_root / "sandboxes").glob("*.json"))
    node.stop_agent(kill=True)
    await client.delete(PODS, "lost", namespace, grace_period=0)
    node.docker("rm", "-f", *[r["ID"] for r in node.containers()])
    checkpoint.write_bytes(checkpoint.read_bytes()[:25])   # a write cut short
    node.start_agent()
    await wait_until(lambda: node.ipam_files() == [], 30, "the IP of the corrupt checkpoint's sandbox released")
    await wait_until(lambda: not checkpoint.exists(), 10, "the corrupt checkpoint forgotten")
    assert node.containers() == []
    assert "released its network" in node.log_text()
    assert "Traceback" not in node.log_text()


_AGENT_TLS: list = []  # the apiserver's kubelet client TLS context, set by the test


def _get(url: str) -> tuple[int, str]:
    """GET from the agent's HTTPS port as the apiserver does (its kubelet client certificate)."""
    try:
        with urllib.request.urlopen(url, timeout=10, context=_AGENT_TLS[-1]) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def test_container_logs_endpoint(client, namespace, node, apiserver):
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.load_cert_chain(*apiserver.kubelet_client)
    _AGENT_TLS.append(ctx)
    await client.create(PODS, pod_manifest("talk", node.name, [
        {"name": "c", "command": ["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; echo err >&2; "
                                              "sleep 1; echo gen-$RANDOM; exit 1"]}]), namespace)
    p = await wait_pod(client, namespace, "talk", lambda p: container_status(p, "c").get("restartCount", 0) >= 1
                       and "terminated" in container_status(p, "c").get("lastState", {}), 40, "a restart")
    base = f"https://{node.node_ip}:{node.logs_port}/containerLogs/{namespace}/talk/c"
    code, text = await asyncio.to_thread(_get, base)
    # stdout and stderr are two streams: their relative order is not kept
    out = [ln for ln in text.splitlines() if ln != "err"]
    assert code == 200 and out[:5] == [f"line{i}" for i in range(1, 6)] and "err" in text.splitlines()
    code, text = await asyncio.to_thread(_get, base + "?tailLines=2")
    assert code == 200 and len(text.splitlines()) <= 2
    code, prev = await asyncio.to_thread(_get, base + "?previous=true")
    prev_out = [ln for ln in prev.splitlines() if ln != "err"]
    assert code == 200 and prev_out[:5] == [f"line{i}" for i in range(1, 6)] and "gen-" in prev
    p = await client.get(PODS, "talk", namespace)
    cs = container_status(p, "c")
    last_id = cs["lastState"]["terminated"]["containerID"].split("//")[1]
    runtime_prev = node.container_logs(last_id)
    assert [ln for ln in prev.splitlines() if ln.startswith("gen-")] == \
        [ln for ln in runtime_prev.splitlines() if ln.startswith("gen-")]
    code, text = await asyncio.to_thread(_get, base + "?timestamps=true&tailLines=1")
    assert code == 200 and text[:4].isdigit() and "T" in text.split(" ")[0]
    code, text = await asyncio.to_thread(_get, f"https://{node.node_ip}:{node.logs_port}"
                                                f"/containerLogs/{namespace}/talk/nope")
    assert code == 400 and "not valid" in text
    # follow streams until the container exits. The container writes only once the test lets it
    # (a file it waits for, bounded at 60 s), so a slow status update cannot make it finish first.
    await client.create(PODS, pod_manifest("stream", node.name, [
        {"name": "c", "command": ["sh", "-c", "n=600; while [ ! -e /tmp/go ] && [ $n -gt 0 ]; do sleep 0.1; "
                                              "n=$((n-1)); done; for i in 1 2 3; do echo tick$i; sleep 0.3; done"]}],
        restartPolicy="Never"), namespace)
    p = await wait_pod(client, namespace, "stream", lambda p: "running" in container_status(p, "c").get("state", {}))
    follow = asyncio.create_task(asyncio.to_thread(
        _get, f"https://{node.node_ip}:{node.logs_port}/containerLogs/{namespace}/stream/c?follow=true"))
    # While the container is alive and silent, follow must keep the stream open.
    done, _ = await asyncio.wait({follow}, timeout=1.5)
    assert not done, f"follow returned while the container was still running: {follow.result()}"
    node.container_exec(container_status(p, "c")["containerID"].split("//")[1], "touch", "/tmp/go")
    code, text = await asyncio.wait_for(follow, 30)
    assert code == 200 and text == "tick1\ntick2\ntick3\n"


async def test_teardown_removes_every_pod_and_the_pod_network(client, namespace, node):
    """`python -m agent --teardown` (what `kubeling down` runs): no container, IP,
    bridge, chain, conflist or state of ours stays on the node."""
    for name in ("t1", "t2"):
        await client.create(PODS, pod_manifest(name, node.name, [{"name": "c", "command": ["sleep", "3600"]}]),
                            namespace)
    for name in ("t1", "t2"):
        await wait_pod(client, namespace, name, lambda p: condition(p, "Ready") == "True", 60, "Ready")
    assert len(node.ipam_files()) == 2 and node.ns("ip", "link", "show", "cni0", check=False).returncode == 0
    node.stop_agent()
    out = node.agent_teardown("--cni-bin-dir", "/opt/cni/bin:/usr/lib/cni")
    assert "removed 2 pod(s)" in out.stdout, out.stderr
    assert node.containers() == []
    assert node.ns("ip", "link", "show", "cni0", check=False).returncode != 0
    assert "veth" not in node.ns("ip", "-o", "link").stdout
    assert "KUBELING" not in node.ns("iptables-save").stdout
    assert not list(node.cni_conf_dir.glob("*.conflist")) and not node.agent_root.exists()
    assert node.pod_log_dirs() == [], "pod log directories left"
