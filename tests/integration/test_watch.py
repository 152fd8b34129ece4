"""Watch semantics: from a resourceVersion, in order, selectors, 410 after compaction."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest

from kubeling import errors
from kubeling.resources import lookup

CONFIGMAPS = lookup("configmaps")
PODS = lookup("pods")


async def collect(client, res, ns, n, timeout=10, **kw):
    out = []

    async def run():
        async for typ, obj in client.watch(res, ns, **kw):
            out.append((typ, obj))
            if len(out) >= n:
                return
    await asyncio.wait_for(run(), timeout)
    return out


async def test_watch_from_resource_version_sees_exactly_later_events_in_order(client, namespace):
    await client.create(CONFIGMAPS, {"metadata": {"name": "before"}}, namespace)
    listed = await client.list(CONFIGMAPS, namespace)
    rv = listed["metadata"]["resourceVersion"]
    a = await client.create(CONFIGMAPS, {"metadata": {"name": "a"}, "data": {"k": "1"}}, namespace)
    await client.patch(CONFIGMAPS, "a", {"data": {"k": "2"}}, namespace)
    await client.create(CONFIGMAPS, {"metadata": {"name": "b"}}, namespace)
    await client.delete(CONFIGMAPS, "a", namespace)
    events = await collect(client, CONFIGMAPS, namespace, 4, resource_version=rv)
    assert [(t, o["metadata"]["name"]) for t, o in events] == [
        ("ADDED", "a"), ("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    assert events[0][1]["metadata"]["resourceVersion"] == a["metadata"]["resourceVersion"]
    assert events[1][1]["data"] == {"k": "2"}
    revs = [int(o["metadata"]["resourceVersion"]) for _, o in events]
    assert revs == sorted(revs) and len(set(revs)) == 4
    assert all(o["kind"] == "ConfigMap" and o["apiVersion"] == "v1" for _, o in events)


async def test_watch_without_resource_version_starts_with_current_state(client, namespace):
    await client.create(CONFIGMAPS, {"metadata": {"name": "x1"}}, namespace)
    await client.create(CONFIGMAPS, {"metadata": {"name": "x2"}}, namespace)
    events = await collect(client, CONFIGMAPS, namespace, 2)
    assert sorted((t, o["metadata"]["name"]) for t, o in events) == [("ADDED", "x1"), ("ADDED", "x2")]


async def test_label_selector_on_watch_turns_transitions_into_added_and_deleted(client, namespace):
    rv = (await client.list(CONFIGMAPS, namespace))["metadata"]["resourceVersion"]
    await client.create(CONFIGMAPS, {"metadata": {"name": "m", "labels": {"app": "no"}}}, namespace)
    await client.patch(CONFIGMAPS, "m", {"metadata": {"labels": {"app": "web"}}}, namespace)
    await client.patch(CONFIGMAPS, "m", {"data": {"x": "1"}}, namespace)
    await client.patch(CONFIGMAPS, "m", {"metadata": {"labels": {"app": "no"}}}, namespace)
    events = await collect(client, CONFIGMAPS, namespace, 3, resource_version=rv, label_selector="app=web")
    assert [t for t, _ in events] == ["ADDED", "MODIFIED", "DELETED"]


async def test_field_selectors_on_list_and_watch(client, namespace):
    for n in ("f1", "f2"):
        await client.create(PODS, {"metadata": {"name": n},
                                   "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, namespace)
    await client.create_binding(namespace, "f2", "node-z")
    listed = await client.list(PODS, namespace, field_selector="spec.nodeName=node-z")
    assert [p["metadata"]["name"] for p in listed["items"]] == ["f2"]
    listed = await client.list(PODS, namespace, field_selector="metadata.name=f1")
    assert [p["metadata"]["name"] for p in listed["items"]] == ["f1"]
    unbound = await client.list(PODS, namespace, field_selector="spec.nodeName=")
    assert [p["metadata"]["name"] for p in unbound["items"]] == ["f1"]
    with pytest.raises(errors.ApiError) as e:
        await client.list(PODS, namespace, field_selector="spec.bogus=1")
    assert e.value.code == 400 and "field label not supported" in e.value.message
    events = await collect(client, PODS, namespace, 1, field_selector="spec.nodeName=node-z")
    assert events[0][1]["metadata"]["name"] == "f2"


@pytest.fixture(scope="module", params=["window", "etcd-compaction"])
def aged_apiserver(request, etcd, tmp_path_factory):
    """An apiserver whose watch history is short: a watch cache of two events, or no
    cache and etcd compacted (then etcd's history is what runs out)."""
    from tests.conftest import start_apiserver, stop_process
    flags = ("--default-watch-cache-size", "2") if request.param == "window" else ("--watch-cache", "false")
    proc, info = start_apiserver(etcd, tmp_path_factory.mktemp("aged-apiserver"), extra_args=flags)
    yield request.param, info
    stop_process(proc)
    assert "Traceback" not in info.log.read_text(), info.log.read_text()[-4000:]


async def test_too_old_resource_version_gives_410_expired_event(aged_apiserver, namespace):
    import aetcd
    from kubeling.client import Client
    how, apiserver = aged_apiserver
    client = Client(apiserver.url, apiserver.token)
    try:
        await client.list(CONFIGMAPS, namespace)   # the cache (if any) follows configmaps from here
        await client.create(CONFIGMAPS, {"metadata": {"name": "old"}}, namespace)
        first = await client.get(CONFIGMAPS, "old", namespace)
        for i in range(3):
            await client.patch(CONFIGMAPS, "old", {"data": {"i": str(i)}}, namespace)
        latest = await client.get(CONFIGMAPS, "old", namespace)
        # Within the history a watch from the newest version starts; it is not an error.
        async with client.session.get(f"{apiserver.url}/api/v1/namespaces/{namespace}/configmaps", params={
                "watch": "true", "resourceVersion": latest["metadata"]["resourceVersion"], "timeoutSeconds": "1"}) as r:
            assert r.status == 200 and await r.read() == b""
    finally:
        await client.close()
    if how == "etcd-compaction":
        etcd = aetcd.Client(host=apiserver.etcd.host, port=apiserver.etcd.port)
        await etcd.connect()
        try:
            await etcd.compact(int(latest["metadata"]["resourceVersion"]))
        finally:
            await etcd.close()
    # On the wire: 200, then one ERROR event carrying a 410 Expired Status.
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {apiserver.token}"}) as s:
        async with s.get(f"{apiserver.url}/api/v1/namespaces/{namespace}/configmaps",
                         params={"watch": "true", "resourceVersion": first["metadata"]["resourceVersion"]}) as r:
            assert r.status == 200
            line = await asyncio.wait_for(r.content.readline(), 10)
    import json
    ev = json.loads(line)
    assert ev["type"] == "ERROR"
    assert ev["object"]["code"] == 410 and ev["object"]["reason"] == "Expired"


async def test_watch_timeout_ends_stream(client, namespace):
    rv = (await client.list(CONFIGMAPS, namespace))["metadata"]["resourceVersion"]
    got = []

    async def run():
        async for ev in client.watch(CONFIGMAPS, namespace, resource_version=rv, timeout_seconds=1):
            got.append(ev)
    await asyncio.wait_for(run(), 10)
    assert got == []
