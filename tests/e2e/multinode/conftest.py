"""A two-node cluster on this machine, for the multi-node network tests.

A private etcd + apiserver (HTTPS with a cluster CA and `--client-ca-file`, listening on every
address: agents reach it over their /30 to the root namespace), the controller manager (node
IPAM hands out the pod CIDRs; its CSR signer signs the nodes' certificates) and the scheduler
run as processes here, each as its own user. Each node joins as `kubeling join` does (bootstrap
token -> CSR -> certificate), so its agent and proxy act as `system:node:<name>`, limited by the
Node authorizer and NodeRestriction. Each node is a TestNode (tests/e2e/agent/agent_nodes.py):
its own network namespace, dockerd, agent and proxy. The nodes' private network is an underlay: a bridge in a
third namespace with a veth to each node (`ul0`), as a Vagrant private network is an L2 segment
between VMs. The agents report their underlay address as InternalIP (`--node-ip`), route each
other's pod CIDR over it (host-gw), and FORWARD is DROP in the nodes as Docker leaves a host.
Nothing here has a route off the machine: the underlay namespace has no other link.
"""
from __future__ import annotations

import ipaddress
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "agent"))
from agent_nodes import (DOCKER, TestNode, component_kubeconfig, docker_env, ensure_host_images,  # noqa: E402
                         new_bootstrap_token, refusals, sh, start_controller_manager)

from agent.node_routes import ROUTE_PROTOCOL  # noqa: E402
from controlplane.apiserver.authn import bootstrap_token_line  # noqa: E402
from tests.conftest import (REPO, free_link_net, free_port, start_apiserver, start_etcd,  # noqa: E402
                            stop_process, wait_for)

pytestmark = pytest.mark.e2e

CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/12"


@dataclass
class Underlay:
    """An L2 segment between the nodes: a bridge in a namespace of its own."""
    net: ipaddress.IPv4Network
    name: str = field(default_factory=lambda: f"klu-{secrets.token_hex(3)}")
    ports: int = 0

    def create(self) -> None:
        sh("ip", "netns", "add", self.name)
        sh("ip", "-n", self.name, "link", "set", "lo", "up")
        sh("ip", "-n", self.name, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.name, "link", "set", "br0", "up")

    def connect(self, node: TestNode) -> str:
        """A veth from the bridge to `node` (there called ul0); returns the node's address on it."""
        hosts = list(self.net.hosts())
        ip = str(hosts[self.ports])
        port = f"port{self.ports}"
        self.ports += 1
        sh("ip", "-n", self.name, "link", "add", port, "type", "veth", "peer", "name", "ul0", "netns", node.name)
        sh("ip", "-n", self.name, "link", "set", port, "master", "br0", "up")
        node.ns("ip", "addr", "add", f"{ip}/{self.net.prefixlen}", "dev", "ul0")
        node.ns("ip", "link", "set", "ul0", "up")
        return ip

    def destroy(self) -> list[str]:
        sh("ip", "netns", "del", self.name, check=False)
        return [f"netns {self.name} left"] if self.name in sh("ip", "netns", "list").stdout.split() else []


@dataclass
class Cluster:
    api: object
    base: Path
    a: TestNode
    b: TestNode
    ip_a: str
    ip_b: str
    procs: list[subprocess.Popen] = field(default_factory=list)

    def client(self):
        """The admin's client."""
        from kubeling.client import Client
        return Client(self.api.url, self.api.token, ca_pem=self.api.ca_pem)

    def node_client(self, node: TestNode):
        """A client on `node`'s own credentials (system:node:<name>), as its agent has."""
        from kubeling.client import Client
        return Client.from_kubeconfig(str(node.kubeconfig))

    def start_proxies(self) -> None:
        for n in (self.a, self.b):
            if n.proxy_proc is None:
                n.start_proxy("--cluster-cidr", CLUSTER_CIDR, "--service-cidr", SERVICE_CIDR,
                              "--sync-period", "5")


def _root_state() -> tuple[set[str], set[str], set[str]]:
    """What of ours the root namespace holds: host-gw routes, CNI iptables lines, k8s containers."""
    routes = set(sh("ip", "-4", "route", "show", "proto", str(ROUTE_PROTOCOL)).stdout.splitlines())
    chains = {l for l in sh("iptables-save").stdout.splitlines() if "KUBELING-CNI" in l}
    ctrs = set(sh(DOCKER, "ps", "-aq", "--filter", "label=io.kubernetes.docker.type", check=False,
                  env=docker_env()).stdout.split())
    return routes, chains, ctrs


def _spawn(base: Path, name: str, argv: list[str]) -> subprocess.Popen:
    log = open(base / f"{name}.log", "wb")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


