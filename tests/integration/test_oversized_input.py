"""Oversized and hostile documents: a 100 MB manifest, 10,000 levels of nesting and a
YAML alias bomb get a clear refusal from the apiserver (413 over the 3 MiB request
body limit Kubernetes uses, 400 for nesting and aliasing) and from `kubeling apply -f`
(one line, non-zero exit), and neither process's memory grows with the attack."""
from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bad_documents import billion_laughs, deep_json, deep_yaml
from tests.conftest import REPO, start_apiserver, stop_process

MiB = 1024 * 1024
BODY_LIMIT = 3 * MiB  # kube-apiserver's MaxRequestBodyBytes
HUGE = 100 * 1000 * 1000
# Peak RSS an attack may add to the apiserver: a few buffered copies of a 3 MiB body.
APISERVER_GROWTH = 64 * MiB
CLI_MAX_RSS = 150 * MiB  # the CLI's whole peak, Python and its imports included (~60 MiB)
NS = "oversized"


class Apiserver:
    def __init__(self, url: str, token: str, pid: int, etcd) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port, self.token, self.pid, self.etcd = parsed.hostname, parsed.port, token, pid, etcd
        self.url = url

    def reset_peak(self) -> int:
        """Set the process's peak RSS back to its current RSS (clear_refs 5) and return it."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        return self._status_kib("VmHWM") * 1024

    def peak(self) -> int:
        return self._status_kib("VmHWM") * 1024

    def _status_kib(self, field: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} for {self.pid}")


@pytest.fixture(scope="module")
def server(etcd, tmp_path_factory) -> Iterator[tuple[Apiserver, Path]]:
    base = tmp_path_factory.mktemp("oversized")
    proc, api = start_apiserver(etcd, base)
    try:
        status, raw = send(Apiserver(api.url, api.token, proc.pid, etcd), "POST", "/api/v1/namespaces",
                           json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}).encode())
        assert status in (201, 409), raw
        yield Apiserver(api.url, api.token, proc.pid, etcd), api.kubeconfig
    finally:
        stop_process(proc)
    log = api.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]


def _chunks(body: bytes | int, size: int = 256 * 1024) -> Iterator[bytes]:
    """The body's bytes in pieces; an int is a body of that many spaces, never held whole."""
    if isinstance(body, bytes):
        for i in range(0, len(body), size):
            yield body[i:i + size]
        return
    left = body
    while left > 0:
        yield b" " * min(size, left)
        left -= size


def send(api: Apiserver, method: str, path: str, body: bytes | int, ctype: str = "application/json",
         chunked: bool = False, timeout: float = 60) -> tuple[int, bytes]:
    """One request over a raw socket that stops sending as soon as the server answers
    (a server that refuses a 100 MB body answers early and may close mid-upload)."""
    length = body if isinstance(body, int) else len(body)
    head = [f"{method} {path} HTTP/1.1", f"Host: {api.host}:{api.port}", f"Authorization: Bearer {api.token}",
            f"Content-Type: {ctype}", "Connection: close"]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}")
    sock = socket.create_connection((api.host, api.port), timeout=timeout)
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            for piece in _chunks(body):
                if select.select([sock], [], [], 0)[0]:
                    break  # the answer is there: stop uploading
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            else:
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed after answering; the answer is in our receive buffer
        return _read_response(sock, time.monotonic() + timeout)
    finally:
        sock.close()


def _read_response(sock: socket.socket, deadline: float) -> tuple[int, bytes]:
    data = b""
    while time.monotonic() < deadline:
        try:
            piece = sock.recv(65536)
        except ConnectionResetError:
            break
        if not piece:
            break
        data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), f"no HTTP answer: {data[:200]!r}"
    status = int(head.split()[1])
    if b"transfer-encoding: chunked" in head.lower():
        out, pos = b"", 0
        while True:
            line_end = rest.index(b"\r\n", pos)
            size = int(rest[pos:line_end], 16)
            if size == 0:
                break
            out += rest[line_end + 2:line_end + 2 + size]
            pos = line_end + 4 + size
        rest = out
    return status, rest


def _status(raw: bytes, code: int) -> dict:
    doc = json.loads(raw)
    assert doc["kind"] == "Status" and doc["code"] == code, doc
    return doc


