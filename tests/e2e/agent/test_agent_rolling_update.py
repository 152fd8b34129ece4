"""A rolling update of a 3-replica Deployment behind a Service on a real node (netns,
its own dockerd or containerd, the agent and the proxy; the real controller manager and scheduler)
while a client in the node requests the Service's cluster IP continuously: every
request is answered, and the old pods go the walkthrough's way back (deletion
timestamp, out of the endpoints, preStop, SIGTERM) and leave nothing behind."""
from __future__ import annotations

import subprocess
import sys

import pytest

from agent_nodes import wait_until
from kubeling.resources import lookup

pytestmark = pytest.mark.e2e
PODS, SERVICES, DEPLOY = lookup("pods"), lookup("services"), lookup("deployments")

# The client: GET the URL in a loop until told to stop (a line on stdin), then print
# "<ok> <failed>" and the distinct bodies seen.
CLIENT = """
import sys, threading, urllib.request
url, stop, ok, failed, bodies = sys.argv[1], threading.Event(), 0, [], set()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
while not stop.is_set():
    try:
        bodies.add(urllib.request.urlopen(url, timeout=2).read().decode().strip()); ok += 1
    except Exception as exc:
        failed.append(repr(exc))
print(ok, len(failed)); print(sorted(bodies)); print(failed[:5])
"""


def deployment(node: str, version: str) -> dict:
    serve = f"mkdir -p /www && echo {version} > /www/index.html && exec httpd -f -p 8080 -h /www"
    return {"metadata": {"name": "web"}, "spec": {
        "replicas": 3, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node}, "terminationGracePeriodSeconds": 10,
            "containers": [{
                "name": "httpd", "image": "busybox:latest", "command": ["sh", "-c", serve],
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                # Draining: the endpoints and the proxy's rules drop the pod while it still serves.
                "lifecycle": {"preStop": {"exec": {"command": ["sleep", "2"]}}}}]}}}}


async def test_rolling_update_behind_a_service_fails_no_request(client, namespace, node, control_plane):
    # Service IPs are reached like any address off the node (a VM has its default route there).
    node.ns("ip", "route", "add", "10.96.0.0/12", "dev", node.node_veth)
    node.start_proxy("--sync-period", "5")
    await client.create(SERVICES, {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}, namespace)
    await client.create(DEPLOY, deployment(node.name, "v1"), namespace)
    try:
        async def rolled_out(version):
            d = await client.get(DEPLOY, "web", namespace)
            st = d["status"]
            pods = [p for p in (await client.list(PODS, namespace))["items"]]
            return (st.get("observedGeneration") == d["metadata"]["generation"] and st.get("updatedReplicas") == 3
                    and st.get("availableReplicas") == 3 and st.get("replicas") == 3 and len(pods) == 3
                    and all(version in p["spec"]["containers"][0]["command"][2] for p in pods))
        await wait_until(lambda: rolled_out("v1"), 120, "3 ready v1 pods")
        ip = (await client.get(SERVICES, "web", namespace))["spec"]["clusterIP"]
        url = f"http://{ip}/"
        await wait_until(lambda: node.http_get(url).strip() == "v1", 30, "the Service to answer")

        proc = subprocess.Popen(["nsenter", f"--net={node.netns_path}", sys.executable, "-c", CLIENT, url],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            await client.patch(DEPLOY, "web", deployment(node.name, "v2"), namespace, patch_type="strategic")
            await wait_until(lambda: rolled_out("v2"), 180, "the rollout to v2")
            # Old pods leave only through their own deletion: wait until they are gone.
            async def old_gone():
                return len((await client.list(PODS, namespace))["items"]) == 3
            await wait_until(old_gone, 60, "old pods to be removed")
        finally:
            out, err = proc.communicate("stop\n", timeout=30)
        lines = out.splitlines()
        ok, failed = (int(x) for x in lines[0].split())
        assert failed == 0, out + err
        assert ok > 50, out  # the client really ran through the rollout
        assert "'v1'" in lines[1] and "'v2'" in lines[1], out
        assert node.http_get(url).strip() == "v2"
    finally:
        await client.delete(DEPLOY, "web", namespace)
        await client.delete(SERVICES, "web", namespace)

        async def empty():
            return not (await client.list(PODS, namespace))["items"]
        await wait_until(empty, 90, "the Deployment's pods to go")
