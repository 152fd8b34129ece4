"""Streaming with real kubectl (1.33: WebSocket v5 and tunnelled port-forward; 1.27:
SPDY/3.1) and the official Python client, through a TLS apiserver to a real node
(netns + its own dockerd or containerd + the agent, once per runtime): exec (stdin, exit codes, a TTY with its
size), cp both ways, port-forward with a real curl, attach, logs -f. And the
agent's port refuses whoever is not the apiserver.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import pty
import re
import secrets
import select
import signal
import ssl
import struct
import subprocess
import sys
import termios
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "agent"))
from agent_nodes import TestNode, ensure_host_images, parametrize_runtime  # noqa: E402

from tests.conftest import ApiServer, free_port, start_apiserver, stop_process, wait_for  # noqa: E402

pytestmark = pytest.mark.e2e
KUBECTL_DIR = Path("/usr/lib/google-cloud-sdk/bin")
VERSIONS = ("1.33", "1.27")
HTTPD = "mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 80 -h /www"
ALICE = "alice-token-0123456789"  # a user bound to `view` only: may read pods, not exec into them
TICKER = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.5; done"


@dataclass
class Cluster:
    api: ApiServer
    node: TestNode
    ns: str
    home: Path

    def kubectl(self, version: str, *args: str, stdin: bytes | None = None, timeout: float = 60,
                ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(self.argv(version, *args), input=stdin, capture_output=True, timeout=timeout,
                              env=self.env(version))

    def argv(self, version: str, *args: str) -> list[str]:
        return [str(KUBECTL_DIR / f"kubectl.{version}"), "--kubeconfig", str(self.api.kubeconfig),
                "--cache-dir", str(self.home / version / "cache"), "-n", self.ns, *args]

    def env(self, version: str) -> dict[str, str]:
        home = self.home / version
        home.mkdir(parents=True, exist_ok=True)
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TMPDIR": str(home)}


def _pod(name: str, node: str, script: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "busybox:latest", "command": ["sh", "-c", script]}]}}


def pytest_generate_tests(metafunc) -> None:
    # One cluster per runtime for the module: exec, attach, cp and port-forward on each.
    parametrize_runtime(metafunc, scope="module")


@pytest.fixture(scope="module")
def cluster(etcd, tmp_path_factory, node_runtime: str) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.fail("streaming e2e tests need root")
    ensure_host_images()
    base = tmp_path_factory.mktemp("streaming")
    port = free_port()
    node = TestNode(port, "stream-admin", f"10.244.{secrets.randbelow(250) + 1}.0/24", scheme="https",
                    runtime=node_runtime)
    proc, api = start_apiserver(etcd, base, token="stream-admin", bind="0.0.0.0", tls=True,
                                tls_hosts=(node.root_ip,), port=port, extra_tokens=f"{ALICE},alice,alice-uid\n")
    node.ca_pem, node.client_ca = api.ca_pem, api.kubelet_ca
    ns = f"stream-{secrets.token_hex(3)}"
    c = Cluster(api, node, ns, base / "homes")
    problems: list[str] = []
    try:
        node.create()
        node.start_agent()
        k = lambda *a, **kw: c.kubectl("1.33", *a, **kw)  # noqa: E731
        wait_for(lambda: b"True" in k("get", "node", node.name, "-o",
                                      "jsonpath={.status.conditions[?(@.type=='Ready')].status}").stdout,
                 60, "the node Ready")
        assert k("create", "namespace", ns).returncode == 0
        docs = [_pod("web", node.name, HTTPD), _pod("ticker", node.name, TICKER)]
        out = k("apply", "-f", "-", stdin=yaml.safe_dump_all(docs).encode())
        assert out.returncode == 0, out.stderr
        for name in ("web", "ticker"):
            wait_for(lambda: k("get", "pod", name, "-o", "jsonpath={.status.phase}").stdout == b"Running",
                     60, f"pod {name} Running")
        yield c
    finally:
        print(f"---- agent log ----\n{node.log_text()[-6000:]}")
        try:
            c.kubectl("1.33", "delete", "pods", "--all", "--grace-period=0", "--force", timeout=60)
        except Exception:
            pass
        problems += node.destroy()
        stop_process(proc)
        text = api.log.read_text()
        if "Traceback" in text:
            problems.append(f"apiserver logged a traceback:\n{text[-4000:]}")
    assert not problems, problems


@pytest.mark.parametrize("version", VERSIONS)
def test_exec_output_stdin_and_exit_codes(cluster, version):
    r = cluster.kubectl(version, "exec", "web", "--", "echo", "hello")
    assert (r.returncode, r.stdout) == (0, b"hello\n"), r.stderr
    # stdin reaches the process and its end closes the process's stdin (cat returns).
    r = cluster.kubectl(version, "exec", "-i", "web", "--", "sh", "-c", "cat; echo done", stdin=b"abc\n")
    assert (r.returncode, r.stdout) == (0, b"abc\ndone\n"), r.stderr
    r = cluster.kubectl(version, "exec", "web", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3 and r.stdout == b"out\n" and b"err\n" in r.stderr, r
    r = cluster.kubectl(version, "exec", "web", "-c", "nope", "--", "true")
    assert r.returncode != 0 and b"container nope is not valid for pod web" in r.stderr, r


@pytest.mark.parametrize("version", VERSIONS)
def test_exec_and_port_forward_are_forbidden_without_create_rights(cluster, version):
    r = cluster.kubectl("1.33", "create", "rolebinding", f"alice-view-{version}", "--clusterrole=view", "--user=alice")
    assert r.returncode == 0, r.stderr
    # kubectl reads the pod first (allowed), then the connect subresource is refused.
    wait_for(lambda: cluster.kubectl(version, "--token", ALICE, "get", "pod", "web").returncode == 0, 10,
             "alice's view binding to take effect")
    for verb, args in (("exec", ["exec", "web", "--", "true"]), ("portforward", ["port-forward", "pod/web", ":80"])):
        r = cluster.kubectl(version, "--token", ALICE, *args, timeout=30)
        assert r.returncode != 0
        assert f'cannot create resource "pods/{verb}" in API group "" in the namespace "{cluster.ns}"'.encode() \
            in r.stderr, r.stderr


def _pty_run(argv: list[str], env: dict[str, str], rows: int, cols: int, timeout: float = 30) -> tuple[int, bytes]:
    """Run argv on a new pseudo-terminal of rows x cols; (exit status, everything it printed)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its terminal is the pty's slave
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.execve(argv[0], argv, env)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out


