"""scripts/bench pod-startup: how long a pod takes from the create request to
Ready (seen through a watch) on a real node, beside the floor measured in the
same run on the same node: the same pod made by hand (pause container + CNI ADD
+ app container through the docker SDK).

The node is a test node (its own netns + dockerd + agent, see
tests/e2e/agent/agent_nodes.py), so nothing touches the host's network.
With --runtime containerd the node runs a containerd of its own instead (the agent
speaks CRI to it), and the floor is the same pod by hand with containerd's own
client: a netns, CNI ADD into it, then `ctr run` of the pause and app containers.
Final line: {"runtime", "p50_ms", "p99_ms", "floor_p50_ms", "ratio_p50", "burst_50_pods_per_s"}."""
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchlib import REPO, percentile, private_etcd, progress, result

sys.path.insert(0, str(REPO / "tests" / "e2e" / "agent"))

from agent_nodes import TestNode  # noqa: E402
from tests.conftest import free_port, stop_process, wait_for  # noqa: E402

TOKEN = "bench-token"


def pod(name: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "app", "image": "busybox:latest", "command": ["sleep", "3600"]}]}}


def is_ready(p: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (p.get("status") or {}).get("conditions") or [])


async def measure(url: str, node: TestNode, count: int, burst: int) -> tuple[list[float], float]:
    from kubeling.client import Client
    from kubeling.resources import lookup
    pods, nss = lookup("pods"), lookup("namespaces")
    async with Client(url, TOKEN) as c:
        await c.create(nss, {"metadata": {"name": "bench"}})
        ready_at: dict[str, float] = {}
        waiters: dict[str, asyncio.Event] = {}
        listed = await c.list(pods, "bench")

        async def watch() -> None:
            async for _, p in c.watch(pods, "bench", resource_version=listed["metadata"]["resourceVersion"]):
                name = p["metadata"]["name"]
                if is_ready(p) and name not in ready_at:
                    ready_at[name] = time.perf_counter()
                    if name in waiters:
                        waiters[name].set()
        watcher = asyncio.create_task(watch())
        lat = []
        for i in range(count):
            name = f"seq-{i}"
            waiters[name] = asyncio.Event()
            t0 = time.perf_counter()
            await c.create(pods, pod(name, node.name), "bench")
            await asyncio.wait_for(waiters[name].wait(), 60)
            lat.append((ready_at[name] - t0) * 1000)
        progress(f"sequential: {[round(x) for x in lat]}")
        names = [f"burst-{i}" for i in range(burst)]
        for n in names:
            waiters[n] = asyncio.Event()
        t0 = time.perf_counter()
        await asyncio.gather(*(c.create(pods, pod(n, node.name), "bench") for n in names))
        await asyncio.wait_for(asyncio.gather(*(waiters[n].wait() for n in names)), 300)
        burst_s = max(ready_at[n] for n in names) - t0
        watcher.cancel()
        progress("deleting the pods")
        listed = await c.list(pods, "bench")
        await asyncio.gather(*(c.delete(pods, p["metadata"]["name"], "bench", grace_period=0)
                               for p in listed["items"]))
    return lat, burst_s


FLOOR_CODE = r'''
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[1])
import docker
from agent.cni import CniInvoker
sock, conf_dir, cache, count, burst = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
api = docker.APIClient(base_url=sock, version="1.41", max_pool_size=64)

async def one(i):
    t0 = time.perf_counter()
    call = asyncio.to_thread
    sb = await call(api.create_container, "kubeling/pause:3.9", name=f"floor-pod-{i}",
                    host_config=api.create_host_config(network_mode="none", ipc_mode="shareable"))
    await call(api.start, sb["Id"])
    pid = (await call(api.inspect_container, sb["Id"]))["State"]["Pid"]
    cni = CniInvoker(conf_dir, ["/opt/cni/bin", "/usr/lib/cni"], cache)
    await cni.add(sb["Id"], f"/proc/{pid}/ns/net", "bench", f"floor-{i}")
    mode = "container:" + sb["Id"]
    app = await call(api.create_container, "busybox:latest", ["sleep", "3600"], name=f"floor-app-{i}",
                     host_config=api.create_host_config(network_mode=mode, ipc_mode=mode))
    await call(api.start, app["Id"])
    await call(api.inspect_container, app["Id"])
    ms = (time.perf_counter() - t0) * 1000
    return ms, sb["Id"], app["Id"], pid, cni, i

async def clean(made):
    for sb, app, pid, cni, i in made:
        api.remove_container(app, force=True)
        await cni.delete(sb, f"/proc/{pid}/ns/net", "bench", f"floor-{i}")
        api.remove_container(sb, force=True)

async def main():
    out, made = [], []
    for i in range(count):
        ms, *rest = await one(i)
        out.append(ms)
        made.append(rest)
    await clean(made)
    t0 = time.perf_counter()
    done = await asyncio.gather(*(one(1000 + i) for i in range(burst)))
    burst_s = time.perf_counter() - t0
    await clean([d[1:] for d in done])
    print(json.dumps({"seq": out, "burst_pods_per_s": burst / burst_s}))
asyncio.run(main())
'''


