"""Issue 17's fault suite: one small real cluster (etcd, apiserver, controller-manager,
scheduler, a node with its own dockerd, cni-daemon, agent and proxy, the cluster DNS), and
faults one after another in it, each test asserting that the cluster converges again:

- `kill -9` of each component during a burst of pod creations and deletions, then the same
  command line again; afterwards every pod that should run runs exactly once and was not
  restarted by the fault, every deleted pod is gone with its containers, veth, IP file and
  rules, Endpoints/EndpointSlices and the proxy's rules match, and a pod created after the
  fault runs;
- etcd SIGSTOPped for 30 s and resumed: the cluster acts again;
- the apiserver restarted under 100 open watches: every informer gets an event made after
  the restart, within a bound;
- the node cut off from the apiserver for 60 s: its Node goes NotReady only after the
  node-monitor grace period, its pods keep running and serving throughout.
"""
from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import fault_cluster as cluster  # noqa: E402
from fault_cluster import COMPONENTS, NODE_MONITOR_GRACE, FaultWorld  # noqa: E402
from fault_workload import (NODES, NS, PODS, SERVICE, SERVICES, client, converge, create_pods,  # noqa: E402
                      delete_pods, kill_tree, retrying, running_app_ids, setup_namespace)

from kubeling.client import Client  # noqa: E402
from kubeling.informer import Informer  # noqa: E402
from kubeling.resources import lookup  # noqa: E402

pytestmark = pytest.mark.e2e
CONFIGMAPS, LEASES = lookup("configmaps"), lookup("leases")
# Bound on convergence after a fault: the slowest recovery (dockerd restoring its containers,
# informers backing off at most ~12 s) plus the node's work for ~10 pods on a busy 2-core machine.
CONVERGE_SECONDS = 90
# How long a killed component stays down before it is started again: kubeling's systemd units'
# RestartSec=2 (the time its own restart then takes comes on top).
DOWNTIME = 2.0
# Faults that may legitimately restart a pod's containers: none. dockerd runs with
# --live-restore (containers outlive it, as on a real node), and the agent rebuilds its
# picture of the node from the runtime, so neither may restart a running container.
MAY_RESTART: frozenset[str] = frozenset()
# Faults that may leave a container process running outside dockerd's sight: kill -9 of dockerd
# between containerd starting a container's task and dockerd recording the start. The restarted
# dockerd finds the container not running, unmounts its rootfs and forgets it; its shim and
# process live on, seen by nothing kubeling can ask (Docker 20.10 with its own containerd, which
# dies with it). Everything kubeling controls must still converge; such orphans are reported
# and killed here, and any orphan after another fault fails the test.
ORPHANS_OF = frozenset({"dockerd"})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = cluster.start(tmp_path_factory.mktemp("faults"))
    try:
        async def seed() -> None:
            async with client(w) as c:
                await setup_namespace(c)
                await create_pods(c, ["seed"])
                await converge(w, c, {"seed"}, {}, False, CONVERGE_SECONDS)
        asyncio.run(seed())
        w.facts["survivors"], w.facts["keep"] = set(), "seed"
        yield w
    finally:
        problems = cluster.stop(w)
        assert not problems, problems
    # No error went unhandled: asyncio's "never retrieved" is a failure nobody acted on, and a
    # Traceback outside the agent (which logs a failed kill or sync with its cause, and retries)
    # is a crash or an unexpected error of a component under a fault.
    logs = w.logs()
    lost = [who for who, text in logs.items() if "was never retrieved" in text]
    assert not lost, {who: logs[who][logs[who].index("was never retrieved") - 200:][:3000] for who in lost}
    crashed = [who for who, text in logs.items() if who != "agent" and "Traceback" in text]
    assert not crashed, {who: logs[who][logs[who].index("Traceback"):][:3000] for who in crashed}


async def burst_with_fault(w: FaultWorld, tag: str, fault, recover, may_restart: bool = False,
                           may_orphan: bool = False) -> None:
    """Create 6 pods and delete 3 of them (and the previous round's survivors) behind the Service
    while `fault` strikes; `recover` ends it. The previous round's pod created after its fault
    (`keep`) runs throughout: its container must be the same one afterwards."""
    loop = asyncio.get_running_loop()
    new = [f"{tag}-{i}" for i in range(6)]
    after = f"{tag}-after"
    async with client(w) as c:
        await create_pods(c, new[:3])
        before = await running_app_ids(w, c, {w.facts["keep"]})
        assert before, f"{w.facts['keep']} does not run before the fault"
        rest = asyncio.gather(create_pods(c, new[3:]), delete_pods(c, new[:3]),
                              delete_pods(c, sorted(w.facts["survivors"])))
        await loop.run_in_executor(None, fault)
        await asyncio.sleep(DOWNTIME)
        await loop.run_in_executor(None, recover)
        await rest
        await create_pods(c, [after])
        expected = set(new[3:]) | {after, w.facts["keep"]}
        orphaned: dict[str, int] | None = {} if may_orphan else None
        took = await converge(w, c, expected, before, may_restart, CONVERGE_SECONDS, orphaned)
        print(f"{tag}: converged {took:.1f}s after the post-fault pod's creation")
        if orphaned:
            print(f"{tag}: containers left running outside dockerd's sight (killed now): {sorted(orphaned)}")
            for pid in orphaned.values():
                kill_tree(pid)
    w.facts["survivors"] = set(new[3:]) | {w.facts["keep"]}
    w.facts["keep"] = after


