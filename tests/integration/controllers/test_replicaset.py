"""The ReplicaSet and replication controllers in the controller manager (a real
process) against the real apiserver and etcd: scaling, adoption and release by
selector, status, the scale subresource, events, and invalid specs."""
from __future__ import annotations

import pytest

from controller_waits import eventually
from kubeling import errors
from workload_helpers import (EVENTS, PODS, RC, RS, active_pods, controller_uid, empty_namespace,
                              mark_ready, template)


@pytest.fixture
async def ns(client, namespace, controller_manager):
    yield namespace
    await empty_namespace(client, namespace)


def replicaset(name: str, replicas: int, labels: dict) -> dict:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template(labels)}}


async def _count(client, ns, selector, n):
    async def check():
        pods = await active_pods(client, ns, selector)
        return pods if len(pods) == n else None
    return await eventually(check, 20)


async def test_replicaset_scales_up_and_down_with_events_and_status(client, ns):
    rs = await client.create(RS, replicaset("web", 3, {"app": "web"}), ns)
    assert rs["metadata"]["generation"] == 1 and rs["status"] == {}
    pods = await _count(client, ns, "app=web", 3)
    assert all(controller_uid(p) == rs["metadata"]["uid"] for p in pods)
    assert all(p["metadata"]["name"].startswith("web-") for p in pods)
    for p in pods[:2]:
        await mark_ready(client, p)

    async def status_ok():
        got = await client.get(RS, "web", ns)
        st = got["status"]
        return got if st.get("replicas") == 3 and st.get("readyReplicas") == 2 \
            and st.get("availableReplicas") == 2 and st.get("observedGeneration") == 1 else None
    await eventually(status_ok)

    # The scale subresource: autoscaling/v1 Scale, and a merge patch as kubectl scale sends it.
    scale = await client.get(RS, "web", ns, subresource="scale")
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 3} and scale["status"] == {"replicas": 3, "selector": "app=web"}
    await client.patch(RS, "web", {"spec": {"replicas": 1}}, ns, subresource="scale")
    left = await _count(client, ns, "app=web", 1)
    # Not-ready pods go first: one of the two Ready ones is kept.
    assert left[0]["metadata"]["name"] in {p["metadata"]["name"] for p in pods[:2]}
    got = await client.get(RS, "web", ns)
    assert got["metadata"]["generation"] == 2

    async def events():
        evs = (await client.list(EVENTS, ns))["items"]
        reasons = {(e["reason"], e["source"]["component"]) for e in evs if e["involvedObject"]["name"] == "web"}
        return reasons >= {("SuccessfulCreate", "replicaset-controller"),
                           ("SuccessfulDelete", "replicaset-controller")}
    await eventually(events)

    # A deleted pod is replaced.
    await client.patch(RS, "web", {"spec": {"replicas": 2}}, ns, subresource="scale")
    pods = await _count(client, ns, "app=web", 2)
    await client.delete(PODS, pods[0]["metadata"]["name"], ns, grace_period=0)
    again = await _count(client, ns, "app=web", 2)
    assert pods[0]["metadata"]["name"] not in {p["metadata"]["name"] for p in again}


async def test_adopts_orphans_and_releases_pods_that_stop_matching(client, ns):
    orphan = {"metadata": {"name": "stray", "labels": {"app": "db"}}, "spec": template({})["spec"]}
    await client.create(PODS, orphan, ns)
    rs = await client.create(RS, replicaset("db", 2, {"app": "db"}), ns)
    pods = await _count(client, ns, "app=db", 2)
    assert "stray" in {p["metadata"]["name"] for p in pods}  # adopted, only one pod created
    stray = await client.get(PODS, "stray", ns)
    assert controller_uid(stray) == rs["metadata"]["uid"]
    # Relabelled: released (ownerReference removed) and replaced.
    await client.patch(PODS, "stray", {"metadata": {"labels": {"app": "other"}}}, ns)

    async def released():
        p = await client.get(PODS, "stray", ns)
        return controller_uid(p) is None
    await eventually(released)
    await _count(client, ns, "app=db", 2)
    assert len(await active_pods(client, ns)) == 3


async def test_replicationcontroller_shares_the_logic(client, ns):
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "old"},
          "spec": {"replicas": 2, "template": template({"tier": "old"})}}
    created = await client.create(RC, rc, ns)
    # Defaults: selector and labels from the template's labels.
    assert created["spec"]["selector"] == {"tier": "old"} and created["metadata"]["labels"] == {"tier": "old"}
    await _count(client, ns, "tier=old", 2)
    scale = await client.get(RC, "old", ns, subresource="scale")
    assert scale["status"]["selector"] == "tier=old"

    async def events():
        evs = (await client.list(EVENTS, ns))["items"]
        return any(e["reason"] == "SuccessfulCreate" and e["source"]["component"] == "replication-controller"
                   for e in evs)
    await eventually(events)


async def test_invalid_specs_get_422_with_field_paths(client, ns):
    bad = replicaset("bad", -1, {"app": "x"})
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "y"}
    with pytest.raises(errors.ApiError) as exc:
        await client.create(RS, bad, ns)
    assert exc.value.code == 422
    fields = {c["field"] for c in exc.value.details["causes"]}
    assert fields == {"spec.replicas", "spec.template.metadata.labels"}
    nosel = replicaset("nosel", 1, {"app": "x"})
    del nosel["spec"]["selector"]
    with pytest.raises(errors.ApiError) as exc:
        await client.create(RS, nosel, ns)
    assert [c["field"] for c in exc.value.details["causes"]] == ["spec.selector"]
    with pytest.raises(errors.ApiError) as exc:
        await client.request("PUT", f"/apis/apps/v1/namespaces/{ns}/replicasets/none/scale",
                             {"kind": "Scale", "apiVersion": "autoscaling/v1", "spec": {"replicas": 1}})
    assert exc.value.code == 404
