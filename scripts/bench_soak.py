"""scripts/bench soak: N create/delete cycles of a pod behind a Service on a whole cluster of the
bench's own, then what grew and what stayed behind.

The cluster: a private etcd, apiserver, controller-manager, scheduler and cluster DNS on this
machine; one test node (its own netns and dockerd, see tests/e2e/agent/agent_nodes.py) running
the agent, the proxy and a cni-daemon the node's CNI plugin calls hand their work to. Nothing
touches the host's network or a running dev cluster.

One cycle: create the pod (the scheduler binds it) -> Ready -> an answer through the Service's
ClusterIP from the node (proxy rules, conntrack) and the Service's name from the cluster DNS ->
delete the pod (graceful) -> the API confirms it gone (the agent removed its containers and freed
its IP first).

The start sample is taken after a warm-up (5 % of the cycles by default, longer until etcd's
raft log is at its steady size: see ETCD_CATCHUP_ENTRIES), the end sample after
the last cycle, each with no pod on the node, and RSS is sampled about 20 times in between. Per
component (etcd, apiserver, controller-manager, scheduler, agent, proxy, cni-daemon, dns, and
containerd with --runtime containerd): RSS growth under 10 %, from the median of the first fifth of
the samples to the median of the last fifth (soak_report.ends_of: etcd's RSS saws by ~10 % with its
compaction and snapshots, so two single samples measure where in a tooth each fell); open
descriptors, start sample to end sample. On the
node: containers, veths, IP allocations, netns, conntrack entries, iptables rules: nothing more
than at the start. Every item prints PASS or FAIL; the exit status is 1 when any failed.
Final line: JSON {"cycles", "seconds", "cycles_per_s", "passed", "components", "node", ...}."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import REPO, percentile, progress, result
from soak_report import (FD_SLACK, Check, conntrack_live, ends_of, judge_growth, judge_leftover, render, rules_added,
                         summary, warmup_cycles)

sys.path.insert(0, str(REPO / "tests" / "e2e" / "agent"))

from agent_nodes import TestNode, ensure_host_images  # noqa: E402
from tests.conftest import start_apiserver, start_etcd, stop_process, wait_for  # noqa: E402

NS, SVC = "soak", "soak"
CLUSTER_DOMAIN = "cluster.local"
POD_CIDR = "10.244.91.0/24"
SERVICE_CIDR = "10.96.0.0/12"
# etcd and the apiserver hold some history by design: revisions until compacted, the raft log until
# a snapshot, Events until their TTL. The bench shortens those windows (kubeadm's etcd snapshots
# every 10,000 entries, `kubeling up` compacts to 10 min, Events live 1 h) so that the measured
# part of a run spans many of them: what still grows then is not a window filling up.
ETCD_RETENTION = "1m"
ETCD_SNAPSHOT_COUNT = "1000"
# etcd 3.4 keeps this many raft entries in memory after each snapshot (not configurable): the warm-up
# lasts until etcd has applied that many plus one snapshot's worth, so its raft log is at full size.
ETCD_CATCHUP_ENTRIES = 5000
EVENT_TTL = "1m"
COMPONENTS = ("etcd", "apiserver", "controller-manager", "scheduler", "agent", "proxy", "cni-daemon", "dns")


def pod(i: int) -> dict:
    name = f"soak-{i}"
    # The shell leaves at once on SIGTERM (`wait` is interrupted), so a graceful delete takes no grace
    # period; httpd answers the pod's own name, so an answer proves the rules point at this pod.
    script = (f"trap 'exit 0' TERM; mkdir -p /www && echo {name} > /www/index.html && httpd -p 8080 -h /www; "
              "sleep 100000 & wait")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "soak"}},
            "spec": {"terminationGracePeriodSeconds": 10,
                     "containers": [{"name": "web", "image": "busybox:latest", "command": ["sh", "-c", script],
                                     "ports": [{"name": "http", "containerPort": 8080}],
                                     "readinessProbe": {"httpGet": {"path": "/index.html", "port": "http"},
                                                        "periodSeconds": 1}}]}}


SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": SVC},
           "spec": {"selector": {"app": "soak"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def is_ready(p: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (p.get("status") or {}).get("conditions") or [])


# ---- the cluster -------------------------------------------------------------------------------

@dataclass
class Cluster:
    base: Path
    runtime: str = "docker"
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    node: TestNode | None = None
    api: object = None
    etcd: object = None
    dns_port: int = 0
    cni_socket: str = ""

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        with open(self.base / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env,
                                    stdin=subprocess.DEVNULL)
        self.procs[name] = proc
        return proc

    def pids(self) -> dict[str, int]:
        """Each component's process (nsenter execs its command, so its pid is the component's)."""
        out = {name: p.pid for name, p in self.procs.items() if name in COMPONENTS}
        out["agent"] = self.node.agent_proc.pid
        out["proxy"] = self.node.proxy_proc.pid
        if self.node.containerd is not None:
            out["containerd"] = self.node.containerd.proc.pid
        return out

    def up(self) -> None:
        ensure_host_images()
        # etcd keeps every revision until compacted: `kubeling up` runs it with periodic compaction
        # (10 min of history); the bench keeps one minute so the warm-up covers a whole window and
        # the history etcd holds is at its steady size from the start sample on.
        etcd_proc, self.etcd = start_etcd(self.base, extra_args=(
            "--auto-compaction-mode", "periodic", "--auto-compaction-retention", ETCD_RETENTION,
            "--snapshot-count", ETCD_SNAPSHOT_COUNT))
        self.procs["etcd"] = etcd_proc
        api_proc, self.api = start_apiserver(self.etcd, self.base, bind="0.0.0.0",
                                             extra_args=("--event-ttl", EVENT_TTL))
        self.procs["apiserver"] = api_proc
        kc = str(self.api.kubeconfig)
        port = int(self.api.url.rsplit(":", 1)[1])
        self.node = node = TestNode(port, self.api.token, POD_CIDR, runtime=self.runtime)
        # The node's cni-daemon listens on a socket of the node's own (the agent, or containerd,
        # hands its path to the plugins); it runs in the node's netns, where the bridge and the
        # veths' root ends live. Set before the node starts its containerd, which inherits it.
        self.cni_socket = str(node.run_dir / "cni.sock")
        os.environ["KUBELING_CNI_SOCKET"] = self.cni_socket
        progress(f"making test node {node.name} ({self.runtime})")
        node.create()
        self.spawn("cni-daemon", ["nsenter", f"--net={node.netns_path}", sys.executable, "-m", "cni.daemon",
                                  "--socket", self.cni_socket, "--debug"])
        wait_for(lambda: os.path.exists(self.cni_socket), 30, "the cni-daemon's socket")
        self.spawn("controller-manager", [sys.executable, "-m", "controlplane.controllers", "--kubeconfig", kc,
                                          "--metrics-port", "0"])
        self.spawn("scheduler", [sys.executable, "-m", "controlplane.scheduler", "--kubeconfig", kc,
                                 "--no-leader-elect", "--metrics-port", "0"])
        ready = self.base / "dns-ready.json"
        # As in the walkthrough: a host process reached at the node's veth address; nothing upstream.
        self.spawn("dns", [sys.executable, "-m", "clusterdns", "--kubeconfig", kc, "--bind", node.root_ip,
                           "--port", "0", "--publish-address", node.root_ip, "--node-name", "soak-dns",
                           "--cluster-domain", CLUSTER_DOMAIN, "--upstream", "127.0.0.1:9",
                           "--metrics-bind-address", "127.0.0.1:0", "--ready-file", str(ready)])
        wait_for(lambda: ready.exists() and json.loads(ready.read_text())["port"], 60, "the DNS server")
        self.dns_port = int(json.loads(ready.read_text())["port"])
        # The node's own copies of the kubeling plugins, from this tree (not whatever /opt/cni/bin holds).
        from cni.install import install
        install(str(node.base / "cni-bin"))
        node.start_agent("--cni-bin-dir", f"{node.base / 'cni-bin'}:/usr/lib/cni")
        node.start_proxy("--metrics-port", "0")
        wait_for(lambda: (node.cni_conf_dir / "10-kubeling.conflist").exists(), 60, "the agent's network config")
        for name in ("cni-daemon", "controller-manager", "scheduler", "dns"):
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited: {(self.base / f'{name}.log').read_text()[-2000:]}")

    def down(self) -> list[str]:
        problems: list[str] = []
        if self.node is not None:
            # The node's logs outlive it, beside the others.
            logs = [self.node.agent_log, self.node.proxy_log, self.node.dockerd_log]
            if self.node.containerd is not None:
                logs.append(self.node.containerd.log)
            for f in logs:
                if f.exists():
                    shutil.copy(f, self.base / f.name)
            for name in ("dns", "cni-daemon"):
                if name in self.procs:
                    stop_process(self.procs.pop(name), 20)
            problems = self.node.destroy()
        for name in ("scheduler", "controller-manager", "apiserver", "etcd"):
            if name in self.procs:
                stop_process(self.procs.pop(name), 20)
        for p in self.procs.values():
            stop_process(p)
        return problems


# ---- samples -----------------------------------------------------------------------------------

def proc_sample(pid: int) -> tuple[int, int]:
    """(RSS in KiB, open descriptors) of a process."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def components_sample(cluster: Cluster, times: int = 3, gap: float = 1.0) -> dict[str, dict[str, int]]:
    """The least of a few samples a second apart: a request in flight is not growth."""
    best: dict[str, dict[str, int]] = {}
    for k in range(times):
        if k:
            time.sleep(gap)
        for name, pid in cluster.pids().items():
            rss, fds = proc_sample(pid)
            cur = best.setdefault(name, {"rss_kb": rss, "fds": fds})
            cur["rss_kb"], cur["fds"] = min(cur["rss_kb"], rss), min(cur["fds"], fds)
    return best


