"""The whole walkthrough of DESIGN.md on real parts, one test per step, in order.

A private etcd + apiserver, the controller manager and the scheduler run on this
machine; one node (its own netns, its own dockerd or containerd, the agent and the
proxy) runs the pods; the whole walkthrough runs once per runtime. Every step is
checked from outside: etcdctl, docker or ctr, ip/nsenter,
iptables-save, a real curl, busybox nslookup through kube-dns. Deletion is then
followed backwards and the test asserts nothing is left behind.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "agent"))
from agent_nodes import TestNode, ensure_host_images, parametrize_runtime  # noqa: E402

from kubeling.client import Client  # noqa: E402
from kubeling.resources import lookup  # noqa: E402
from tests.conftest import REPO, start_apiserver, start_etcd, stop_process, wait_for  # noqa: E402

pytestmark = pytest.mark.e2e
PODS, SERVICES, ENDPOINTS, SLICES = (lookup(w) for w in ("pods", "services", "endpoints", "endpointslices"))
NS = "walk"
CLUSTER_DNS, CLUSTER_DOMAIN = "10.96.0.10", "cluster.local"

MANIFEST = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: {NS}
  labels: {{app: web}}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: httpd
    image: busybox:latest
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && httpd -p 8080 -h /www && trap 'cat /proc/uptime > /data/sigterm; exit 0' TERM; while true; do sleep 0.1; done"]
    ports: [{{name: http, containerPort: 8080}}]
    readinessProbe:
      httpGet: {{path: /index.html, port: http}}
      periodSeconds: 1
    lifecycle:
      preStop:
        # Holds SIGTERM back until the test has seen the endpoint and the rule go (bounded, 20 s):
        # a fixed `sleep 2` would race the endpoints controller and the proxy on a busy machine.
        exec: {{command: ["sh", "-c", "n=200; while [ ! -e /data/release-prestop ] && [ $n -gt 0 ]; do sleep 0.1; n=$((n-1)); done"]}}
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes:
  - name: data
    hostPath: {{path: DATA_DIR, type: DirectoryOrCreate}}
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: {NS}
spec:
  containers:
  - name: sh
    image: busybox:latest
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {NS}
spec:
  selector: {{app: web}}
  ports:
  - {{name: http, port: 80, targetPort: http}}
"""


