"""Fixtures shared by the integration and e2e suites: a real etcd and a real
apiserver process, each on free ports and in a temporary directory, started
once per test session and stopped (with their data removed) at its end."""
from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout: float = 20, what: str = "condition", interval: float = 0.05):
    """Call check() until it returns something truthy; an exception means "not yet"."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except Exception as exc:  # the thing waited for may not exist yet
            last, result = exc, None
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last})")


async def eventually(check, timeout: float, what: str = "condition", interval: float = 0.05):
    """Await check() (sync or async) until it returns something truthy (returned), at most
    `timeout` seconds; the asyncio twin of wait_for for tests inside an event loop."""
    import asyncio
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        await asyncio.sleep(interval)
    raise AssertionError(f"no {what} within {timeout}s")


def free_link_net() -> ipaddress.IPv4Network:
    """A /30 of 172.31.0.0/16 that no address or route of the root namespace overlaps:
    the link between the root namespace and one test node."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout + \
        subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True).stdout
    used = set()
    for word in out.split():
        if word.startswith("172.31."):
            try:
                used.add(ipaddress.ip_network(word, strict=False))
            except ValueError:
                used.add(ipaddress.ip_network(word.split("/")[0] + "/32"))
    for _ in range(1000):
        base = secrets.randbelow(1 << 14) * 4
        net = ipaddress.ip_network(f"172.31.{base >> 8}.{base & 255}/30")
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError("no free /30 in 172.31.0.0/16")


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Etcd:
    url: str
    host: str
    port: int
    data_dir: Path

    def etcdctl(self, *args: str) -> str:
        out = subprocess.run(["etcdctl", "--endpoints", self.url, *args], check=True,
                             capture_output=True, text=True, env={**os.environ, "ETCDCTL_API": "3"})
        return out.stdout

    def get_json(self, key: str) -> dict | None:
        doc = json.loads(self.etcdctl("get", key, "-w", "json"))
        kvs = doc.get("kvs") or []
        return kvs[0] if kvs else None


def start_etcd(base: Path, port: int | None = None, peer: int | None = None,
               extra_args: tuple[str, ...] = ()) -> tuple[subprocess.Popen, Etcd]:
    """etcd with its data in base/etcd; given the ports of an earlier one (and the same
    base), it restarts that etcd on its data. `extra_args`: more etcd flags."""
    port, peer = port or free_port(), peer or free_port()
    url = f"http://127.0.0.1:{port}"
    peer_url = f"http://127.0.0.1:{peer}"
    data = base / "etcd"
    log = open(base / "etcd.log", "wb")
    proc = subprocess.Popen(
        ["etcd", "--name", "test", "--data-dir", str(data), "--listen-client-urls", url,
         "--advertise-client-urls", url, "--listen-peer-urls", peer_url,
         "--initial-advertise-peer-urls", peer_url, "--initial-cluster", f"test={peer_url}", *extra_args],
        stdout=log, stderr=subprocess.STDOUT)
    etcd = Etcd(url, "127.0.0.1", port, data)
    try:
        wait_for(lambda: proc.poll() is None and etcd.etcdctl("endpoint", "health") is not None,
                 30, "etcd to answer")
    except BaseException:
        stop_process(proc)  # an etcd that never answered is not left running
        raise
    return proc, etcd


