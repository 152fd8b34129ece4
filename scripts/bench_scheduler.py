"""scripts/bench scheduler: 100 fake Ready nodes, 1000 pods created 32 at a time
while the scheduler runs; the time from the first pod create to the last binding
seen by a watch, and each pod's create -> bound latency.

The floor, from the same run and the same apiserver:
- a null binder: a minimal process that watches the namespace and POSTs a binding
  for every pod it sees (no filters, no scores, no Events), under the same create
  load: what this apiserver allows any scheduler; `ratio` is ours / its rate.
- the raw rate at which the apiserver accepts binding POSTs from a minimal client
  (pods created beforehand, 64 POSTs in flight, nothing else going on).
- how long after its create was sent the bench's watch saw each pod (`watch_seen_*`):
  the apiserver's create plus its watch delivery, which no binder can undercut.
CPU milliseconds per pod of each process (etcd, apiserver, scheduler or null binder,
the bench itself) show which one the machine's cores went to.

Runs its own etcd, apiserver, null binder and scheduler process (with leader election,
so the lease tells when it is ready) and removes them all at the end."""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchlib import REPO, percentile, private_cluster, progress, result

NS, FLOOR_NS, RAW_NS = "bench", "bench-floor", "bench-raw"
BIND_CONCURRENCY = 64  # the scheduler's default bindings in flight; the floor uses the same
# The floor's pods go to node names that have no Node, so the scheduler (started later)
# places them on no node it could choose, and its decisions are the same as without them.
FLOOR_NODE_PREFIX = "floor-node-"


def cpu_seconds() -> dict[str, float]:
    """CPU time so far of this process and each child (etcd, apiserver, scheduler)."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = {os.getpid()}
    for task in Path("/proc/self/task").iterdir():
        pids.update(int(p) for p in (task / "children").read_text().split())
    out = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if pid == os.getpid():
            name = "bench"
        elif b"--null-binder" in cmd:
            name = "null-binder"
        else:
            name = next((a.decode().split(".")[-1] for a in cmd if a.startswith((b"controlplane.", b"etcd"))),
                        str(pid))
        out[name] = (int(fields[11]) + int(fields[12])) / tick
    return out


def node(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": f"node-{i:03d}", "labels": {"kubernetes.io/hostname": f"node-{i:03d}"}}}


def node_status() -> dict:
    return {"capacity": {"cpu": "32", "memory": "64Gi", "pods": "110"},
            "allocatable": {"cpu": "32", "memory": "64Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "bench node", "lastHeartbeatTime": "2024-01-01T00:00:00Z",
                            "lastTransitionTime": "2024-01-01T00:00:00Z"}]}


def pod(i: int, namespace: str = NS) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"pod-{i:04d}", "namespace": namespace, "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "app", "image": "busybox:latest",
                                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}


# ---- the null binder (a process of its own, as the scheduler is) -----------------------------

async def null_binder(kubeconfig: str, namespace: str, nodes: int) -> None:
    """Bind every pending pod of `namespace` as soon as the watch shows it, round robin over
    FLOOR_NODE_PREFIX nodes, BIND_CONCURRENCY at a time; prints "ready" once it has listed
    (the watch starts at the list's revision, so no later create is missed)."""
    from kubeling.client import Client
    from kubeling.resources import lookup
    pods = lookup("pods")
    slots = asyncio.Semaphore(BIND_CONCURRENCY)
    sent: set[str] = set()
    tasks: set[asyncio.Task[None]] = set()

    async def bind(name: str, uid: str, target: str) -> None:
        async with slots:
            await c.create_binding(namespace, name, target, uid)

    async with Client.from_kubeconfig(kubeconfig, user_agent="bench-null-binder") as c:
        listed = await c.list(pods, namespace)
        print("ready", flush=True)
        async for _typ, obj in c.watch(pods, namespace, resource_version=listed["metadata"]["resourceVersion"]):
            meta = obj["metadata"]
            if (obj.get("spec") or {}).get("nodeName") or meta["uid"] in sent:
                continue
            sent.add(meta["uid"])
            t = asyncio.create_task(bind(meta["name"], meta["uid"], f"{FLOOR_NODE_PREFIX}{len(sent) % nodes:03d}"))
            tasks.add(t)
            t.add_done_callback(tasks.discard)


# ---- the measured workload ----------------------------------------------------------------------

def start_process(args: list[str], log_path: Path) -> tuple[subprocess.Popen, Any]:
    log = open(log_path, "wb")
    return subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=log, stderr=subprocess.STDOUT), log


