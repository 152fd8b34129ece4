"""Harness for the CNI e2e tests: the plugins run exactly as a runtime runs them (env + stdin,
like cnitool), inside a throwaway "node" network namespace so bridges, veths and iptables
chains never touch the root namespace. The node gets Docker's FORWARD policy DROP and
br_netfilter on, the situation on the project's machines."""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
REF_CNI = "/usr/lib/cni"


def sh(*args: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kw)


def rand() -> str:
    return secrets.token_hex(3)


@dataclass
class CniResult:
    code: int
    out: dict | None
    raw: str
    err: str

    @property
    def ok(self) -> bool:
        return self.code == 0


@dataclass
class Node:
    """A network namespace standing in for a node's host namespace."""

    name: str
    plugin_dir: str
    socket: str
    pods: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh("nsenter", f"--net={self.path}", *args, check=check)

    def new_pod(self) -> str:
        name = f"kcpod-{rand()}"
        sh("ip", "netns", "add", name)
        self.pods.append(name)
        return f"/run/netns/{name}"

    def cni(self, plugin: str, command: str, conf: dict | str | bytes, *, cid: str = "",
            netns: str = "", ifname: str = "eth0", env: dict | None = None,
            daemon: bool = True, drop: tuple[str, ...] = ()) -> CniResult:
        """One plugin invocation as a runtime makes it, run from the node namespace."""
        exe = plugin if plugin.startswith("/") else os.path.join(self.plugin_dir, plugin)
        e = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_PATH": f"{self.plugin_dir}:{REF_CNI}",
            "KUBELING_CNI_SOCKET": self.socket if daemon else "none",
        }
        e.update(env or {})
        for k in drop:
            e.pop(k, None)
        stdin = conf if isinstance(conf, (str, bytes)) else json.dumps(conf)
        if isinstance(stdin, str):
            stdin = stdin.encode()
        proc = subprocess.run(["nsenter", f"--net={self.path}", exe], input=stdin, env=e,
                              capture_output=True, timeout=120)
        raw = proc.stdout.decode()
        try:
            out = json.loads(raw) if raw.strip() else None
        except ValueError:
            out = None
        return CniResult(proc.returncode, out, raw, proc.stderr.decode())

    def links(self) -> list[str]:
        out = self.run("ip", "-o", "link", "show").stdout
        return [l.split(": ")[1].split("@")[0] for l in out.splitlines()]

    def our_rules(self) -> list[str]:
        out = self.run("iptables-save").stdout
        return [l for l in out.splitlines() if "KUBELING-CNI" in l or "kubeling-cni" in l]

    def pod_rules(self) -> list[str]:
        """Rules that exist because of pods (masquerade); DEL of the last pod removes them all."""
        return [l for l in self.our_rules() if "KUBELING-CNI-M-" in l or "kubeling-cni pod=" in l]

    def forward_rules(self, bridge: str) -> list[str]:
        return [l for l in self.our_rules() if "KUBELING-CNI-F-" in l and
                (not l.startswith("-A FORWARD") or f"bridge={bridge} " in l)]

    def cleanup_network(self, bridge: str, network: str | None = None, data_dir: str | None = None) -> None:
        """The explicit cleanup: afterwards no bridge, chain or allocation directory remains."""
        args = [sys.executable, "-m", "cni.cleanup", "--bridge", bridge]
        if network:
            args += ["--network", network, "--data-dir", data_dir]
        res = subprocess.run(["nsenter", f"--net={self.path}", *args], cwd=REPO, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert bridge not in self.links()
        assert self.our_rules() == []
        if network:
            assert not os.path.exists(os.path.join(data_dir, network))


def in_pod(netns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh("nsenter", f"--net={netns}", *args, check=check)


def ping(netns: str, ip: str) -> bool:
    return in_pod(netns, "busybox", "ping", "-c", "1", "-W", "2", ip, check=False).returncode == 0


def bridge_conf(name: str, bridge: str, subnet: str, data_dir: str, *, ipam_type: str = "kubeling-ipam",
                version: str = "1.0.0", plugin: str = "kubeling-bridge", **extra: Any) -> dict:
    conf = {
        "cniVersion": version,
        "name": name,
        "type": plugin,
        "bridge": bridge,
        "isGateway": True,
        "ipMasq": True,
        "hairpinMode": True,
        "ipam": {
            "type": ipam_type,
            "dataDir": data_dir,
            "ranges": [[{"subnet": subnet}]],
            "routes": [{"dst": "0.0.0.0/0"}],
        },
    }
    conf.update(extra)
    return conf


@pytest.fixture(scope="session")
def plugin_dir(tmp_path_factory) -> str:
    """The executables, installed by the same module scripts/setup uses."""
    d = tmp_path_factory.mktemp("cni-bin")
    res = sh(sys.executable, "-m", "cni.install", "--dest", str(d), cwd=REPO)
    assert sorted(res.stdout.split()) == [str(d / "kubeling-bridge"), str(d / "kubeling-ipam")]
    return str(d)


def _root_links() -> set[str]:
    return set(sh("ip", "-o", "link", "show").stdout.split("\n"))


@pytest.fixture
def node(plugin_dir, tmp_path):
    name = f"kcnode-{rand()}"
    root_links = {l.split(": ")[1].split("@")[0] for l in _root_links() if ": " in l}
    sh("ip", "netns", "add", name)
    n = Node(name, plugin_dir, str(tmp_path / "cni.sock"))
    n.run("ip", "link", "set", "lo", "up")
    # What Docker does on these machines; in our own namespace we are free to set it.
    n.run("iptables", "-P", "FORWARD", "DROP")
    n.run("sh", "-c", "echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables")
    yield n
    for pod in n.pods:
        sh("ip", "netns", "del", pod.split("/")[-1], check=False)
    sh("ip", "netns", "del", name, check=False)
    left = [x for x in [name, *n.pods] if os.path.exists(f"/run/netns/{x}")]
    assert not left, f"network namespaces left behind: {left}"
    now = {l.split(": ")[1].split("@")[0] for l in _root_links() if ": " in l}
    leaked = [x for x in now - root_links if x.startswith("kcbr")]
    assert not leaked, f"links left in the root namespace: {leaked}"


@dataclass
class Daemon:
    node: Node
    proc: subprocess.Popen | None = None
    log: Path | None = None

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.proc = subprocess.Popen(
            ["nsenter", f"--net={self.node.path}", sys.executable, "-m", "cni.daemon", "--socket", self.node.socket],
            cwd=REPO, stdout=subprocess.PIPE, stderr=open(self.log, "ab"), text=True)
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", f"daemon did not start: {self.log.read_text()}"

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(60)
        self.proc.stdout.close()
        return code


@pytest.fixture
def daemon(node, tmp_path):
    d = Daemon(node, log=tmp_path / "daemon.log")
    d.start()
    yield d
    if d.proc.poll() is None:
        assert d.stop() == 0
    assert not os.path.exists(node.socket), "daemon left its socket behind"
    assert "Traceback" not in d.log.read_text(), d.log.read_text()


@pytest.fixture
def subnet() -> str:
    return f"10.250.{secrets.randbelow(250) + 1}.0/24"


@pytest.fixture
def bridge() -> str:
    return f"kcbr{rand()}"


def wait_gone(path: str, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(path):
            return True
        time.sleep(0.05)
    return False
