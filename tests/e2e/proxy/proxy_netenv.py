"""A throwaway "node" for the proxy: a network namespace with a bridge of busybox-httpd "pods",
a /30 veth to the root namespace (the node's only way out, to the API server), and the proxy
process running inside it. Shared by tests/e2e/proxy and scripts/bench_proxy.py.

Why the proxy runs inside the namespace (and not in the root namespace with its iptables calls
wrapped in nsenter): backend detection, iptables-restore, conntrack and the jump rules then run
exactly as on a real node, and the process under test is the unmodified `python -m agent.proxy`.
The API server it needs is reached through the veth: a second apiserver (same etcd) bound to an
address of a port-less bridge of the root namespace (172.31.x.y/32, never 0.0.0.0), routed from
the node namespace through its /30. The node has no default route: nothing can leave the machine.
"""
from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from tests.conftest import free_link_net, stop_process, wait_for

wait_until = wait_for

REPO = Path(__file__).resolve().parents[3]
NODE_BRIDGE = "kpbr0"
POD_SUBNET = "10.244.1.0/24"
POD_GATEWAY = "10.244.1.1"
SERVICE_CIDR = "10.96.0.0/12"
CLUSTER_CIDR = "10.244.0.0/16"


def sh(*args: str, check: bool = True, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def rand() -> str:
    return secrets.token_hex(3)


def root_links() -> set[str]:
    out = sh("ip", "-o", "link", "show").stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines() if ": " in line}


@dataclass
class Uplink:
    """A port-less bridge in the root namespace holding the API server's address (this kernel
    has no dummy links); nothing is attached to it, so it carries no traffic of its own."""
    name: str
    ip: str

    @classmethod
    def create(cls) -> "Uplink":
        name = f"kpu-{rand()}"
        ip = str(free_link_net().network_address + 1)
        sh("ip", "link", "add", name, "type", "bridge")
        sh("ip", "addr", "add", f"{ip}/32", "dev", name)
        sh("ip", "link", "set", name, "up")
        return cls(name, ip)

    def delete(self) -> None:
        sh("ip", "link", "del", self.name, check=False)


@dataclass
class Pod:
    name: str
    netns: str
    ip: str
    httpd: subprocess.Popen | None = None
    docroot: str = ""

    @property
    def path(self) -> str:
        return f"/run/netns/{self.netns}"


