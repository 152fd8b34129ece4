"""The DaemonSet controller with the real scheduler (placement matters): pods are
created with a required node affinity on the node's name and bound by the scheduler.
The test plays the agents: bound pods become Running and Ready, a pod being deleted
is finished with a grace-0 delete."""
from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from controller_waits import eventually
from kubeling import errors
from kubeling.resources import lookup
from tests.conftest import REPO, stop_process
from tests.integration.scheduler.sched_cluster import Nodes
from workload_pods import PODS, delete_namespace, reasons, set_phase

DS = lookup("daemonsets")


@pytest.fixture(scope="module")
def scheduler_process(apiserver, tmp_path_factory):
    log = tmp_path_factory.mktemp("sched") / "scheduler.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "controlplane.scheduler", "--kubeconfig",
                                 str(apiserver.kubeconfig), "--no-leader-elect"], stdout=out,
                                stderr=subprocess.STDOUT, cwd=REPO)
    yield proc
    stop_process(proc)
    assert "Traceback" not in log.read_text(), log.read_text()


@pytest.fixture
async def nodes(client):
    n = Nodes(client)
    yield n
    await n.cleanup()


@pytest.fixture
async def ns(client, namespace, controller_manager, scheduler_process):
    yield namespace
    for p in (await client.list(PODS, namespace))["items"]:
        try:
            await client.delete(PODS, p["metadata"]["name"], namespace, grace_period=0)
        except errors.ApiError:
            pass
    await delete_namespace(client, namespace)


class FakeAgents:
    """Every node's agent, reduced to what the controller can see; records, after each
    change, how many eligible nodes lack an available pod."""

    def __init__(self, client, ns):
        self.client, self.ns = client, ns
        self.unavailable_seen: list[int] = []
        self.nodes: set[str] = set()

    async def run(self):
        while True:
            pods = (await self.client.list(PODS, self.ns))["items"]
            for p in pods:
                name, meta = p["metadata"]["name"], p["metadata"]
                if meta.get("deletionTimestamp"):
                    try:
                        await self.client.delete(PODS, name, self.ns, grace_period=0)
                    except errors.ApiError:
                        pass
                elif p["spec"].get("nodeName") and p["status"].get("phase") == "Pending":
                    await set_phase(self.client, self.ns, name, "Running", ready=True)
            ready_nodes = {p["spec"].get("nodeName") for p in pods
                           if not p["metadata"].get("deletionTimestamp") and p["status"].get("phase") == "Running"}
            if self.nodes:
                self.unavailable_seen.append(len(self.nodes - ready_nodes))
            await asyncio.sleep(0.05)


def _target(pod: dict) -> str:
    """The node a daemon pod is for: its required node affinity names it."""
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    return terms["nodeSelectorTerms"][0]["matchFields"][0]["values"][0]


def daemonset(name: str, selector_label: dict) -> dict:
    return {"metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"nodeSelector": selector_label,
                                           "containers": [{"name": "c", "image": "busybox"}]}}}}


