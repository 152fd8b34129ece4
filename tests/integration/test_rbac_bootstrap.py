"""The bootstrap policy is reconciled at every apiserver start, as kube-apiserver's
rbac/bootstrap-roles hook does: a missing default comes back, one that lacks a
default rule or subject gets it added (what an admin added stays), and one
annotated `rbac.authorization.k8s.io/autoupdate: "false"` is left alone.
Its own etcd: the test changes cluster-wide defaults."""
from __future__ import annotations

import asyncio
import shutil

import pytest

from kubeling.client import Client
from kubeling.resources import lookup
from tests.conftest import start_apiserver, start_etcd, stop_process

G = "rbac.authorization.k8s.io"
CLUSTER_ROLES, CLUSTER_BINDINGS = lookup(f"clusterroles.{G}"), lookup(f"clusterrolebindings.{G}")


@pytest.fixture
def private_etcd(tmp_path):
    proc, etcd = start_etcd(tmp_path)
    yield etcd
    stop_process(proc)
    shutil.rmtree(etcd.data_dir, ignore_errors=True)


async def _admin_session(api, work) -> None:
    client = Client(api.url, api.token)
    try:
        await work(client)
    finally:
        await client.close()


def test_defaults_are_recreated_and_added_to_but_not_overwritten(private_etcd, tmp_path):
    first = tmp_path / "first"
    first.mkdir()
    proc, api = start_apiserver(private_etcd, first)
    scheduler_rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]

    async def change(c: Client) -> None:
        await c.delete(CLUSTER_ROLES, "view")
        sched = await c.get(CLUSTER_ROLES, "system:kube-scheduler")
        sched["metadata"]["annotations"][f"{G}/autoupdate"] = "false"
        sched["rules"] = scheduler_rules
        await c.update(CLUSTER_ROLES, sched)
        proxier = await c.get(CLUSTER_ROLES, "system:node-proxier")
        proxier["rules"] = proxier["rules"][1:] + [{"apiGroups": ["example.com"], "resources": ["x"],
                                                     "verbs": ["get"]}]
        await c.update(CLUSTER_ROLES, proxier)
        disc = await c.get(CLUSTER_BINDINGS, "system:discovery")
        disc["subjects"] = [{"apiGroup": G, "kind": "Group", "name": "extra"}]
        await c.update(CLUSTER_BINDINGS, disc)
    try:
        asyncio.run(_admin_session(api, change))
    finally:
        stop_process(proc)

    second = tmp_path / "second"
    second.mkdir()
    proc, api = start_apiserver(private_etcd, second)

    async def check(c: Client) -> None:
        view = await c.get(CLUSTER_ROLES, "view")
        assert view["aggregationRule"] and any("pods" in r.get("resources", []) for r in view["rules"])
        assert (await c.get(CLUSTER_ROLES, "system:kube-scheduler"))["rules"] == scheduler_rules
        proxier = (await c.get(CLUSTER_ROLES, "system:node-proxier"))["rules"]
        assert {"apiGroups": [""], "resources": ["endpoints", "services"], "verbs": ["get", "list", "watch"]} \
            in proxier
        assert {"apiGroups": ["example.com"], "resources": ["x"], "verbs": ["get"]} in proxier
        subjects = (await c.get(CLUSTER_BINDINGS, "system:discovery"))["subjects"]
        assert [s["name"] for s in subjects] == ["extra", "system:authenticated"]
    try:
        asyncio.run(_admin_session(api, check))
    finally:
        stop_process(proc)
    for log in (first / "apiserver.log", second / "apiserver.log"):
        assert "Traceback" not in log.read_text()
