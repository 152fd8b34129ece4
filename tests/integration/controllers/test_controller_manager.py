"""The controller manager as a real process: node pod CIDRs and namespace deletion."""
from __future__ import annotations

import asyncio
import ipaddress

import pytest

from controller_waits import eventually
from kubeling import errors
from kubeling.resources import lookup

NODES, NAMESPACES, PODS, CONFIGMAPS = (lookup(w) for w in ("nodes", "namespaces", "pods", "configmaps"))


async def test_nodes_get_distinct_pod_cidrs_and_freed_ranges_are_reused(client, controller_manager, unique_name):
    names = [f"{unique_name}-{i}" for i in range(5)]
    for n in names:
        await client.create(NODES, {"metadata": {"name": n}})

    async def cidrs():
        got = {n: (await client.get(NODES, n)).get("spec", {}).get("podCIDR") for n in names}
        return got if all(got.values()) else None
    got = await eventually(cidrs)
    assert len(set(got.values())) == 5
    for cidr in got.values():
        net = ipaddress.ip_network(cidr)
        assert net.prefixlen == 24 and net.subnet_of(ipaddress.ip_network("10.244.0.0/16"))
    node = await client.get(NODES, names[0])
    assert node["spec"]["podCIDRs"] == [node["spec"]["podCIDR"]]
    freed = got[names[0]]
    await client.delete(NODES, names[0])
    await asyncio.sleep(0.5)
    await client.create(NODES, {"metadata": {"name": f"{unique_name}-new"}})

    async def new_cidr():
        return (await client.get(NODES, f"{unique_name}-new")).get("spec", {}).get("podCIDR")
    assert await eventually(new_cidr) not in set(got.values()) - {freed}
    for n in names[1:] + [f"{unique_name}-new"]:
        await client.delete(NODES, n)


async def test_deleting_a_namespace_removes_its_contents_then_itself(client, controller_manager, unique_name,
                                                                      apiserver):
    ns = unique_name
    await client.create(NAMESPACES, {"metadata": {"name": ns}})
    await client.create(CONFIGMAPS, {"metadata": {"name": "a"}}, ns)
    await client.create(PODS, {"metadata": {"name": "p"},
                               "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, ns)
    out = await client.delete(NAMESPACES, ns)
    assert out["status"]["phase"] == "Terminating" and out["metadata"]["deletionTimestamp"]

    async def gone():
        try:
            await client.get(NAMESPACES, ns)
            return False
        except errors.ApiError as exc:
            return exc.code == 404
    await eventually(gone)
    assert apiserver.etcd.etcdctl("get", f"/registry/configmaps/{ns}/", "--prefix", "--keys-only").strip() == ""
    assert apiserver.etcd.etcdctl("get", f"/registry/pods/{ns}/", "--prefix", "--keys-only").strip() == ""
    with pytest.raises(errors.ApiError) as e:
        await client.create(CONFIGMAPS, {"metadata": {"name": "late"}}, ns)
    assert e.value.code == 404
