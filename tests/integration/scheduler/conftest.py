"""A private etcd + apiserver for the scheduler's tests: "0/N nodes are
available" counts every Node in the cluster, so these tests need a cluster
whose nodes are all their own. Nodes and pods are removed after each test."""
from __future__ import annotations

import asyncio
import shutil

import pytest
from sched_cluster import NAMESPACES, PODS, Nodes

from kubeling.client import Client
from tests.conftest import start_apiserver, start_etcd, stop_process


@pytest.fixture(scope="package")
def cluster(tmp_path_factory):
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed: run scripts/setup")
    base = tmp_path_factory.mktemp("sched-cluster")
    etcd_proc, etcd = start_etcd(base)
    api_proc, api = start_apiserver(etcd, base)
    yield api
    stop_process(api_proc)
    stop_process(etcd_proc)
    shutil.rmtree(etcd.data_dir, ignore_errors=True)
    assert "Traceback" not in api.log.read_text(), api.log.read_text()[-4000:]


@pytest.fixture
async def kube(cluster):
    c = Client(cluster.url, cluster.token)
    yield c
    await c.close()

@pytest.fixture
async def nodes(kube):
    n = Nodes(kube)
    yield n
    await n.cleanup()


@pytest.fixture
async def ns(kube, unique_name):
    """A fresh namespace; its pods are force-deleted afterwards (no kubelet here)."""
    await kube.create(NAMESPACES, {"metadata": {"name": unique_name}})
    yield unique_name
    for p in (await kube.list(PODS, unique_name))["items"]:
        try:
            await kube.delete(PODS, p["metadata"]["name"], unique_name, grace_period=0)
        except Exception:
            pass
    assert (await kube.list(PODS, unique_name))["items"] == []


@pytest.fixture
async def scheduler(cluster, nodes):
    """The scheduler in-process, as an asyncio task, with a client of its own; nodes the
    test adds are in its cache before `nodes.add` returns."""
    from controlplane.scheduler.scheduler import Scheduler
    client = Client(cluster.url, cluster.token)
    s = Scheduler(client, identity="test-scheduler")
    await s.start()
    task = asyncio.create_task(s.run())
    nodes.scheduler = s
    yield s
    nodes.scheduler = None
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await s.stop()
    await client.close()

