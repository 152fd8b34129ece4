"""The Endpoints and EndpointSlice controllers, in the controller manager as a
real process against the real apiserver. Pods get their IP and readiness the
way the agent reports them: a PATCH of pods/NAME/status."""
from __future__ import annotations

import asyncio
import statistics
import time
from datetime import datetime, timezone

import pytest

from controller_waits import eventually
from kubeling import errors
from kubeling.resources import lookup
from kubeling.timefmt import format_time

PODS, SERVICES, ENDPOINTS, SLICES, NAMESPACES = (
    lookup(w) for w in ("pods", "services", "endpoints", "endpointslices", "namespaces"))
MANAGED = "endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io"


@pytest.fixture
async def ns(client, namespace, controller_manager):
    """The test's namespace, emptied and deleted afterwards (asserted)."""
    yield namespace
    for pod in (await client.list(PODS, namespace))["items"]:
        await client.delete(PODS, pod["metadata"]["name"], namespace, grace_period=0)
    for svc in (await client.list(SERVICES, namespace))["items"]:
        await client.delete(SERVICES, svc["metadata"]["name"], namespace)

    async def managed_gone():
        eps = (await client.list(ENDPOINTS, namespace))["items"]
        slices = (await client.list(SLICES, namespace))["items"]
        return not slices and all(e["metadata"]["name"].startswith("user-") for e in eps)
    await eventually(managed_gone)
    await client.delete(NAMESPACES, namespace)

    async def ns_gone():
        try:
            await client.get(NAMESPACES, namespace)
            return False
        except errors.ApiError as exc:
            return exc.code == 404
    await eventually(ns_gone, 30)


def now() -> str:
    return format_time(datetime.now(timezone.utc))


async def make_pod(client, ns, name, ip=None, ready=True, labels=None, ports=None, node=None,
                   phase="Running"):
    pod = await client.create(PODS, {
        "metadata": {"name": name, "labels": labels if labels is not None else {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "ports": ports or []}]}}, ns)
    if node:
        await client.create_binding(ns, name, node)
    if ip:
        pod = await set_status(client, ns, name, ip, ready, phase)
    return pod


