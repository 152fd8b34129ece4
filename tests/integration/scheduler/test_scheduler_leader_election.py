"""Two scheduler processes with leader election: only the lease holder binds;
when it dies the other takes the lease once it expires and carries on."""
from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

from sched_cluster import LEASES, PODS, eventually, pod, pod_events, wait_bound

from tests.conftest import REPO, stop_process


def start(cluster, identity: str, lease: str, log_path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "controlplane.scheduler", "--kubeconfig", str(cluster.kubeconfig),
         "--identity", identity, "--lease-name", lease, "--lease-duration", "3", "--renew-deadline", "2",
         "--retry-period", "0.5"],
        cwd=REPO, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)


async def holder(kube, lease: str) -> dict:
    return (await kube.get(LEASES, lease, "kube-system"))["spec"]


async def binders(kube, ns: str, names: list[str]) -> set[str]:
    async def all_recorded():
        evs = [e for n in names for e in await pod_events(kube, ns, n, "Scheduled")]
        return evs if len(evs) == len(names) else None
    return {e["reportingInstance"] for e in await eventually(all_recorded, 10, "Scheduled events")}


async def test_only_the_leader_binds_and_the_standby_takes_over(cluster, kube, nodes, ns, unique_name, tmp_path):
    lease = f"sched-{unique_name}"[:63]
    await nodes.add(f"n-{ns}")
    a = start(cluster, "sched-a", lease, tmp_path / "a.log")
    b = None
    try:
        async def a_leads():
            try:
                return (await holder(kube, lease)).get("holderIdentity") == "sched-a"
            except Exception:
                return False
        await eventually(a_leads, 20, "sched-a to take the lease")
        b = start(cluster, "sched-b", lease, tmp_path / "b.log")

        async def b_synced():
            return "caches synced" in (tmp_path / "b.log").read_text()
        await eventually(b_synced, 20, "sched-b to be a live standby")

        first = [f"a{i}" for i in range(10)]
        await asyncio.gather(*(kube.create(PODS, pod(n), ns) for n in first))
        await asyncio.gather(*(wait_bound(kube, ns, n) for n in first))
        assert await binders(kube, ns, first) == {"sched-a"}
        spec = await holder(kube, lease)
        assert spec["holderIdentity"] == "sched-a" and spec["leaseDurationSeconds"] == 3
        transitions = spec["leaseTransitions"]
        assert "became the leader" not in (tmp_path / "b.log").read_text()

        # The leader dies without releasing: the standby waits the lease out.
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        t0 = time.monotonic()

        async def b_leads():
            return (await holder(kube, lease)).get("holderIdentity") == "sched-b"
        await eventually(b_leads, 15, "sched-b to take over")
        took = time.monotonic() - t0
        assert 2.0 <= took <= 6.0, f"took over after {took:.1f}s with a 3s lease"
        spec = await holder(kube, lease)
        assert spec["leaseTransitions"] == transitions + 1

        second = [f"b{i}" for i in range(5)]
        await asyncio.gather(*(kube.create(PODS, pod(n), ns) for n in second))
        await asyncio.gather(*(wait_bound(kube, ns, n) for n in second))
        assert await binders(kube, ns, second) == {"sched-b"}

        # A clean stop hands the lease back at once.
        b.send_signal(signal.SIGTERM)
        assert b.wait(10) == 0
        spec = await holder(kube, lease)
        assert spec["holderIdentity"] in ("", None)
    finally:
        stop_process(a)
        if b is not None:
            stop_process(b)
        await kube.delete(LEASES, lease, "kube-system")
    for log in ("a.log", "b.log"):
        assert "Traceback" not in (tmp_path / log).read_text(), (tmp_path / log).read_text()[-3000:]


async def test_two_candidates_racing_for_a_fresh_lease_one_wins(cluster, kube, unique_name):
    """Optimistic concurrency: both try to create/update at once, exactly one holds it."""
    from controlplane.scheduler.leader_election import LeaderElector
    from kubeling.client import Client
    lease = f"race-{unique_name}"[:63]
    clients = [Client(cluster.url, cluster.token) for _ in range(4)]
    try:
        electors = [LeaderElector(c, "kube-system", lease, f"cand-{i}", lease_duration=10,
                                  renew_deadline=5, retry_period=1) for i, c in enumerate(clients)]
        results = await asyncio.gather(*(e.try_acquire_or_renew() for e in electors))
        assert sum(results) == 1
        winner = results.index(True)
        assert (await holder(kube, lease))["holderIdentity"] == f"cand-{winner}"
        # The others see a valid lease held by someone else and stay out.
        again = await asyncio.gather(*(e.try_acquire_or_renew() for e in electors))
        assert again == [i == winner for i in range(4)]
    finally:
        for c in clients:
            await c.close()
        await kube.delete(LEASES, lease, "kube-system")
