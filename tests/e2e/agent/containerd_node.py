"""A containerd of the tests' own: its config from agent/runtime/containerd_config.py
rooted in a test directory, its own socket, run inside a network namespace (the
pod bridge and veths live there, nothing in the root namespace), the CNI conf dir
holding a kubeling-bridge conflist, images copied in from the host's dockerd.

`stop()` stops containerd and returns what it left behind (shims, mounts, pinned
pod netns, IP allocations): the tests assert that list is empty."""
from __future__ import annotations

import asyncio
import base64
import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from agent.cni_config import conflist, write_conflist
from agent.runtime.containerd_config import CRI_NAMESPACE, ContainerdConfig

if TYPE_CHECKING:
    from agent.runtime.cri import CriRuntime

DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
IMAGES = ("kubeling/pause:3.9", "busybox:latest")  # pause first: it is the sandbox image
TEST_ROOT = Path("/var/lib/kubeling-test")
PLUGIN_DIRS = {"kubeling-bridge": "/opt/cni/bin", "kubeling-ipam": "/opt/cni/bin", "loopback": "/usr/lib/cni"}
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def sh(*args: str, check: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=timeout, **kw)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextmanager
def thread_in_netns(path: str) -> Iterator[None]:
    """This thread in another network namespace for a while: sockets made meanwhile
    (e.g. to the runtime's streaming server on its 127.0.0.1) stay there after."""
    back = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(path, os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(back)
    finally:
        os.close(target)
        os.close(back)


class ContainerdDaemon:
    """containerd itself: config, process, images, and the checks after it stopped.
    Its files live under `base` and `run_dir` (state, socket), its CNI conf dir is
    given (the agent writes the conflist there), pods' cgroups go under cgroup_root."""

    def __init__(self, base: Path, run_dir: Path, netns_path: str, cni_conf_dir: Path, cgroup_root: str) -> None:
        self.base, self.run_dir, self.netns_path = base, run_dir, netns_path
        self.cni_conf_dir = cni_conf_dir
        self.cni_bin_dir = base / "cni-bin"
        self.log_root = base / "pod-logs"
        self.cgroup_root = cgroup_root
        self.config = ContainerdConfig(root=str(base / "containerd"), state=str(run_dir / "containerd"),
                                       socket=str(run_dir / "containerd" / "containerd.sock"),
                                       cni_conf_dir=str(cni_conf_dir), cni_bin_dir=str(self.cni_bin_dir))
        self.log = base / "containerd.log"
        self.proc: subprocess.Popen | None = None
        # Pod netns paths of this containerd's sandboxes (other containerds on the host pin theirs too).
        self.pod_netns: set[str] = set()

    @property
    def endpoint(self) -> str:
        return self.config.endpoint

    def start(self, images: tuple[str, ...] = IMAGES) -> None:
        # containerd 1.6 takes one plugin dir and always runs `loopback` from it.
        self.cni_bin_dir.mkdir(parents=True)
        for plugin, d in PLUGIN_DIRS.items():
            os.symlink(os.path.join(d, plugin), self.cni_bin_dir / plugin)
        (self.base / "containerd.toml").write_text(self.config.render())
        self.start_daemon()
        save = subprocess.Popen([DOCKER, "save", *images], stdout=subprocess.PIPE,
                                env={**os.environ, "DOCKER_API_VERSION": "1.41"})
        imp = subprocess.run(["ctr", "-a", self.config.socket, "-n", CRI_NAMESPACE, "images", "import", "-"],
                             stdin=save.stdout, capture_output=True, timeout=180)
        save.wait()
        assert save.returncode == 0 and imp.returncode == 0, imp.stderr

    def start_daemon(self) -> None:
        """The containerd process on the config start() wrote (again, after stop_daemon())."""
        env = {**os.environ, "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(["nsenter", f"--net={self.netns_path}", "containerd", "--config",
                                          str(self.base / "containerd.toml")],
                                         stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self._wait_socket()

    def stop_daemon(self) -> None:
        """containerd gone as after a crash or a restart: its shims, so the containers, keep running,
        and its socket is removed (as a fresh boot would) so start_daemon() can wait for the new one."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
        for sock in (self.config.socket, self.config.socket + ".ttrpc"):
            try:
                os.unlink(sock)
            except FileNotFoundError:
                pass

    def container_info(self, cid: str) -> dict:
        """`ctr containers info`: the record (labels, OCI spec, CRI extensions) of container cid."""
        return json.loads(self.ctr("containers", "info", cid).stdout)

    @staticmethod
    def cri_metadata(info: dict) -> dict:
        """The CRI plugin's metadata of a container record (its CRI name, sandbox, log path),
        kept as a JSON extension."""
        for ext in (info.get("Extensions") or {}).values():
            if "cri" in ext.get("type_url", "") or "cri" in ext.get("typeurl", ""):
                raw = base64.b64decode(ext.get("value", ""))
                return json.loads(raw).get("Metadata") or {}
        return {}

    def container_meta(self, cid: str) -> dict:
        return self.cri_metadata(self.container_info(cid))

    def _wait_socket(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.config.socket):
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"containerd exited: {self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"containerd socket missing after {timeout}s: {self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    def ctr(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return sh("ctr", "-a", self.config.socket, "-n", CRI_NAMESPACE, *args, check=check, timeout=timeout)

    def shims(self) -> list[str]:
        return sh("pgrep", "-f", f"containerd-shim-runc-v2 .*-address {self.config.socket}", check=False).stdout.split()

    def remove_all_sandboxes(self) -> int:
        """Stop and remove every sandbox through CRI (the pod netns it pinned noted
        first, to check it went); from any thread, even one running an event loop."""
        from concurrent.futures import ThreadPoolExecutor

        from agent.runtime.cri import CriRuntime

        async def remove() -> int:
            rt = CriRuntime(self.endpoint, pod_log_root=str(self.log_root), cgroup_root=f"{self.cgroup_root}/kubepods")
            try:
                return await self.sweep(rt)
            finally:
                await rt.close()
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, remove()).result(timeout=180)

    async def sweep(self, rt: "CriRuntime") -> int:
        """Stop and remove every sandbox of this containerd through `rt` (a CriRuntime),
        noting each one's pinned netns first (ready or not) so stop() can check it went."""
        from agent.runtime.cri import netns_from_info
        sandboxes = await rt.list_sandboxes()
        for sb in sandboxes:
            st = await rt._sandbox_status(sb.id, verbose=True)
            netns = netns_from_info(dict(st.info)) if st is not None else None
            if netns and netns.startswith("/var/run/netns/"):
                self.pod_netns.add(netns)
        for sb in sandboxes:
            await rt.stop_sandbox(sb.id)
            await rt.remove_sandbox(sb.id)
        return len(sandboxes)

    def remove_cgroups(self) -> list[str]:
        """rmdir the test's cgroup root in every hierarchy; a pod cgroup still under
        <root>/kubepods is reported (the runtime should have removed it)."""
        problems = []
        fs = Path("/sys/fs/cgroup")
        roots = [p / self.cgroup_root.strip("/") for p in fs.iterdir()] + [fs / self.cgroup_root.strip("/")]
        for root in roots:
            if not root.is_dir():
                continue
            dirs = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
            for d in dirs:
                if len(d.relative_to(root).parts) >= 2:
                    problems.append(f"cgroup left: {d}")
                try:
                    d.rmdir()
                except OSError:
                    problems.append(f"cgroup not removable: {d}")
            try:
                root.rmdir()
            except OSError:
                problems.append(f"cgroup not removable: {root}")
        return problems

    def stop(self) -> list[str]:
        """Stop containerd (sandboxes should be gone by now); return what was left behind."""
        problems: list[str] = []
        shims = self.shims()
        if shims:
            problems.append(f"shims left: {shims}")
            for pid in shims:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        self.stop_daemon()
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith((str(self.base) + "/", str(self.run_dir) + "/"))]
        for m in sorted(mounts, reverse=True):
            problems.append(f"mount left: {m}")
            sh("umount", "-l", m, check=False)
        leaked = {p for p in self.pod_netns if os.path.exists(p)}
        if leaked:
            problems.append(f"pod netns left: {sorted(leaked)}")
            for p in leaked:  # reported; not left on the machine
                sh("ip", "netns", "del", os.path.basename(p), check=False)
        problems += self.remove_cgroups()
        return problems


