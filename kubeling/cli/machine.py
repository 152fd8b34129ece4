"""What `kubeling init`, `join` and `reset` share: where this machine's kubeling files
live, the checks made before anything changes, writing files so that a failure leaves
nothing behind, starting the units, and waiting for the Node to be Ready."""
from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import secrets
import shutil
import socket
import string
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click

from kubeling import errors, systemd
from kubeling.client import Client
from kubeling.resources import BY_PLURAL

# kubeadm's bootstrap token: "<id>.<secret>", the id public, the secret not.
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
CNI_CONF_NAME = "10-kubeling.conflist"
APISERVER_PORT = 6443


class SetupError(Exception):
    """A one-line reason init/join/reset cannot go on."""


@dataclass(frozen=True)
class Machine:
    """This machine's kubeling paths (each can be moved for tests)."""
    config_dir: Path
    data_dir: Path
    unit_dir: Path
    defaults_dir: Path
    cni_conf_dir: Path
    cni_bin_dir: Path

    @property
    def pki(self) -> Path:
        return self.config_dir / "pki"

    @property
    def ca_cert(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.pki / "ca.key"

    @property
    def token_file(self) -> Path:
        return self.config_dir / "tokens.csv"

    @property
    def join_command(self) -> Path:
        return self.config_dir / "join-command"

    @property
    def cni_conf(self) -> Path:
        return self.cni_conf_dir / CNI_CONF_NAME

    def kubeconfig(self, who: str) -> Path:
        """admin, controller-manager, scheduler, proxy or node."""
        return self.config_dir / f"{who}.kubeconfig"

    @property
    def dirs(self) -> systemd.Dirs:
        return systemd.Dirs(self.unit_dir, self.defaults_dir, self.config_dir)


def machine_options(fn: Callable) -> Callable:
    """--config-dir and --data-dir as `kubeling up` has them; the system dirs are hidden
    options (environment variables) that only tests move."""
    opts = [
        click.option("--config-dir", envvar="KUBELING_CONFIG_DIR", default="/etc/kubeling", show_default=True),
        click.option("--data-dir", envvar="KUBELING_DATA_DIR", default="/var/lib/kubeling", show_default=True),
        click.option("--unit-dir", envvar="KUBELING_UNIT_DIR", default=systemd.UNIT_DIR, hidden=True),
        click.option("--defaults-dir", envvar="KUBELING_DEFAULTS_DIR", default=systemd.DEFAULTS_DIR, hidden=True),
        click.option("--cni-conf-dir", envvar="KUBELING_CNI_CONF_DIR", default="/etc/cni/net.d", hidden=True),
        click.option("--cni-bin-dir", envvar="KUBELING_CNI_BIN_DIR", default="/opt/cni/bin", hidden=True),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def runtime_option(fn: Callable) -> Callable:
    return click.option("--runtime", type=click.Choice(systemd.RUNTIMES), default="docker", show_default=True,
                        help="the node's container runtime: the machine's Docker, or a containerd of "
                             "kubeling's own (through CRI, beside Docker's)")(fn)


def with_runtime_args(m: Machine, args: dict[str, list[str]], runtime: str) -> dict[str, list[str]]:
    """The units' flags for a node on `runtime`: with containerd, its unit's flags and the
    agent's --container-runtime-endpoint (unit order: containerd before the agent)."""
    if runtime != "containerd":
        return args
    out: dict[str, list[str]] = {}
    for component, flags in args.items():
        if component == "agent":
            out[systemd.CONTAINERD] = [
                "--config", str(m.config_dir / "containerd" / "config.toml"),
                "--root", str(m.data_dir / "containerd"), "--state", systemd.CONTAINERD_STATE,
                # containerd runs the CNI plugins itself, from one dir (loopback linked into it).
                "--cni-conf-dir", str(m.cni_conf_dir), "--cni-bin-dir", str(m.cni_bin_dir)]
            flags = [*flags, "--container-runtime-endpoint", systemd.CONTAINERD_ENDPOINT]
        out[component] = flags
    return out


def import_images_hook(runtime: str) -> dict[str, Callable[[], None]]:
    """What runs right after a unit started: containerd gets the node's images from the
    local Docker before the agent starts (no registry is reachable)."""
    if runtime != "containerd":
        return {}

    def run() -> None:
        from .components import component_argv
        step("importing the pause and busybox images from Docker into kubeling's containerd")
        proc = subprocess.run(component_argv("containerd", ["import-images", "--address",
                                                            systemd.CONTAINERD_ENDPOINT]),
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise SetupError(f"importing the images into containerd failed: {proc.stderr.strip()[-300:]}")
    return {systemd.CONTAINERD: run}


def machine_from(kw: dict[str, object]) -> Machine:
    names = ("config_dir", "data_dir", "unit_dir", "defaults_dir", "cni_conf_dir", "cni_bin_dir")
    return Machine(**{n: Path(str(kw.pop(n))).absolute() for n in names})


def step(message: str) -> None:
    click.echo(f"==> {message}")


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


# ---- checks (nothing changes yet) --------------------------------------------------

def existing_installation(m: Machine) -> str | None:
    """What shows that this machine already is a kubeling control plane or node."""
    units = systemd.installed(m.dirs)
    if units:
        return f"unit {m.dirs.unit(units[0])}"
    for who in ("admin", "node"):
        if m.kubeconfig(who).exists():
            return str(m.kubeconfig(who))
    return None


def check_systemd(no_start: bool) -> None:
    if not no_start and not systemd.booted():
        raise SetupError("this machine does not run systemd (PID 1 is not systemd), so the kubeling "
                         "units cannot run here; use `kubeling up` instead, or --no-start to only write the files")


def check_runtime(runtime: str, no_start: bool) -> None:
    if runtime == "containerd" and not no_start:
        for tool, package in (("containerd", "containerd"), ("ctr", "containerd"), ("docker", "docker.io")):
            # docker: the images come from the local Docker (no registry is reachable).
            if shutil.which(tool) is None:
                raise SetupError(f"--runtime containerd needs {tool} (Debian: apt-get install {package})")


def check_token(token: str) -> str:
    if not TOKEN_RE.match(token):
        raise SetupError(f"token {token!r} is not a bootstrap token of the form [a-z0-9]{{6}}.[a-z0-9]{{16}}")
    return token


def new_token() -> str:
    alphabet = string.ascii_lowercase + string.digits
    pick = lambda n: "".join(secrets.choice(alphabet) for _ in range(n))  # noqa: E731
    return f"{pick(6)}.{pick(16)}"


def check_ip(text: str, what: str) -> str:
    try:
        addr = ipaddress.IPv4Address(text)
    except ValueError:
        raise SetupError(f"{what} {text!r} is not an IPv4 address") from None
    if addr.is_loopback or addr.is_unspecified or addr.is_multicast:
        raise SetupError(f"{what} {text} cannot be used: other nodes cannot reach this machine there")
    return str(addr)


def check_node_name(name: str) -> str:
    # A Node's name is a DNS-1123 subdomain; it is also the CN of the node's certificate.
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", name) \
            or len(name) > 253:
        raise SetupError(f"node name {name!r} is not a valid DNS-1123 subdomain (lower case, digits, '-', '.'); "
                         "pass --node-name")
    return name


def default_node_name() -> str:
    return socket.gethostname().lower()


def read_file(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SetupError(f"cannot read {what} {path}: {exc.strerror}") from None


def check_port_free(port: int, what: str) -> None:
    with socket.socket() as s:
        s.settimeout(0.3)
        if s.connect_ex(("127.0.0.1", port)) == 0:
            raise SetupError(f"port {port} ({what}) is already in use on this machine")


# ---- writing -----------------------------------------------------------------------

class FileWriter:
    """Writes files and remembers what it created, so a failure can take it all back."""

    def __init__(self) -> None:
        self.created: list[Path] = []

    def mkdir(self, path: Path, mode: int = 0o755) -> None:
        missing = []
        p = path
        while not p.exists():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            # Parents as any system dir; the dir asked for with its own mode (umask aside).
            d.mkdir(mode=0o755)
            os.chmod(d, mode if d == path else 0o755)
            self.created.append(d)

    def write(self, path: Path, data: bytes | str, mode: int = 0o644) -> None:
        self.mkdir(path.parent)
        raw = data.encode() if isinstance(data, str) else data
        existed = path.exists()
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.chmod(tmp, mode)  # umask must not loosen nor tighten it
        tmp.replace(path)
        if not existed:
            self.created.append(path)

    def adopt(self, paths: Iterable[Path]) -> None:
        """Files something else wrote for us (certificates): also ours to take back."""
        self.created.extend(p for p in paths if p not in self.created)

    def rollback(self) -> None:
        for p in reversed(self.created):
            try:
                if p.is_dir() and not p.is_symlink():
                    p.rmdir()  # only if empty: never remove what we did not create
                else:
                    p.unlink()
            except OSError:
                pass
        self.created.clear()


@contextmanager
def writing_files() -> Iterator[FileWriter]:
    """A FileWriter for the block; if the block fails, all it wrote is taken back and the command stops."""
    w = FileWriter()
    try:
        yield w
    except (SetupError, OSError, ValueError) as exc:
        w.rollback()
        fail(f"writing the files failed, nothing was kept: {exc}")


def write_component(w: FileWriter, m: Machine, component: str, args: list[str]) -> None:
    w.write(m.dirs.defaults(component), systemd.render_defaults(component, args), 0o644)
    w.write(m.dirs.unit(component), systemd.render_unit(component, m.dirs), 0o644)


def install_cni_plugins(m: Machine) -> None:
    """The kubeling-bridge/kubeling-ipam executables the agent's conflist names."""
    if all((m.cni_bin_dir / p).exists() for p in ("kubeling-bridge", "kubeling-ipam")):
        return
    step(f"installing the CNI plugins into {m.cni_bin_dir}")
    proc = subprocess.run([sys.executable, "-m", "cni.install", "--dest", str(m.cni_bin_dir)],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise SetupError(f"installing the CNI plugins failed: {proc.stderr.strip()[-300:]}")


# ---- starting and waiting ----------------------------------------------------------

def start_units(components: Iterable[str], after: dict[str, Callable[[], None]] | None = None) -> None:
    systemd.systemctl("daemon-reload")
    for c in components:
        step(f"starting {systemd.unit_name(c)}")
        # A Type=notify unit returns from start only once it said READY=1.
        systemd.systemctl("enable", "--now", systemd.unit_name(c))
        if after and c in after:
            after[c]()


def wait_node_ready(kubeconfig: Path, node: str, timeout: float) -> None:
    """Wait (bounded) until the Node reports Ready; SetupError says why not."""
    if timeout <= 0:
        return
    step(f"waiting up to {timeout:.0f}s for node {node} to be Ready")
    reason = asyncio.run(_wait_ready(kubeconfig, node, timeout))
    if reason:
        raise SetupError(f"node {node} is not Ready after {timeout:.0f}s: {reason} "
                         f"(see `journalctl -u kubeling-agent`)")
    step(f"node {node} is Ready")


def start_and_wait(components: Iterable[str], kubeconfig: Path, node: str, wait_s: float, no_start: bool,
                   before: Callable[[], None] | None = None,
                   after: dict[str, Callable[[], None]] | None = None) -> bool:
    """Start the units (after `before()`) and wait for the node to be Ready; the
    command stops with a message if that fails. False with --no-start."""
    if no_start:
        step("--no-start: the units are written, not started")
        return False
    try:
        if before is not None:
            before()
        start_units(components, after)
        wait_node_ready(kubeconfig, node, wait_s)
    except (SetupError, RuntimeError) as exc:
        fail(f"{exc}; the files stay in place: `kubeling reset` removes them")
    return True


async def _wait_ready(kubeconfig: Path, node: str, timeout: float) -> str:
    client = Client.from_kubeconfig(str(kubeconfig), user_agent="kubeling-init")
    deadline = time.monotonic() + timeout
    reason = "not checked yet"
    try:
        while time.monotonic() < deadline:
            try:
                obj = await client.get(BY_PLURAL[("", "nodes")], node)
                cond = next((c for c in (obj.get("status") or {}).get("conditions") or []
                             if c.get("type") == "Ready"), None)
                if cond and cond.get("status") == "True":
                    return ""
                reason = (f"Ready={cond.get('status')} ({cond.get('reason')}: {cond.get('message')})"
                          if cond else "the node reports no Ready condition yet")
            except errors.ApiError as exc:
                reason = ("the node has not registered yet" if exc.code == 404
                          else f"the API server answers: {exc.message}")
            await asyncio.sleep(1.0)
    finally:
        await client.close()
    return reason


def remove_path(path: Path) -> bool:
    """Remove a file or a whole directory; True when something was there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
        return True
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False
