"""The Deployment controller in the controller manager (a real process) against the
real apiserver: a rolling update never exceeds maxSurge / maxUnavailable (pod
counts recorded on every change while the test plays the agent and marks pods
Ready), revisions and rollback, pause, and status the way kubectl rollout reads it."""
from __future__ import annotations

import asyncio

import pytest

from controller_waits import eventually
from workload_helpers import (DEPLOY, EVENTS, RS, active_pods, empty_namespace, mark_ready,
                              template)

REVISION = "deployment.kubernetes.io/revision"


@pytest.fixture
async def ns(client, namespace, controller_manager):
    yield namespace
    await empty_namespace(client, namespace)


def deployment(name: str, replicas: int, image: str, surge="25%", unavailable="25%") -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                     "template": template(labels, image)}}


async def play_agent(client, ns: str, selector: str, samples: list, stop: asyncio.Event) -> None:
    """Mark every new pod Ready (after a short delay, as a real start takes) and record
    (total pods, ready pods) on each pass."""
    while not stop.is_set():
        pods = await active_pods(client, ns, selector)
        ready = [p for p in pods if any(c.get("type") == "Ready" and c.get("status") == "True"
                                        for c in (p.get("status") or {}).get("conditions") or [])]
        samples.append((len(pods), len(ready)))
        for p in pods:
            if p not in ready:
                await mark_ready(client, p)
        await asyncio.sleep(0.05)


async def rolled_out(client, ns, name, replicas, image):
    async def check():
        d = await client.get(DEPLOY, name, ns)
        st = d["status"]
        pods = await active_pods(client, ns, f"app={name}")
        return d if (st.get("observedGeneration") == d["metadata"]["generation"]
                     and st.get("updatedReplicas") == replicas and st.get("replicas") == replicas
                     and st.get("availableReplicas") == replicas and len(pods) == replicas
                     and all(p["spec"]["containers"][0]["image"] == image for p in pods)) else None
    return await eventually(check, 40)


@pytest.mark.parametrize("surge,unavailable,lo,hi", [(1, 0, 4, 5), (0, 1, 3, 4), ("50%", "50%", 2, 6)])
async def test_rolling_update_respects_surge_and_unavailable(client, ns, surge, unavailable, lo, hi):
    stop, samples = asyncio.Event(), []
    agent = asyncio.create_task(play_agent(client, ns, "app=web", samples, stop))
    try:
        await client.create(DEPLOY, deployment("web", 4, "busybox:1", surge, unavailable), ns)
        await rolled_out(client, ns, "web", 4, "busybox:1")
        samples.clear()
        await client.patch(DEPLOY, "web", {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "busybox:2"}]}}}}, ns, patch_type="strategic")
        d = await rolled_out(client, ns, "web", 4, "busybox:2")
    finally:
        stop.set()
        await agent
    assert samples, "no samples recorded"
    assert max(total for total, _ in samples) <= hi, samples
    min_ready = 4 - (unavailable if isinstance(unavailable, int) else 2)
    assert min(ready for _, ready in samples) >= min_ready, samples
    assert d["metadata"]["annotations"][REVISION] == "2"
    conds = {c["type"]: c for c in d["status"]["conditions"]}
    assert conds["Available"]["status"] == "True"
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    rses = (await client.list(RS, ns))["items"]
    assert sorted((r["metadata"]["annotations"][REVISION], r["spec"]["replicas"]) for r in rses) == \
        [("1", 0), ("2", 4)]
    assert all(r["metadata"]["labels"]["pod-template-hash"] in r["metadata"]["name"] for r in rses)

    async def events():
        evs = (await client.list(EVENTS, ns))["items"]
        return any(e["reason"] == "ScalingReplicaSet" and e["source"]["component"] == "deployment-controller"
                   and e["message"].startswith("Scaled down replica set web-") for e in evs)
    await eventually(events)


