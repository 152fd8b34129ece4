"""Real kubectl binaries and the official Python client against a real apiserver.

kubectl (client-go) sends a kubeconfig's bearer token only over TLS, so these tests
run their own apiserver process with a throw-away self-signed certificate, on the
session's etcd. Every kubectl run gets a fresh HOME and --cache-dir so discovery
and OpenAPI caches never leak between runs.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from kubeling import kubeconfig, pki
from tests.conftest import REPO, free_port, stop_process, wait_for

KUBECTL_DIR = Path("/usr/lib/google-cloud-sdk/bin")
VERSIONS = ("1.33", "1.27")


@dataclass
class TlsApiServer:
    url: str
    token: str
    kubeconfig: Path
    log: Path


def _self_signed(base: Path) -> tuple[Path, Path]:
    cert, key = base / "apiserver.crt", base / "apiserver.key"
    pki.self_signed(cert, key, ["127.0.0.1", "localhost"], days=1)
    return cert, key


def _kubeconfig(path: Path, url: str, token: str, ca: Path) -> None:
    kubeconfig.write(str(path), url, token, ca.read_bytes())


@pytest.fixture(scope="session")
def tls_apiserver(etcd, tmp_path_factory) -> Iterator[TlsApiServer]:
    base = tmp_path_factory.mktemp("tls-apiserver")
    cert, key = _self_signed(base)
    token = "kubectl-e2e-token"
    (base / "tokens.csv").write_text(f"{token},admin\n")
    port = free_port()
    log = base / "apiserver.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "controlplane.apiserver", "--etcd", etcd.url, "--bind", "127.0.0.1",
             "--port", str(port), "--token-file", str(base / "tokens.csv"),
             "--tls-cert-file", str(cert), "--tls-private-key-file", str(key)],
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    url = f"https://127.0.0.1:{port}"
    kubeconfig = base / "kubeconfig"
    _kubeconfig(kubeconfig, url, token, cert)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"apiserver exited: {log.read_text()[-2000:]}")
        return subprocess.run(["curl", "-sf", "--cacert", str(cert), url + "/readyz"],
                              capture_output=True).returncode == 0
    wait_for(ready, 30, "the TLS apiserver to answer")
    yield TlsApiServer(url, token, kubeconfig, log)
    stop_process(proc)
    assert proc.returncode is not None
    text = log.read_text()
    assert "Traceback" not in text, f"apiserver logged a traceback:\n{text[-4000:]}"


class Kubectl:
    """Runs one kubectl binary against the test apiserver with private caches."""

    def __init__(self, version: str, server: TlsApiServer, home: Path) -> None:
        self.version = version
        self.binary = KUBECTL_DIR / f"kubectl.{version}"
        self.server = server
        self.home = home

    @property
    def validate_flags(self) -> list[str]:
        # kubectl < 1.29 validates with OpenAPI v2 in protobuf, which kubeling does not serve.
        return ["--validate=false"] if self.version == "1.27" else []

    def __call__(self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.binary), "--kubeconfig", str(self.server.kubeconfig),
               "--cache-dir", str(self.home / "cache"), *args]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
                                   "TMPDIR": str(self.home), **(env or {})})
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        cmd = [str(self.binary), "--kubeconfig", str(self.server.kubeconfig),
               "--cache-dir", str(self.home / "cache"), *args]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
                                     "TMPDIR": str(self.home)})


@pytest.fixture(params=VERSIONS)
def kubectl(request, tls_apiserver, tmp_path) -> Kubectl:
    binary = KUBECTL_DIR / f"kubectl.{request.param}"
    if not binary.exists():
        pytest.fail(f"{binary} is not installed")
    home = tmp_path / f"home-{request.param}"
    home.mkdir()
    return Kubectl(request.param, tls_apiserver, home)


@pytest.fixture
def kubectl133(tls_apiserver, tmp_path) -> Kubectl:
    home = tmp_path / "home-1.33"
    home.mkdir()
    return Kubectl("1.33", tls_apiserver, home)


@pytest.fixture
def kns(tls_apiserver, tmp_path, unique_name) -> Iterator[str]:
    """A namespace for one test; at the end everything in it is deleted, the
    namespace is finalized (no namespace controller runs here) and both are
    checked to be gone."""
    home = tmp_path / "home-ns"
    home.mkdir()
    k = Kubectl("1.33", tls_apiserver, home)
    k("create", "-f", "-", stdin=f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {unique_name}}}\n")
    yield unique_name
    kinds = "pods,services,configmaps,endpoints,events,leases,endpointslices"
    # The apiserver records a pod's removal in an Event after answering the delete: one may
    # land after the first sweep listed the Events. A second sweep (bounded) takes it too.
    deadline = time.monotonic() + 15
    while True:
        k("delete", kinds, "--all", "-n", unique_name, "--grace-period=0", "--force", "--wait=true")
        left = k("get", kinds, "-n", unique_name, "-o", "name").stdout.strip()
        if not left or time.monotonic() > deadline or any(not n.startswith("event") for n in left.split()):
            break
    assert left == "", f"left behind in {unique_name}: {left}"
    k("delete", "namespace", unique_name, "--wait=false")
    k("replace", "--raw", f"/api/v1/namespaces/{unique_name}/finalize", "-f", "-",
      stdin=f'{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{unique_name}"}},"spec":{{"finalizers":[]}}}}')
    gone = k("get", "namespace", unique_name, check=False)
    assert "NotFound" in gone.stderr, gone.stdout + gone.stderr


def make_pod_yaml(name: str, image: str = "busybox", labels: dict[str, str] | None = None, **extra: object) -> str:
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {"app": name}},
           "spec": {"containers": [{"name": "main", "image": image, "ports": [{"containerPort": 80}]}], **extra}}
    return yaml.safe_dump(doc)


@pytest.fixture
def pod_yaml() -> Callable[..., str]:
    return make_pod_yaml


@pytest.fixture
def write(tmp_path) -> Callable[[str, str], str]:
    def _write(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return _write
