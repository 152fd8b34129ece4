"""The garbage collector in the controller manager (a real process) against the real
apiserver: background, foreground and orphan deletion through DeleteOptions, the
order foreground deletion keeps, and a Deployment taking its ReplicaSets and pods along."""
from __future__ import annotations

import asyncio

import pytest

from controller_waits import eventually
from kubeling import errors
from kubeling.client import resource_path
from workload_helpers import DEPLOY, PODS, RC, RS, active_pods, empty_namespace, template


@pytest.fixture
async def ns(client, namespace, controller_manager):
    yield namespace
    await empty_namespace(client, namespace)


async def delete(client, res, ns, name, policy=None, **extra):
    body = {"kind": "DeleteOptions", "apiVersion": "v1", **extra}
    if policy:
        body["propagationPolicy"] = policy
    return await client.request("DELETE", f"{resource_path(res, ns)}/{name}", body)


async def gone(client, res, ns, name):
    try:
        await client.get(res, name, ns)
        return False
    except errors.ApiError as exc:
        return exc.code == 404


def rs_body(name, n):
    labels = {"app": name}
    return {"metadata": {"name": name},
            "spec": {"replicas": n, "selector": {"matchLabels": labels}, "template": template(labels)}}


async def pods_up(client, ns, name, n):
    async def check():
        return len(await active_pods(client, ns, f"app={name}")) == n
    await eventually(check, 20)


async def test_background_deletion_removes_dependents_after_owner(client, ns):
    await client.create(RS, rs_body("bg", 2), ns)
    await pods_up(client, ns, "bg", 2)
    await delete(client, RS, ns, "bg", "Background")
    assert await gone(client, RS, ns, "bg")  # the owner goes at once

    async def no_pods():
        return not (await client.list(PODS, ns, label_selector="app=bg"))["items"]
    await eventually(no_pods, 20)


async def test_foreground_deletes_dependents_first(client, ns):
    await client.create(RS, rs_body("fg", 2), ns)
    await pods_up(client, ns, "fg", 2)
    # A finalizer of the test's own keeps one pod, so the order can be watched.
    pod = (await active_pods(client, ns, "app=fg"))[0]
    await client.patch(PODS, pod["metadata"]["name"], {"metadata": {"finalizers": ["test/hold"]}}, ns)
    await delete(client, RS, ns, "fg", "Foreground")
    owner = await client.get(RS, "fg", ns)
    assert owner["metadata"]["deletionTimestamp"] and "foregroundDeletion" in owner["metadata"]["finalizers"]

    async def held_pod_deleting():
        p = await client.get(PODS, pod["metadata"]["name"], ns)
        return bool(p["metadata"].get("deletionTimestamp"))
    await eventually(held_pod_deleting)
    await asyncio.sleep(0.5)
    assert not await gone(client, RS, ns, "fg")  # the owner waits for its blocking dependent
    await client.patch(PODS, pod["metadata"]["name"], {"metadata": {"finalizers": None}}, ns)

    async def owner_gone():
        return await gone(client, RS, ns, "fg")
    await eventually(owner_gone, 20)
    assert not (await client.list(PODS, ns, label_selector="app=fg"))["items"]


async def test_orphan_keeps_dependents_without_owner_references(client, ns):
    await client.create(RS, rs_body("or", 2), ns)
    await pods_up(client, ns, "or", 2)
    await delete(client, RS, ns, "or", orphanDependents=True)

    async def owner_gone():
        return await gone(client, RS, ns, "or")
    await eventually(owner_gone, 20)
    pods = await active_pods(client, ns, "app=or")
    assert len(pods) == 2 and all(not p["metadata"].get("ownerReferences") for p in pods)


async def test_replication_controller_orphans_by_default(client, ns):
    rc = {"metadata": {"name": "rc"}, "spec": {"replicas": 1, "template": template({"app": "rc"})}}
    await client.create(RC, rc, ns)
    await pods_up(client, ns, "rc", 1)
    await delete(client, RC, ns, "rc")  # no policy: core/v1 RCs orphan

    async def owner_gone():
        return await gone(client, RC, ns, "rc")
    await eventually(owner_gone, 20)
    pods = await active_pods(client, ns, "app=rc")
    assert len(pods) == 1 and not pods[0]["metadata"].get("ownerReferences")


async def test_deleting_a_deployment_removes_replicasets_then_pods(client, ns):
    labels = {"app": "dep"}
    d = {"metadata": {"name": "dep"}, "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                                               "template": template(labels)}}
    await client.create(DEPLOY, d, ns)
    await pods_up(client, ns, "dep", 2)
    await delete(client, DEPLOY, ns, "dep", "Foreground")

    async def all_gone():
        return (await gone(client, DEPLOY, ns, "dep") and not (await client.list(RS, ns))["items"]
                and not (await client.list(PODS, ns, label_selector="app=dep"))["items"])
    await eventually(all_gone, 30)
