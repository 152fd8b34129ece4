"""Create/get/list/update/patch/delete round trips against a real apiserver + etcd."""
from __future__ import annotations

import asyncio
import json

import pytest

from kubeling import errors
from kubeling.resources import lookup

PODS = lookup("pods")
SERVICES = lookup("services")
CONFIGMAPS = lookup("configmaps")
NAMESPACES = lookup("namespaces")
NODES = lookup("nodes")
LEASES = lookup("leases")
SLICES = lookup("endpointslices")


def pod(name: str, image: str = "busybox:latest", **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "app", "image": image, "command": ["sleep", "3600"]}]}}


async def test_create_stores_pod_in_etcd_with_mod_revision_as_resource_version(client, namespace, apiserver):
    created = await client.create(PODS, pod("web"), namespace)
    kv = apiserver.etcd.get_json(f"/registry/pods/{namespace}/web")
    assert kv is not None, "pod not stored under /registry/pods/<ns>/<name>"
    assert created["metadata"]["resourceVersion"] == str(kv["mod_revision"])
    stored = json.loads(__import__("base64").b64decode(kv["value"]))
    assert stored["spec"]["containers"][0]["image"] == "busybox:latest"
    assert created["metadata"]["uid"] and created["metadata"]["creationTimestamp"]
    # Defaults applied by the server.
    assert created["spec"]["restartPolicy"] == "Always"
    assert created["spec"]["terminationGracePeriodSeconds"] == 30
    assert created["status"]["phase"] == "Pending"


async def test_get_list_and_not_found(client, namespace):
    await client.create(PODS, pod("a", tier="x"), namespace)
    await client.create(PODS, pod("b", tier="y"), namespace)
    got = await client.get(PODS, "a", namespace)
    assert got["metadata"]["name"] == "a" and got["kind"] == "Pod" and got["apiVersion"] == "v1"
    listed = await client.list(PODS, namespace)
    assert listed["kind"] == "PodList"
    assert sorted(i["metadata"]["name"] for i in listed["items"]) == ["a", "b"]
    assert int(listed["metadata"]["resourceVersion"]) >= int(got["metadata"]["resourceVersion"])
    with pytest.raises(errors.ApiError) as e:
        await client.get(PODS, "nope", namespace)
    assert e.value.code == 404 and e.value.reason == "NotFound"
    assert e.value.message == 'pods "nope" not found'


async def test_create_twice_is_already_exists(client, namespace):
    await client.create(PODS, pod("dup"), namespace)
    with pytest.raises(errors.ApiError) as e:
        await client.create(PODS, pod("dup"), namespace)
    assert (e.value.code, e.value.reason) == (409, "AlreadyExists")
    assert e.value.message == 'pods "dup" already exists'


async def test_create_in_missing_namespace_is_not_found(client):
    with pytest.raises(errors.ApiError) as e:
        await client.create(PODS, pod("x"), "no-such-namespace")
    assert e.value.code == 404 and 'namespaces "no-such-namespace" not found' in e.value.message


async def test_update_with_stale_resource_version_conflicts(client, namespace):
    created = await client.create(CONFIGMAPS, {"metadata": {"name": "cm"}, "data": {"a": "1"}}, namespace)
    first = dict(created, data={"a": "2"})
    updated = await client.update(CONFIGMAPS, first)
    assert updated["data"] == {"a": "2"}
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    stale = dict(created, data={"a": "3"})
    with pytest.raises(errors.ApiError) as e:
        await client.update(CONFIGMAPS, stale)
    assert (e.value.code, e.value.reason) == (409, "Conflict")
    assert "the object has been modified" in e.value.message
    assert (await client.get(CONFIGMAPS, "cm", namespace))["data"] == {"a": "2"}