def stop_process(proc: subprocess.Popen, log: Any) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


async def wait_until(check: Callable[[], Awaitable[bool]], proc: subprocess.Popen, log_path: Path,
                     what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log_path.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready within {timeout:g}s")
        await asyncio.sleep(0.1)


async def workload(c: Any, namespace: str, pods: int, concurrency: int) -> dict[str, Any]:
    """Create the pods and wait until a watch has seen every one bound: the rate, the
    latencies, where they went, and the CPU each process used meanwhile."""
    from kubeling.resources import lookup
    PODS = lookup("pods")
    listed = await c.list(PODS, namespace)
    created_at: dict[str, float] = {}
    seen_at: dict[str, float] = {}  # first seen by the watch: the apiserver's create + watch delivery
    bound_at: dict[str, float] = {}
    placed: dict[str, str] = {}
    all_bound = asyncio.Event()

    async def watch() -> None:
        async for _typ, obj in c.watch(PODS, namespace, resource_version=listed["metadata"]["resourceVersion"]):
            name, node_name = obj["metadata"]["name"], (obj.get("spec") or {}).get("nodeName")
            seen_at.setdefault(name, time.perf_counter())
            if node_name and name not in bound_at:
                bound_at[name] = time.perf_counter()
                placed[name] = node_name
                if len(bound_at) == pods:
                    all_bound.set()
                    return
    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.2)  # the watch is open before the first create

    progress(f"creating {pods} pods in {namespace} ({concurrency} at a time)")
    todo = iter(range(pods))

    async def creator() -> None:
        for i in todo:
            p = pod(i, namespace)
            created_at[p["metadata"]["name"]] = time.perf_counter()
            await c.create(PODS, p)
    try:
        cpu0 = cpu_seconds()
        t0 = time.perf_counter()
        await asyncio.gather(*(creator() for _ in range(concurrency)))
        t_created = time.perf_counter()
        progress(f"created in {t_created - t0:.2f}s; waiting for bindings")
        await asyncio.wait_for(all_bound.wait(), 300)
        cpu1 = cpu_seconds()
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    elapsed = max(bound_at.values()) - t0
    latencies = [(bound_at[n] - created_at[n]) * 1000 for n in bound_at]
    seen = [(seen_at[n] - created_at[n]) * 1000 for n in seen_at]
    cpu_ms = {k: round((cpu1[k] - cpu0.get(k, 0)) * 1000 / pods, 2) for k in sorted(cpu1)}
    progress(f"{pods} pods bound in {elapsed:.2f}s ({pods / elapsed:.0f}/s); p50 {percentile(latencies, 50):.0f} ms, "
             f"p99 {percentile(latencies, 99):.0f} ms; a watch saw the creates p50 {percentile(seen, 50):.0f} ms, "
             f"p99 {percentile(seen, 99):.0f} ms after they were sent; CPU ms per pod: "
             + ", ".join(f"{k} {v:.2f}" for k, v in cpu_ms.items()))
    return {"pods_per_s": pods / elapsed, "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99), "create_s": t_created - t0, "cpu_ms_per_pod": cpu_ms,
            "seen_p50_ms": percentile(seen, 50), "seen_p99_ms": percentile(seen, 99),
            "placed": placed}