CM_PATH = f"/api/v1/namespaces/{NS}/configmaps"
TARGETS = [("POST", CM_PATH, "application/json"),
           ("PUT", f"{CM_PATH}/target", "application/json"),
           ("PATCH", f"{CM_PATH}/target", "application/merge-patch+json"),
           ("PATCH", f"{CM_PATH}/target", "application/apply-patch+yaml")]


def _target_exists(server: tuple[Apiserver, Path]) -> Apiserver:
    api = server[0]
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "target"}}).encode()
    status, raw = send(api, "POST", CM_PATH, body)
    assert status in (201, 409), raw
    return api


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("method,path,ctype", TARGETS)
def test_body_over_the_limit_is_413_without_memory_growth(server, method, path, ctype, chunked):
    api = _target_exists(server)
    base = api.reset_peak()
    query = "?fieldManager=t" if "apply" in ctype else ""
    for size in (BODY_LIMIT + 1, HUGE):
        status, raw = send(api, method, path + query, size, ctype, chunked=chunked)
        assert status == 413, raw[:300]
        assert _status(raw, 413)["reason"] == "RequestEntityTooLarge"
    assert api.peak() - base < APISERVER_GROWTH, f"apiserver grew by {(api.peak() - base) // MiB} MiB"


HOSTILE = {
    "nested-json": ("application/json", deep_json(10_000), "nested deeper"),
    "nested-yaml": ("application/yaml", deep_yaml(10_000), "nested deeper"),
    "billion-laughs": ("application/yaml", billion_laughs(), "excessive aliasing"),
    "cyclic-alias": ("application/yaml", b"apiVersion: v1\nkind: ConfigMap\ndata: &a {a: *a}\n", "cyclic alias"),
}


# A PATCH carries what its type says: JSON for merge patches, YAML for apply patches.
HOSTILE_CASES = [(case, method, path, ctype) for case in sorted(HOSTILE) for method, path, ctype in TARGETS
                 if method != "PATCH" or (HOSTILE[case][0] == "application/yaml") == ("yaml" in ctype)]


@pytest.mark.parametrize("case,method,path,ctype", HOSTILE_CASES)
def test_nesting_and_alias_bombs_are_400_without_memory_growth(server, case, method, path, ctype):
    api = _target_exists(server)
    body_type, body, reason = HOSTILE[case]
    if method == "PATCH":
        body_type = ctype
    base = api.reset_peak()
    started = time.monotonic()
    query = "?fieldManager=t" if "apply" in body_type else ""
    status, raw = send(api, method, path + query, body, body_type)
    assert status == 400, raw[:300]
    assert reason in _status(raw, 400)["message"]
    assert time.monotonic() - started < 10
    assert api.peak() - base < APISERVER_GROWTH, f"apiserver grew by {(api.peak() - base) // MiB} MiB"
    assert api.etcd.get_json(f"/registry/configmaps/{NS}/deep") is None
    assert api.etcd.get_json(f"/registry/configmaps/{NS}/lol") is None


def test_nesting_at_the_limit_is_still_accepted(server):
    from kubeling.bounded_decode import MAX_DEPTH
    api = server[0]
    # data holds strings only: a nested value is refused by validation (422), not by the decoder.
    status, raw = send(api, "POST", CM_PATH, deep_json(MAX_DEPTH - 3, name="at-limit"))
    assert status == 422, raw[:300]


# --- the CLI -----------------------------------------------------------------------------------

# Runs `kubeling apply` as its child and reports the child's own peak RSS. A direct child of
# pytest would not do: Linux carries a process's peak RSS across fork and exec, so every child
# of a big pytest process (300 MiB late in the suite) "peaked" at pytest's size. This launcher
# starts small, so its child's figure is the CLI's own. An address-space cap keeps a runaway
# child from taking the machine down with it; an alarm (kept across exec) bounds its run.
_LAUNCHER = r"""
import os, resource, signal, sys
resource.setrlimit(resource.RLIMIT_AS, (4096 << 20, 4096 << 20))
pid = os.fork()
if pid == 0:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    signal.alarm(120)
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024)
"""