def node_sample(node: TestNode) -> dict:
    veths = json.loads(node.ns("ip", "-j", "link", "show", "type", "veth").stdout or "[]")
    # Pod netns are nsfs mounts the runtime keeps under the node's directories (Docker's exec root).
    mounts = [ln.split() for ln in Path("/proc/mounts").read_text().splitlines()]
    netns = [m[1] for m in mounts if len(m) > 2 and m[2] == "nsfs"
             and (m[1].startswith(str(node.run_dir)) or m[1].startswith(str(node.base)))]
    ct_list = node.ns("conntrack", "-L", check=False).stdout
    return {"containers": len(node.containers()), "veths": len(veths), "ip_allocations": len(node.ipam_files()),
            "netns": len(netns),
            "conntrack": int(node.ns("cat", "/proc/sys/net/netfilter/nf_conntrack_count").stdout.strip()),
            "conntrack_live": conntrack_live(ct_list),
            "iptables_rules": sum(1 for ln in node.ns("iptables-save").stdout.splitlines() if ln.startswith("-A")),
            "_iptables": node.ns("iptables-save").stdout, "_conntrack": ct_list,
            "_ipam": node.ipam_files(), "_veths": [v["ifname"] for v in veths], "_netns": netns}


def etcd_applied(cluster: Cluster) -> int:
    """Raft entries etcd has applied (its own /metrics)."""
    with urllib.request.urlopen(cluster.etcd.url + "/metrics", timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("etcd_server_proposals_applied_total "):
                return int(float(line.split()[1]))
    return 0


def etcd_keys(cluster: Cluster) -> dict[str, int]:
    """Keys in etcd per resource (/registry/<resource>/...)."""
    out = subprocess.run(["etcdctl", "--endpoints", cluster.etcd.url, "get", "/registry/", "--prefix", "--keys-only"],
                         capture_output=True, text=True, timeout=120, check=True,
                         env={**os.environ, "ETCDCTL_API": "3"}).stdout
    counts: dict[str, int] = {}
    for key in out.split():
        res = key.split("/")[2] if key.count("/") >= 2 else key
        counts[res] = counts.get(res, 0) + 1
    return counts


# ---- the cycles ----------------------------------------------------------------------------------

class PodWatch:
    """The pods of the namespace as a watch sees them; re-watches (after a list) when a stream ends."""

    def __init__(self, client) -> None:
        from kubeling.resources import lookup
        self.c, self.res = client, lookup("pods")
        self.pods: dict[str, dict] = {}
        self.changed = asyncio.Condition()
        self.task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            try:
                listed = await self.c.list(self.res, NS)
                async with self.changed:
                    self.pods = {p["metadata"]["name"]: p for p in listed["items"]}
                    self.changed.notify_all()
                async for typ, p in self.c.watch(self.res, NS, resource_version=listed["metadata"]["resourceVersion"]):
                    async with self.changed:
                        if typ == "DELETED":
                            self.pods.pop(p["metadata"]["name"], None)
                        else:
                            self.pods[p["metadata"]["name"]] = p
                        self.changed.notify_all()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a stream ended or broke: list and watch again
                progress(f"pod watch restarts: {exc}")
                await asyncio.sleep(0.5)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def wait(self, pred, timeout: float) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: pred(self.pods)), timeout)


