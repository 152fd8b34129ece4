"""50 ADDs at once, and a daemon restart in the middle of a run."""
from __future__ import annotations

import ctypes
import ipaddress
import os
import platform
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import bridge_conf, in_pod, ping

pytestmark = pytest.mark.e2e
SYS_TGKILL = {"x86_64": 234, "aarch64": 131}[platform.machine()]


def test_50_concurrent_adds_get_50_distinct_working_ips(node, daemon, bridge, subnet, tmp_path):
    conf = bridge_conf("kc-net", bridge, subnet, str(tmp_path / "ipam"))
    pods = [node.new_pod() for _ in range(50)]
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda i: node.cni("kubeling-bridge", "ADD", conf, cid=f"c{i}", netns=pods[i]),
                                range(50)))
    assert all(r.ok for r in results), [r for r in results if not r.ok][:3]
    ips = [r.out["ips"][0]["address"] for r in results]
    assert len(set(ips)) == 50
    for pod, ip in zip(pods, ips):
        assert ip in in_pod(pod, "ip", "-o", "addr", "show", "dev", "eth0").stdout
    gw = str(ipaddress.ip_network(subnet).network_address + 1)
    assert ping(pods[0], ips[49].split("/")[0]) and ping(pods[49], gw)
    assert len(os.listdir(tmp_path / "ipam" / "kc-net")) == 52
    with ThreadPoolExecutor(50) as pool:
        dels = list(pool.map(lambda i: node.cni("kubeling-bridge", "DEL", conf, cid=f"c{i}", netns=pods[i]),
                             range(50)))
    assert all(r.ok for r in dels), [r for r in dels if not r.ok][:3]
    assert sorted(os.listdir(tmp_path / "ipam" / "kc-net")) == ["last_reserved_ip.0", "lock"]
    assert [l for l in node.links() if l.startswith("veth")] == []
    assert node.pod_rules() == []
    node.cleanup_network(bridge, "kc-net", str(tmp_path / "ipam"))


def test_daemon_restart_mid_run(node, daemon, bridge, subnet, tmp_path):
    conf = bridge_conf("kc-net", bridge, subnet, str(tmp_path / "ipam"))
    pods = [node.new_pod() for _ in range(24)]
    results = [None] * len(pods)

    def worker(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            results[i] = node.cni("kubeling-bridge", "ADD", conf, cid=f"c{i}", netns=pods[i])

    threads = [threading.Thread(target=worker, args=(k * 8, k * 8 + 8)) for k in range(3)]
    for t in threads:
        t.start()
    # Restart while ADDs are in flight: SIGTERM drains the requests it holds; callers that find
    # no daemon do the work themselves; later callers reach the new daemon.
    while sum(r is not None for r in results) < 4:
        threading.Event().wait(0.01)
    assert daemon.stop(signal.SIGTERM) == 0
    served_meanwhile = sum(r is not None for r in results)
    daemon.start()
    for t in threads:
        t.join()
    assert all(r.ok for r in results), [r for r in results if not r.ok][:3]
    ips = {r.out["ips"][0]["address"] for r in results}
    assert len(ips) == len(pods)
    assert served_meanwhile < len(pods)
    for i, pod in enumerate(pods):
        assert node.cni("kubeling-bridge", "DEL", conf, cid=f"c{i}", netns=pod).ok
    assert sorted(os.listdir(tmp_path / "ipam" / "kc-net")) == ["last_reserved_ip.0", "lock"]
    assert node.pod_rules() == []
    node.cleanup_network(bridge, "kc-net", str(tmp_path / "ipam"))


def test_daemon_killed_during_add_asks_runtime_to_retry(node, daemon, bridge, subnet, tmp_path):
    """SIGKILL while an ADD is held: the caller gets code 11, and DEL + ADD then work."""
    conf = bridge_conf("kc-net", bridge, subnet, str(tmp_path / "ipam"), ipam={
        "type": "slow-ipam", "dataDir": str(tmp_path / "ipam"), "ranges": [[{"subnet": subnet}]]})
    slow = tmp_path / "bin" / "slow-ipam"
    slow.parent.mkdir()
    started = tmp_path / "started"
    slow.write_text(f"#!/bin/sh\ntouch {started}\nsleep 2\nexec /usr/lib/cni/host-local\n")
    slow.chmod(0o755)
    env = {"CNI_PATH": f"{node.plugin_dir}:{tmp_path / 'bin'}:/usr/lib/cni"}
    pod = node.new_pod()
    out = {}
    t = threading.Thread(target=lambda: out.update(r=node.cni("kubeling-bridge", "ADD", conf, cid="ck", netns=pod, env=env)))
    t.start()
    for _ in range(200):
        if started.exists():
            break
        threading.Event().wait(0.02)
    assert started.exists()
    daemon.stop(signal.SIGKILL)
    t.join()
    res = out["r"]
    assert res.code != 0 and res.out["code"] == 11, res
    os.unlink(node.socket)  # the killed daemon could not remove it; no one answers there now
    assert node.cni("kubeling-bridge", "DEL", conf, cid="ck", netns=pod, env=env).ok
    again = node.cni("kubeling-bridge", "ADD", conf, cid="ck", netns=pod, env=env)
    assert again.ok, again
    assert node.cni("kubeling-bridge", "DEL", conf, cid="ck", netns=pod, env=env).ok
    assert node.pod_rules() == []
    node.cleanup_network(bridge, "kc-net", str(tmp_path / "ipam"))
    daemon.start()  # leave it running for the fixture's own checks


def test_sigterm_taken_by_another_thread_still_stops_the_daemon(daemon):
    """The kernel may hand a SIGTERM sent to the daemon to any of its threads (under load, a
    request thread). Sent here to the acceptor thread alone (tgkill), it must still stop the
    daemon: a main thread asleep in an untimed wait was never woken to run the handler."""
    pid = daemon.proc.pid
    others = [int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid]
    assert others, "the daemon runs its acceptor in a thread of its own"
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(SYS_TGKILL, pid, others[0], signal.SIGTERM) == 0, os.strerror(ctypes.get_errno())
    assert daemon.proc.wait(20) == 0
    daemon.proc.stdout.close()
