"""The fault suite's cluster: the walkthrough's World (etcd, apiserver, controller-manager,
scheduler, one TestNode with its own dockerd, agent and proxy, the cluster DNS), every
process started from a command line it keeps, so a fault can `kill -9`, SIGSTOP or cut
it and bring it back as `kubeling up` (or systemd's Restart=) would: the same argv.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agent_nodes import TestNode, ensure_host_images  # noqa: E402
from test_walkthrough import World  # noqa: E402

from tests.conftest import REPO, start_apiserver, start_etcd, stop_process, wait_for  # noqa: E402

CLUSTER_DNS, CLUSTER_DOMAIN = "10.96.0.10", "cluster.local"
CNI_SOCKET_ENV = "KUBELING_CNI_SOCKET"
KEEP_LOGS_ENV = "KUBELING_FAULTS_LOGS"  # a directory: every component's log is copied there at the end
POD_CIDR = "10.244.93.0/24"
# How long the controller-manager lets a Node stay silent before it marks it NotReady (Unknown):
# kube-controller-manager's default is 40 s; 20 s keeps a 60 s cut of the node meaningful (the
# grace period elapses well inside it) and the suite inside its time budget.
NODE_MONITOR_GRACE = 20
NODE_MONITOR_PERIOD = 2
# The agent reports every 5 s: Kubernetes' ratio of grace period to report period (40 s to 10 s),
# so a report delayed by a restarted apiserver does not already make the Node NotReady.
NODE_STATUS_PERIOD = 5
# The components a fault may kill, in the order the suite kills them.
COMPONENTS = ("etcd", "apiserver", "controller-manager", "scheduler", "agent", "proxy", "cni-daemon",
              "dockerd", "dns")


class FaultWorld(World):
    """The walkthrough's World plus what a fault needs: each component's process by name,
    killed and restarted from its own command line, and a wait for it to serve again."""

    def __init__(self, base: Path) -> None:
        super().__init__(base)
        self.named: dict[str, subprocess.Popen] = {}

    def spawn(self, name: str, argv: list[str]) -> None:
        super().spawn(name, argv)
        self.named[name] = self.procs[-1]

    def proc(self, name: str) -> subprocess.Popen:
        node = self.node
        if name == "agent":
            return node.agent_proc
        if name == "proxy":
            return node.proxy_proc
        if name == "dockerd":
            return node.dockerd_proc
        return self.named[name]

    def kill9(self, name: str) -> int:
        """SIGKILL the component (nothing of it gets to clean up); returns the pid killed."""
        p = self.proc(name)
        assert p is not None and p.poll() is None, f"{name} is not running"
        p.kill()
        p.wait(30)
        return p.pid

    def signal(self, name: str, sig: signal.Signals) -> None:
        os.kill(self.proc(name).pid, sig)

    def restart(self, name: str) -> None:
        """The component again from the very command line it was started with."""
        old = self.proc(name)
        assert old is not None and old.poll() is not None, f"{name} still runs"
        if name == "dockerd":
            self._wait_containerd_gone()
        log = open({"agent": self.node.agent_log, "proxy": self.node.proxy_log, "dockerd": self.node.dockerd_log,
                    "etcd": self.etcd_base / "etcd.log"}.get(name, self.base / f"{name}.log"), "ab")
        new = subprocess.Popen(old.args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                               start_new_session=name in ("agent", "proxy", "dockerd"))
        if name == "agent":
            self.node.agent_proc = new
        elif name == "proxy":
            self.node.proxy_proc = new
        elif name == "dockerd":
            self.node.dockerd_proc = new
        else:
            self.procs[self.procs.index(old)] = new
            self.named[name] = new
        self.wait_serving(name)

    def _wait_containerd_gone(self) -> None:
        """dockerd's own containerd dies with it (its parent-death signal), but a new dockerd that
        still finds its pid (not yet reaped) waits for it in vain and gives up: as systemd reaps
        at once before Restart=, wait (bounded) until the pid is gone."""
        pidfile = self.node.run_dir / "docker-exec" / "containerd" / "containerd.pid"
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 30, f"dockerd's containerd (pid {pid}) to be reaped")

    def wait_serving(self, name: str) -> None:
        """Bounded wait for what the component serves to answer (not for it to have caught up)."""
        if name == "etcd":
            wait_for(lambda: self.etcd.etcdctl("endpoint", "health") is not None, 30, "etcd to answer")
        elif name == "apiserver":
            wait_for(lambda: urllib.request.urlopen(self.api.url + "/readyz", timeout=2).status == 200, 30,
                     "the apiserver to answer")
        elif name == "dockerd":
            wait_for(lambda: self.node.docker("info", check=False, timeout=10).returncode == 0, 60,
                     "the node's dockerd")
        elif name == "cni-daemon":
            def accepts() -> bool:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.cni_socket)
                    return True
            wait_for(accepts, 30, "the cni-daemon's socket")
        elif name == "dns":
            wait_for(lambda: self.dns_ready.exists() and json.loads(self.dns_ready.read_text())["port"], 60,
                     "the DNS server")

    def logs(self) -> dict[str, str]:
        """Every component's log by name (after stop(): the node's were copied next to the others)."""
        out = {}
        for name in ("etcd", "apiserver", "controller-manager", "scheduler", "dns", "cni-daemon", "agent", "proxy"):
            p = self.base / f"{name}.log"
            out[name] = p.read_text(errors="replace") if p.exists() else ""
        return out


def start(base: Path) -> FaultWorld:
    """Everything up, as `kubeling up` brings a one-node cluster up; the caller stops it with stop()."""
    ensure_host_images()
    w = FaultWorld(base)
    # etcd's data on tmpfs: on a shared machine a WAL fsync can take minutes (seen: 3m25s) and no
    # fault here needs the disk (a killed process loses nothing of what it wrote).
    w.etcd_base = Path(tempfile.mkdtemp(prefix="kubeling-faults-etcd-", dir="/dev/shm"))
    etcd_proc, w.etcd = start_etcd(w.etcd_base)
    w.procs.append(etcd_proc)
    w.named["etcd"] = etcd_proc
    api_proc, w.api = start_apiserver(w.etcd, base, bind="0.0.0.0")
    w.procs.append(api_proc)
    w.named["apiserver"] = api_proc
    port = int(w.api.url.rsplit(":", 1)[1])
    w.node = TestNode(port, w.api.token, POD_CIDR, runtime="docker")
    w.node.create()
    kc = str(w.api.kubeconfig)
    w.spawn("controller-manager", [sys.executable, "-m", "controlplane.controllers", "--kubeconfig", kc,
                                   "--metrics-port", "-1",
                                   "--node-monitor-grace-period", f"{NODE_MONITOR_GRACE}s",
                                   "--node-monitor-period", f"{NODE_MONITOR_PERIOD}s"])
    w.spawn("scheduler", [sys.executable, "-m", "controlplane.scheduler", "--kubeconfig", kc,
                          "--no-leader-elect", "--metrics-port", "-1"])
    # The node's cni-daemon (the thick plugin's long-lived half) on a socket of its own, in the
    # node's namespace where it makes the bridge; the agent's plugin shims find it through the
    # environment (as a node under `kubeling up` does).
    w.cni_socket = str(w.node.run_dir / "cni.sock")
    w.spawn("cni-daemon", ["nsenter", f"--net={w.node.netns_path}", sys.executable, "-m", "cni.daemon",
                           "--socket", w.cni_socket])
    w.wait_serving("cni-daemon")
    os.environ[CNI_SOCKET_ENV] = w.cni_socket
    w.node.start_agent("--cluster-dns", CLUSTER_DNS, "--cluster-domain", CLUSTER_DOMAIN,
                       "--node-status-period", str(NODE_STATUS_PERIOD))
    # The node has no default route (nothing may leave the machine): the service range gets a
    # local one so the kernel accepts what the proxy DNATs (as in the walkthrough).
    w.node.ns("ip", "route", "replace", "10.96.0.0/12", "dev", "lo")
    w.node.start_proxy()
    # The cluster DNS as under `kubeling up`: a host process in the root namespace, reached by
    # the node at its veth's root-side address; it publishes itself as kube-dns's endpoint.
    w.dns_ready = base / "dns-ready.json"
    w.spawn("dns", [sys.executable, "-m", "clusterdns", "--kubeconfig", kc, "--bind", w.node.root_ip,
                    "--port", "0", "--publish-address", w.node.root_ip, "--node-name", "faults-dns",
                    "--cluster-domain", CLUSTER_DOMAIN, "--metrics-bind-address", "",
                    "--upstream", "127.0.0.1:9", "--ready-file", str(w.dns_ready)])
    w.wait_serving("dns")
    return w


def stop(w: FaultWorld) -> list[str]:
    """Everything down (DNS first: its address goes with the node's veth); returns what was left."""
    for name in ("dns", "cni-daemon"):
        if name in w.named:
            stop_process(w.named[name])
    os.environ.pop(CNI_SOCKET_ENV, None)
    problems = []
    if w.node is not None:
        w.node.stop_agent()
        if w.node.proxy_proc is not None:
            stop_process(w.node.proxy_proc, 20)
            w.node.proxy_proc = None
        # The node's logs outlive it (destroy() removes its directory), for a failed run's reader.
        for log in (w.node.agent_log, w.node.proxy_log, w.node.dockerd_log):
            if log.exists():
                shutil.copy(log, w.base / log.name)
        problems += w.node.destroy()
    for p in reversed(w.procs):
        stop_process(p)
    etcd_base = getattr(w, "etcd_base", None)
    if etcd_base is not None:
        shutil.copy(etcd_base / "etcd.log", w.base / "etcd.log")
        shutil.rmtree(etcd_base, ignore_errors=True)
    if w.node is not None and w.node.name in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                            text=True).stdout:
        problems.append(f"netns {w.node.name} left")
    if os.environ.get(KEEP_LOGS_ENV):
        # pytest keeps only its last few temporary directories, and other runs rotate them.
        shutil.copytree(w.base, os.environ[KEEP_LOGS_ENV], dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("etcd", "kubelet-pki", "tokens.csv", "kubeconfig"))
    return problems