TAGS = {"etcd": "etcd", "apiserver": "api", "controller-manager": "cm", "scheduler": "sched", "agent": "agent",
        "proxy": "proxy", "cni-daemon": "cni", "dockerd": "dockerd", "dns": "dns"}


@pytest.mark.parametrize("component", COMPONENTS)
async def test_kill9_during_burst(world: FaultWorld, component: str) -> None:
    await burst_with_fault(world, TAGS[component], lambda: world.kill9(component),
                           lambda: world.restart(component), component in MAY_RESTART, component in ORPHANS_OF)
    if component == "dns":
        # The restarted DNS server (on a new port) published itself again: pods resolve the Service.
        async with client(world) as c:
            cip = (await c.get(SERVICES, SERVICE, NS))["spec"]["clusterIP"]
        fqdn = f"{SERVICE}.{NS}.svc.{cluster.CLUSTER_DOMAIN}"

        def resolves():
            r = world.node.pod_exec(NS, world.facts["keep"], "web", "nslookup", fqdn, timeout=15)
            return r.returncode == 0 and cip in r.stdout
        cluster.wait_for(resolves, 30, f"{fqdn} to resolve from a pod after the DNS restart")


ETCD_STOP_SECONDS = 30


async def test_etcd_stopped_30s_then_resumed(world: FaultWorld) -> None:
    # The burst's calls hang on the stopped etcd, time out and are made again; once etcd resumes,
    # the cluster acts again: everything converges and a pod created afterwards runs.
    stopped = []

    def stop() -> None:
        world.signal("etcd", signal.SIGSTOP)
        stopped.append(True)

    def resume() -> None:
        time.sleep(ETCD_STOP_SECONDS - DOWNTIME)  # the fault's length itself, not a wait for a state
        world.signal("etcd", signal.SIGCONT)
        stopped.clear()
    try:
        await burst_with_fault(world, "stop", stop, resume)
    finally:
        if stopped:
            world.signal("etcd", signal.SIGCONT)


WATCHES = 100
WATCH_EVENT_BOUND = 30  # seconds: the informers' longest back-off (~12 s) twice, on a busy machine