class ContainerdNode(ContainerdDaemon):
    """A containerd alone in a network namespace of its own, with a conflist for a
    test pod CIDR: what the CRI runtime tests run against."""
    __test__ = False

    def __init__(self, pod_cidr: str | None = None, name: str | None = None) -> None:
        self.pod_cidr = pod_cidr or f"10.250.{secrets.randbelow(250) + 1}.0/24"
        self.name = name or f"klc-{secrets.token_hex(3)}"
        base = TEST_ROOT / self.name
        super().__init__(base, Path("/run") / self.name, f"/run/netns/{self.name}", base / "net.d",
                         f"/kubeling-test-{self.name[4:]}")
        self.bridge = f"klcb{self.name[4:]}"
        self.ipam_dir = base / "ipam"

    def start(self, images: tuple[str, ...] = IMAGES) -> None:
        self.base.mkdir(parents=True)
        self.run_dir.mkdir(parents=True)
        sh("ip", "netns", "add", self.name)
        sh("nsenter", f"--net={self.netns_path}", "ip", "link", "set", "lo", "up")
        write_conflist(str(self.cni_conf_dir), conflist(
            self.pod_cidr, bridge_type="kubeling-bridge", ipam_type="kubeling-ipam", bridge=self.bridge,
            ipam_data_dir=str(self.ipam_dir), ip_masq=False))
        super().start(images)

    def ip_allocations(self) -> list[str]:
        if not self.ipam_dir.exists():
            return []
        return sorted(str(p.relative_to(self.ipam_dir)) for p in self.ipam_dir.rglob("*")
                      if p.is_file() and p.name[0].isdigit())

    def stop(self) -> list[str]:
        problems = [f"IP allocation left: {a}" for a in self.ip_allocations()]
        problems += super().stop()
        sh("ip", "netns", "del", self.name, check=False)
        shutil.rmtree(self.base, ignore_errors=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        try:
            TEST_ROOT.rmdir()
        except OSError:
            pass
        if self.name in sh("ip", "netns", "list").stdout.split():
            problems.append(f"netns {self.name} left")
        return problems
