"""Unschedulable pods: Kubernetes' message, and binding promptly once a node
is labelled or resources are freed."""
from __future__ import annotations

import asyncio
import time

from sched_cluster import NODES, PODS, eventually, pod, pod_events, wait_bound, wait_unschedulable


async def test_failed_scheduling_message_and_condition(kube, nodes, ns, scheduler):
    await nodes.add(f"small-{ns}", cpu="1", labels={"tier": "gold"})
    await nodes.add(f"plain1-{ns}")
    await nodes.add(f"plain2-{ns}")
    await kube.create(PODS, pod("big", cpu="2", nodeSelector={"tier": "gold"}), ns)
    message = await wait_unschedulable(kube, ns, "big")
    assert message == (
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, "
        "2 Preemption is not helpful for scheduling.")
    [ev] = await pod_events(kube, ns, "big", "FailedScheduling")
    assert ev["type"] == "Warning" and ev["source"]["component"] == "default-scheduler"
    assert ev["involvedObject"]["name"] == "big" and ev["involvedObject"]["namespace"] == ns
    p = await kube.get(PODS, "big", ns)
    assert p["status"].get("phase", "Pending") == "Pending" and not p["spec"].get("nodeName")


async def test_no_nodes_at_all(kube, ns, scheduler):
    assert scheduler.cache.schedulable_nodes() == []
    await kube.create(PODS, pod("lonely"), ns)
    assert await wait_unschedulable(kube, ns, "lonely") == "no nodes available to schedule pods"


async def test_repeated_failure_bumps_the_event_count(kube, nodes, ns, scheduler):
    await nodes.add(f"n-{ns}", labels={"a": "b"})
    await kube.create(PODS, pod("picky", nodeSelector={"a": "c"}), ns)
    await wait_unschedulable(kube, ns, "picky")
    # An unrelated label change on the node retries the pod (NodeAffinity may now pass).
    await kube.patch(NODES, f"n-{ns}", {"metadata": {"labels": {"x": "y"}}})

    async def counted():
        evs = await pod_events(kube, ns, "picky", "FailedScheduling")
        return evs if len(evs) == 1 and evs[0]["count"] >= 2 else None
    [ev] = await eventually(counted, 10, "the FailedScheduling event to be counted twice")
    assert ev["lastTimestamp"] >= ev["firstTimestamp"]


async def test_binds_promptly_when_a_node_gets_the_label(kube, nodes, ns, scheduler):
    await nodes.add(f"n-{ns}")
    await kube.create(PODS, pod("wants-ssd", nodeSelector={"disk": "ssd"}), ns)
    await wait_unschedulable(kube, ns, "wants-ssd")
    await asyncio.sleep(1.2)  # past its first backoff: the label alone must bring it back
    t0 = time.monotonic()
    await kube.patch(NODES, f"n-{ns}", {"metadata": {"labels": {"disk": "ssd"}}})
    assert await wait_bound(kube, ns, "wants-ssd", timeout=5) == f"n-{ns}"
    assert time.monotonic() - t0 < 2.0, "should bind on the node event (parked pods otherwise wait 5 min)"


async def test_binds_promptly_when_resources_are_freed(kube, nodes, ns, scheduler):
    await nodes.add(f"n-{ns}", cpu="1")
    await kube.create(PODS, pod("first", cpu="800m"), ns)
    await wait_bound(kube, ns, "first")
    await kube.create(PODS, pod("second", cpu="800m"), ns)
    message = await wait_unschedulable(kube, ns, "second")
    assert "1 Insufficient cpu" in message
    await asyncio.sleep(1.2)
    t0 = time.monotonic()
    await kube.delete(PODS, "first", ns, grace_period=0)
    assert await wait_bound(kube, ns, "second", timeout=5) == f"n-{ns}"
    assert time.monotonic() - t0 < 2.0


async def test_binds_when_a_node_is_added(kube, nodes, ns, scheduler):
    await kube.create(PODS, pod("early", cpu="100m"), ns)
    await wait_unschedulable(kube, ns, "early")
    await asyncio.sleep(1.2)
    t0 = time.monotonic()
    await nodes.add(f"late-{ns}")
    assert await wait_bound(kube, ns, "early", timeout=5) == f"late-{ns}"
    assert time.monotonic() - t0 < 2.0


async def test_heartbeat_does_not_requeue(kube, nodes, ns, scheduler):
    node = await nodes.add(f"n-{ns}")
    await kube.create(PODS, pod("picky", nodeSelector={"a": "c"}), ns)
    await wait_unschedulable(kube, ns, "picky")
    uid = (await kube.get(PODS, "picky", ns))["metadata"]["uid"]
    await asyncio.sleep(1.2)
    assert scheduler.queue.where(uid) == "unschedulable"
    node = await kube.get(NODES, f"n-{ns}")
    node["status"]["conditions"][0]["lastHeartbeatTime"] = "2030-01-01T00:00:00Z"
    await kube.update(NODES, node, subresource="status")
    await asyncio.sleep(0.5)
    assert scheduler.queue.where(uid) == "unschedulable"


async def test_binds_when_the_node_becomes_ready(kube, nodes, ns, scheduler):
    await nodes.add(f"n-{ns}", ready="False")
    await kube.create(PODS, pod("waiting"), ns)
    message = await wait_unschedulable(kube, ns, "waiting")
    assert "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }" in message
    await asyncio.sleep(1.2)
    t0 = time.monotonic()
    await kube.patch(NODES, f"n-{ns}", {"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}, subresource="status")
    assert await wait_bound(kube, ns, "waiting", timeout=5) == f"n-{ns}"
    assert time.monotonic() - t0 < 2.0