def _apply(kubeconfig: Path, tmp: Path, path: Path | None, stdin: Path | None = None) -> tuple[int, str, int]:
    """`kubeling apply -f path` (or `-f -` reading the file `stdin`): exit code, stderr
    and the CLI's own peak RSS in bytes."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    err_path = tmp / "stderr"
    with open(err_path, "wb") as err, open(stdin or os.devnull, "rb") as inp:
        out = subprocess.run([sys.executable, "-c", _LAUNCHER, "-m", "kubeling", "apply", "-f",
                              str(path) if path else "-"], stdin=inp, stdout=subprocess.PIPE, stderr=err,
                             env=env, cwd=REPO, timeout=180, check=True)
    code, max_rss = (int(v) for v in out.stdout.split())
    return code, err_path.read_text(errors="replace"), max_rss


def _huge_manifest(path: Path) -> Path:
    """A ConfigMap manifest of 100 MB, written in pieces (never held in memory)."""
    with open(path, "wb") as f:
        f.write(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: huge, namespace: %s}\ndata:\n  big: " % NS.encode())
        for piece in _chunks(HUGE):
            f.write(piece.replace(b" ", b"x"))
        f.write(b"\n")
    return path


CLI_CASES = {
    "huge": (lambda p: _huge_manifest(p), "too large"),
    "nested": (lambda p: (p.write_bytes(deep_yaml(10_000)), p)[1], "nested deeper"),
    "nested-json": (lambda p: (p.write_bytes(deep_json(10_000)), p)[1], "nested deeper"),
    "billion-laughs": (lambda p: (p.write_bytes(billion_laughs()), p)[1], "excessive aliasing"),
}


@pytest.mark.parametrize("via_stdin", [False, True], ids=["file", "stdin"])
@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_refuses_in_one_line_with_bounded_memory(server, tmp_path, case, via_stdin):
    api, kubeconfig = server
    make, reason = CLI_CASES[case]
    manifest = make(tmp_path / "manifest.yaml")
    code, err, max_rss = _apply(kubeconfig, tmp_path, None if via_stdin else manifest,
                                manifest if via_stdin else None)
    assert code != 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and reason in lines[0], err[-2000:]
    assert max_rss < CLI_MAX_RSS, f"kubeling apply peaked at {max_rss // MiB} MiB"
    for key in (f"{NS}/huge", "default/deep", "default/lol"):
        assert api.etcd.get_json(f"/registry/configmaps/{key}") is None
    manifest.unlink()


MALFORMED = {
    "kind-not-a-string": b"apiVersion: v1\nkind: 5\nmetadata: {name: x}\n",
    "apiversion-a-list": b"apiVersion: [1]\nkind: ConfigMap\nmetadata: {name: x}\n",
    "list-items-not-a-list": b"apiVersion: v1\nkind: List\nitems: 5\n",
    "metadata-not-an-object": b"apiVersion: v1\nkind: ConfigMap\nmetadata: 5\n",
    "name-not-a-string": b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 5}\n",
    "namespace-not-a-string": b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: [a]}\n",
    "not-utf8": b"\xff\xfe\x00garbage\x80\x81",
    "nul-bytes": b"apiVersion: v1\x00\nkind: ConfigMap\n",
    "timestamp-and-set": b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ts, namespace: oversized, "
                         b"creationTimestamp: 2024-01-02}\ndata: !!set {a, b}\n",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_cli_answers_malformed_manifests_in_one_line(server, tmp_path, case):
    """Wrong types at the top levels of a manifest: a one-line error and exit 1, or (for
    YAML-only types JSON cannot carry) a clean apply; never a traceback."""
    _, kubeconfig = server
    manifest = tmp_path / "m.yaml"
    manifest.write_bytes(MALFORMED[case])
    code, err, _ = _apply(kubeconfig, tmp_path, manifest)
    assert "Traceback" not in err, err[-2000:]
    if case == "timestamp-and-set":
        assert code in (0, 1) and len(err.strip().splitlines()) <= 1, err
        return
    # From the CLI ("error: ...") or from the server ("The ConfigMap ... is invalid"): one line.
    assert code == 1 and len(err.strip().splitlines()) == 1, err[-2000:]
