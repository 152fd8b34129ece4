"""Probes on a real node: readiness gates Ready, liveness restarts, exec probes,
preStop runs before SIGTERM."""
from __future__ import annotations

import pytest

from agent_nodes import condition, container_status, pod_manifest, wait_pod, wait_until
from kubeling.resources import lookup

pytestmark = pytest.mark.e2e
PODS = lookup("pods")
EVENTS = lookup("events")

WEB = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"


async def test_readiness_probe_gates_ready_and_follows_the_server(client, namespace, node):
    # The server starts without the page: readiness must stay False until the test writes it
    # (no timed `sleep` in the container that the agent's speed could race), then drop when it goes.
    cmd = "mkdir -p /www && exec httpd -f -p 8080 -h /www"
    await client.create(PODS, pod_manifest("ready", node.name, [{
        "name": "web", "command": ["sh", "-c", cmd], "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/index.html", "port": "http"}, "periodSeconds": 1,
                           "failureThreshold": 1}}]), namespace)
    running = await wait_pod(client, namespace, "ready",
                             lambda p: container_status(p, "web").get("state", {}).get("running"), 60, "running")
    assert condition(running, "Ready") == "False" and container_status(running, "web")["ready"] is False
    web_id = container_status(running, "web")["containerID"].split("//")[1]

    async def probe_failed():
        events = (await client.list(EVENTS, namespace, field_selector="involvedObject.name=ready"))["items"]
        return any(e["reason"] == "Unhealthy" for e in events)
    # The probe really ran and failed (404) while the page was missing, and the pod stayed unready.
    await wait_until(probe_failed, 30, "a failed readiness probe")
    assert condition(await client.get(PODS, "ready", namespace), "Ready") == "False"
    node.container_exec(web_id, "sh", "-c", "echo ok > /www/index.html")
    ready = await wait_pod(client, namespace, "ready", lambda p: condition(p, "Ready") == "True", 30, "Ready")
    assert container_status(ready, "web")["ready"] is True
    node.container_exec(web_id, "rm", "/www/index.html")
    await wait_pod(client, namespace, "ready", lambda p: condition(p, "Ready") == "False", 30, "unready again")


async def test_liveness_failure_restarts_the_container(client, namespace, node):
    await client.create(PODS, pod_manifest("live", node.name, [{
        "name": "c", "command": ["sh", "-c", "touch /tmp/alive; sleep 4; rm /tmp/alive; exec sleep 3600"],
        "livenessProbe": {"exec": {"command": ["cat", "/tmp/alive"]}, "periodSeconds": 1,
                          "failureThreshold": 2}}]), namespace)
    p = await wait_pod(client, namespace, "live", lambda p: container_status(p, "c").get("restartCount", 0) >= 1,
                       60, "a restart after the liveness failure")
    assert container_status(p, "c")["lastState"]["terminated"]
    events = (await client.list(EVENTS, namespace, field_selector="involvedObject.name=live"))["items"]
    msgs = [(e["reason"], e["message"]) for e in events]
    assert any(r == "Unhealthy" and m.startswith("Liveness probe failed") for r, m in msgs), msgs
    assert any(r == "Killing" and "failed liveness probe" in m for r, m in msgs), msgs


async def test_pre_stop_runs_before_sigterm(client, namespace, node):
    # The container records SIGTERM in a file on a hostPath-free emptyDir; preStop writes first.
    cmd = "trap 'echo term >> /data/log; exit 0' TERM; while true; do sleep 0.2; done"
    await client.create(PODS, pod_manifest("hook", node.name, [{
        "name": "c", "command": ["sh", "-c", cmd],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "echo prestop >> /data/log"]}}}}],
        volumes=[{"name": "data", "hostPath": {"path": str(node.base / "hook-data"), "type": "DirectoryOrCreate"}}],
        terminationGracePeriodSeconds=10), namespace)
    await wait_pod(client, namespace, "hook", lambda p: condition(p, "Ready") == "True", 60, "Ready")
    await client.delete(PODS, "hook", namespace)

    async def gone():
        try:
            await client.get(PODS, "hook", namespace)
            return False
        except Exception:
            return True
    await wait_until(gone, 30, "the pod to go")
    assert (node.base / "hook-data" / "log").read_text().split() == ["prestop", "term"]


async def test_pod_logs_through_the_apiserver(client, namespace, node):
    """GET pods/{name}/log on the API server reaches the node agent's log endpoint."""
    await client.create(PODS, pod_manifest("talk", node.name, [
        {"name": "c", "command": ["sh", "-c", "for i in 1 2 3; do echo line-$i; done; exec sleep 3600"]}]),
        namespace)
    await wait_pod(client, namespace, "talk", lambda p: condition(p, "Ready") == "True", 60, "Ready")

    async def logs():
        text = await client.request("GET", f"/api/v1/namespaces/{namespace}/pods/talk/log",
                                    params={"tailLines": "2"}, accept="text/plain")
        return text if "line-3" in text else None
    text = await wait_until(logs, 20, "the logs")
    assert text.split() == ["line-2", "line-3"]
    from kubeling import errors
    with pytest.raises(errors.ApiError) as e:
        await client.request("GET", f"/api/v1/namespaces/{namespace}/pods/talk/log", params={"container": "x"})
    assert e.value.code == 400 and "container x is not valid" in e.value.message