CTR_FLOOR_CODE = r'''
import asyncio, json, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from agent.cni import CniInvoker
sock, conf_dir, cache, count, burst, cgroup, tag = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), \
    int(sys.argv[6]), sys.argv[7], sys.argv[8]
cni = CniInvoker(conf_dir, ["/opt/cni/bin", "/usr/lib/cni"], cache)
PAUSE, APP = "docker.io/kubeling/pause:3.9", "docker.io/library/busybox:latest"

async def run(*args):
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args)}: {err.decode().strip()}")
    return out

def ctr(*args):
    return run("ctr", "-a", sock, "-n", "k8s.io", *args)

async def one(i):
    # What CRI's RunPodSandbox + CreateContainer + StartContainer do, by hand.
    name = f"{tag}-{i}"
    netns = f"/run/netns/{name}"
    t0 = time.perf_counter()
    await run("ip", "netns", "add", name)
    await cni.add(name, netns, "bench", f"floor-{i}")
    ns = f"network:{netns}"
    await ctr("run", "-d", "--cgroup", f"{cgroup}/{name}-pause", "--with-ns", ns, PAUSE, f"{name}-pause")
    await ctr("run", "-d", "--cgroup", f"{cgroup}/{name}-app", "--with-ns", ns, APP, f"{name}-app",
              "sleep", "3600")
    await ctr("task", "ls")
    return (time.perf_counter() - t0) * 1000, i

async def clean(ids):
    for i in ids:
        name = f"{tag}-{i}"
        for c in (f"{name}-app", f"{name}-pause"):
            await ctr("task", "rm", "-f", c)  # SIGKILL, wait, delete
            await ctr("container", "rm", c)
        await cni.delete(name, f"/run/netns/{name}", "bench", f"floor-{i}")
        await run("ip", "netns", "del", name)

async def main():
    out, made = [], []
    for i in range(count):
        ms, i = await one(i)
        out.append(ms)
        made.append(i)
    await clean(made)
    t0 = time.perf_counter()
    done = await asyncio.gather(*(one(1000 + i) for i in range(burst)))
    burst_s = time.perf_counter() - t0
    await clean([d[1] for d in done])
    print(json.dumps({"seq": out, "burst_pods_per_s": burst / burst_s}))
asyncio.run(main())
'''


def ctr_floor(node: TestNode, count: int, burst: int) -> dict:
    cache = node.base / "floor-cni"
    cd = node.containerd
    out = node.ns(sys.executable, "-c", CTR_FLOOR_CODE, str(REPO), cd.config.socket, str(node.cni_conf_dir),
                  str(cache), str(count), str(burst), cd.cgroup_root, f"floor-{node.name}", timeout=900).stdout
    return json.loads(out.strip().splitlines()[-1])


def floor(node: TestNode, count: int, burst: int) -> dict:
    cache = node.base / "floor-cni"
    out = node.ns(sys.executable, "-c", FLOOR_CODE, str(REPO), node.sock, str(node.cni_conf_dir), str(cache),
                  str(count), str(burst), timeout=600).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(prog="scripts/bench pod-startup")
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--burst", type=int, default=50)
    ap.add_argument("--runtime", choices=["docker", "containerd"], default="docker",
                    help="the node's runtime: a dockerd, or a containerd the agent speaks CRI to")
    a = ap.parse_args()
    with private_etcd() as etcd:
        base = Path(tempfile.mkdtemp(prefix="kubeling-bench-pods-"))
        (base / "tokens.csv").write_text(f"{TOKEN},admin\n")
        port = free_port()
        api = subprocess.Popen([sys.executable, "-m", "controlplane.apiserver", "--etcd", etcd.url,
                                "--bind", "0.0.0.0", "--port", str(port), "--token-file",
                                str(base / "tokens.csv")], cwd=REPO, stdout=open(base / "api.log", "wb"),
                               stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        node = TestNode(port, TOKEN, "10.244.7.0/24", runtime=a.runtime)
        try:
            wait_for(lambda: urllib.request.urlopen(url + "/readyz", timeout=1).status == 200, 30, "apiserver")
            progress(f"making test node {node.name} ({a.runtime})")
            node.create()
            node.start_agent()
            wait_for(lambda: (node.cni_conf_dir / "10-kubeling.conflist").exists(), 30, "agent network config")
            progress(f"floor: {a.count} pods by hand")
            fdoc = (ctr_floor if a.runtime == "containerd" else floor)(node, a.count, a.burst)
            fl = fdoc["seq"]
            progress(f"floor: {[round(x) for x in fl]}; burst of {a.burst} by hand: "
                     f"{fdoc['burst_pods_per_s']:.2f} pods/s")
            progress(f"{a.count} pods one after another, then {a.burst} at once")
            lat, burst_s = asyncio.run(measure(url, node, a.count, a.burst))
            wait_for(lambda: not node.containers(), 120, "the agent to remove the pods")
        finally:
            problems = node.destroy()
            stop_process(api)
            if problems:
                progress(f"left behind: {problems}")
    p50, fl50 = percentile(lat, 50), percentile(fl, 50)
    result({"runtime": a.runtime, "p50_ms": p50, "p99_ms": percentile(lat, 99), "floor_p50_ms": fl50,
            "ratio_p50": p50 / fl50,
            "burst_50_pods_per_s": a.burst / burst_s, "floor_burst_pods_per_s": fdoc["burst_pods_per_s"]})


if __name__ == "__main__":
    main()
