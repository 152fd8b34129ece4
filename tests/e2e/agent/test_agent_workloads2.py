"""A Job and a DaemonSet on a real node (netns + its own dockerd or containerd + the agent), with the
real controller manager and scheduler: the Job's pod runs to completion in the runtime and
the Job turns Complete; the DaemonSet's pod is bound to the node by the scheduler
(through the node affinity the controller sets) and becomes Ready."""
from __future__ import annotations

import pytest

from agent_nodes import wait_until
from kubeling import errors
from kubeling.resources import lookup

pytestmark = pytest.mark.e2e
PODS, JOBS, DS = lookup("pods"), lookup("jobs"), lookup("daemonsets")


def _condition(obj, typ):
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == typ), None)


async def test_job_pod_completes_and_daemon_pod_runs_on_a_real_node(client, namespace, node, control_plane):
    await client.create(JOBS, {"metadata": {"name": "once"}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "nodeSelector": {"kubernetes.io/hostname": node.name},
        "containers": [{"name": "work", "image": "busybox:latest", "command": ["sh", "-c", "echo done"]}]}}}},
        namespace)
    await client.create(DS, {"metadata": {"name": "logs"}, "spec": {
        "selector": {"matchLabels": {"app": "logs"}},
        "template": {"metadata": {"labels": {"app": "logs"}}, "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node.name}, "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "agent", "image": "busybox:latest", "command": ["sleep", "3600"]}]}}}},
        namespace)
    try:
        async def complete():
            job = await client.get(JOBS, "once", namespace)
            return job if _condition(job, "Complete") else None
        job = await wait_until(complete, 90, "the Job to complete")
        assert job["status"]["succeeded"] == 1
        pods = (await client.list(PODS, namespace, label_selector="batch.kubernetes.io/job-name=once"))["items"]
        assert [p["status"]["phase"] for p in pods] == ["Succeeded"] and pods[0]["spec"]["nodeName"] == node.name

        async def daemon_ready():
            ds = await client.get(DS, "logs", namespace)
            st = ds.get("status") or {}
            return ds if st.get("numberReady") == 1 and st.get("desiredNumberScheduled") == 1 else None
        await wait_until(daemon_ready, 90, "the daemon pod Ready")
        pods = (await client.list(PODS, namespace, label_selector="app=logs"))["items"]
        assert len(pods) == 1 and pods[0]["spec"]["nodeName"] == node.name
        names = [c["LabelMap"].get("io.kubernetes.pod.name") for c in node.containers(all_=False)]
        assert pods[0]["metadata"]["name"] in names  # a real container runs it
    finally:
        for res, name in ((DS, "logs"), (JOBS, "once")):
            try:
                await client.request("DELETE", f"/apis/{res.group}/v1/namespaces/{namespace}/{res.plural}/{name}",
                                     {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Orphan"})
            except errors.ApiError:
                pass
        for p in (await client.list(PODS, namespace))["items"]:
            await client.delete(PODS, p["metadata"]["name"], namespace)

        async def no_pods():
            return not (await client.list(PODS, namespace))["items"]
        await wait_until(no_pods, 60, "the pods to be gone")
