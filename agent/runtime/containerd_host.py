"""kubeling's own containerd on a machine, beside Docker's and sharing nothing with it:
its config written, the daemon started (or exec'd, under systemd), waited for until CRI
says RuntimeReady, images copied in from the local Docker, and stopped with no shim left.

`python -m agent.runtime.containerd_host` (`kubeling containerd ...`) is the command
line the CLI and the systemd unit use; kubeling/ imports nothing of the agent."""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from agent.runtime.containerd_config import (CRI_NAMESPACE, DEFAULT_ROOT, DEFAULT_SOCKET, DEFAULT_STATE,
                                             ContainerdConfig, cri_image_name)

CONTAINERD = "containerd"
CTR = "ctr"
DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
SHIM = "containerd-shim-runc-v2"
# What a node needs before its first pod: the sandbox image first (RunPodSandbox would
# otherwise try a registry for it), then the app image the examples and tests use.
DEFAULT_IMAGES = ("kubeling/pause:3.9", "busybox:latest")
# Where containerd 1.6 looks for `loopback`, which it runs for every sandbox (its bin_dir
# is one directory), and where Debian's containernetworking-plugins puts it.
LOOPBACK_SOURCE = "/usr/lib/cni/loopback"


class ContainerdError(Exception):
    """Our containerd could not be started, reached, or fed images."""


def _socket_of(address: str) -> str:
    return address[len("unix://"):] if address.startswith("unix://") else address


def write_config(cfg: ContainerdConfig, path: Path) -> Path:
    """The config.toml, written atomically; the root and state dirs made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for d in (cfg.root, cfg.state, str(Path(cfg.socket).parent)):
        Path(d).mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(cfg.render())
    tmp.replace(path)
    return path


def ensure_loopback(cni_bin_dir: str) -> None:
    """containerd 1.6 finds `loopback` only in its bin_dir: link Debian's there (idempotent)."""
    dest = Path(cni_bin_dir) / "loopback"
    if dest.exists() or not os.path.exists(LOOPBACK_SOURCE):
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        dest.symlink_to(LOOPBACK_SOURCE)
    except FileExistsError:  # a dangling link, or another setup made it just now
        pass


def argv(config_path: Path) -> list[str]:
    return [CONTAINERD, "--config", str(config_path)]


def child_env() -> dict[str, str]:
    # The shim finds runc, and CNI plugins iptables, through PATH; a service's PATH may lack /usr/sbin.
    path = os.environ.get("PATH", "")
    for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        if d not in path.split(":"):
            path = f"{path}:{d}" if path else d
    return {**os.environ, "PATH": path}


def start(cfg: ContainerdConfig, config_path: Path, log_path: Path) -> subprocess.Popen:
    """containerd in a session of its own (its shims make their own process groups, so
    signalling ours never reaches a container)."""
    write_config(cfg, config_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv(config_path), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=child_env())


def cri_status(address: str, timeout: float = 2.0) -> tuple[bool, bool] | None:
    """(RuntimeReady, NetworkReady) from CRI Status; None while the socket does not answer
    or the CRI plugin is not loaded ("unknown service")."""
    import grpc

    from agent.runtime.cri_api import api_pb2, api_pb2_grpc
    sock = _socket_of(address)
    if not os.path.exists(sock):
        return None
    with grpc.insecure_channel(f"unix://{sock}") as ch:
        try:
            resp = api_pb2_grpc.RuntimeServiceStub(ch).Status(api_pb2.StatusRequest(), timeout=timeout)
        except grpc.RpcError:
            return None
    conds = {c.type: c.status for c in resp.status.conditions}
    return conds.get("RuntimeReady", False), conds.get("NetworkReady", False)