async def raw_binding_rate(c: Any, pods: int, concurrency: int) -> float:
    """Binding POSTs per second the apiserver accepts from a minimal client, with nothing
    else going on (the pods are created first, untimed)."""
    from kubeling.resources import lookup
    PODS = lookup("pods")
    progress(f"raw bindings: creating {pods} pods in {RAW_NS}, then binding them ({concurrency} in flight)")
    uids: dict[str, str] = {}
    todo = iter(range(pods))

    async def creator() -> None:
        for i in todo:
            obj = await c.create(PODS, pod(i, RAW_NS))
            uids[obj["metadata"]["name"]] = obj["metadata"]["uid"]
    await asyncio.gather(*(creator() for _ in range(concurrency)))
    names = iter(sorted(uids))

    async def binder() -> None:
        for k, name in enumerate(names):
            await c.create_binding(RAW_NS, name, f"{FLOOR_NODE_PREFIX}{k % 100:03d}", uids[name])
    t0 = time.perf_counter()
    await asyncio.gather(*(binder() for _ in range(concurrency)))
    rate = pods / (time.perf_counter() - t0)
    progress(f"raw bindings: {rate:.0f} POSTs/s")
    return rate


async def bench(api: Any, nodes: int, pods: int, concurrency: int, floor: bool, tmp: Path) -> dict:
    from kubeling.client import Client
    from kubeling.resources import lookup
    NODES, LEASES, NAMESPACES = lookup("nodes"), lookup("leases"), lookup("namespaces")
    doc: dict[str, Any] = {"nodes": nodes, "pods": pods}
    async with Client(api.url, api.token) as c:
        for ns in (NS, FLOOR_NS, RAW_NS):
            await c.create(NAMESPACES, {"metadata": {"name": ns}})

        async def make_node(i: int) -> None:
            obj = await c.create(NODES, node(i))
            obj["status"] = node_status()
            await c.update(NODES, obj, subresource="status")
        progress(f"creating {nodes} Ready nodes")
        await asyncio.gather(*(make_node(i) for i in range(nodes)))

        if floor:
            doc["raw_binding_posts_per_s"] = await raw_binding_rate(c, pods, BIND_CONCURRENCY)
            progress("floor: starting the null binder")
            log_path = tmp / "null-binder.log"
            proc, log = start_process([str(Path(__file__).resolve()), "--null-binder", "--kubeconfig",
                                       str(api.kubeconfig), "--namespace", FLOOR_NS, "--nodes", str(nodes)],
                                      log_path)
            try:
                async def binder_ready() -> bool:
                    return log_path.read_bytes().startswith(b"ready")
                await wait_until(binder_ready, proc, log_path, "the null binder")
                floor_run = await workload(c, FLOOR_NS, pods, concurrency)
            finally:
                stop_process(proc, log)
            doc.update({"floor_pods_per_s": floor_run["pods_per_s"], "floor_p50_bind_ms": floor_run["p50_ms"],
                        "floor_p99_bind_ms": floor_run["p99_ms"], "floor_watch_seen_p99_ms": floor_run["seen_p99_ms"],
                        "floor_cpu_ms_per_pod": floor_run["cpu_ms_per_pod"]})

        progress("starting the scheduler")
        log_path = tmp / "scheduler.log"
        profile = os.environ.get("BENCH_SCHEDULER_PROFILE")  # a path: run the scheduler under cProfile
        prefix = ["-m", "cProfile", "-o", profile] if profile else []
        proc, log = start_process([*prefix, "-m", "controlplane.scheduler", "--kubeconfig", str(api.kubeconfig),
                                   "--identity", "bench-scheduler", "--metrics-port", "0"], log_path)
        try:
            async def leader() -> bool:
                try:
                    lease = await c.get(LEASES, "kubeling-scheduler", "kube-system")
                except Exception:
                    return False
                return lease["spec"].get("holderIdentity") == "bench-scheduler"
            await wait_until(leader, proc, log_path, "the scheduler")
            run = await workload(c, NS, pods, concurrency)
        finally:
            progress("stopping the scheduler")
            stop_process(proc, log)

    per_node: dict[str, int] = {}
    for n in run["placed"].values():
        per_node[n] = per_node.get(n, 0) + 1
    progress(f"pods per node min {min(per_node.values())} max {max(per_node.values())} over {len(per_node)} nodes")
    doc.update({"pods_per_s": run["pods_per_s"], "p99_bind_ms": run["p99_ms"], "p50_bind_ms": run["p50_ms"],
                "create_s": run["create_s"], "watch_seen_p50_ms": run["seen_p50_ms"],
                "watch_seen_p99_ms": run["seen_p99_ms"], "cpu_ms_per_pod": run["cpu_ms_per_pod"],
                "pods_per_node_min": min(per_node.values()), "pods_per_node_max": max(per_node.values())})
    if floor:
        doc["ratio"] = run["pods_per_s"] / doc["floor_pods_per_s"]
        # Wall-clock rates swing with whatever else the machine runs; CPU per pod much less.
        # cpu_ratio: the whole cluster's CPU per pod with the null binder / with the scheduler.
        floor_cpu, our_cpu = sum(doc["floor_cpu_ms_per_pod"].values()), sum(run["cpu_ms_per_pod"].values())
        doc["cpu_ratio"] = floor_cpu / our_cpu if our_cpu else float("nan")
        # The apiserver is one process on one event loop: a core's worth of its CPU per pod
        # (with the null binder) is the most pods per second it can take through this workload.
        api_ms = doc["floor_cpu_ms_per_pod"].get("apiserver") or float("nan")
        doc["apiserver_cap_pods_per_s"] = 1000 / api_ms
        progress(f"scheduler {run['pods_per_s']:.0f} pods/s = {doc['ratio']:.2f}x the null binder "
                 f"({doc['floor_pods_per_s']:.0f} pods/s) in the same run; cluster CPU per pod "
                 f"{our_cpu:.2f} ms vs {floor_cpu:.2f} ms (cpu_ratio {doc['cpu_ratio']:.2f}); the apiserver took "
                 f"{doc['raw_binding_posts_per_s']:.0f} binding POSTs/s from a minimal client and spent "
                 f"{api_ms:.2f} ms of CPU per pod with the null binder, so one core of it caps this workload "
                 f"at {doc['apiserver_cap_pods_per_s']:.0f} pods/s")
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32, help="pod creates in flight")
    ap.add_argument("--no-floor", action="store_true", help="measure only the scheduler")
    ap.add_argument("--null-binder", action="store_true", help=argparse.SUPPRESS)  # the floor's own process
    ap.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    ap.add_argument("--namespace", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.null_binder:
        try:
            import uvloop  # the floor as cheap as it gets: the scheduler runs on uvloop too
            uvloop.run(null_binder(args.kubeconfig, args.namespace, args.nodes))
        except ImportError:
            asyncio.run(null_binder(args.kubeconfig, args.namespace, args.nodes))
        except KeyboardInterrupt:
            pass
        return
    with tempfile.TemporaryDirectory(prefix="kubeling-bench-sched-") as tmp:
        progress("starting etcd and the apiserver")
        with private_cluster() as api:
            try:
                doc = asyncio.run(bench(api, args.nodes, args.pods, args.concurrency, not args.no_floor, Path(tmp)))
            except BaseException:
                for f in sorted(Path(tmp).glob("*.log")):
                    print(f"--- {f.name}\n{f.read_text()[-3000:]}", file=sys.stderr)
                raise
            for f in sorted(Path(tmp).glob("*.log")):
                if "Traceback" in f.read_text():
                    print(f"--- {f.name}\n{f.read_text()[-3000:]}", file=sys.stderr)
    result(doc)


if __name__ == "__main__":
    main()