@pytest.fixture(scope="session")
def etcd(tmp_path_factory):
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed: run scripts/setup")
    base = tmp_path_factory.mktemp("etcd")
    proc, info = start_etcd(base)
    yield info
    stop_process(proc)
    shutil.rmtree(info.data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def isolated_etcd(tmp_path_factory):
    """An etcd of the module's own, for tests that store what other apiservers on the shared
    etcd could not read (Secrets encrypted with a key only their apiserver has)."""
    base = tmp_path_factory.mktemp("isolated-etcd")
    proc, info = start_etcd(base)
    yield info
    stop_process(proc)
    shutil.rmtree(info.data_dir, ignore_errors=True)


@dataclass
class ApiServer:
    url: str
    token: str
    kubeconfig: Path
    log: Path
    etcd: Etcd
    # With tls=True: the cluster CA (it signed the serving certificate and signs client certificates).
    ca_cert: Path | None = None
    ca_key: Path | None = None
    token_file: Path | None = None
    # The CA of the apiserver's kubelet client certificate: node agents take it as
    # --client-ca-file (they answer logs/exec/port-forward to that certificate only).
    kubelet_ca: Path | None = None
    kubelet_client: tuple[Path, Path] | None = None  # (cert, key) the apiserver uses

    @property
    def ca_pem(self) -> bytes | None:
        return self.ca_cert.read_bytes() if self.ca_cert else None


def start_apiserver(etcd: Etcd, base: Path, token: str = "test-token",
                    bind: str = "127.0.0.1", *, tls: bool = False, tls_hosts: tuple[str, ...] = (),
                    extra_tokens: str = "", port: int | None = None,
                    extra_args: tuple[str, ...] = ()) -> tuple[subprocess.Popen, ApiServer]:
    """An apiserver process on `bind`; its URL uses that address (127.0.0.1 for 0.0.0.0).
    `token` is the admin's. With `tls`, it serves HTTPS with a certificate of a new CA
    in base/pki and accepts client certificates that CA signs; `extra_tokens` are
    more token-file lines (`token,user,uid,"groups"`); `tls_hosts` more names and
    addresses for its serving certificate (those clients reach it on)."""
    port = port or free_port()
    tokens = base / "tokens.csv"
    tokens.write_text(f"{token},admin\n{extra_tokens}")
    host = '127.0.0.1' if bind == '0.0.0.0' else bind
    args = [sys.executable, "-m", "controlplane.apiserver", "--etcd", etcd.url, "--bind", bind,
            "--port", str(port), "--token-auth-file", str(tokens)]
    ca_cert = ca_key = None
    ssl_ctx = None
    if tls:
        from kubeling import pki
        d = base / "pki"
        ca_cert, ca_key = d / "ca.crt", d / "ca.key"
        pki.make_ca(ca_cert, ca_key)
        pki.issue_cert(ca_cert, ca_key, d / "apiserver.crt", d / "apiserver.key", "kube-apiserver",
                       hosts=[host, "127.0.0.1", "localhost", *tls_hosts], client=False, server=True)
        args += ["--tls-cert-file", str(d / "apiserver.crt"), "--tls-private-key-file", str(d / "apiserver.key"),
                 "--client-ca-file", str(ca_cert)]
        import ssl
        ssl_ctx = ssl.create_default_context(cafile=str(ca_cert))
    kubelet_ca, kubelet_client = _kubelet_client_cert(base, ca_cert, ca_key)
    args += ["--kubelet-client-certificate", str(kubelet_client[0]), "--kubelet-client-key", str(kubelet_client[1])]
    args += list(extra_args)  # more apiserver flags (encryption, service-account keys)
    log_path = base / "apiserver.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    url = f"{'https' if tls else 'http'}://{host}:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"apiserver exited: {log_path.read_text()[-2000:]}")
        with urllib.request.urlopen(url + "/readyz", timeout=1, context=ssl_ctx) as resp:
            return resp.status == 200
    try:
        wait_for(healthy, 30, "the apiserver to answer")
    except BaseException:
        stop_process(proc)
        raise
    kubeconfig = base / "kubeconfig"
    from kubeling.kubeconfig import write
    write(str(kubeconfig), url, token, ca_cert.read_bytes() if ca_cert else None)
    return proc, ApiServer(url, token, kubeconfig, log_path, etcd, ca_cert, ca_key, tokens, kubelet_ca,
                           kubelet_client)


def _kubelet_client_cert(base: Path, ca_cert: Path | None, ca_key: Path | None) -> tuple[Path, tuple[Path, Path]]:
    """The apiserver's client certificate towards node agents (CN kube-apiserver-kubelet-client,
    as kubeadm's), signed by the cluster CA, or without TLS by a CA of its own."""
    from kubeling import pki
    d = base / "kubelet-pki"
    if ca_cert is None or ca_key is None:
        ca_cert, ca_key = d / "ca.crt", d / "ca.key"
        pki.make_ca(ca_cert, ca_key)
    cert, key = d / "apiserver-kubelet-client.crt", d / "apiserver-kubelet-client.key"
    pki.issue_cert(ca_cert, ca_key, cert, key, "kube-apiserver-kubelet-client", ["system:masters"])
    return ca_cert, (cert, key)


@pytest.fixture(scope="session")
def apiserver(etcd, tmp_path_factory):
    base = tmp_path_factory.mktemp("apiserver")
    proc, info = start_apiserver(etcd, base)
    yield info
    stop_process(proc)
    assert "Traceback" not in info.log.read_text(), f"apiserver logged a traceback:\n{info.log.read_text()[-4000:]}"


@pytest.fixture
async def client(apiserver):
    from kubeling.client import Client
    c = Client(apiserver.url, apiserver.token)
    yield c
    await c.close()


_counter = [0]


@pytest.fixture
def unique_name(request) -> str:
    """A DNS-1123 name unique to this test (tests share one etcd)."""
    _counter[0] += 1
    base = request.node.name.lower().replace("_", "-")
    base = "".join(ch for ch in base if ch.isalnum() or ch == "-")[:40].strip("-")
    return f"{base}-{os.getpid() % 1000}-{_counter[0]}"


@pytest.fixture
async def namespace(client, unique_name):
    """A fresh namespace for one test."""
    from kubeling.resources import lookup
    ns_res = lookup("namespaces")
    await client.create(ns_res, {"metadata": {"name": unique_name}})
    yield unique_name