class World:
    """Everything the steps share."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.procs: list[subprocess.Popen] = []
        self.node: TestNode | None = None
        self.facts: dict = {}

    def spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.base / f"{name}.log", "wb")
        self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO))


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def pytest_generate_tests(metafunc) -> None:
    # The walkthrough once per runtime (Docker, containerd through CRI), each with a world of its own.
    parametrize_runtime(metafunc, scope="module")


@pytest.fixture(scope="module")
def world(tmp_path_factory, node_runtime):
    ensure_host_images()
    base = tmp_path_factory.mktemp("walkthrough")
    etcd_proc, etcd = start_etcd(base)
    api_proc, api = start_apiserver(etcd, base, bind="0.0.0.0")
    w = World(base)
    w.etcd, w.api = etcd, api
    w.procs += [etcd_proc, api_proc]
    port = int(api.url.rsplit(":", 1)[1])
    node = TestNode(port, api.token, "10.244.77.0/24", runtime=node_runtime)
    w.node = node
    node.create()
    dns_proc = None
    try:
        # The cluster DNS, as under `kubeling up`: a host process in the root namespace, reached by
        # the node at its veth's root-side address; it publishes itself as kube-dns's endpoint.
        ready = base / "dns-ready.json"
        dns_proc = subprocess.Popen(
            [sys.executable, "-m", "clusterdns", "--kubeconfig", str(api.kubeconfig), "--bind", node.root_ip,
             "--port", "0", "--publish-address", node.root_ip, "--node-name", "walk-dns",
             "--cluster-domain", CLUSTER_DOMAIN,
             # Nothing outside the cluster is asked here; no packet may leave the machine.
             "--upstream", "127.0.0.1:9", "--ready-file", str(ready)],
            stdout=open(base / "dns.log", "wb"), stderr=subprocess.STDOUT, cwd=REPO)
        wait_for(lambda: ready.exists() and json.loads(ready.read_text())["port"], 60, "the DNS server")
        yield w
    finally:
        # The DNS server goes first: its address goes with the node's veth.
        if dns_proc is not None:
            stop_process(dns_proc)
        dns_log = (base / "dns.log").read_text() if (base / "dns.log").exists() else ""
        problems = node.destroy()
        for p in reversed(w.procs):
            stop_process(p)
        assert not problems, problems
        assert "Traceback" not in dns_log, dns_log
        leftovers = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert node.name not in leftovers


def kubeling(w: World, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run([sys.executable, "-m", "kubeling", *args], input=stdin, capture_output=True, text=True,
                          env={**os.environ, "KUBECONFIG": str(w.api.kubeconfig)}, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def stored(w: World, key: str) -> tuple[dict, dict] | None:
    kv = w.etcd.get_json(key)
    if kv is None:
        return None
    return json.loads(base64.b64decode(kv["value"])), kv


async def api_get(w: World, res, name: str, ns: str | None = NS):
    async with Client(w.api.url, w.api.token) as c:
        return await c.get(res, name, ns)


def test_1_apply_sends_the_objects(world):
    manifest = MANIFEST.replace("DATA_DIR", str(world.node.base / "web-data"))
    out = kubeling(world, "apply", "-f", "-", stdin=manifest)
    assert out.split("\n")[:4] == [f"namespace/{NS} created", "pod/web created", "pod/client created",
                                   "service/web created"]


def test_2_apiserver_stores_the_pod_in_etcd(world):
    obj, kv = stored(world, f"/registry/pods/{NS}/web")
    got = json.loads(kubeling(world, "get", "pod", "web", "-n", NS, "-o", "json"))
    # Nothing has touched the pod since it was stored (the scheduler starts in step 3).
    assert got["metadata"]["resourceVersion"] == str(kv["mod_revision"])
    assert obj["spec"]["restartPolicy"] == "Always" and obj["spec"]["dnsPolicy"] == "ClusterFirst"
    assert obj["metadata"]["uid"] and "resourceVersion" not in obj["metadata"]


def test_3_scheduler_binds_the_pod(world):
    world.spawn("controller-manager", [sys.executable, "-m", "controlplane.controllers", "--kubeconfig",
                                       str(world.api.kubeconfig)])
    world.node.start_agent("--cluster-dns", CLUSTER_DNS, "--cluster-domain", CLUSTER_DOMAIN)
    world.spawn("scheduler", [sys.executable, "-m", "controlplane.scheduler", "--kubeconfig",
                              str(world.api.kubeconfig), "--no-leader-elect"])

    def bound():
        obj, _ = stored(world, f"/registry/pods/{NS}/web")
        return obj if obj["spec"].get("nodeName") else None
    obj = wait_for(bound, 60, "the scheduler to bind the pod")
    assert obj["spec"]["nodeName"] == world.node.name
    conds = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
    assert conds["PodScheduled"] == "True"
    world.facts["uid"] = obj["metadata"]["uid"]


def test_4_5_agent_runs_sandbox_and_containers_in_the_runtime(world):
    node = world.node

    def containers():
        rows = [r for r in node.containers() if r["LabelMap"].get("io.kubernetes.pod.name") == "web"]
        return rows if len(rows) >= 2 and all(r["State"] == "running" for r in rows) else None
    rows = wait_for(containers, 90, f"the web pod's containers in the node's {node.runtime}")
    sandbox = next(r for r in rows if r["Container"] == "POD")
    app = next(r for r in rows if r["Container"] == "httpd")
    pod = {"metadata": {"name": "web", "namespace": NS, "uid": world.facts["uid"]}}
    assert sandbox["Names"] == node.kube_container_name(pod, "POD")
    assert app["Names"] == node.kube_container_name(pod, "httpd")
    assert app["SandboxID"] == sandbox["ID"]
    # The app container joins the sandbox's network namespace, one of its own (not the node's).
    pids = {r["Container"]: node.container_pid(r["ID"]) for r in (sandbox, app)}
    netns = {k: os.stat(f"/proc/{pid}/ns/net").st_ino for k, pid in pids.items()}
    assert netns["POD"] == netns["httpd"] != os.stat(node.netns_path).st_ino, (pids, netns)
    world.facts["sandbox_pid"] = pids["POD"]


def test_6_7_cni_wires_the_pod_with_an_ip_from_the_node_cidr(world):
    node = world.node
    pid = world.facts["sandbox_pid"]
    addr = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-j", "addr", "show", "eth0"],
                          capture_output=True, text=True, check=True).stdout
    ips = [a["local"] for a in json.loads(addr)[0]["addr_info"] if a["family"] == "inet"]
    assert len(ips) == 1 and ips[0].startswith("10.244.77.")
    routes = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "route"], capture_output=True,
                            text=True, check=True).stdout
    assert "default via 10.244.77.1" in routes
    links = json.loads(node.ns("ip", "-j", "link", "show", "master", "cni0").stdout)
    assert any(link["ifname"].startswith("veth") for link in links)
    assert any(ips[0] in f for f in node.ipam_files()), node.ipam_files()
    world.facts["pod_ip"] = ips[0]


async def test_8_probes_and_status_reported(world):
    async def ready():
        pod = await api_get(world, PODS, "web")
        conds = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
        return pod if conds.get("Ready") == "True" else None
    deadline = time.monotonic() + 60
    pod = None
    while pod is None and time.monotonic() < deadline:
        pod = await ready()
        await asyncio.sleep(0.2)
    assert pod is not None, "pod never Ready"
    assert pod["status"]["podIP"] == world.facts["pod_ip"] and pod["status"]["phase"] == "Running"
    cs = pod["status"]["containerStatuses"][0]
    assert cs["ready"] is True and cs["containerID"].startswith(world.node.container_id_prefix)
    table = kubeling(world, "get", "pods", "-n", NS, "-o", "wide").splitlines()
    row = next(line.split() for line in table if line.startswith("web "))
    assert row[1:3] == ["1/1", "Running"] and world.facts["pod_ip"] in row and world.node.name in row


async def test_9_endpoints_list_the_ready_pod(world):
    ep = None
    for _ in range(100):
        try:
            ep = await api_get(world, ENDPOINTS, "web")
            if ep.get("subsets"):
                break
        except Exception:
            pass
        await asyncio.sleep(0.1)
    sub = ep["subsets"][0]
    assert [a["ip"] for a in sub["addresses"]] == [world.facts["pod_ip"]]
    assert sub["ports"][0]["port"] == 8080
    async with Client(world.api.url, world.api.token) as c:
        slices = await c.list(SLICES, NS, label_selector="kubernetes.io/service-name=web")
    eps = [e for s in slices["items"] for e in s.get("endpoints") or []]
    assert [e["addresses"] for e in eps] == [[world.facts["pod_ip"]]] and eps[0]["conditions"]["ready"] is True


async def test_10_proxy_programs_rules_and_the_cluster_ip_answers(world):
    node = world.node
    # A real node has a default route; this one has none (nothing may leave the machine), so the
    # service range gets a local route for the kernel to accept the connection the proxy DNATs.
    node.ns("ip", "route", "replace", "10.96.0.0/12", "dev", "cni0")
    world.spawn("proxy", ["nsenter", f"--net={node.netns_path}", sys.executable, "-m", "agent.proxy",
                          "--kubeconfig", str(node.kubeconfig), "--node-name", node.name])
    svc = await api_get(world, SERVICES, "web")
    cip = svc["spec"]["clusterIP"]
    world.facts["cluster_ip"] = cip
    target = f"{world.facts['pod_ip']}:8080"
    wait_for(lambda: target in node.ns("iptables-save", "-t", "nat").stdout, 30, "the DNAT rule")
    rules = node.ns("iptables-save", "-t", "nat").stdout
    assert f"-d {cip}/32" in rules and "KUBELING-SVC-" in rules
    try:
        body = wait_for(lambda: node.ns("curl", "-s", "--max-time", "2", f"http://{cip}/", check=False).stdout,
                        20, "an answer through the ClusterIP from the node")
    except AssertionError:
        direct = node.ns("curl", "-sv", "--max-time", "2", f"http://{target}/", check=False)
        via = node.ns("curl", "-sv", "--max-time", "2", f"http://{cip}/", check=False)
        raise AssertionError(f"no answer via {cip}; direct: {direct.returncode} {direct.stderr[-300:]}\n"
                             f"via: {via.returncode} {via.stderr[-300:]}\n{node.ns('iptables-save').stdout}"
                             f"\n{node.ns('ip', 'route').stdout}")
    assert body.strip() == "hello-from-web"
    client_ctr = wait_for(lambda: next((r["ID"] for r in node.containers()
                                        if r["LabelMap"].get("io.kubernetes.pod.name") == "client"
                                        and r["LabelMap"].get("io.kubernetes.container.name") == "sh"
                                        and r["State"] == "running"), None), 60, "the client pod")
    from_pod = wait_for(lambda: node.docker("exec", client_ctr, "wget", "-qO-", f"http://{cip}/",
                                            check=False, timeout=20).stdout, 20, "an answer from another pod")
    assert from_pod.strip() == "hello-from-web"


def client_nslookup(node: TestNode, name: str) -> subprocess.CompletedProcess:
    return node.pod_exec(NS, "client", "sh", "nslookup", name, timeout=15)


def test_10b_cluster_dns_answers_the_service_name(world):
    node, cip = world.node, world.facts["cluster_ip"]
    # The agent wrote the client pod's resolv.conf for ClusterFirst: the kube-dns ClusterIP first.
    conf = node.pod_exec(NS, "client", "sh", "cat", "/etc/resolv.conf", check=True).stdout
    assert conf.startswith(f"nameserver {CLUSTER_DNS}\nsearch {NS}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} "
                           f"{CLUSTER_DOMAIN}"), conf
    assert "options ndots:5" in conf, conf
    # The query goes pod -> kube-dns ClusterIP -> the proxy's DNAT -> the DNS server on the host.
    fqdn = f"web.{NS}.svc.{CLUSTER_DOMAIN}"
    out = wait_for(lambda: (lambda r: r if r.returncode == 0 and cip in r.stdout else None)(
        client_nslookup(node, fqdn)), 30, f"nslookup {fqdn} from the client pod")
    assert CLUSTER_DNS in out.stdout, out.stdout  # answered by the cluster nameserver
    world.facts["fqdn"] = fqdn


CREATION_STEPS = ["received", "stored", "scheduled", "accepted", "sandbox", "network", "image:httpd",
                  "created:httpd", "started:httpd", "probes", "ready", "endpoints:web", "rules:web@{node}", "dns:web"]
DELETION_STEPS = ["deletion", "endpoints:web", "rules:web@{node}", "stopped", "sandbox", "removed"]
SKEW = 0.25  # steps are recorded by different processes: their order may blur this much, no more


def traced(world, kind: str, steps: list[str], *extra: str, until=lambda tl: True) -> dict:
    """`kubeling trace pod web -o json` once the `kind` timeline has every step and `until`
    holds (bounded wait: the trace reads what the components recorded, and the last events
    are written async)."""
    wanted = [k.format(node=world.node.name) for k in steps]

    def complete():
        out = json.loads(kubeling(world, "trace", "pod", "web", "-n", NS, "-o", "json", *extra))
        tl = next((t for t in out["timelines"] if t["kind"] == kind), None)
        return tl if tl is not None and tl["complete"] and [s["key"] for s in tl["steps"]] == wanted \
            and until(tl) else None
    try:
        tl = wait_for(complete, 30, f"the trace's {kind} timeline")
    except AssertionError:
        raise AssertionError(kubeling(world, "trace", "pod", "web", "-n", NS, *extra))
    timed = [s for s in tl["steps"] if not s["check"]]
    assert all(s["done"] and s["duration"] >= 0 for s in timed), tl
    assert abs(sum(s["duration"] for s in timed) - tl["total"]) < 1e-6, tl
    assert [s["offset"] for s in timed] == sorted(s["offset"] for s in timed), tl
    # In the walkthrough's order by the recorded times themselves, not only by the listing.
    at = [datetime.fromisoformat(s["at"]).timestamp() for s in timed]
    assert all(b >= a - SKEW for a, b in zip(at, at[1:])), tl
    assert sum(1 for s in tl["steps"] if s["slowest"]) == 1, tl
    # What the trace was built from, kept with the test's logs.
    (world.base / f"trace-{kind}.json").write_text(json.dumps(
        {"timeline": tl, "events": json.loads(kubeling(world, "get", "events", "-n", NS, "-o", "json"))["items"]}))
    return tl


def test_10c_trace_shows_the_pod_timeline(world):
    # The trace asks the cluster DNS itself (one query per run): a query lost on a busy machine
    # is asked again by the next run.
    tl = traced(world, "creation", CREATION_STEPS, "--cluster-domain", CLUSTER_DOMAIN,
                until=lambda tl: world.facts["cluster_ip"] in tl["steps"][-1]["check"])
    steps = {s["key"]: s for s in tl["steps"]}
    assert f"to {world.node.name}" in steps["scheduled"]["detail"], steps["scheduled"]
    assert world.facts["pod_ip"] in steps["network"]["detail"], steps["network"]
    assert world.facts["cluster_ip"] in steps["dns:web"]["check"], steps["dns:web"]
    text = kubeling(world, "trace", "pod", "web", "-n", NS, "--no-dns")
    assert text.count("◀ slowest") == 1 and "request received" in text, text
    page = world.base / "trace.html"
    kubeling(world, "trace", "pod", "web", "-n", NS, "-o", "html", str(page), "--no-dns")
    assert all(f'data-step="{k.format(node=world.node.name)}"' in page.read_text() for k in CREATION_STEPS[:-1])


async def test_11_deletion_runs_backwards_and_leaves_nothing(world):
    node = world.node
    ip, cip = world.facts["pod_ip"], world.facts["cluster_ip"]
    seen: dict[str, float] = {}
    t0 = uptime()
    async with Client(world.api.url, world.api.token) as c:
        out = await c.delete(PODS, "web", NS)
        assert out["metadata"]["deletionTimestamp"]
        seen["deletionTimestamp"] = uptime()
        released = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(seen) < 6:
            if "endpoints" not in seen:
                ep = await c.get(ENDPOINTS, "web", NS)
                if ip not in json.dumps(ep.get("subsets") or []):
                    seen["endpoints"] = uptime()
            if "endpoints" in seen and "dnat" not in seen:
                if f"{ip}:8080" not in node.ns("iptables-save", "-t", "nat").stdout:
                    seen["dnat"] = uptime()
            if "dnat" in seen and not released:
                # The pod left the endpoints and the rules while preStop still held SIGTERM back.
                assert "sigterm" not in seen and not (node.base / "web-data" / "sigterm").exists()
                (node.base / "web-data" / "release-prestop").touch()
                released = True
            if "dnat" in seen and "cni_del" not in seen and not any(ip in f for f in node.ipam_files()):
                seen["cni_del"] = uptime()
            if "etcd" not in seen and world.etcd.get_json(f"/registry/pods/{NS}/web") is None:
                seen["etcd"] = uptime()
            sigterm = node.base / "web-data" / "sigterm"
            if "sigterm" not in seen and sigterm.exists() and sigterm.read_text().strip():
                seen["sigterm"] = float(sigterm.read_text().split()[0])
            await asyncio.sleep(0.05)
    order = sorted(seen, key=seen.get)
    assert set(seen) == {"deletionTimestamp", "endpoints", "dnat", "sigterm", "cni_del", "etcd"}, seen
    assert order.index("endpoints") < order.index("sigterm"), {k: v - t0 for k, v in seen.items()}
    assert order.index("dnat") < order.index("sigterm"), {k: v - t0 for k, v in seen.items()}
    assert seen["sigterm"] < seen["cni_del"] <= seen["etcd"] + 0.5, {k: v - t0 for k, v in seen.items()}
    tl = traced(world, "deletion", DELETION_STEPS, "--no-dns")
    assert "grace period of 30s" in tl["steps"][3]["detail"], tl["steps"][3]
    # New connections no longer reach the pod: the Service has no endpoints and rejects at once.
    r = node.ns("curl", "-s", "--max-time", "3", f"http://{cip}/", check=False)
    assert r.returncode == 7, (r.returncode, r.stdout)  # 7: connection refused, not a timeout (28)
    assert not [row for row in node.containers() if row["LabelMap"].get("io.kubernetes.pod.name") == "web"]
    # The Service's name outlives its endpoints (a ClusterIP Service answers its ClusterIP) and goes
    # with the Service: NXDOMAIN from the cluster DNS (not a timeout: the server still answers).
    fqdn = world.facts["fqdn"]
    wait_for(lambda: (lambda r: r.returncode == 0 and cip in r.stdout)(client_nslookup(node, fqdn)), 15,
             f"{fqdn} to resolve while the Service has no endpoints")
    async with Client(world.api.url, world.api.token) as c:
        await c.delete(SERVICES, "web", NS)
    wait_for(lambda: (lambda r: r.returncode != 0 and cip not in r.stdout and "NXDOMAIN" in r.stdout + r.stderr)(
        client_nslookup(node, fqdn)), 30,
             f"{fqdn} to stop resolving after the Service's deletion")
    # Everything else goes too: the whole namespace, then the node leaves no trace (fixture teardown).
    kubeling(world, "delete", "namespace", NS, "--timeout", "90")
    assert not [row for row in node.containers() if row["LabelMap"].get("io.kubernetes.pod.namespace") == NS]
    assert node.ipam_files() == []