async def test_concurrent_updates_exactly_one_wins(client, namespace):
    created = await client.create(CONFIGMAPS, {"metadata": {"name": "race"}, "data": {"v": "0"}}, namespace)

    async def write(i: int):
        body = json.loads(json.dumps(created))
        body["data"] = {"v": str(i)}
        try:
            return await client.update(CONFIGMAPS, body)
        except errors.ApiError as exc:
            return exc

    results = await asyncio.gather(*(write(i) for i in range(1, 11)))
    wins = [r for r in results if isinstance(r, dict)]
    losses = [r for r in results if isinstance(r, errors.ApiError)]
    assert len(wins) == 1
    assert len(losses) == 9 and all(r.code == 409 and r.reason == "Conflict" for r in losses)
    assert (await client.get(CONFIGMAPS, "race", namespace))["data"] == wins[0]["data"]


async def test_main_resource_write_keeps_status_and_status_write_keeps_spec(client, namespace):
    await client.create(PODS, pod("st"), namespace)
    await client.patch(PODS, "st", {"status": {"phase": "Running", "podIP": "10.244.0.5"}}, namespace,
                       subresource="status")
    got = await client.get(PODS, "st", namespace)
    assert got["status"]["phase"] == "Running" and got["status"]["podIP"] == "10.244.0.5"
    # A spec write (labels via merge patch) may not touch status...
    patched = await client.patch(PODS, "st", {"metadata": {"labels": {"x": "y"}},
                                              "status": {"phase": "Failed"}}, namespace)
    assert patched["status"]["phase"] == "Running" and patched["metadata"]["labels"]["x"] == "y"
    # ...and a status write may not touch the spec.
    body = await client.get(PODS, "st", namespace)
    body["spec"]["activeDeadlineSeconds"] = 5
    body["status"]["phase"] = "Succeeded"
    after = await client.update(PODS, body, subresource="status")
    assert "activeDeadlineSeconds" not in after["spec"] and after["status"]["phase"] == "Succeeded"


async def test_json_patch_and_merge_patch(client, namespace):
    await client.create(CONFIGMAPS, {"metadata": {"name": "p"}, "data": {"a": "1", "b": "2"}}, namespace)
    merged = await client.patch(CONFIGMAPS, "p", {"data": {"a": None, "c": "3"}}, namespace)
    assert merged["data"] == {"b": "2", "c": "3"}
    jp = await client.patch(CONFIGMAPS, "p", [{"op": "replace", "path": "/data/b", "value": "20"},
                                               {"op": "add", "path": "/data/d", "value": "4"}],
                            namespace, patch_type="json")
    assert jp["data"] == {"b": "20", "c": "3", "d": "4"}
    with pytest.raises(errors.ApiError) as e:
        await client.patch(CONFIGMAPS, "p", [{"op": "test", "path": "/data/b", "value": "nope"}],
                           namespace, patch_type="json")
    assert 400 <= e.value.code < 500
    assert (await client.get(CONFIGMAPS, "p", namespace))["data"]["b"] == "20"


async def test_strategic_merge_patch_merges_containers_by_name(client, namespace):
    body = pod("smp")
    body["spec"]["containers"].append({"name": "side", "image": "busybox:latest"})
    await client.create(PODS, body, namespace)
    out = await client.patch(PODS, "smp", {"spec": {"containers": [{"name": "side", "image": "busybox:1"}]}},
                             namespace, patch_type="strategic")
    images = {c["name"]: c["image"] for c in out["spec"]["containers"]}
    assert images == {"app": "busybox:latest", "side": "busybox:1"}


async def test_delete_unbound_pod_goes_at_once(client, namespace, apiserver):
    await client.create(PODS, pod("gone"), namespace)
    out = await client.delete(PODS, "gone", namespace)
    assert out["metadata"]["name"] == "gone"
    assert apiserver.etcd.get_json(f"/registry/pods/{namespace}/gone") is None