@dataclass
class Node:
    name: str
    root_veth: str
    net: ipaddress.IPv4Network
    pods: list[Pod] = field(default_factory=list)
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    @property
    def root_ip(self) -> str:
        return str(self.net.network_address + 1)

    @property
    def ip(self) -> str:
        """The node's address on its uplink (a LOCAL address: NodePorts answer on it)."""
        return str(self.net.network_address + 2)

    @classmethod
    def create(cls, uplink: Uplink) -> "Node":
        name = f"kpn-{rand()}"
        root_veth = f"kpr-{rand()}"
        sh("ip", "netns", "add", name)
        node = cls(name, root_veth, free_link_net())
        try:
            node.run("ip", "link", "set", "lo", "up")
            sh("ip", "link", "add", root_veth, "type", "veth", "peer", "name", "uplink0", "netns", name)
            sh("ip", "addr", "add", f"{node.root_ip}/30", "dev", root_veth)
            sh("ip", "link", "set", root_veth, "up")
            node.run("ip", "addr", "add", f"{node.ip}/30", "dev", "uplink0")
            node.run("ip", "link", "set", "uplink0", "up")
            node.run("ip", "route", "add", f"{uplink.ip}/32", "via", node.root_ip)
            node.run("ip", "link", "add", NODE_BRIDGE, "type", "bridge")
            node.run("ip", "addr", "add", f"{POD_GATEWAY}/24", "dev", NODE_BRIDGE)
            node.run("ip", "link", "set", NODE_BRIDGE, "up")
            # Service addresses live on the local bridge: no packet for them has anywhere else to go.
            node.run("ip", "route", "add", SERVICE_CIDR, "dev", NODE_BRIDGE)
            node.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
            # As Docker leaves the host: forwarding dropped unless someone (our proxy) accepts it.
            node.run("iptables", "-P", "FORWARD", "DROP")
        except Exception:
            node.destroy()
            raise
        return node

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return sh("nsenter", f"--net={self.path}", *args, check=check, timeout=timeout)

    def iptables_save(self) -> str:
        return self.run("iptables-save").stdout

    def add_pod(self, index: int, serve: bool = True) -> Pod:
        pod = Pod(f"pod{index}-{rand()}", f"kpp-{rand()}", f"10.244.1.{index + 1}")
        sh("ip", "netns", "add", pod.netns)
        self.pods.append(pod)
        host_if = f"veth{index}"
        self.run("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", pod.netns)
        self.run("ip", "link", "set", host_if, "master", NODE_BRIDGE, "up")
        # As the CNI plugin's hairpinMode does: a pod reaching itself through a service IP has its
        # frame sent back out of the port it came in by (br_netfilter DNATs at the bridge).
        self.run("bridge", "link", "set", "dev", host_if, "hairpin", "on")
        in_pod = ("nsenter", f"--net={pod.path}")
        sh(*in_pod, "ip", "link", "set", "lo", "up")
        sh(*in_pod, "ip", "addr", "add", f"{pod.ip}/24", "dev", "eth0")
        sh(*in_pod, "ip", "link", "set", "eth0", "up")
        sh(*in_pod, "ip", "route", "add", "default", "via", POD_GATEWAY)
        if serve:
            pod.docroot = tempfile.mkdtemp(prefix="kp-httpd-")
            Path(pod.docroot, "index.html").write_text(pod.name + "\n")
            pod.httpd = subprocess.Popen([*in_pod, "busybox", "httpd", "-f", "-p", "8080", "-h", pod.docroot],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_until(lambda: self.get(f"http://{pod.ip}:8080/") == pod.name, 10, f"httpd of {pod.name}")
        return pod

    def get(self, url: str, netns: str | None = None, timeout: int = 3) -> str | None:
        """One HTTP GET with busybox wget from this node (or from another namespace path)."""
        # No -T: this busybox's wget crashes with it; the subprocess timeout bounds the wait.
        try:
            proc = sh("nsenter", f"--net={netns or self.path}", "busybox", "wget", "-q", "-O", "-", url,
                      check=False, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    def start_proxy(self, kubeconfig: str, log: Path, *extra: str, events: bool = True) -> subprocess.Popen:
        """events=False: no --node-name, so no RulesProgrammed events (one per service at start)."""
        node = ["--node-name", self.name] if events else []
        proc = subprocess.Popen(
            ["nsenter", f"--net={self.path}", sys.executable, "-m", "agent.proxy", "--kubeconfig", kubeconfig,
             *node, "--cluster-cidr", CLUSTER_CIDR, "--service-cidr", SERVICE_CIDR, *extra],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(log, "ab"))
        self.procs.append(proc)
        return proc

    def destroy(self) -> list[str]:
        """Stop everything started here and delete every namespace; returns what was left over."""
        for proc in self.procs + [p.httpd for p in self.pods if p.httpd]:
            stop(proc)
        for pod in self.pods:
            sh("ip", "netns", "del", pod.netns, check=False)
            if pod.docroot:
                shutil.rmtree(pod.docroot, ignore_errors=True)
        sh("ip", "netns", "del", self.name, check=False)  # takes the veths and the bridge with it
        left = [n for n in [self.name, *(p.netns for p in self.pods)] if os.path.exists(f"/run/netns/{n}")]
        if wait_gone(self.root_veth):
            left.append(self.root_veth)
        left += [f"pid {p.pid}" for p in self.procs + [p.httpd for p in self.pods if p.httpd] if p.poll() is None]
        return left


def wait_gone(link: str, timeout: float = 5) -> bool:
    """True if the link is still there after `timeout` (namespace teardown is asynchronous)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if link not in root_links():
            return False
        time.sleep(0.05)
    return True


stop = stop_process  # one way to stop a test's processes, shared with tests/conftest.py
