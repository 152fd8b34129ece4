"""What the faults hit and what is checked afterwards: pods behind one Service, created and
deleted in bursts through the API (retried while a fault makes the API fail, as a user or a
controller would), and one convergence check that looks at everything from outside: the API,
the node's dockerd, its veths, its IPAM directory, Endpoints/EndpointSlices and the proxy's
iptables rules."""
from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from kubeling import errors
from kubeling.client import Client
from kubeling.resources import lookup

PODS, SERVICES, ENDPOINTS, SLICES, NODES = (lookup(r) for r in ("pods", "services", "endpoints",
                                                                  "endpointslices", "nodes"))
NAMESPACES = lookup("namespaces")
NS = "faults"
SERVICE = "web"
PORT = 8080
# How long the API may keep failing while a fault lasts before a burst call gives up.
API_RETRY_SECONDS = 90
CALL_TIMEOUT = 15


def pod_manifest(name: str) -> dict[str, Any]:
    """A pod that serves its name on :8080, is Ready when it does, and exits at once on SIGTERM
    (so deletions in a burst finish within the 2 s grace period, not at SIGKILL)."""
    script = ("mkdir -p /www && echo $HOSTNAME > /www/index.html && httpd -p 8080 -h /www && "
              "trap 'exit 0' TERM; while true; do sleep 1; done")
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": SERVICE}},
            "spec": {"terminationGracePeriodSeconds": 2,
                     "containers": [{"name": "web", "image": "busybox:latest", "command": ["sh", "-c", script],
                                     "ports": [{"name": "http", "containerPort": PORT}],
                                     "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 1}}]}}


async def retrying(call, what: str, timeout: float = API_RETRY_SECONDS):
    """call() until the API answers (a fault makes it fail for a while); 409 on a create and
    404 on a delete mean an earlier attempt went through before its answer was lost."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            # Bounded: a call stuck behind a stopped etcd is given up and made again.
            return await asyncio.wait_for(call(), CALL_TIMEOUT)
        except errors.ApiError as exc:
            if exc.code in (409, 404):
                return None
            if exc.code < 500 and exc.code not in (429,):
                raise
            last: Exception = exc
        except (OSError, asyncio.TimeoutError) as exc:
            last = exc
        except Exception as exc:  # aiohttp's errors while the apiserver is away
            if "aiohttp" not in type(exc).__module__:
                raise
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: the API kept failing for {timeout}s: {last}")
        await asyncio.sleep(0.3)


def client(world) -> Client:
    return Client(world.api.url, world.api.token)


async def create_pods(c: Client, names: list[str]) -> None:
    await asyncio.gather(*(retrying(lambda n=n: c.create(PODS, pod_manifest(n), NS), f"create {n}")
                           for n in names))


async def delete_pods(c: Client, names: list[str]) -> None:
    await asyncio.gather(*(retrying(lambda n=n: c.delete(PODS, n, NS), f"delete {n}") for n in names))


async def setup_namespace(c: Client) -> None:
    await retrying(lambda: c.create(NAMESPACES, {"metadata": {"name": NS}}), "namespace")
    await retrying(lambda: c.create(SERVICES, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": SERVICE, "namespace": NS},
        "spec": {"selector": {"app": SERVICE}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
        NS), "service")


@dataclass
class Snapshot:
    """What the node runs, from its dockerd: containers per pod uid."""
    by_uid: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def take(cls, node) -> "Snapshot":
        snap = cls()
        for row in node.containers(all_=True):
            uid = row["LabelMap"].get("io.kubernetes.pod.uid")
            if uid:
                snap.by_uid.setdefault(uid, []).append(row)
        return snap

    def running_app_ids(self, uid: str) -> set[str]:
        return {r["ID"] for r in self.by_uid.get(uid, []) if r["Container"] != "POD" and r["State"] == "running"}


def node_shims(node) -> dict[str, int]:
    """Container id -> pid of every containerd shim serving the node's dockerd (by its -address)."""
    sock = f"{node.run_dir}/docker-exec/containerd/containerd.sock"
    out = {}
    for line in subprocess.run(["pgrep", "-af", "containerd-shim"], capture_output=True, text=True).stdout.splitlines():
        pid, *argv = line.split()
        if "-address" in argv and argv[argv.index("-address") + 1] == sock and "-id" in argv:
            out[argv[argv.index("-id") + 1]] = int(pid)
    return out


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything under it (children first: a shim's container process)."""
    try:
        children = [int(c) for t in os.listdir(f"/proc/{pid}/task")
                    for c in open(f"/proc/{pid}/task/{t}/children").read().split()]
    except OSError:
        children = []
    for c in children:
        kill_tree(c)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def pod_ips_in(text: str, cidr: str) -> set[str]:
    net = ipaddress.ip_network(cidr)
    found = set()
    for ip in re.findall(r"\b(\d+\.\d+\.\d+\.\d+)\b", text):
        if ipaddress.ip_address(ip) in net and ip != str(net.network_address) and ip != str(net.network_address + 1):
            found.add(ip)
    return found


async def problems(world, c: Client, expected: set[str], before: dict[str, set[str]],
                   may_restart: bool, orphaned: dict[str, int] | None = None) -> list[str]:
    """Everything that does not (yet) match `expected` (the pod names that should run); empty once
    converged. `before`: pod name -> app container ids running before the fault, which must still
    be the ones running unless the fault may legitimately restart them. `orphaned`: where shims
    of containers dockerd does not run are collected instead of being problems (see
    test_faults.ORPHANS_OF)."""
    from fault_cluster import POD_CIDR
    node = world.node
    out: list[str] = []
    pods = {p["metadata"]["name"]: p for p in (await c.list(PODS, NS))["items"]}
    if set(pods) != expected:
        out.append(f"pods in the API {sorted(pods)} != {sorted(expected)}")
    ips: dict[str, str] = {}
    for name, p in pods.items():
        st = p.get("status") or {}
        conds = {x["type"]: x["status"] for x in st.get("conditions") or []}
        if st.get("phase") != "Running" or conds.get("Ready") != "True" or not st.get("podIP"):
            out.append(f"{name}: phase {st.get('phase')} Ready {conds.get('Ready')} ip {st.get('podIP')}")
            continue
        ips[name] = st["podIP"]
        restarts = [cs.get("restartCount", 0) for cs in st.get("containerStatuses") or []]
        if any(restarts) and not may_restart:
            out.append(f"{name}: restartCount {restarts} though the fault may not restart containers")
    if len(set(ips.values())) != len(ips):
        out.append(f"duplicate pod IPs: {ips}")
    snap = Snapshot.take(node)
    uids = {p["metadata"]["uid"]: n for n, p in pods.items() if n in expected}
    for uid, rows in snap.by_uid.items():
        if uid not in uids:
            out.append(f"containers of a pod that should not run (uid {uid}): "
                       f"{[(r['Names'], r['State']) for r in rows]}")
    for uid, name in uids.items():
        rows = snap.by_uid.get(uid, [])
        running = [r for r in rows if r["State"] == "running"]
        kinds = sorted(r["Container"] for r in running)
        if kinds != ["POD", "web"]:
            out.append(f"{name}: running containers {kinds}, not one sandbox and one app container")
        if len(rows) != len(running) and not may_restart:
            out.append(f"{name}: exited containers {[r['Names'] for r in rows if r['State'] != 'running']}")
        if name in before and snap.running_app_ids(uid) != before[name] and not may_restart:
            out.append(f"{name}: its app container changed from {before[name]} to {snap.running_app_ids(uid)}")
    # What runs in the dockerd's containerd but dockerd does not show as running: a container
    # running outside the agent's (and docker ps') sight, i.e. twice or leaked.
    running_ids = {r["ID"] for rows in snap.by_uid.values() for r in rows if r["State"] == "running"}
    orphans = {cid: pid for cid, pid in node_shims(node).items() if cid not in running_ids}
    if orphans and orphaned is None:
        out.append(f"containerd shims of containers dockerd does not run: {sorted(orphans)}")
    elif orphaned is not None:
        orphaned.clear()
        orphaned.update(orphans)
    veths = [link["ifname"] for link in json.loads(node.ns("ip", "-j", "link", "show", "master", "cni0").stdout)]
    if len(veths) != len(expected):
        out.append(f"{len(veths)} veths on cni0 for {len(expected)} pods: {veths}")
    ipam = {f.rsplit("/", 1)[-1] for f in node.ipam_files()}
    if ipam != set(ips.values()):
        out.append(f"IPAM files {sorted(ipam)} != pod IPs {sorted(ips.values())}")
    want = set(ips.values())
    ep = await c.get(ENDPOINTS, SERVICE, NS)
    ready = {a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []}
    not_ready = {a["ip"] for s in ep.get("subsets") or [] for a in s.get("notReadyAddresses") or []}
    if ready != want or not_ready:
        out.append(f"Endpoints ready {sorted(ready)} not-ready {sorted(not_ready)} != {sorted(want)}")
    slices = (await c.list(SLICES, NS, label_selector=f"kubernetes.io/service-name={SERVICE}"))["items"]
    in_slices = [(a, (e.get("conditions") or {}).get("ready")) for s in slices for e in s.get("endpoints") or []
                 for a in e["addresses"]]
    if sorted(in_slices) != sorted((ip, True) for ip in want):
        out.append(f"EndpointSlices' (address, ready) {sorted(in_slices)} != {sorted(want)}")
    # The proxy programs iptables or nftables (its default follows the host's iptables backend).
    rules = node.ns("iptables-save").stdout + node.ns("nft", "list", "ruleset", check=False).stdout
    dnat = set(re.findall(rf"(?:--to-destination|dnat (?:ip )?to) (\d+\.\d+\.\d+\.\d+):{PORT}\b", rules))
    if dnat != want:
        out.append(f"the proxy's DNAT targets {sorted(dnat)} != {sorted(want)}")
    # Rules of any table that name a pod address (the CNI plugin's, the proxy's) name live pods only.
    stale = pod_ips_in(rules, POD_CIDR) - want
    if stale:
        out.append(f"rules still name {sorted(stale)}")
    return out


async def converge(world, c: Client, expected: set[str], before: dict[str, set[str]], may_restart: bool,
                   timeout: float, orphaned: dict[str, int] | None = None) -> float:
    """Bounded wait until problems() is empty; returns the seconds it took."""
    t0 = time.monotonic()
    last: list[str] = ["never checked"]
    while time.monotonic() - t0 < timeout:
        try:
            last = await problems(world, c, expected, before, may_restart, orphaned)
        except Exception as exc:  # the API still coming back
            last = [f"{type(exc).__name__}: {exc}"]
        if not last:
            return time.monotonic() - t0
        await asyncio.sleep(0.5)
    raise AssertionError(f"not converged after {timeout}s:\n  " + "\n  ".join(last))


async def running_app_ids(world, c: Client, names: set[str]) -> dict[str, set[str]]:
    """name -> app container ids now running, of the pods that are Ready now."""
    pods = {p["metadata"]["name"]: p for p in (await c.list(PODS, NS))["items"]}
    snap = Snapshot.take(world.node)
    out = {}
    for n in names:
        p = pods.get(n)
        if p and any(x["type"] == "Ready" and x["status"] == "True" for x in p["status"].get("conditions") or []):
            out[n] = snap.running_app_ids(p["metadata"]["uid"])
    return out