async def ns_run(node: TestNode, *argv: str, timeout: float = 10) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec("nsenter", f"--net={node.netns_path}", *argv,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, ""
    return proc.returncode, out.decode(errors="replace")


async def until(fn, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        r = await fn()
        if r:
            return r
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)


class Soak:
    def __init__(self, cluster: Cluster, client) -> None:
        from kubeling.resources import lookup
        self.cl, self.c = cluster, client
        self.pods, self.services, self.nss = lookup("pods"), lookup("services"), lookup("namespaces")
        self.watch = PodWatch(client)
        self.cluster_ip = ""
        self.routed = False
        self.errors: list[dict] = []
        self.durations: list[float] = []

    async def setup(self) -> None:
        await self.c.create(self.nss, {"metadata": {"name": NS}})
        svc = await self.c.create(self.services, SERVICE, NS)
        self.cluster_ip = svc["spec"]["clusterIP"]
        self.watch.start()

    async def resolve(self) -> bool:
        import dns.asyncquery
        import dns.message
        import dns.rdatatype
        q = dns.message.make_query(f"{SVC}.{NS}.svc.{CLUSTER_DOMAIN}", dns.rdatatype.A)
        try:
            r = await dns.asyncquery.udp(q, self.cl.node.root_ip, timeout=2, port=self.cl.dns_port)
        except Exception:
            return False
        return any(self.cluster_ip in rr.to_text() for rr in r.answer)

    async def cycle(self, i: int) -> None:
        name = f"soak-{i}"
        node = self.cl.node
        t0 = time.perf_counter()
        step = "create"
        try:
            await self.c.create(self.pods, pod(i), NS)
            step = "ready"
            await self.watch.wait(lambda ps: name in ps and is_ready(ps[name]), 90)
            if not self.routed:
                # A real node has a default route; this one has none (nothing may leave the machine),
                # so the service range gets a local route for the kernel to accept what the proxy DNATs.
                node.ns("ip", "route", "replace", SERVICE_CIDR, "dev", "cni0")
                self.routed = True
            step = "request through the ClusterIP"

            async def answered() -> bool:
                rc, out = await ns_run(node, "curl", "-s", "--max-time", "2", f"http://{self.cluster_ip}/")
                return rc == 0 and out.strip() == name
            await until(answered, 60, f"{name} to answer through {self.cluster_ip}")
            step = "DNS"
            await until(self.resolve, 30, "the Service's name from the cluster DNS", interval=0.2)
        except Exception as exc:
            self.errors.append({"cycle": i, "step": step, "error": str(exc)[:300]})
            progress(f"cycle {i}: {step} failed: {exc}")
        step = "delete"
        try:
            await self._delete(name)
            await self.watch.wait(lambda ps: name not in ps, 120)
        except Exception as exc:
            self.errors.append({"cycle": i, "step": step, "error": str(exc)[:300]})
            progress(f"cycle {i}: {step} failed: {exc}")
            raise
        self.durations.append(time.perf_counter() - t0)

    async def _delete(self, name: str, timeout: float = 60) -> None:
        """DELETE, asked again while the API answers 5xx (a busy etcd times out now and then)."""
        from kubeling import errors
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.c.delete(self.pods, name, NS)
                return
            except errors.ApiError as exc:
                if exc.code == 404:
                    return
                if exc.code < 500 or time.monotonic() > deadline:
                    raise
                progress(f"delete {name}: {exc}; asking again")
                await asyncio.sleep(1)

    async def close(self) -> None:
        if self.watch.task is not None:
            self.watch.task.cancel()
            try:
                await self.watch.task
            except asyncio.CancelledError:
                pass


async def settle_conntrack(node: TestNode, start_total: int) -> int:
    """The node's conntrack count once closing connections have expired (bounded by the kernel's
    TIME_WAIT timeout and a margin): what stays after that is a leftover."""
    tw = int(node.ns("cat", "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_time_wait").stdout.strip())
    deadline = time.monotonic() + tw + 30
    while True:
        n = int(node.ns("cat", "/proc/sys/net/netfilter/nf_conntrack_count").stdout.strip())
        if n <= start_total or time.monotonic() > deadline:
            return n
        await asyncio.sleep(2)


async def no_endpoint_rules(node: TestNode) -> None:
    """Wait (bounded) until the proxy has taken the last deleted pod's DNAT out: the rules are then
    those of a Service without endpoints, the same state at both samples."""
    async def clean() -> bool:
        rc, out = await ns_run(node, "iptables-save", "-t", "nat")
        return rc == 0 and ":8080" not in out
    await until(clean, 60, "the proxy to remove the last endpoint's rules", interval=0.2)


async def run(cluster: Cluster, cycles: int, warmup: int, every: int, max_seconds: float) -> dict:
    from kubeling.client import Client
    async with Client(cluster.api.url, cluster.api.token) as c:
        soak = Soak(cluster, c)
        await soak.setup()
        progress(f"warm-up: {warmup} cycles at least, until etcd applied "
                 f"{ETCD_CATCHUP_ENTRIES + int(ETCD_SNAPSHOT_COUNT)} entries (at most half the cycles)")
        i = 0
        while i < warmup or (etcd_applied(cluster) < ETCD_CATCHUP_ENTRIES + int(ETCD_SNAPSHOT_COUNT)
                             and i < cycles // 2):
            await soak.cycle(i)
            i += 1
        warmup = i
        await no_endpoint_rules(cluster.node)
        start = components_sample(cluster)
        series: list[dict] = [{"cycle": warmup, **{k: v["rss_kb"] for k, v in start.items()}}]
        node_start = node_sample(cluster.node)
        keys_start = etcd_keys(cluster)
        progress("start: " + ", ".join(f"{k} {v['rss_kb'] // 1024} MiB/{v['fds']} fd" for k, v in start.items()))
        t0 = time.monotonic()
        done = 0
        for i in range(warmup, cycles):
            if max_seconds and time.monotonic() - t0 > max_seconds:
                progress(f"time budget of {max_seconds:g}s spent after {done} measured cycles")
                break
            await soak.cycle(i)
            done += 1
            if done % every == 0:
                el = time.monotonic() - t0
                now = {k: proc_sample(p)[0] for k, p in cluster.pids().items()}
                series.append({"cycle": warmup + done, **now})
                rss = ", ".join(f"{k} {v // 1024}" for k, v in now.items())
                progress(f"{warmup + done}/{cycles} cycles, {el:.0f}s, {done / el:.2f} cycles/s, "
                         f"{len(soak.errors)} errors; RSS MiB: {rss}")
        elapsed = time.monotonic() - t0
        await soak.close()
        await no_endpoint_rules(cluster.node)
        progress("end sample; waiting for closing connections to expire before counting conntrack")
        end = components_sample(cluster)
        series.append({"cycle": warmup + done, **{k: v["rss_kb"] for k, v in end.items()}})
        node_end = node_sample(cluster.node)
        keys_end = etcd_keys(cluster)
        node_end["conntrack"] = await settle_conntrack(cluster.node, node_start["conntrack"])
        node_end["conntrack_live"] = conntrack_live(cluster.node.ns("conntrack", "-L", check=False).stdout)
        return {"start": start, "end": end, "node_start": node_start, "node_end": node_end, "measured": done,
                "warmup": warmup, "keys_start": keys_start, "keys_end": keys_end, "rss_series": series,
                "elapsed": elapsed, "errors": soak.errors, "durations": soak.durations, "cluster_ip": soak.cluster_ip}


def judge(doc: dict) -> list[Check]:
    checks = []
    for name in doc["start"]:
        s, e = doc["start"][name], doc["end"][name]
        checks.append(judge_growth(f"{name} RSS KiB", *ends_of(doc["rss_series"], name)))
        checks.append(judge_growth(f"{name} fds", s["fds"], e["fds"], slack=FD_SLACK))
    ns, ne = doc["node_start"], doc["node_end"]
    added = rules_added(ns["_iptables"], ne["_iptables"])
    for item in ("containers", "veths", "ip_allocations", "netns", "conntrack", "conntrack_live", "iptables_rules"):
        detail = ""
        if item == "iptables_rules" and added:
            detail = f"added: {added[:5]}"
        elif item == "ip_allocations" and ne[item] > ns[item]:
            detail = f"{sorted(set(ne['_ipam']) - set(ns['_ipam']))[:5]}"
        elif item == "veths" and ne[item] > ns[item]:
            detail = f"{sorted(set(ne['_veths']) - set(ns['_veths']))[:5]}"
        checks.append(judge_leftover(f"node {item}", ns[item], ne[item], detail))
    checks.append(judge_leftover("node iptables rules added", 0, len(added)))
    # API objects: nothing more than at the start but Events, which go with their TTL.
    ks, ke = doc["keys_start"], doc["keys_end"]
    grown = {r: (ks.get(r, 0), n) for r, n in ke.items() if r != "events" and n > ks.get(r, 0)}
    checks.append(judge_leftover("etcd keys (Events aside)", sum(n for r, n in ks.items() if r != "events"),
                                 sum(n for r, n in ke.items() if r != "events"), f"{grown}" if grown else ""))
    checks.append(judge_leftover("cycle errors", 0, len(doc["errors"])))
    return checks


def main() -> None:
    ap = argparse.ArgumentParser(prog="scripts/bench soak")
    ap.add_argument("--cycles", type=int, default=1000, help="create/delete cycles in all (warm-up included)")
    ap.add_argument("--warmup-pct", type=float, default=5.0, help="share of the cycles run before the start sample")
    ap.add_argument("--progress-every", type=int, default=0, help="a progress line every N cycles "
                    "(default: about 20 lines in all)")
    ap.add_argument("--max-minutes", type=float, default=0, help="stop measuring after this long (0: no limit)")
    ap.add_argument("--keep-logs", action="store_true", help="keep the components' logs even on PASS")
    ap.add_argument("--runtime", choices=["docker", "containerd"], default="docker",
                    help="the node's container runtime (containerd: through CRI, its RSS measured too)")
    a = ap.parse_args()
    warmup = warmup_cycles(a.cycles, a.warmup_pct)
    every = a.progress_every or max(1, (a.cycles - warmup) // 20)
    base = Path(tempfile.mkdtemp(prefix="kubeling-bench-soak-"))
    cluster = Cluster(base, a.runtime)
    doc: dict = {}
    problems: list[str] = []
    try:
        cluster.up()
        progress(f"cluster up; {a.cycles} cycles ({warmup} or more warm-up)")
        doc = asyncio.run(run(cluster, a.cycles, warmup, every, a.max_minutes * 60))
        daemon_calls = (base / "cni-daemon.log").read_text().count(" took ")
    finally:
        problems = cluster.down()
    tracebacks = {f.stem: f.read_text(errors="replace").count("Traceback") for f in sorted(base.glob("*.log"))}
    checks = judge(doc)
    checks.append(judge_leftover("left after the node's teardown", 0, len(problems), "; ".join(problems)[:300]))
    # The node's CNI calls went through its cni-daemon (else the daemon's figures measure nothing).
    checks.append(Check("cni-daemon served the bridge calls", 0, daemon_calls, daemon_calls > 0))
    for line in render(checks):
        print(line, file=sys.stderr, flush=True)
    progress(f"Events in etcd: {doc['keys_start'].get('events', 0)} -> {doc['keys_end'].get('events', 0)} "
             f"(they expire after --event-ttl {EVENT_TTL})")
    if doc["errors"]:
        progress(f"cycle errors: {doc['errors'][:5]}")
    if any(tracebacks.values()):
        progress(f"tracebacks in logs: {tracebacks}")
    s = summary(checks)
    keep = a.keep_logs or not s["passed"]
    if keep:
        progress(f"logs kept in {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    d, n = doc["durations"], doc["measured"]
    warmup = doc["warmup"]
    total = warmup + n
    result({"cycles": total, "measured_cycles": n, "warmup_cycles": warmup, "seconds": doc["elapsed"],
            "cycles_per_s": n / doc["elapsed"] if doc["elapsed"] else 0.0,
            "cycle_p50_ms": percentile(d, 50) * 1000, "cycle_p99_ms": percentile(d, 99) * 1000,
            "first_10pct_p50_ms": percentile(d[:max(1, len(d) // 10)], 50) * 1000,
            "last_10pct_p50_ms": percentile(d[-max(1, len(d) // 10):], 50) * 1000,
            "passed": s["passed"], "failed": s["failed"], "errors": len(doc["errors"]),
            "cni_daemon_calls": daemon_calls,
            "etcd_events": [doc["keys_start"].get("events", 0), doc["keys_end"].get("events", 0)],
            "runtime": a.runtime,
            "components": {k: {"start": doc["start"][k], "end": doc["end"][k]} for k in doc["start"]},
            "node": {k: [doc["node_start"][k], doc["node_end"][k]] for k in doc["node_start"] if not k.startswith("_")},
            "rss_kb_series": doc["rss_series"], "tracebacks": tracebacks, "logs": str(base) if keep else None})
    sys.exit(0 if s["passed"] else 1)


if __name__ == "__main__":
    main()