async def test_bound_pod_deletion_is_graceful_then_final(client, namespace, apiserver):
    created = await client.create(PODS, pod("grace"), namespace)
    await client.create_binding(namespace, "grace", "node-a")
    out = await client.delete(PODS, "grace", namespace)
    assert out["metadata"]["deletionGracePeriodSeconds"] == 30
    assert out["metadata"]["deletionTimestamp"]
    assert apiserver.etcd.get_json(f"/registry/pods/{namespace}/grace") is not None
    # A later delete may only shorten the period.
    longer = await client.delete(PODS, "grace", namespace, grace_period=60)
    assert longer["metadata"]["deletionGracePeriodSeconds"] == 30
    shorter = await client.delete(PODS, "grace", namespace, grace_period=5)
    assert shorter["metadata"]["deletionGracePeriodSeconds"] == 5
    # The agent's final delete: grace 0 with a uid precondition.
    with pytest.raises(errors.ApiError) as e:
        await client.delete(PODS, "grace", namespace, grace_period=0, uid="not-the-uid")
    assert e.value.code == 409 and "Precondition failed: UID" in e.value.message
    await client.delete(PODS, "grace", namespace, grace_period=0, uid=created["metadata"]["uid"])
    assert apiserver.etcd.get_json(f"/registry/pods/{namespace}/grace") is None


async def test_finalizers_hold_deletion_until_removed(client, namespace, apiserver):
    await client.create(CONFIGMAPS, {"metadata": {"name": "fin", "finalizers": ["example.com/hold"]}}, namespace)
    out = await client.delete(CONFIGMAPS, "fin", namespace)
    assert out["metadata"]["deletionTimestamp"]
    assert apiserver.etcd.get_json(f"/registry/configmaps/{namespace}/fin") is not None
    await client.patch(CONFIGMAPS, "fin", {"metadata": {"finalizers": None}}, namespace)
    assert apiserver.etcd.get_json(f"/registry/configmaps/{namespace}/fin") is None


async def test_binding_sets_node_once_and_adds_condition(client, namespace):
    await client.create(PODS, pod("bind"), namespace)
    status = await client.create_binding(namespace, "bind", "node-1")
    assert status["status"] == "Success"
    got = await client.get(PODS, "bind", namespace)
    assert got["spec"]["nodeName"] == "node-1"
    cond = [c for c in got["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert cond and cond[0]["status"] == "True"
    with pytest.raises(errors.ApiError) as e:
        await client.create_binding(namespace, "bind", "node-2")
    assert e.value.code == 409 and 'is already assigned to node "node-1"' in e.value.message
    assert (await client.get(PODS, "bind", namespace))["spec"]["nodeName"] == "node-1"


async def test_cluster_scoped_and_grouped_resources(client, namespace):
    node = await client.create(NODES, {"metadata": {"name": f"n-{namespace}"}})
    assert "namespace" not in node["metadata"]
    lease = await client.create(LEASES, {"metadata": {"name": "l"},
                                         "spec": {"holderIdentity": "me", "leaseDurationSeconds": 10}},
                                namespace)
    assert lease["apiVersion"] == "coordination.k8s.io/v1"
    sl = await client.create(SLICES, {"metadata": {"name": "s"}, "addressType": "IPv4", "endpoints": [],
                                      "ports": []}, namespace)
    assert sl["kind"] == "EndpointSlice"
    await client.delete(NODES, f"n-{namespace}")


async def test_service_gets_unique_cluster_ip_and_releases_it(client, namespace, apiserver):
    ips = set()
    for i in range(5):
        svc = await client.create(SERVICES, {"metadata": {"name": f"s{i}"},
                                             "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}},
                                  namespace)
        ip = svc["spec"]["clusterIP"]
        assert ip.startswith("10.") and svc["spec"]["clusterIPs"] == [ip]
        assert svc["spec"]["ports"][0]["targetPort"] == 80
        ips.add(ip)
    assert len(ips) == 5
    taken = sorted(ips)[0]
    with pytest.raises(errors.ApiError) as e:
        await client.create(SERVICES, {"metadata": {"name": "clash"},
                                       "spec": {"clusterIP": taken, "ports": [{"port": 80}]}}, namespace)
    assert e.value.code == 422 and "already allocated" in e.value.message
    await client.delete(SERVICES, "s0", namespace)
    s0_ip = [ip for ip in ips if apiserver.etcd.get_json(f"/registry/ranges/serviceips/{ip}") is None]
    assert len(s0_ip) == 1, "deleting a service must release exactly its IP"
    again = await client.create(SERVICES, {"metadata": {"name": "reuse"},
                                           "spec": {"clusterIP": s0_ip[0], "ports": [{"port": 80}]}},
                                namespace)
    assert again["spec"]["clusterIP"] == s0_ip[0]


async def test_node_port_allocation(client, namespace):
    svc = await client.create(SERVICES, {"metadata": {"name": "np"},
                                         "spec": {"type": "NodePort", "ports": [{"port": 80}]}}, namespace)
    port = svc["spec"]["ports"][0]["nodePort"]
    assert 30000 <= port <= 32767
    with pytest.raises(errors.ApiError) as e:
        await client.create(SERVICES, {"metadata": {"name": "np2"},
                                       "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": port}]}},
                            namespace)
    assert e.value.code == 422 and "spec.ports[0].nodePort" in e.value.message