def wait_ready(address: str, timeout: float = 30, proc: subprocess.Popen | None = None,
               network: bool = False) -> None:
    """Until CRI Status says RuntimeReady (and NetworkReady with `network`); ContainerdError
    if `proc` exits first or time runs out."""
    deadline = time.monotonic() + timeout
    last: tuple[bool, bool] | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ContainerdError(f"containerd exited with code {proc.returncode}")
        last = cri_status(address, timeout=min(2.0, max(0.1, deadline - time.monotonic())))
        if last is not None and last[0] and (last[1] or not network):
            return
        time.sleep(0.1)
    what = "no answer" if last is None else f"RuntimeReady={last[0]} NetworkReady={last[1]}"
    raise ContainerdError(f"containerd at {address} not ready after {timeout:.0f}s ({what})")


def _ctr(address: str, *args: str, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess:
    return subprocess.run([CTR, "-a", _socket_of(address), "-n", CRI_NAMESPACE, *args], capture_output=True,
                          timeout=timeout, **kw)  # type: ignore[call-overload]


def present_images(address: str) -> set[str]:
    """The image names containerd holds in the CRI namespace (normalised, e.g. docker.io/library/busybox:latest)."""
    proc = _ctr(address, "images", "ls", "-q")
    if proc.returncode != 0:
        raise ContainerdError(f"ctr images ls: {proc.stderr.decode(errors='replace').strip()}")
    return {line.strip() for line in proc.stdout.decode().splitlines() if line.strip()}


def import_images(address: str, images: Iterable[str], timeout: float = 300) -> list[str]:
    """`docker save IMG | ctr images import -` for each image not there yet, in the order
    given (the pause image first). Returns the images imported."""
    have = present_images(address)
    done = []
    for image in images:
        if cri_image_name(image) in have:
            continue
        save = subprocess.Popen([DOCKER, "save", image], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "DOCKER_API_VERSION": "1.41"})
        try:
            # --no-unpack would leave the first container start to unpack: unpack now, as a pull does.
            load = _ctr(address, "images", "import", "--snapshotter", "overlayfs", "-", stdin=save.stdout,
                        timeout=timeout)
        finally:
            assert save.stdout is not None
            save.stdout.close()
            _, err = save.communicate(timeout=timeout)
        if save.returncode != 0:
            raise ContainerdError(f"docker save {image}: {err.decode(errors='replace').strip()}")
        if load.returncode != 0:
            raise ContainerdError(f"ctr images import {image}: {load.stderr.decode(errors='replace').strip()}")
        done.append(image)
    missing = [i for i in images if cri_image_name(i) not in present_images(address)] if done else []
    if missing:
        raise ContainerdError(f"imported, yet not listed: {missing}")
    return done


def remove_sandboxes(address: str, timeout: float = 60) -> int:
    """StopPodSandbox + RemovePodSandbox for every sandbox (containerd runs CNI DEL on
    stop and removes the sandbox's containers with it): the safety net behind the agent's
    own teardown, so no shim outlives our containerd. Returns how many were removed."""
    import grpc

    from agent.runtime.cri_api import api_pb2, api_pb2_grpc
    sock = _socket_of(address)
    if not os.path.exists(sock):
        return 0
    with grpc.insecure_channel(f"unix://{sock}") as ch:
        rt = api_pb2_grpc.RuntimeServiceStub(ch)
        try:
            items = rt.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=10).items
            for sb in items:
                rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=sb.id), timeout=timeout)
                rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sb.id), timeout=timeout)
        except grpc.RpcError as exc:
            raise ContainerdError(f"removing the sandboxes: {exc.details()}") from None  # type: ignore[attr-defined]
    return len(items)