async def test_rollback_pause_resume_and_history_limit(client, ns):
    stop, samples = asyncio.Event(), []
    agent = asyncio.create_task(play_agent(client, ns, "app=api", samples, stop))
    try:
        spec = deployment("api", 2, "busybox:1")
        spec["spec"]["revisionHistoryLimit"] = 1
        await client.create(DEPLOY, spec, ns)
        await rolled_out(client, ns, "api", 2, "busybox:1")
        for image in ("busybox:2", "busybox:3"):
            await client.patch(DEPLOY, "api", {"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": image}]}}}}, ns, patch_type="strategic")
            await rolled_out(client, ns, "api", 2, image)

        async def pruned():
            rses = (await client.list(RS, ns))["items"]
            return rses if len(rses) == 2 else None
        rses = await eventually(pruned)  # revision 1 removed: limit 1 keeps one old ReplicaSet
        old = next(r for r in rses if r["spec"]["replicas"] == 0)
        assert old["metadata"]["annotations"][REVISION] == "2"
        # Rollback as kubectl rollout undo does it: the old ReplicaSet's template, without the hash label.
        tmpl = old["spec"]["template"]
        del tmpl["metadata"]["labels"]["pod-template-hash"]
        await client.patch(DEPLOY, "api", [{"op": "replace", "path": "/spec/template", "value": tmpl}], ns,
                           patch_type="json")
        d = await rolled_out(client, ns, "api", 2, "busybox:2")
        assert d["metadata"]["annotations"][REVISION] == "4"
        back = await client.get(RS, old["metadata"]["name"], ns)
        assert back["metadata"]["annotations"][REVISION] == "4"
        assert back["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "2"
        # Paused: a template change makes no new ReplicaSet, a replica change still scales.
        await client.patch(DEPLOY, "api", {"spec": {"paused": True}}, ns)
        await client.patch(DEPLOY, "api", {"spec": {"replicas": 3, "template": {"spec": {"containers": [
            {"name": "app", "image": "busybox:5"}]}}}}, ns, patch_type="strategic")

        async def paused_scaled():
            d = await client.get(DEPLOY, "api", ns)
            conds = {c["type"]: c for c in d["status"].get("conditions") or []}
            pods = await active_pods(client, ns, "app=api")
            return d if (d["status"].get("observedGeneration") == d["metadata"]["generation"]
                         and conds.get("Progressing", {}).get("reason") == "DeploymentPaused"
                         and len(pods) == 3) else None
        await eventually(paused_scaled, 30)
        assert all(p["spec"]["containers"][0]["image"] == "busybox:2"
                   for p in await active_pods(client, ns, "app=api"))
        await client.patch(DEPLOY, "api", {"spec": {"paused": False}}, ns)
        await rolled_out(client, ns, "api", 3, "busybox:5")
    finally:
        stop.set()
        await agent


async def test_progress_deadline_exceeded_when_pods_never_get_ready(client, ns):
    spec = deployment("stuck", 1, "busybox:1")
    spec["spec"]["progressDeadlineSeconds"] = 2
    await client.create(DEPLOY, spec, ns)

    async def exceeded():
        d = await client.get(DEPLOY, "stuck", ns)
        conds = {c["type"]: c for c in d["status"].get("conditions") or []}
        prog = conds.get("Progressing") or {}
        return d if prog.get("reason") == "ProgressDeadlineExceeded" and prog.get("status") == "False" else None
    d = await eventually(exceeded, 20)
    conds = {c["type"]: c for c in d["status"]["conditions"]}
    assert conds["Available"]["status"] == "False"
    assert conds["Progressing"]["message"].endswith("has timed out progressing.")
    await asyncio.sleep(1)  # it stays so (kubectl rollout status reports it) until the template changes
    assert await exceeded()


async def test_recreate_removes_old_pods_before_new_ones_exist(client, ns):
    stop, samples = asyncio.Event(), []
    agent = asyncio.create_task(play_agent(client, ns, "app=re", samples, stop))
    images: list[set[str]] = []

    async def record_images():
        while not stop.is_set():
            pods = await active_pods(client, ns, "app=re")
            images.append({p["spec"]["containers"][0]["image"] for p in pods})
            await asyncio.sleep(0.05)
    recorder = asyncio.create_task(record_images())
    try:
        spec = deployment("re", 3, "busybox:1")
        spec["spec"]["strategy"] = {"type": "Recreate"}
        await client.create(DEPLOY, spec, ns)
        await rolled_out(client, ns, "re", 3, "busybox:1")
        await client.patch(DEPLOY, "re", {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "busybox:2"}]}}}}, ns, patch_type="strategic")
        await rolled_out(client, ns, "re", 3, "busybox:2")
    finally:
        stop.set()
        await agent
        await recorder
    assert {"busybox:1", "busybox:2"} not in images  # never both at once
    assert set() in images  # everything old went before anything new came