def _prepare(node: TestNode, underlay: Underlay, strict_rp_filter: bool) -> str:
    node.create()
    ip = underlay.connect(node)
    # Service IPs are reached like any address off the node: over the private network (a VM
    # has its default route there). Pod traffic never needs this route.
    node.ns("ip", "route", "add", SERVICE_CIDR, "dev", "ul0")
    node.ns("iptables", "-P", "FORWARD", "DROP")  # as Docker leaves a host
    if strict_rp_filter:
        node.ns("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1")
    node.extra_args = ["--node-ip", ip, "--cluster-cidr", CLUSTER_CIDR, "--route-sync-period", "1"]
    return ip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("multi-node e2e tests need root")
    ensure_host_images()
    before = _root_state()
    base = tmp_path_factory.mktemp("multinode")
    procs: list[subprocess.Popen] = []
    nodes: list[TestNode] = []
    underlay: Underlay | None = None
    try:
        etcd_proc, etcd = start_etcd(base)
        procs.append(etcd_proc)
        port = free_port()
        a, b = TestNode(port, "", None, scheme="https"), TestNode(port, "", None, scheme="https")
        nodes += [a, b]
        boot_token = new_bootstrap_token()
        # The serving certificate names the addresses the nodes reach the apiserver on.
        api_proc, api = start_apiserver(etcd, base, bind="0.0.0.0", tls=True, tls_hosts=(a.root_ip, b.root_ip),
                                        extra_tokens=bootstrap_token_line(boot_token), port=port)
        procs.append(api_proc)
        cm_proc, _ = start_controller_manager(api, base, "--cluster-cidr", CLUSTER_CIDR)
        procs.append(cm_proc)
        kc = component_kubeconfig(api, base / "scheduler.kubeconfig", "system:kube-scheduler")
        procs.append(_spawn(base, "scheduler", [sys.executable, "-m", "controlplane.scheduler",
                                                "--kubeconfig", str(kc), "--no-leader-elect"]))
        a.ca_pem = b.ca_pem = api.ca_pem
        underlay = Underlay(free_link_net())  # a /30: one address per node
        underlay.create()
        ip_a = _prepare(a, underlay, strict_rp_filter=True)
        ip_b = _prepare(b, underlay, strict_rp_filter=False)
        a.join(boot_token)
        b.join(boot_token)
        a.start_agent()
        b.start_agent()
        c = Cluster(api, base, a, b, ip_a, ip_b, procs)
        yield c
    finally:
        problems: list[str] = []
        # The whole run on node credentials: a refusal in an agent's or proxy's log is a
        # right the Node authorizer or NodeRestriction misses.
        for n in nodes:
            problems += refusals({f"agent of {n.name}": n.log_text(),
                                  f"proxy of {n.name}": n.proxy_log.read_text() if n.proxy_log.exists() else ""})
        problems += refusals({who: (base / f"{who}.log").read_text() for who in ("controller-manager", "scheduler")
                              if (base / f"{who}.log").exists()})
        for n in nodes:
            # Shown by pytest only when a test failed.
            print(f"---- agent log of {n.name} ----\n{n.log_text()[-5000:]}")
            if n.proxy_log.exists():
                print(f"---- proxy log of {n.name} ----\n{n.proxy_log.read_text()[-3000:]}")
            problems += n.destroy()
        if underlay is not None:
            problems += underlay.destroy()
        for p in reversed(procs):
            stop_process(p)
        after = _root_state()
        names = sh("ip", "netns", "list").stdout
        problems += [f"netns {n.name} left" for n in nodes if n.name in names]
        problems += [f"route left in the root namespace: {r}" for r in after[0] - before[0]]
        problems += [f"iptables line left in the root namespace: {r}" for r in after[1] - before[1]]
        problems += [f"container left in the host dockerd: {r}" for r in after[2] - before[2]]
        assert not problems, problems


@pytest.fixture
async def client(cluster):
    c = cluster.client()
    yield c
    await c.close()


@pytest.fixture(scope="module")
def ready_nodes(cluster):
    """Both Nodes registered, with a pod CIDR and Ready."""
    import json
    import ssl
    import urllib.request
    ctx = ssl.create_default_context(cafile=str(cluster.api.ca_cert))

    def ready() -> dict | None:
        req = urllib.request.Request(cluster.api.url + "/api/v1/nodes",
                                     headers={"Authorization": f"Bearer {cluster.api.token}"})
        with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
            items = {n["metadata"]["name"]: n for n in json.load(resp)["items"]}
        for name in (cluster.a.name, cluster.b.name):
            node = items.get(name)
            if node is None or not node["spec"].get("podCIDR"):
                return None
            conds = {c["type"]: c["status"] for c in node["status"].get("conditions") or []}
            if conds.get("Ready") != "True":
                return None
        return items
    return wait_for(ready, 60, "both nodes Ready with a pod CIDR", interval=0.5)