@pytest.mark.parametrize("version", VERSIONS)
def test_exec_with_a_tty_gets_the_terminal_size(cluster, version):
    # The size arrives just after the process starts (as with kubelet: the runtime resizes a
    # running exec), so the shell looks until it has one.
    script = ('for i in $(seq 50); do s=$(stty size 2>/dev/null); case "$s" in [1-9]*) break;; esac; sleep 0.1; '
              'done; echo "size=$s"; tty; exit 4')
    code, out = _pty_run(cluster.argv(version, "exec", "-it", "web", "--", "sh", "-c", script),
                         cluster.env(version), 33, 101)
    text = out.decode(errors="replace")
    assert "size=33 101" in text and "/dev/pts/" in text, text
    assert code == 4, text


@pytest.mark.parametrize("version", VERSIONS)
def test_cp_both_ways(cluster, version, tmp_path):
    data = os.urandom(300_000)
    src = tmp_path / "data.bin"
    src.write_bytes(data)
    # kubectl cp runs tar in the container: run it from the file's directory (a relative path).
    r = subprocess.run(cluster.argv(version, "cp", "data.bin", f"{cluster.ns}/web:/tmp/data-{version}.bin"),
                       cwd=tmp_path, capture_output=True, env=cluster.env(version), timeout=60)
    assert r.returncode == 0, r.stderr
    r = cluster.kubectl(version, "exec", "web", "--", "md5sum", f"/tmp/data-{version}.bin")
    assert r.stdout.split()[0].decode() == hashlib.md5(data).hexdigest()
    r = subprocess.run(cluster.argv(version, "cp", f"{cluster.ns}/web:/tmp/data-{version}.bin", "back.bin"),
                       cwd=tmp_path, capture_output=True, env=cluster.env(version), timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back.bin").read_bytes() == data


def _port_forward(cluster: Cluster, version: str, remote: int) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(cluster.argv(version, "port-forward", "pod/web", f":{remote}"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cluster.env(version))
    line = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and b"Forwarding from 127.0.0.1" not in line:
        r, _, _ = select.select([proc.stdout], [], [], 1)
        if r:
            line = proc.stdout.readline()
            if not line:
                break
    m = re.search(rb"127\.0\.0\.1:(\d+) ->", line)
    if not m:
        proc.kill()
        raise AssertionError(f"port-forward did not start: {line!r} {proc.stderr.read()!r}")
    return proc, int(m.group(1))


def _curl(port: int) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-s", "-m", "10", f"http://127.0.0.1:{port}/index.html"],
                          capture_output=True, timeout=20)


@pytest.mark.parametrize("version", VERSIONS)
def test_port_forward_to_httpd_and_to_a_closed_port(cluster, version):
    proc, port = _port_forward(cluster, version, 80)
    try:
        for _ in range(3):  # one connection after another on the same forward
            r = _curl(port)
            assert r.stdout == b"hello-from-pod\n", r
    finally:
        proc.terminate()
        proc.wait(10)
    proc, port = _port_forward(cluster, version, 81)
    err = b""
    try:
        r = _curl(port)
        assert r.stdout == b""
        # kubectl reports the agent's error (from the error stream) on stderr.
        deadline = time.monotonic() + 15
        while b"connection refused" not in err and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stderr], [], [], 1)
            if ready:
                chunk = os.read(proc.stderr.fileno(), 65536)
                if not chunk:
                    break
                err += chunk
    finally:
        proc.terminate()
        proc.wait(10)
    assert b"error forwarding port 81" in err and b"connection refused" in err, err