def shim_pids(address: str) -> list[int]:
    """The shims serving our containerd (`containerd-shim-runc-v2 ... -address <sock>`);
    Docker's containerd's shims name their own socket and are never counted."""
    sock = _socket_of(address)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not args or not args[0].endswith(SHIM.encode()):
            continue
        words = [a.decode(errors="replace") for a in args]
        if "-address" in words and words.index("-address") + 1 < len(words) \
                and words[words.index("-address") + 1] == sock:
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop(pid: int, address: str, timeout: float = 20, remove: bool = True) -> list[str]:
    """Remove what sandboxes are left (with `remove`), SIGTERM containerd (only `pid`:
    the one we started) and wait for it and our shims to go. Returns what is left."""
    problems: list[str] = []
    if remove and _alive(pid):
        try:
            n = remove_sandboxes(address)
            if n:
                problems.append(f"{n} sandbox(es) were still there (removed)")
        except ContainerdError as exc:
            problems.append(str(exc))
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (_alive(pid) or shim_pids(address)):
        time.sleep(0.1)
    if _alive(pid):
        problems.append(f"containerd (pid {pid}) did not exit in {timeout:.0f}s; killed")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shims = shim_pids(address)
    if shims:
        problems.append(f"shims left: {shims}")
    return problems


# ---- command line --------------------------------------------------------------------

def _config_from(a: argparse.Namespace) -> ContainerdConfig:
    return ContainerdConfig(root=a.root, state=a.state, socket=f"{a.state}/containerd.sock",
                            cni_conf_dir=a.cni_conf_dir, cni_bin_dir=a.cni_bin_dir, pause_image=a.pause_image)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubeling containerd", description="kubeling's own containerd (CRI)")
    sub = p.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="write the config and exec containerd in the foreground (the default)")
    run.add_argument("--config", default="/etc/kubeling/containerd/config.toml")
    run.add_argument("--root", default=DEFAULT_ROOT)
    run.add_argument("--state", default=DEFAULT_STATE, help="also holds the socket, containerd.sock")
    run.add_argument("--cni-conf-dir", default="/etc/cni/net.d")
    run.add_argument("--cni-bin-dir", default="/opt/cni/bin")
    run.add_argument("--pause-image", default=DEFAULT_IMAGES[0])
    for name, help_ in (("wait", "exit 0 once CRI Status says RuntimeReady"),
                        ("import-images", "copy images from the local Docker (missing ones only)"),
                        ("remove-sandboxes", "stop and remove every pod sandbox"),
                        ("shims", "list the shims of this containerd (exit 1 if any)")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--address", default=f"unix://{DEFAULT_SOCKET}")
        if name == "wait":
            s.add_argument("--timeout", type=float, default=30)
            s.add_argument("--network", action="store_true", help="also wait for NetworkReady")
        if name == "shims":
            # Shims exit once their sandbox is removed, a moment after containerd answered.
            s.add_argument("--wait", type=float, default=0, help="seconds to wait for them to go")
        if name == "import-images":
            s.add_argument("images", nargs="*", default=list(DEFAULT_IMAGES))
    return p


SUBCOMMANDS = ("run", "wait", "import-images", "remove-sandboxes", "shims")


def main(args: Sequence[str] | None = None) -> None:
    argv_ = list(sys.argv[1:] if args is None else args)
    if not argv_ or argv_[0] not in (*SUBCOMMANDS, "-h", "--help"):
        # Flags alone mean `run`: the systemd unit's ExecStart is `kubeling containerd $ARGS`.
        argv_ = ["run", *argv_]
    a = _parser().parse_args(argv_)
    try:
        if a.cmd == "run":
            cfg = _config_from(a)
            write_config(cfg, Path(a.config))
            ensure_loopback(cfg.cni_bin_dir)
            binary = shutil.which(CONTAINERD) or CONTAINERD
            # exec: containerd is the unit's main process (it tells systemd READY=1 itself).
            os.execve(binary, argv(Path(a.config)), child_env())
        elif a.cmd == "wait":
            wait_ready(a.address, a.timeout, network=a.network)
        elif a.cmd == "import-images":
            for image in import_images(a.address, a.images):
                print(f"imported {image}")
        elif a.cmd == "remove-sandboxes":
            print(f"removed {remove_sandboxes(a.address)} sandbox(es)")
        elif a.cmd == "shims":
            deadline = time.monotonic() + a.wait
            while (pids := shim_pids(a.address)) and time.monotonic() < deadline:
                time.sleep(0.1)
            print(" ".join(map(str, pids)))
            sys.exit(1 if pids else 0)
    except ContainerdError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