async def test_one_pod_per_eligible_node_bound_by_the_scheduler_and_rolling_update(client, ns, nodes, unique_name):
    role = {"ds-test": unique_name}
    await nodes.add(f"{unique_name}-a", labels=role)
    await nodes.add(f"{unique_name}-b", labels=role)
    await nodes.add(f"{unique_name}-tainted", labels=role,
                    taints=[{"key": "dedicated", "value": "x", "effect": "NoSchedule"}])
    await nodes.add(f"{unique_name}-other")
    agents = FakeAgents(client, ns)
    task = asyncio.create_task(agents.run())
    try:
        ds = await client.create(DS, daemonset("logs", role), ns)
        assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}

        async def placed(want):
            pods = [p for p in (await client.list(PODS, ns))["items"] if not p["metadata"].get("deletionTimestamp")]
            got = sorted(p["spec"].get("nodeName") or "" for p in pods)
            return pods if got == sorted(want) else None
        pods = await eventually(lambda: placed([f"{unique_name}-a", f"{unique_name}-b"]), 20)
        for p in pods:
            terms = p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            assert terms["nodeSelectorTerms"][0]["matchFields"][0]["values"] == [p["spec"]["nodeName"]]
            assert any(t["key"] == "node.kubernetes.io/unschedulable" for t in p["spec"]["tolerations"])
            assert p["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"

        async def status(**want):
            got = (await client.get(DS, "logs", ns)).get("status") or {}
            return got if all(got.get(k) == v for k, v in want.items()) else None
        await eventually(lambda: status(desiredNumberScheduled=2, currentNumberScheduled=2, numberReady=2,
                                        numberAvailable=2, updatedNumberScheduled=2), 20)

        # A toleration makes the tainted node eligible.
        await client.patch(DS, "logs", {"spec": {"template": {"spec": {"tolerations": [
            {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]}}}}, ns)
        agents.nodes = {f"{unique_name}-a", f"{unique_name}-b"}
        await eventually(lambda: placed([f"{unique_name}-a", f"{unique_name}-b", f"{unique_name}-tainted"]), 30)
        await eventually(lambda: status(desiredNumberScheduled=3, updatedNumberScheduled=3, numberAvailable=3), 30)
        # The rolling update never had more than maxUnavailable (1) eligible node without a pod.
        assert agents.unavailable_seen and max(agents.unavailable_seen) <= 1, agents.unavailable_seen
        assert "SuccessfulCreate" in await reasons(client, ns, "logs")

        table = await client.request("GET", f"/apis/apps/v1/namespaces/{ns}/daemonsets",
                                     accept="application/json;as=Table;v=v1;g=meta.k8s.io")
        assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == [
            "Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector", "Age"]
        assert table["rows"][0]["cells"][:7] == ["logs", 3, 3, 3, 3, 3, f"ds-test={unique_name}"]

        # A node that loses the label loses its pod.
        await client.patch(lookup("nodes"), f"{unique_name}-b", {"metadata": {"labels": {"ds-test": None}}})
        await eventually(lambda: placed([f"{unique_name}-a", f"{unique_name}-tainted"]), 20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_invalid_daemonset_is_refused(client, ns):
    bad = daemonset("bad", {})
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    bad["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}}
    with pytest.raises(errors.ApiError) as exc:
        await client.create(DS, bad, ns)
    fields = {c["field"] for c in exc.value.details["causes"]}
    assert {"spec.template.spec.restartPolicy", "spec.updateStrategy.rollingUpdate.maxUnavailable"} <= fields


async def test_surge_update_starts_the_new_pod_before_the_old_one_goes(client, ns, nodes, unique_name):
    role = {"ds-surge": unique_name}
    names = [f"{unique_name}-s{i}" for i in range(2)]
    for n in names:
        await nodes.add(n, labels=role)
    agents = FakeAgents(client, ns)
    agents.nodes = set(names)
    task = asyncio.create_task(agents.run())
    try:
        ds = daemonset("surge", role)
        ds["spec"]["updateStrategy"] = {"type": "RollingUpdate",
                                        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
        await client.create(DS, ds, ns)

        async def status(**want):
            got = (await client.get(DS, "surge", ns)).get("status") or {}
            return got if all(got.get(k) == v for k, v in want.items()) else None
        await eventually(lambda: status(numberAvailable=2, updatedNumberScheduled=2), 20)
        agents.unavailable_seen.clear()
        most = [0]

        async def watch_pairs():
            # From the watch, not by polling: every pod event counts, however short-lived.
            listed = await client.list(PODS, ns)
            live = {p["metadata"]["name"]: _target(p) for p in listed["items"]}
            async for typ, p in client.watch(PODS, ns, resource_version=listed["metadata"]["resourceVersion"]):
                name = p["metadata"]["name"]
                if typ == "DELETED" or p["metadata"].get("deletionTimestamp"):
                    live.pop(name, None)
                else:
                    live[name] = _target(p)
                per_node = {}
                for n in live.values():
                    per_node[n] = per_node.get(n, 0) + 1
                most[0] = max([most[0], *per_node.values()])
        watcher = asyncio.create_task(watch_pairs())
        try:
            await client.patch(DS, "surge", {"spec": {"template": {"metadata": {"annotations": {"v": "2"}}}}}, ns)
            await eventually(lambda: status(updatedNumberScheduled=2, numberAvailable=2, observedGeneration=2), 30)

            async def one_each():
                pods = (await client.list(PODS, ns))["items"]
                return len(pods) == 2 and all(p["metadata"]["annotations"].get("v") == "2" for p in pods)
            await eventually(one_each, 30)
        finally:
            watcher.cancel()
        # Never a node without an available daemon pod; at some point two pods on one node.
        assert agents.unavailable_seen and max(agents.unavailable_seen) == 0, agents.unavailable_seen
        assert most[0] == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
