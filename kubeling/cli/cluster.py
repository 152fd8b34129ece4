"""`kubeling up` / `kubeling down`: this machine's control plane (and node) as
background processes with pid files and logs.

Every path and port can be moved (options or KUBELING_* variables) so tests
can run a whole cluster of their own beside the real one.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import click

from kubeling import encryption_config, kubeconfig, pki

from .components import component_argv


@dataclass(frozen=True)
class Layout:
    run_dir: Path
    log_dir: Path
    data_dir: Path
    config_dir: Path
    etcd_port: int
    apiserver_port: int
    runtime: str = "docker"  # the node's: docker, or containerd (kubeling's own, through CRI)

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def cert(self) -> Path:
        return self.config_dir / "pki" / "apiserver.crt"

    @property
    def key(self) -> Path:
        return self.config_dir / "pki" / "apiserver.key"

    @property
    def encryption_config(self) -> Path:
        return self.config_dir / "encryption-config.yaml"

    @property
    def sa_key(self) -> Path:
        return self.config_dir / "pki" / "sa.key"

    @property
    def kubeconfig(self) -> Path:
        return self.config_dir / "admin.kubeconfig"

    @property
    def token_file(self) -> Path:
        return self.config_dir / "tokens.csv"

    @property
    def cni_socket(self) -> Path:
        return self.run_dir / "cni.sock"

    @property
    def containerd_config(self) -> Path:
        return self.config_dir / "containerd" / "config.toml"

    @property
    def containerd_endpoint(self) -> str:
        # Beside the pid files: /run/kubeling/containerd/containerd.sock for the real layout.
        return f"unix://{self.run_dir / 'containerd' / 'containerd.sock'}"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"


@dataclass(frozen=True)
class Component:
    name: str
    argv: Callable[[Layout], list[str]]
    ready: Callable[[Layout], bool]
    node: bool = False  # runs on a node (pods, network) rather than in the control plane
    runtime: str | None = None  # only on a node with this runtime
    after: Callable[[Layout], None] | None = None  # once ready, before the next component starts


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _healthz(layout: Layout) -> bool:
    ctx = ssl.create_default_context(cafile=str(layout.cert))
    try:
        with urllib.request.urlopen(layout.server + "/healthz", timeout=1, context=ctx) as resp:
            return resp.status == 200
    except OSError:
        return False


def _etcd_argv(layout: Layout) -> list[str]:
    peer = f"http://127.0.0.1:{layout.etcd_port + 1}"
    return ["etcd", "--name", "kubeling", "--data-dir", str(layout.data_dir / "etcd"),
            "--listen-client-urls", layout.etcd_url, "--advertise-client-urls", layout.etcd_url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"kubeling={peer}",
            "--auto-compaction-mode", "periodic", "--auto-compaction-retention", "10m",
            # kubeadm's value: etcd keeps at most this many raft entries in memory between
            # snapshots (its default, 100,000, reads as a slow memory leak in a soak).
            "--snapshot-count", "10000"]


def _wait_default_serviceaccount(layout: Layout, token: str, timeout: float = 30) -> bool:
    """Wait until the controller manager made `default/default`: pods are refused until their
    namespace's ServiceAccount exists (ServiceAccount admission), so `up` returns when a pod
    applied right after it is accepted."""
    ctx = ssl.create_default_context(cafile=str(layout.cert))
    req = urllib.request.Request(layout.server + "/api/v1/namespaces/default/serviceaccounts/default",
                                 headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(req, timeout=2, context=ctx) as resp:
                if resp.status == 200:
                    return True
        except OSError:  # not there yet (404) or the apiserver is busy
            pass
        time.sleep(0.2)
    return False


def _settled(_: Layout) -> bool:
    # Clients of the apiserver have no port of their own; alive after a moment is ready.
    time.sleep(1.0)
    return True


def _client_argv(name: str) -> Callable[[Layout], list[str]]:
    return lambda lay: component_argv(name, ["--kubeconfig", str(lay.kubeconfig)])


# The kube-dns Service's address (the tenth of the service range, as kubeadm's): the agent's --cluster-dns.
CLUSTER_DNS_IP = "10.96.0.10"


def _dns_argv(layout: Layout) -> list[str]:
    """The DNS server on this machine's address (that of the default route's interface, the
    agent's node IP here), published as kube-dns's endpoint. Port 53 for the real layout; a
    moved layout (a test's cluster beside the real one) takes a free port unless
    KUBELING_DNS_PORT says which: pods reach it through the ClusterIP either way."""
    port = os.environ.get("KUBELING_DNS_PORT") or ("53" if layout.apiserver_port == 6443 else "0")
    return component_argv("dns", ["--kubeconfig", str(layout.kubeconfig), "--bind", "auto", "--port", port,
                                  "--publish-address", "auto"])


def _containerd_argv(layout: Layout) -> list[str]:
    return component_argv("containerd", [
        "--config", str(layout.containerd_config), "--root", str(layout.data_dir / "containerd"),
        "--state", str(layout.run_dir / "containerd"),
        # What the agent under `up` uses: its conflist there, our plugins (and loopback) here.
        "--cni-conf-dir", "/etc/cni/net.d", "--cni-bin-dir", "/opt/cni/bin"])


def _containerd_ready(layout: Layout) -> bool:
    proc = subprocess.run(component_argv("containerd", ["wait", "--address", layout.containerd_endpoint,
                                                        "--timeout", "3"]), capture_output=True, timeout=30)
    return proc.returncode == 0


def _containerd_images(layout: Layout) -> None:
    """The pause and busybox images from the local Docker (no registry is reachable)."""
    proc = subprocess.run(component_argv("containerd", ["import-images", "--address", layout.containerd_endpoint]),
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise click.ClickException(f"importing the images into containerd failed: {proc.stderr.strip()[-500:]}")
    for line in proc.stdout.splitlines():
        click.echo(f"    {line}")


def _agent_argv(layout: Layout) -> list[str]:
    args = ["--kubeconfig", str(layout.kubeconfig), "--root-dir", str(layout.data_dir / "agent"),
            "--client-ca-file", str(layout.config_dir / "pki" / "kubelet-ca.crt"), "--cluster-dns", CLUSTER_DNS_IP]
    if layout.runtime == "containerd":
        args += ["--container-runtime-endpoint", layout.containerd_endpoint]
    return component_argv("agent", args)


COMPONENTS: tuple[Component, ...] = (
    Component("etcd", _etcd_argv, lambda lay: _port_open(lay.etcd_port)),
    Component("apiserver", lambda lay: component_argv("apiserver", [
        "--etcd", lay.etcd_url, "--port", str(lay.apiserver_port),
        "--token-file", str(lay.token_file),
        "--tls-cert-file", str(lay.cert), "--tls-private-key-file", str(lay.key),
        "--encryption-provider-config", str(lay.encryption_config),
        "--service-account-signing-key-file", str(lay.sa_key),
        "--service-account-key-file", str(lay.sa_key),
        # The agents' port answers only this certificate (see agent/logs_server.py).
        "--kubelet-client-certificate", str(lay.config_dir / "pki" / "apiserver-kubelet-client.crt"),
        "--kubelet-client-key", str(lay.config_dir / "pki" / "apiserver-kubelet-client.key")]), _healthz),
    # The self-signed serving certificate is the CA that verifies the apiserver: kube-root-ca.crt.
    Component("controller-manager", lambda lay: component_argv("controller-manager", [
        "--kubeconfig", str(lay.kubeconfig), "--root-ca-file", str(lay.cert)]), _settled),
    Component("scheduler", _client_argv("scheduler"), _settled),
    Component("dns", _dns_argv, _settled),
    Component("cni-daemon", lambda lay: component_argv("cni-daemon", ["--socket", str(lay.cni_socket)]),
              lambda lay: lay.cni_socket.exists(), node=True),
    Component("containerd", _containerd_argv, _containerd_ready, node=True, runtime="containerd",
              after=_containerd_images),
    Component("agent", _agent_argv, _settled, node=True),
    Component("proxy", _client_argv("proxy"), _settled, node=True),
)


def _running_pid(layout: Layout, name: str) -> int | None:
    try:
        pid = int(layout.pid_file(name).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    try:
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return None
    except OSError:
        return None
    return pid


def _start(layout: Layout, comp: Component, timeout: float = 30) -> None:
    t0 = time.monotonic()
    click.echo(f"==> {comp.name}: ", nl=False)
    pid = _running_pid(layout, comp.name)
    if pid is not None:
        click.echo(f"already running (pid {pid})")
        if comp.after is not None:
            comp.after(layout)
        return
    log = open(layout.log_file(comp.name), "ab")
    proc = subprocess.Popen(comp.argv(layout), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ, "KUBECONFIG": str(layout.kubeconfig)})
    log.close()
    layout.pid_file(comp.name).write_text(f"{proc.pid}\n")
    while time.monotonic() - t0 < timeout:
        if comp.ready(layout) and proc.poll() is None:
            click.echo(f"started (pid {proc.pid}, {time.monotonic() - t0:.1f}s)")
            if comp.after is not None:
                comp.after(layout)
            return
        if proc.poll() is not None:
            tail = layout.log_file(comp.name).read_text(errors="replace").splitlines()[-5:]
            layout.pid_file(comp.name).unlink(missing_ok=True)
            raise click.ClickException(f"{comp.name} exited with code {proc.returncode}; log "
                                       f"{layout.log_file(comp.name)}:\n  " + "\n  ".join(tail))
        time.sleep(0.1)
    raise click.ClickException(f"{comp.name} did not become ready in {timeout:.0f}s; see "
                               f"{layout.log_file(comp.name)}")


def _stop(layout: Layout, name: str, timeout: float = 15) -> None:
    pid = _running_pid(layout, name)
    if pid is None:
        layout.pid_file(name).unlink(missing_ok=True)
        return
    click.echo(f"==> stopping {name} (pid {pid})")
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _running_pid(layout, name) is not None:
        time.sleep(0.1)
    if _running_pid(layout, name) is not None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    layout.pid_file(name).unlink(missing_ok=True)


def _ensure_token(layout: Layout) -> str:
    if layout.token_file.exists():
        for line in layout.token_file.read_text().splitlines():
            if line.strip():
                return line.split(",", 1)[0].strip()
    token = secrets.token_hex(24)
    layout.token_file.write_text(f"{token},admin\n")
    os.chmod(layout.token_file, 0o600)
    return token


def layout_options(fn: Callable) -> Callable:
    opts = [
        click.option("--run-dir", envvar="KUBELING_RUN_DIR", default="/run/kubeling", show_default=True),
        click.option("--log-dir", envvar="KUBELING_LOG_DIR", default="/var/log/kubeling", show_default=True),
        click.option("--data-dir", envvar="KUBELING_DATA_DIR", default="/var/lib/kubeling", show_default=True),
        click.option("--config-dir", envvar="KUBELING_CONFIG_DIR", default="/etc/kubeling", show_default=True),
        click.option("--etcd-port", envvar="KUBELING_ETCD_PORT", type=int, default=2379, show_default=True),
        click.option("--apiserver-port", envvar="KUBELING_APISERVER_PORT", type=int, default=6443,
                     show_default=True),
        click.option("--node/--no-node", "node", envvar="KUBELING_NODE", default=True, show_default=True,
                     help="Also run this machine's node (CNI daemon, agent): pods run here."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _layout(run_dir: str, log_dir: str, data_dir: str, config_dir: str, etcd_port: int,
            apiserver_port: int, node: bool = True) -> Layout:
    return Layout(Path(run_dir), Path(log_dir), Path(data_dir), Path(config_dir), etcd_port, apiserver_port)


def _teardown_node(layout: Layout, kubeconfig: Path | None = None, runtime_endpoint: str | None = None) -> list[str]:
    """Pods, their network and our iptables chains leave the machine (`kubeconfig`: the
    credentials the agent ran with, if not the admin's, as on a joined worker;
    `runtime_endpoint`: the CRI socket it ran pods through, if not the layout's)."""
    click.echo("==> removing this node's pods and pod network")
    if runtime_endpoint is None and layout.runtime == "containerd":
        runtime_endpoint = layout.containerd_endpoint
    runtime = ["--container-runtime-endpoint", runtime_endpoint] if runtime_endpoint else []
    steps = [component_argv("agent", ["--kubeconfig", str(kubeconfig or layout.kubeconfig), "--root-dir",
                                      str(layout.data_dir / "agent"), *runtime, "--teardown"])]
    if any(c.name == "proxy" for c in COMPONENTS):
        steps.append(component_argv("proxy", ["--cleanup"]))
    failed = []
    for argv in steps:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            failed.append(f"{' '.join(argv[2:4])} failed: {proc.stderr.strip()[-500:]}")
    return failed


def _stop_containerd(layout: Layout) -> list[str]:
    """Our containerd, after the agent's teardown: whatever sandbox is left goes first (so no
    shim, netns or IP outlives it), then the daemon; its shims must be gone with it."""
    if _running_pid(layout, "containerd") is None:
        layout.pid_file("containerd").unlink(missing_ok=True)
        return []
    failed = []
    address = ["--address", layout.containerd_endpoint]
    proc = subprocess.run(component_argv("containerd", ["remove-sandboxes", *address]), capture_output=True,
                          text=True, timeout=300)
    if proc.returncode != 0:
        failed.append(f"containerd remove-sandboxes failed: {proc.stderr.strip()[-300:]}")
    _stop(layout, "containerd", timeout=30)
    shims = subprocess.run(component_argv("containerd", ["shims", "--wait", "15", *address]), capture_output=True,
                           text=True, timeout=60)
    if shims.returncode != 0:
        failed.append(f"containerd shims left running: pids {shims.stdout.strip()}")
    return failed


runtime_option = click.option("--runtime", type=click.Choice(["docker", "containerd"]), envvar="KUBELING_RUNTIME",
                              default="docker", show_default=True,
                              help="the node's container runtime: the machine's Docker, or a containerd of "
                                   "kubeling's own (through CRI, beside Docker's)")


@click.command("up")
@runtime_option
@layout_options
def up_cmd(node: bool, runtime: str, **kw: object) -> None:
    """Start etcd, the control plane and this machine's node (idempotent)."""
    layout = replace(_layout(**kw), runtime=runtime)  # type: ignore[arg-type]
    if shutil.which("etcd") is None:
        raise click.ClickException("etcd is not installed; run scripts/setup first")
    for d in (layout.run_dir, layout.log_dir, layout.data_dir, layout.config_dir):
        d.mkdir(parents=True, exist_ok=True)
    token = _ensure_token(layout)
    pki.ensure(layout.cert, layout.key)
    d = layout.config_dir / "pki"
    pki.ensure_kubelet_client(d / "kubelet-ca.crt", d / "kubelet-ca.key", d / "apiserver-kubelet-client.crt",
                              d / "apiserver-kubelet-client.key")
    # Made once and kept: a new key would leave the stored Secrets and issued tokens unreadable.
    encryption_config.write_config(layout.encryption_config)
    if not layout.sa_key.exists():
        fd = os.open(layout.sa_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pki.new_key_pem())
    kubeconfig.write(str(layout.kubeconfig), layout.server, token, layout.cert.read_bytes())
    if node and runtime == "containerd" and shutil.which("containerd") is None:
        raise click.ClickException("containerd is not installed (Debian: apt-get install containerd)")
    for comp in COMPONENTS:
        if (node or not comp.node) and comp.runtime in (None, runtime):
            _start(layout, comp)
    if not _wait_default_serviceaccount(layout, token):
        click.echo("warning: the default ServiceAccount did not appear; pods are refused until it does", err=True)
    click.echo(f"kubeling is up: kubeconfig {layout.kubeconfig}, API {layout.server}")


@click.command("down")
@click.option("--purge", is_flag=True, help="Also remove the etcd data.")
@layout_options
def down_cmd(purge: bool, node: bool, **kw: object) -> None:
    """Stop what `kubeling up` started; remove this node's pods and pod network."""
    layout = _layout(**kw)  # type: ignore[arg-type]
    # The pods are where the agent ran them: in our containerd if `up --runtime containerd` started it.
    if _running_pid(layout, "containerd") is not None:
        layout = replace(layout, runtime="containerd")
    node_parts = [c for c in COMPONENTS if c.node]
    for comp in reversed(node_parts):
        if comp.name not in ("cni-daemon", "containerd"):
            _stop(layout, comp.name)
    failed = _teardown_node(layout) if node and layout.kubeconfig.exists() else []
    failed += _stop_containerd(layout)
    for comp in reversed(COMPONENTS):
        _stop(layout, comp.name)
    if failed:
        # Everything is stopped all the same; say what could not be cleaned.
        raise click.ClickException("; ".join(failed))
    if purge:
        shutil.rmtree(layout.data_dir / "etcd", ignore_errors=True)
        click.echo(f"==> removed {layout.data_dir / 'etcd'}")
    click.echo("kubeling is down")