async def test_headless_service_keeps_none(client, namespace):
    svc = await client.create(SERVICES, {"metadata": {"name": "headless"},
                                         "spec": {"clusterIP": "None", "selector": {"a": "b"},
                                                  "ports": [{"port": 80}]}}, namespace)
    assert svc["spec"]["clusterIP"] == "None"


async def test_generate_name(client, namespace):
    out = await client.create(CONFIGMAPS, {"metadata": {"generateName": "gen-"}}, namespace)
    assert out["metadata"]["name"].startswith("gen-") and len(out["metadata"]["name"]) == 9


async def test_default_namespaces_exist_and_are_protected(client):
    names = {n["metadata"]["name"] for n in (await client.list(NAMESPACES))["items"]}
    assert {"default", "kube-system"} <= names
    with pytest.raises(errors.ApiError) as e:
        await client.delete(NAMESPACES, "default")
    assert e.value.code == 403


async def test_unauthenticated_requests_are_refused(apiserver):
    from kubeling.client import Client
    async with Client(apiserver.url, "wrong-token") as bad:
        with pytest.raises(errors.ApiError) as e:
            await bad.list(PODS, "default")
    assert e.value.code == 401 and e.value.reason == "Unauthorized"


async def test_service_replace_without_cluster_ip_keeps_it(client, namespace):
    svc = await client.create(SERVICES, {"metadata": {"name": "keep"},
                                         "spec": {"type": "NodePort", "ports": [{"port": 80}]}}, namespace)
    body = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "keep", "namespace": namespace,
                         "resourceVersion": svc["metadata"]["resourceVersion"]},
            "spec": {"type": "NodePort", "ports": [{"port": 80}], "selector": {"app": "new"}}}
    out = await client.update(SERVICES, body)
    assert out["spec"]["clusterIP"] == svc["spec"]["clusterIP"]
    assert out["spec"]["ports"][0]["nodePort"] == svc["spec"]["ports"][0]["nodePort"]
    assert out["spec"]["selector"] == {"app": "new"}


async def test_terminating_namespace_refuses_new_content(client, unique_name):
    # No controller manager runs in this module, so the namespace stays Terminating.
    await client.create(NAMESPACES, {"metadata": {"name": unique_name}})
    out = await client.delete(NAMESPACES, unique_name)
    assert out["status"]["phase"] == "Terminating" and out["metadata"]["deletionTimestamp"]
    with pytest.raises(errors.ApiError) as e:
        await client.create(CONFIGMAPS, {"metadata": {"name": "late"}}, unique_name)
    assert e.value.code == 403 and "being terminated" in e.value.message