async def test_apiserver_restarted_under_100_watches(world: FaultWorld) -> None:
    """Every one of 100 informers (the real client's list + watch) gets an object created after
    the apiserver's restart, within a bound: no watch hangs on a connection that is gone."""
    clients = [client(world) for _ in range(4)]
    seen: list[dict[str, float]] = [{} for _ in range(WATCHES)]

    def recorder(i: int):
        return lambda obj: seen[i].setdefault(obj["metadata"]["name"], time.monotonic())
    informers = [Informer(clients[i % len(clients)], CONFIGMAPS, namespace=NS, on_add=recorder(i))
                 for i in range(WATCHES)]
    tasks = [asyncio.create_task(inf.run()) for inf in informers]
    admin = client(world)
    try:
        await retrying(lambda: admin.create(CONFIGMAPS, {"metadata": {"name": "before"}}, NS), "configmap")
        await wait_all(seen, "before", WATCH_EVENT_BOUND)
        # A graceful restart: SIGTERM must end the apiserver promptly although 100 watches are open.
        proc = world.proc("apiserver")
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.get_running_loop().run_in_executor(None, proc.wait, 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("the apiserver did not exit within 20 s of SIGTERM with 100 watches open")
        await asyncio.get_running_loop().run_in_executor(None, world.restart, "apiserver")
        await retrying(lambda: admin.create(CONFIGMAPS, {"metadata": {"name": "after-restart"}}, NS), "configmap")
        t0 = time.monotonic()
        took = await wait_all(seen, "after-restart", WATCH_EVENT_BOUND)
        print(f"all {WATCHES} informers had the new object {took - t0:.1f}s after its creation")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for name in ("before", "after-restart"):
            await retrying(lambda n=name: admin.delete(CONFIGMAPS, n, NS), "configmap")
        for c in (*clients, admin):
            await c.close()


async def wait_all(seen: list[dict[str, float]], name: str, bound: float) -> float:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if all(name in s for s in seen):
            return max(s[name] for s in seen)
        await asyncio.sleep(0.1)
    missing = [i for i, s in enumerate(seen) if name not in s]
    raise AssertionError(f"{len(missing)} of {WATCHES} informers never got {name!r} within {bound}s")


CUT_SECONDS = 60


def ready_of(node: dict) -> str:
    return next((c["status"] for c in node["status"].get("conditions") or [] if c["type"] == "Ready"), "Missing")


def last_heartbeat(node: dict, lease: dict) -> float:
    """The node's latest report as wall-clock seconds: its Ready heartbeat or its Lease renewal."""
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    times = [ready["lastHeartbeatTime"], lease["spec"]["renewTime"]]
    return max(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in times)


async def test_node_cut_off_from_the_apiserver_for_60s(world: FaultWorld) -> None:
    """The node's own netns drops everything it sends to the apiserver for 60 s (its agent and
    proxy are cut off; the DNS server on the same host stays reachable). The Node stays Ready for
    the grace period after its last report, then goes NotReady (Unknown) before the cut ends; its
    pods keep running (same containers) and keep serving through the Service from the node."""
    node = world.node
    loop = asyncio.get_running_loop()
    port = world.api.url.rsplit(":", 1)[1]
    rule = ["OUTPUT", "-d", node.root_ip, "-p", "tcp", "--dport", port, "-m", "comment", "--comment",
            "kubeling-faults-cut", "-j", "DROP"]
    running = world.facts["survivors"] | {world.facts["keep"]}
    async with client(world) as c:
        before = await running_app_ids(world, c, running)
        assert set(before) == running, f"not all of {sorted(running)} run before the cut: {sorted(before)}"
        cip = (await c.get(SERVICES, SERVICE, NS))["spec"]["clusterIP"]
        # Cut right after a fresh report (the previous faults may have delayed some): the Node must
        # then stay Ready for the whole grace period, measured from that report.
        renewed = (await c.get(LEASES, node.name, "kube-node-lease"))["spec"]["renewTime"]
        deadline = time.monotonic() + 4 * cluster.NODE_STATUS_PERIOD
        while True:
            n = await c.get(NODES, node.name)
            lease = await c.get(LEASES, node.name, "kube-node-lease")
            if lease["spec"]["renewTime"] != renewed and ready_of(n) == "True":
                break
            assert time.monotonic() < deadline, f"no fresh report of a Ready node: {n['status']['conditions']}"
            await asyncio.sleep(0.2)
        heartbeat = last_heartbeat(n, lease)
        node.ns("iptables", "-I", *rule)
        cut_at = time.time()
        not_ready_at = None
        answers: dict[str, int] = {}
        failures: list[str] = []
        try:
            while time.time() - cut_at < CUT_SECONDS:
                if not_ready_at is None and ready_of(await c.get(NODES, node.name)) != "True":
                    not_ready_at = time.time()
                r = await loop.run_in_executor(None, lambda: node.ns(
                    "curl", "-s", "--max-time", "5", "--retry", "2", f"http://{cip}/", check=False, timeout=30))
                if r.returncode == 0 and r.stdout.strip() in running:
                    answers[r.stdout.strip()] = answers.get(r.stdout.strip(), 0) + 1
                else:
                    failures.append(f"{time.time() - cut_at:.0f}s: curl {r.returncode} {r.stdout!r}")
                await asyncio.sleep(1)
        finally:
            node.ns("iptables", "-D", *rule)
        assert not failures, f"the Service did not answer from the node during the cut: {failures}"
        assert not_ready_at is not None, f"the Node stayed Ready through the {CUT_SECONDS}s cut"
        assert not_ready_at >= heartbeat + NODE_MONITOR_GRACE, \
            f"NotReady {not_ready_at - heartbeat:.1f}s after the last report: before the {NODE_MONITOR_GRACE}s grace"
        print(f"NotReady {not_ready_at - cut_at:.1f}s into the cut ({not_ready_at - heartbeat:.1f}s after the last "
              f"report); the Service answered {sum(answers.values())} times: {answers}")
        # Back: the agent reports again, and the node acts again.
        await wait_until_ready(c, node.name, 60)
        await create_pods(c, ["cut-after"])
        expected = running | {"cut-after"}
        await converge(world, c, expected, before, False, CONVERGE_SECONDS)
    world.facts["survivors"], world.facts["keep"] = running, "cut-after"


async def wait_until_ready(c: Client, name: str, bound: float) -> None:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if ready_of(await c.get(NODES, name)) == "True":
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"the Node {name} not Ready again within {bound}s of the cut's end")


async def test_deleting_everything_leaves_nothing(world: FaultWorld) -> None:
    """After all the faults: every pod deleted leaves no container, veth, IP file or rule."""
    async with client(world) as c:
        names = [p["metadata"]["name"] for p in (await c.list(PODS, NS))["items"]]
        await delete_pods(c, names)
        await converge(world, c, set(), {}, False, CONVERGE_SECONDS)
        await retrying(lambda: c.delete(lookup("namespaces"), NS), "namespace")