async def set_status(client, ns, name, ip, ready, phase="Running"):
    return await client.patch(PODS, name, {"status": {
        "phase": phase, "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now()}]}},
        ns, subresource="status")


async def make_service(client, ns, name, ports, selector=None, labels=None, cluster_ip=None):
    spec = {"ports": ports}
    if selector is not None:
        spec["selector"] = selector
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    return await client.create(SERVICES, {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}, ns)


async def get_endpoints(client, ns, name):
    try:
        return await client.get(ENDPOINTS, name, ns)
    except errors.ApiError as exc:
        if exc.code == 404:
            return None
        raise


async def slices_of(client, ns, svc):
    return (await client.list(SLICES, ns, label_selector=f"kubernetes.io/service-name={svc}"))["items"]


def ips(subsets, field="addresses"):
    return sorted(a["ip"] for s in subsets or [] for a in s.get(field) or [])


def slice_eps(slices):
    return {ep["addresses"][0]: ep for s in slices for ep in s.get("endpoints") or []}


WEB_PORTS = [{"name": "http", "port": 80, "targetPort": "http"},
             {"name": "metrics", "port": 9000, "targetPort": 9090}]
HTTP_PORT = [{"name": "http", "containerPort": 8080}]


async def test_endpoints_and_slices_list_selected_pods_with_resolved_ports(client, ns):
    svc = await make_service(client, ns, "web", WEB_PORTS, {"app": "web"}, labels={"team": "a"})
    await make_pod(client, ns, "a", "10.244.1.10", True, ports=HTTP_PORT, node="node-a")
    await make_pod(client, ns, "b", "10.244.1.11", False, ports=HTTP_PORT)
    await make_pod(client, ns, "c", "10.244.1.12", True)                      # no "http" port
    await make_pod(client, ns, "no-ip", None)                                  # not yet networked
    await make_pod(client, ns, "done", "10.244.1.13", True, phase="Succeeded")  # terminal
    await make_pod(client, ns, "other", "10.244.1.14", True, labels={"app": "db"}, ports=HTTP_PORT)

    async def complete():
        ep = await get_endpoints(client, ns, "web")
        return ep if ep and ips(ep.get("subsets")) == ["10.244.1.10", "10.244.1.12"] \
            and ips(ep.get("subsets"), "notReadyAddresses") == ["10.244.1.11"] else None
    ep = await eventually(complete)
    assert ep["metadata"]["labels"] == {"team": "a"}
    subsets = sorted(ep["subsets"], key=lambda s: len(s["ports"]))
    assert len(subsets) == 2  # pods with the same port set share a subset
    assert subsets[0] == {"addresses": [{"ip": "10.244.1.12", "targetRef": {
        "kind": "Pod", "namespace": ns, "name": "c", "uid": subsets[0]["addresses"][0]["targetRef"]["uid"]}}],
        "ports": [{"name": "metrics", "port": 9090, "protocol": "TCP"}]}
    both = subsets[1]
    assert sorted(both["ports"], key=lambda p: p["name"]) == [
        {"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "metrics", "port": 9090, "protocol": "TCP"}]
    a = both["addresses"][0]
    pod_a = await client.get(PODS, "a", ns)
    assert a == {"ip": "10.244.1.10", "nodeName": "node-a",
                 "targetRef": {"kind": "Pod", "namespace": ns, "name": "a", "uid": pod_a["metadata"]["uid"]}}
    assert [x["ip"] for x in both["notReadyAddresses"]] == ["10.244.1.11"]

    async def slices_complete():
        s = await slices_of(client, ns, "web")
        return s if set(slice_eps(s)) == {"10.244.1.10", "10.244.1.11", "10.244.1.12"} else None
    slices = await eventually(slices_complete)
    assert len(slices) == 2  # one per port set
    for s in slices:
        meta = s["metadata"]
        assert meta["name"].startswith("web-") and len(meta["name"]) > 4
        assert meta["labels"] == {"team": "a", "kubernetes.io/service-name": "web",
                                  "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
        assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "web",
                                            "uid": svc["metadata"]["uid"], "controller": True,
                                            "blockOwnerDeletion": True}]
        assert s["addressType"] == "IPv4"
    eps = slice_eps(slices)
    assert eps["10.244.1.10"] == {"addresses": ["10.244.1.10"], "nodeName": "node-a",
                                  "conditions": {"ready": True, "serving": True, "terminating": False},
                                  "targetRef": {"kind": "Pod", "namespace": ns, "name": "a",
                                                "uid": pod_a["metadata"]["uid"]}}
    assert eps["10.244.1.11"]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    by_ports = {len(s["ports"]): s for s in slices}
    assert by_ports[1]["ports"] == [{"name": "metrics", "port": 9090, "protocol": "TCP"}]
    assert sorted(e["addresses"][0] for e in by_ports[2]["endpoints"]) == ["10.244.1.10", "10.244.1.11"]


async def test_readiness_flips_move_addresses_and_latency(client, ns):
    await make_service(client, ns, "web", [{"port": 80, "targetPort": 8080}], {"app": "web"})
    await make_pod(client, ns, "p", "10.244.2.10", False)
    await make_pod(client, ns, "q", "10.244.2.11", True)

    async def state(ready, not_ready):
        ep = await get_endpoints(client, ns, "web")
        ok = ep and ips(ep.get("subsets")) == ready and ips(ep.get("subsets"), "notReadyAddresses") == not_ready
        return ep if ok else None
    ep = await eventually(lambda: state(["10.244.2.11"], ["10.244.2.10"]))
    assert ep["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"]
    # latency from the status PATCH to the Endpoints write, seen through a watch
    rv = ep["metadata"]["resourceVersion"]
    events: asyncio.Queue = asyncio.Queue()

    async def watch():
        async for typ, obj in client.watch(ENDPOINTS, ns, resource_version=rv):
            if obj["metadata"]["name"] == "web":
                events.put_nowait((time.monotonic(), obj))
    watcher = asyncio.create_task(watch())
    times = []
    try:
        for i in range(20):
            ready = i % 2 == 0
            t0 = time.monotonic()
            await set_status(client, ns, "p", "10.244.2.10", ready)
            want = ["10.244.2.10", "10.244.2.11"] if ready else ["10.244.2.11"]
            while True:
                t1, obj = await asyncio.wait_for(events.get(), 10)
                if ips(obj.get("subsets")) == want:
                    break
            times.append((t1 - t0) * 1000)
    finally:
        watcher.cancel()
    p50 = statistics.median(times)
    print(f"\nready patch -> Endpoints update: p50 {p50:.1f} ms, max {max(times):.1f} ms over {len(times)}")
    assert p50 < 500
    slices = await eventually(lambda: _slice_ready(client, ns, {"10.244.2.10": False, "10.244.2.11": True}))
    assert len(slices) == 1


async def _slice_ready(client, ns, want):
    slices = await slices_of(client, ns, "web")
    got = {ip: ep["conditions"]["ready"] for ip, ep in slice_eps(slices).items()}
    return slices if got == want else None


async def test_a_deleting_pod_is_not_ready_at_once_then_leaves(client, ns):
    await make_service(client, ns, "web", [{"port": 80}], {"app": "web"})
    await make_pod(client, ns, "going", "10.244.3.10", True, node="node-a")
    await make_pod(client, ns, "staying", "10.244.3.11", True, node="node-a")
    await eventually(lambda: _slice_ready(client, ns, {"10.244.3.10": True, "10.244.3.11": True}))
    deleted = await client.delete(PODS, "going", ns, grace_period=30)
    assert deleted["metadata"]["deletionTimestamp"]  # bound: kept for its grace period

    async def terminating():
        eps = slice_eps(await slices_of(client, ns, "web"))
        return eps if "10.244.3.10" in eps and eps["10.244.3.10"]["conditions"]["terminating"] else None
    eps = await eventually(terminating, 5)
    assert eps["10.244.3.10"]["conditions"] == {"ready": False, "serving": True, "terminating": True}
    assert eps["10.244.3.11"]["conditions"] == {"ready": True, "serving": True, "terminating": False}
    # the Endpoints drop a terminating pod altogether, as Kubernetes' do
    ep = await eventually(lambda: _endpoints_ips(client, ns, ["10.244.3.11"]), 5)
    assert ips(ep["subsets"], "notReadyAddresses") == []
    await client.delete(PODS, "going", ns, grace_period=0)  # what the agent does when it is done

    async def gone():
        eps = slice_eps(await slices_of(client, ns, "web"))
        return eps if set(eps) == {"10.244.3.11"} else None
    await eventually(gone)


async def _endpoints_ips(client, ns, want, name="web", not_ready=None):
    ep = await get_endpoints(client, ns, name)
    if not ep or ips(ep.get("subsets")) != want:
        return None
    return ep if not_ready is None or ips(ep.get("subsets"), "notReadyAddresses") == not_ready else None


async def test_pod_and_service_deletion_update_then_remove_objects(client, ns):
    await make_service(client, ns, "web", [{"port": 80}], {"app": "web"}, cluster_ip="None")
    await make_pod(client, ns, "a", "10.244.4.10", True)
    await make_pod(client, ns, "b", "10.244.4.11", True)
    ep = await eventually(lambda: _endpoints_ips(client, ns, ["10.244.4.10", "10.244.4.11"]))
    assert ep["metadata"]["labels"] == {"service.kubernetes.io/headless": ""}
    await client.delete(PODS, "a", ns)
    await eventually(lambda: _endpoints_ips(client, ns, ["10.244.4.11"]))
    await client.delete(PODS, "b", ns)
    ep = await eventually(lambda: _endpoints_ips(client, ns, []))
    assert not ep.get("subsets")

    async def placeholder():
        s = await slices_of(client, ns, "web")
        return s if len(s) == 1 and not s[0].get("endpoints") else None
    s = (await eventually(placeholder))[0]
    assert not s.get("ports") and s["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
    await client.delete(SERVICES, "web", ns)

    async def all_gone():
        return await get_endpoints(client, ns, "web") is None and not await slices_of(client, ns, "web")
    await eventually(all_gone)


async def test_services_without_selector_are_left_alone(client, ns):
    await make_service(client, ns, "user-svc", [{"port": 80}])
    mine = await client.create(ENDPOINTS, {"metadata": {"name": "user-svc"}, "subsets": [
        {"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}]}, ns)
    await make_pod(client, ns, "a", "10.244.5.10", True)
    # a service with a selector in the same namespace, synced after the other one was seen
    await make_service(client, ns, "web", [{"port": 80}], {"app": "web"})
    await eventually(lambda: _endpoints_ips(client, ns, ["10.244.5.10"]))
    await eventually(lambda: _slice_ready(client, ns, {"10.244.5.10": True}))
    after = await client.get(ENDPOINTS, "user-svc", ns)
    assert after["metadata"]["resourceVersion"] == mine["metadata"]["resourceVersion"]
    assert await slices_of(client, ns, "user-svc") == []
    await client.delete(SERVICES, "user-svc", ns)
    # the user's Endpoints go with their Service, as in Kubernetes
    await eventually(lambda: _absent(client, ns, "user-svc"))


async def _absent(client, ns, name):
    return await get_endpoints(client, ns, name) is None


async def test_only_real_changes_are_written_and_removed_objects_come_back(client, ns):
    await make_service(client, ns, "web", [{"port": 80}], {"app": "web"})
    await make_pod(client, ns, "a", "10.244.6.10", True)
    await make_pod(client, ns, "b", "10.244.6.11", False)
    ep = await eventually(lambda: _endpoints_ips(client, ns, ["10.244.6.10"], not_ready=["10.244.6.11"]))
    await eventually(lambda: _slice_ready(client, ns, {"10.244.6.10": True, "10.244.6.11": False}))
    slice_rv = (await slices_of(client, ns, "web"))[0]["metadata"]["resourceVersion"]
    events: asyncio.Queue = asyncio.Queue()

    async def watch():
        async for typ, obj in client.watch(ENDPOINTS, ns, resource_version=ep["metadata"]["resourceVersion"]):
            events.put_nowait(obj)
    watcher = asyncio.create_task(watch())
    try:
        await client.patch(PODS, "a", {"metadata": {"annotations": {"x": "y"}}}, ns)  # no endpoint change
        await set_status(client, ns, "a", "10.244.6.10", True)                       # nor this
        await set_status(client, ns, "b", "10.244.6.11", True)                       # this one
        first = await asyncio.wait_for(events.get(), 10)
    finally:
        watcher.cancel()
    assert ips(first["subsets"]) == ["10.244.6.10", "10.244.6.11"]  # the first write is the real change
    await eventually(lambda: _slice_ready(client, ns, {"10.244.6.10": True, "10.244.6.11": True}))
    # our objects removed by someone else are put back
    await client.delete(ENDPOINTS, "web", ns)
    await eventually(lambda: _endpoints_ips(client, ns, ["10.244.6.10", "10.244.6.11"]))
    [s] = await slices_of(client, ns, "web")
    assert int(s["metadata"]["resourceVersion"]) > int(slice_rv)
    await client.delete(SLICES, s["metadata"]["name"], ns)

    async def recreated():
        got = await slices_of(client, ns, "web")
        return got if len(got) == 1 and got[0]["metadata"]["name"] != s["metadata"]["name"] \
            and set(slice_eps(got)) == {"10.244.6.10", "10.244.6.11"} else None
    await eventually(recreated)


async def test_many_pods_split_into_slices_of_100(client, ns):
    await make_service(client, ns, "web", [{"port": 80}], {"app": "web"})
    n = 150
    sem = asyncio.Semaphore(16)

    async def one(i):
        async with sem:
            await make_pod(client, ns, f"p{i}", f"10.244.{10 + i // 200}.{i % 200 + 1}", True)
    await asyncio.gather(*(one(i) for i in range(n)))

    async def all_in():
        s = await slices_of(client, ns, "web")
        return s if len(slice_eps(s)) == n else None
    slices = await eventually(all_in, 30)
    assert sorted(len(s["endpoints"]) for s in slices) == [50, 100]
    ep = await eventually(lambda: _endpoints_count(client, ns, n))
    assert len(ep["subsets"]) == 1
    # shrinking drops endpoints in place; emptied slices go
    for i in range(100):
        await client.delete(PODS, f"p{i}", ns)

    async def shrunk():
        s = await slices_of(client, ns, "web")
        return s if len(slice_eps(s)) == n - 100 else None
    slices = await eventually(shrunk, 30)
    assert len(slices) in (1, 2) and sum(len(s["endpoints"]) for s in slices) == 50


async def _endpoints_count(client, ns, n):
    ep = await get_endpoints(client, ns, "web")
    return ep if ep and len(ips(ep.get("subsets"))) == n else None
