"""The API server's trace events for a pod: `Stored` with the etcd revision the pod was
created at and when its request came in, `DeletionRequested` with the grace period, and
`Removed` once the key left etcd, each with a microsecond eventTime. Not for dry runs."""
from __future__ import annotations

import asyncio

from kubeling.resources import lookup
from kubeling.timefmt import parse_time

PODS, EVENTS = lookup("pods"), lookup("events")
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "traced"},
       "spec": {"containers": [{"name": "c", "image": "busybox:latest"}], "nodeName": "nowhere"}}


async def events_of(client, ns: str, uid: str, reason: str, n: int = 1) -> list[dict]:
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        items = [e for e in (await client.list(EVENTS, ns))["items"]
                 if e["involvedObject"].get("uid") == uid and e["reason"] == reason]
        if len(items) >= n:
            return items
        assert asyncio.get_running_loop().time() < deadline, f"no {reason} event"
        await asyncio.sleep(0.05)


async def test_stored_deletion_requested_and_removed(client, namespace):
    await client.request("POST", f"/api/v1/namespaces/{namespace}/pods", POD, params={"dryRun": "All"})
    created = await client.create(PODS, POD, namespace)
    uid, rv = created["metadata"]["uid"], created["metadata"]["resourceVersion"]
    [stored] = await events_of(client, namespace, uid, "Stored")
    notes = stored["metadata"]["annotations"]
    assert notes["trace.kubeling.io/revision"] == rv
    assert stored["message"] == f"Stored in etcd at /registry/pods/{namespace}/traced, revision {rv}"
    received, at = parse_time(notes["trace.kubeling.io/received-at"]), parse_time(stored["eventTime"])
    assert received is not None and at is not None and received <= at
    assert stored["eventTime"].count(".") == 1 and stored["source"]["component"] == "kube-apiserver"

    await client.delete(PODS, "traced", namespace, grace_period=30)   # bound: waits for its agent
    [asked] = await events_of(client, namespace, uid, "DeletionRequested")
    assert asked["message"] == "Deletion requested, grace period 30s"
    await client.delete(PODS, "traced", namespace, grace_period=0)
    [removed] = await events_of(client, namespace, uid, "Removed")
    assert parse_time(removed["eventTime"]) >= parse_time(asked["eventTime"])
    # The dry run stored nothing, and recorded nothing.
    all_stored = [e for e in (await client.list(EVENTS, namespace))["items"] if e["reason"] == "Stored"]
    assert len(all_stored) == 1