def _lines(proc: subprocess.Popen, count: int, timeout: float = 20) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        r, _, _ = select.select([proc.stdout], [], [], 1)
        if r:
            line = proc.stdout.readline()
            if not line:
                break
            got.append(line)
    return got


@pytest.mark.parametrize("version", VERSIONS)
def test_attach_and_logs_follow_see_new_lines(cluster, version):
    for verb in (["attach", "ticker"], ["logs", "-f", "ticker", "--tail=1"]):
        proc = subprocess.Popen(cluster.argv(version, *verb), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=cluster.env(version))
        try:
            lines = _lines(proc, 3)
        finally:
            proc.terminate()
            proc.wait(10)
        assert len(lines) == 3 and all(ln.startswith(b"tick ") for ln in lines), (verb, lines,
                                                                                 proc.stderr.read())
        numbers = [int(ln.split()[1]) for ln in lines]
        assert numbers == sorted(numbers) and numbers[-1] > numbers[0], numbers


def _python_api(cluster: Cluster):
    from kubernetes import client
    cfg = client.Configuration()
    cfg.host = cluster.api.url
    cfg.ssl_ca_cert = str(cluster.api.ca_cert)
    cfg.api_key = {"authorization": f"Bearer {cluster.api.token}"}
    return client.CoreV1Api(client.ApiClient(cfg))


def test_python_client_stream_exec_and_portforward(cluster):
    from kubernetes.stream import portforward, stream
    api = _python_api(cluster)
    ws = stream(api.connect_get_namespaced_pod_exec, "web", cluster.ns,
                command=["sh", "-c", "echo hi; echo oops >&2; exit 2"], stderr=True, stdin=False, stdout=True,
                tty=False, _preload_content=False)
    ws.run_forever(timeout=20)
    assert ws.returncode == 2
    assert ws.read_stdout() == "hi\n" and ws.read_stderr() == "oops\n"
    # stdin, closed with v5's close signal: cat ends and the exit code is 0.
    ws = stream(api.connect_get_namespaced_pod_exec, "web", cluster.ns, command=["sh", "-c", "cat; echo end"],
                stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
    ws.write_stdin("from-python\n")
    ws.close_channel(0)
    ws.run_forever(timeout=20)
    assert ws.returncode == 0 and ws.read_stdout() == "from-python\nend\n"
    pf = portforward(api.connect_get_namespaced_pod_portforward, "web", cluster.ns, ports="80")
    sock = pf.socket(80)
    sock.settimeout(10)
    sock.sendall(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
    reply = b""
    while chunk := sock.recv(4096):
        reply += chunk
    sock.close()
    assert reply.startswith(b"HTTP/1.") and reply.endswith(b"hello-from-pod\n"), reply
    assert pf.error(80) is None


def _agent_get(url: str, ctx: ssl.SSLContext) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10, context=ctx) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_the_agent_refuses_anyone_but_the_apiserver(cluster, tmp_path):
    from kubeling import pki
    base = f"https://{cluster.node.node_ip}:{cluster.node.logs_port}"
    paths = (f"/containerLogs/{cluster.ns}/web/main", f"/exec/{cluster.ns}/web/main?command=id&stdout=1")

    def ctx(cert: tuple[str, str] | None = None) -> ssl.SSLContext:
        c = ssl.create_default_context()
        c.check_hostname, c.verify_mode = False, ssl.CERT_NONE
        if cert:
            c.load_cert_chain(*cert)
        return c
    for path in paths:  # no certificate: 401
        assert _agent_get(base + path, ctx())[0] == 401
    # A certificate of the cluster CA that is not the apiserver's (a node's): 403.
    node_cert, node_key = tmp_path / "n.crt", tmp_path / "n.key"
    pki.issue_cert(cluster.api.ca_cert, cluster.api.ca_key, node_cert, node_key, "system:node:other",
                   ["system:nodes"])
    for path in paths:
        assert _agent_get(base + path, ctx((str(node_cert), str(node_key))))[0] == 403
    # A certificate of another CA: the handshake fails.
    pki.make_ca(tmp_path / "x.crt", tmp_path / "x.key")
    pki.issue_cert(tmp_path / "x.crt", tmp_path / "x.key", tmp_path / "y.crt", tmp_path / "y.key",
                   "kube-apiserver-kubelet-client", ["system:masters"])
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionResetError)):
        _agent_get(base + paths[0], ctx((str(tmp_path / "y.crt"), str(tmp_path / "y.key"))))
    # Plain HTTP is not served at all.
    with pytest.raises((urllib.error.URLError, ConnectionResetError, OSError)):
        urllib.request.urlopen(f"http://{cluster.node.node_ip}:{cluster.node.logs_port}{paths[0]}", timeout=5)
    # The apiserver's own certificate is let in.
    cert, key = cluster.api.kubelet_client
    assert _agent_get(base + paths[0], ctx((str(cert), str(key))))[0] == 200
