"""Each filter's effect through the real API: pods land only on nodes that fit,
with the Scheduled event, and the reason in FailedScheduling when none does."""
from __future__ import annotations

import asyncio

import pytest
from sched_cluster import NODES, PODS, condition, eventually, pod, pod_events, wait_bound, wait_unschedulable


async def test_binds_pod_with_condition_and_scheduled_event(kube, nodes, ns, scheduler):
    await nodes.add("solo")
    created = await kube.create(PODS, pod("web", cpu="100m"), ns)
    assert await wait_bound(kube, ns, "web") == "solo"
    got = await kube.get(PODS, "web", ns)
    assert condition(got, "PodScheduled")["status"] == "True"
    assert got["metadata"]["uid"] == created["metadata"]["uid"]  # the same object, only bound

    async def scheduled():
        return await pod_events(kube, ns, "web", "Scheduled")
    [ev] = await eventually(scheduled, 5, "the Scheduled event")
    assert ev["type"] == "Normal"
    assert ev["message"] == f"Successfully assigned {ns}/web to solo"
    assert ev["source"]["component"] == "default-scheduler"
    assert ev["reportingComponent"] == "default-scheduler"
    assert ev["involvedObject"]["kind"] == "Pod" and ev["involvedObject"]["uid"] == created["metadata"]["uid"]
    assert ev["count"] == 1 and ev["firstTimestamp"] and ev["lastTimestamp"]


# (bad node setup, pod spec, expected reason) — the good node is always plain.
CASES = {
    "unschedulable": ({"unschedulable": True}, {}, "node(s) were unschedulable"),
    "taint": ({"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}, {},
              "node(s) had untolerated taint {dedicated: db}"),
    "noexecute-taint": ({"taints": [{"key": "maint", "effect": "NoExecute"}]}, {},
                        "node(s) had untolerated taint {maint: }"),
    "not-ready": ({"ready": "False"}, {}, "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"),
    "unreachable": ({"ready": "Unknown"}, {}, "node(s) had untolerated taint {node.kubernetes.io/unreachable: }"),
    "node-selector": ({"labels": {"disk": "hdd"}}, {"nodeSelector": {"disk": "ssd"}},
                      "node(s) didn't match Pod's node affinity/selector"),
    "affinity": ({"labels": {"zone": "b"}},
                 {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                     "nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "zone", "operator": "NotIn", "values": ["b"]}]}]}}}},
                 "node(s) didn't match Pod's node affinity/selector"),
    "cpu": ({"cpu": "200m"}, {"cpu": "500m"}, "Insufficient cpu"),
    "memory": ({"memory": "100Mi"}, {"memory": "200Mi"}, "Insufficient memory"),
    "pods": ({"pods": "0"}, {}, "Too many pods"),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_filter_keeps_pods_off_the_node_that_does_not_fit(case, kube, nodes, ns, scheduler):
    bad, spec, reason = CASES[case]
    good_labels = {"disk": "ssd", "zone": "a"}
    await nodes.add(f"bad-{ns}", **bad)
    await nodes.add(f"good-{ns}", labels=good_labels)
    spec = dict(spec)
    cpu, memory = spec.pop("cpu", None), spec.pop("memory", None)
    names = [f"p{i}" for i in range(6)]
    await asyncio.gather(*(kube.create(PODS, pod(n, cpu=cpu, memory=memory, **spec), ns) for n in names))
    placed = await asyncio.gather(*(wait_bound(kube, ns, n) for n in names))
    assert set(placed) == {f"good-{ns}"}

    # With the good node cordoned, the next pod fits nowhere and says why.
    await kube.patch(NODES, f"good-{ns}", {"spec": {"unschedulable": True}})
    await kube.create(PODS, pod("stuck", cpu=cpu, memory=memory, **spec), ns)
    message = await wait_unschedulable(kube, ns, "stuck")
    assert message == expected_message(case, reason)
    assert await _node_of(kube, ns, "stuck") is None


def expected_message(case: str, reason: str) -> str:
    cordoned = "node(s) were unschedulable"
    if case == "unschedulable":
        return (f"0/2 nodes are available: 2 {cordoned}. "
                "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.")
    reasons = ", ".join(sorted([f"1 {reason}", f"1 {cordoned}"]))
    if case in ("cpu", "memory", "pods"):  # removing pods could help there
        preemption = "1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling"
    else:
        preemption = "2 Preemption is not helpful for scheduling"
    return f"0/2 nodes are available: {reasons}. preemption: 0/2 nodes are available: {preemption}."


async def _node_of(kube, ns, name):
    return ((await kube.get(PODS, name, ns)).get("spec") or {}).get("nodeName")


async def test_toleration_lets_pod_onto_tainted_node(kube, nodes, ns, scheduler):
    await nodes.add(f"tainted-{ns}", labels={"role": "db"},
                    taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    await kube.create(PODS, pod("db", nodeSelector={"role": "db"},
                                tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db",
                                              "effect": "NoSchedule"}]), ns)
    assert await wait_bound(kube, ns, "db") == f"tainted-{ns}"


async def test_host_port_conflict(kube, nodes, ns, scheduler):
    await nodes.add(f"a-{ns}")
    await nodes.add(f"b-{ns}")
    for i in range(2):
        await kube.create(PODS, pod(f"hp{i}", host_ports=[8080]), ns)
    placed = {await wait_bound(kube, ns, f"hp{i}") for i in range(2)}
    assert placed == {f"a-{ns}", f"b-{ns}"}  # one per node
    await kube.create(PODS, pod("hp2", host_ports=[8080]), ns)
    message = await wait_unschedulable(kube, ns, "hp2")
    assert message == ("0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports. "
                       "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.")
    # Another port fits at once.
    await kube.create(PODS, pod("hp3", host_ports=[8081]), ns)
    assert await wait_bound(kube, ns, "hp3")


async def test_preset_node_name_and_other_schedulers_pods_are_left_alone(kube, nodes, ns, scheduler):
    await nodes.add(f"n-{ns}")
    await kube.create(PODS, pod("direct", nodeName="elsewhere"), ns)
    await kube.create(PODS, pod("theirs", schedulerName="other-scheduler"), ns)
    await kube.create(PODS, pod("ours"), ns)
    await wait_bound(kube, ns, "ours")
    await asyncio.sleep(0.5)
    assert await _node_of(kube, ns, "direct") == "elsewhere"
    assert await _node_of(kube, ns, "theirs") is None
    for name in ("direct", "theirs"):   # no scheduler event (the apiserver's Stored is there)
        assert [e for e in await pod_events(kube, ns, name) if e["source"]["component"] != "kube-apiserver"] == []
    assert condition(await kube.get(PODS, "theirs", ns), "PodScheduled") is None
