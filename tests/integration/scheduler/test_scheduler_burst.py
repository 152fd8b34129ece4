"""A burst of pods onto nodes that fit exactly that many: every pod binds and
no node is overbooked, judged from what the API server stored."""
from __future__ import annotations

import asyncio

from kubeling.quantity import cpu_millis, to_bytes
from sched_cluster import NODES, PODS, eventually, pod, wait_unschedulable


async def test_burst_of_200_fills_nodes_exactly_without_overbooking(kube, nodes, ns, scheduler):
    # 8 nodes x 25 pods: cpu fits 25 pods of 200m, memory 25 of 256Mi, and the
    # pod count 25, so any overbooking on any axis would show.
    names = [f"burst-{i}-{ns}"[:63] for i in range(8)]
    for n in names:
        await nodes.add(n, cpu="5", memory=f"{25 * 256}Mi", pods="25")
    sem = asyncio.Semaphore(32)

    async def create(i: int) -> None:
        async with sem:
            await kube.create(PODS, pod(f"b{i:03d}", cpu="200m", memory="256Mi"), ns)
    await asyncio.gather(*(create(i) for i in range(200)))

    async def all_bound():
        items = (await kube.list(PODS, ns))["items"]
        return items if sum(1 for p in items if p["spec"].get("nodeName")) == 200 else None
    items = await eventually(all_bound, 60, "200 pods to be bound")

    per_node: dict[str, list[dict]] = {n: [] for n in names}
    for p in items:
        per_node[p["spec"]["nodeName"]].append(p)
    for n in names:
        node = await kube.get(NODES, n)
        alloc = node["status"]["allocatable"]
        reqs = [c["resources"]["requests"] for p in per_node[n] for c in p["spec"]["containers"]]
        assert sum(cpu_millis(r["cpu"]) for r in reqs) <= cpu_millis(alloc["cpu"])
        assert sum(to_bytes(r["memory"]) for r in reqs) <= to_bytes(alloc["memory"])
        assert len(per_node[n]) <= int(alloc["pods"])
    assert all(len(v) == 25 for v in per_node.values())  # exactly full, therefore

    # One more fits nowhere.
    await kube.create(PODS, pod("extra", cpu="200m", memory="256Mi"), ns)
    message = await wait_unschedulable(kube, ns, "extra")
    assert message.startswith("0/8 nodes are available: 8 Insufficient cpu, 8 Insufficient memory, 8 Too many pods.")
