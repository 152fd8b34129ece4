"""scripts/bench scheduler: 100 fake Ready nodes, 1000 pending pods; the time
from the first pod create to the last binding seen by a watch.

Runs its own etcd, apiserver and scheduler process (with leader election, so
the lease tells when it is ready) and removes them all at the end."""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import REPO, percentile, private_cluster, progress, result

NS = "bench"


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
        name = "bench" if pid == os.getpid() else next(
            (a.decode().split(".")[-1] for a in cmd if a.startswith((b"controlplane.", b"etcd"))), str(pid))
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


def pod(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"pod-{i:04d}", "namespace": NS, "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "app", "image": "busybox:latest",
                                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}


async def bench(api, nodes: int, pods: int, concurrency: int, log_path: Path) -> dict:
    from kubeling.client import Client
    from kubeling.resources import lookup
    NODES, PODS, LEASES = lookup("nodes"), lookup("pods"), lookup("leases")
    async with Client(api.url, api.token) as c:
        await c.create(lookup("namespaces"), {"metadata": {"name": NS}})

        async def make_node(i: int) -> None:
            obj = await c.create(NODES, node(i))
            obj["status"] = node_status()
            await c.update(NODES, obj, subresource="status")
        progress(f"creating {nodes} Ready nodes")
        await asyncio.gather(*(make_node(i) for i in range(nodes)))

        progress("starting the scheduler")
        log = open(log_path, "wb")
        profile = os.environ.get("BENCH_SCHEDULER_PROFILE")  # a path: run the scheduler under cProfile
        prefix = ["-m", "cProfile", "-o", profile] if profile else []
        proc = subprocess.Popen([sys.executable, *prefix, "-m", "controlplane.scheduler", "--kubeconfig",
                                 str(api.kubeconfig), "--identity", "bench-scheduler"],
                                cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"scheduler exited: {log_path.read_text()[-2000:]}")
                try:
                    lease = await c.get(LEASES, "kubeling-scheduler", "kube-system")
                    if lease["spec"].get("holderIdentity") == "bench-scheduler":
                        break
                except Exception:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the scheduler did not take the lease")
                await asyncio.sleep(0.1)

            listed = await c.list(PODS, NS)
            created_at: dict[str, float] = {}
            bound_at: dict[str, float] = {}
            placed: dict[str, str] = {}
            all_bound = asyncio.Event()

            async def watch() -> None:
                async for _typ, obj in c.watch(PODS, NS, resource_version=listed["metadata"]["resourceVersion"]):
                    name, node_name = obj["metadata"]["name"], (obj.get("spec") or {}).get("nodeName")
                    if node_name and name not in bound_at:
                        bound_at[name] = time.perf_counter()
                        placed[name] = node_name
                        if len(bound_at) == pods:
                            all_bound.set()
                            return
            watcher = asyncio.create_task(watch())
            await asyncio.sleep(0.2)  # the watch is open before the first create

            progress(f"creating {pods} pods ({concurrency} at a time)")
            todo = iter(range(pods))

            async def creator() -> None:
                for i in todo:
                    name = f"pod-{i:04d}"
                    created_at[name] = time.perf_counter()
                    await c.create(PODS, pod(i))
            cpu0 = cpu_seconds()
            t0 = time.perf_counter()
            await asyncio.gather(*(creator() for _ in range(concurrency)))
            t_created = time.perf_counter()
            progress(f"created in {t_created - t0:.2f}s; waiting for bindings")
            await asyncio.wait_for(all_bound.wait(), 300)
            cpu1 = cpu_seconds()
            progress("CPU seconds used while scheduling: " + ", ".join(
                f"{k} {cpu1[k] - cpu0.get(k, 0):.2f}" for k in sorted(cpu1)))
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        finally:
            progress("stopping the scheduler")
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()

    elapsed = max(bound_at.values()) - t0
    latencies = [(bound_at[n] - created_at[n]) * 1000 for n in bound_at]
    per_node: dict[str, int] = {}
    for n in placed.values():
        per_node[n] = per_node.get(n, 0) + 1
    progress(f"{pods} pods bound in {elapsed:.2f}s; pods per node min {min(per_node.values())} "
             f"max {max(per_node.values())} over {len(per_node)} nodes; p50 {percentile(latencies, 50):.0f} ms")
    return {"pods_per_s": pods / elapsed, "nodes": nodes, "pods": pods,
            "p99_bind_ms": percentile(latencies, 99), "p50_bind_ms": percentile(latencies, 50),
            "create_s": t_created - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32, help="pod creates in flight")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubeling-bench-sched-") as tmp:
        log_path = Path(tmp) / "scheduler.log"
        progress("starting etcd and the apiserver")
        with private_cluster() as api:
            try:
                doc = asyncio.run(bench(api, args.nodes, args.pods, args.concurrency, log_path))
            except BaseException:
                if log_path.exists():
                    print(log_path.read_text()[-3000:], file=sys.stderr)
                raise
            tail = log_path.read_text()
            if "Traceback" in tail:
                print(tail[-3000:], file=sys.stderr)
    result(doc)


if __name__ == "__main__":
    main()
