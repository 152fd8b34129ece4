"""The compiled kubeling-bridge forwarder (cni/shim.c) against a peer that misbehaves on purpose:
each way the daemon can fail to answer must end as the Python shim would have ended it.
(The real daemon's happy path, restart and SIGKILL are in the other files.)"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import threading

import pytest

from cni import wire

pytestmark = pytest.mark.e2e

CONF = {"cniVersion": "1.0.0", "name": "kc-fwd", "type": "kubeling-bridge", "bridge": "kcfwd0",
        "ipam": {"type": "kubeling-ipam", "ranges": [[{"subnet": "10.250.251.0/24"}]]}}


class Peer:
    """Accepts one connection on `path`, reads the request, then does `answer(conn)`."""

    def __init__(self, path: str, answer) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.sock.settimeout(60)
        self.request: list[bytes] | None = None
        self.thread = threading.Thread(target=self._serve, args=(answer,), daemon=True)
        self.thread.start()

    def _serve(self, answer) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(60)
            self.request = wire.recv(conn)
            answer(conn)

    def close(self) -> None:
        self.thread.join(60)
        self.sock.close()
        assert not self.thread.is_alive()


def run(plugin_dir: str, command: str, sock: str, stdin: bytes, node=None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": "c-fwd",
           "CNI_NETNS": "/run/netns/kc-no-such-pod", "CNI_IFNAME": "eth0", "CNI_PATH": plugin_dir,
           "KUBELING_CNI_SOCKET": sock}
    prefix = ["nsenter", f"--net={node.path}"] if node is not None else []
    return subprocess.run([*prefix, os.path.join(plugin_dir, "kubeling-bridge")], input=stdin, env=env,
                          capture_output=True, timeout=120)


@pytest.fixture
def forwarder(plugin_dir) -> str:
    with open(os.path.join(plugin_dir, "kubeling-bridge"), "rb") as f:
        if f.read(4) != b"\x7fELF":
            pytest.skip("no C compiler: kubeling-bridge is the Python shim")
    return plugin_dir


def test_reply_is_passed_through_with_the_request_as_the_python_shim_sends_it(forwarder, tmp_path):
    sock = str(tmp_path / "s")
    stdin = json.dumps(CONF).encode()
    peer = Peer(sock, lambda c: c.sendall(wire.ACCEPTED + wire.encode([b"1", b"{\"out\": 1}\n", b"why\n"])))
    res = run(forwarder, "ADD", sock, stdin)
    peer.close()
    assert (res.returncode, res.stdout, res.stderr) == (1, b"{\"out\": 1}\n", b"why\n")
    assert peer.request[:2] == [b"bridge", stdin]
    assert b"CNI_COMMAND=ADD" in peer.request[2:] and f"KUBELING_CNI_SOCKET={sock}".encode() in peer.request[2:]


def test_declined_request_is_done_in_process(forwarder, tmp_path):
    sock = str(tmp_path / "s")
    peer = Peer(sock, lambda c: c.sendall(wire.DECLINED))
    res = run(forwarder, "VERSION", sock, b'{"cniVersion": "1.0.0"}')
    peer.close()
    assert res.returncode == 0, res
    assert "1.0.0" in json.loads(res.stdout)["supportedVersions"]


def test_no_daemon_means_in_process(forwarder, tmp_path):
    res = run(forwarder, "VERSION", str(tmp_path / "nobody-listens"), b'{"cniVersion": "1.0.0"}')
    assert res.returncode == 0 and "supportedVersions" in json.loads(res.stdout), res


@pytest.mark.parametrize("reply", [b"", wire.encode([b"0", b"cut"])[:-1], b"\xff\xff\xff\xff"],
                         ids=["closed", "cut-short", "oversized"])
def test_add_taken_and_unanswered_asks_the_runtime_to_retry(forwarder, tmp_path, reply):
    sock = str(tmp_path / "s")
    peer = Peer(sock, lambda c: c.sendall(wire.ACCEPTED + reply))
    res = run(forwarder, "ADD", sock, json.dumps(CONF).encode())
    peer.close()
    assert res.returncode == 1, res
    err = json.loads(res.stdout)
    assert err["code"] == 11 and err["cniVersion"] == "1.0.0", err


def test_del_taken_and_unanswered_is_redone_in_process(forwarder, node, tmp_path):
    # DEL is safe to repeat: the in-process plugin (in a test node, as it may touch links)
    # finds nothing to delete and succeeds.
    sock = str(tmp_path / "s")
    conf = dict(CONF, ipam=dict(CONF["ipam"], dataDir=str(tmp_path / "ipam")))
    peer = Peer(sock, lambda c: c.sendall(wire.ACCEPTED))
    res = run(forwarder, "DEL", sock, json.dumps(conf).encode(), node)
    peer.close()
    assert res.returncode == 0, res
    assert res.stdout == b""
