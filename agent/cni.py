"""Our own libcni: load the network config from the conf dir, run its plugin
chain as the CNI spec says, cache results on disk for DEL and CHECK.

Per sandbox only one operation runs at a time (an asyncio lock per container
id; the agent is the only caller). The cache file follows libcni's layout:
<cache>/results/<network>-<containerID>-<ifname>, holding the config used for
ADD, so DEL tears down with the chain that set things up even if the conf dir
changed in between.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("agent.cni")

CNI_SOCKET_ENV = "KUBELING_CNI_SOCKET"  # cni.wire.SOCKET_ENV (the agent does not import cni)
LOOPBACK_CONF = {"cniVersion": "1.0.0", "name": "cni-loopback", "plugins": [{"type": "loopback"}]}


class CniError(Exception):
    def __init__(self, plugin: str, command: str, code: int, msg: str, details: str = "") -> None:
        super().__init__(f"plugin type={plugin!r} {command} failed ({code}): {msg}"
                         + (f": {details}" if details else ""))
        self.plugin, self.command, self.code, self.msg = plugin, command, code, msg


class NoNetworkConfig(Exception):
    """No usable network configuration in the conf dir (network not ready)."""


@dataclass
class NetworkList:
    name: str
    cni_version: str
    plugins: list[dict[str, Any]]
    raw: bytes

    @classmethod
    def parse(cls, raw: bytes) -> "NetworkList":
        doc = json.loads(raw)
        if "plugins" not in doc:  # a single .conf: a list of one
            doc = {"cniVersion": doc.get("cniVersion", "1.0.0"), "name": doc.get("name"), "plugins": [doc]}
        if not doc.get("name") or not isinstance(doc.get("plugins"), list) or not doc["plugins"]:
            raise ValueError("a network list needs a name and plugins")
        for p in doc["plugins"]:
            if not isinstance(p, dict) or not p.get("type"):
                raise ValueError("every plugin needs a type")
        return cls(doc["name"], doc.get("cniVersion", "1.0.0"), doc["plugins"], raw)


def load_network(conf_dir: str) -> NetworkList:
    """The first valid config in lexical order, as libcni's ConfFiles + kubelet pick it."""
    try:
        names = sorted(os.listdir(conf_dir))
    except FileNotFoundError:
        raise NoNetworkConfig(f"no CNI config dir {conf_dir}") from None
    for n in names:
        if not n.endswith((".conflist", ".conf", ".json")):
            continue
        try:
            return NetworkList.parse(Path(conf_dir, n).read_bytes())
        except (OSError, ValueError) as exc:
            log.warning("skipping CNI config %s: %s", n, exc)
    raise NoNetworkConfig(f"no valid CNI network config in {conf_dir}")


def cni_args(pod_namespace: str, pod_name: str, container_id: str) -> str:
    return ";".join(["IgnoreUnknown=1", f"K8S_POD_NAMESPACE={pod_namespace}", f"K8S_POD_NAME={pod_name}",
                     f"K8S_POD_INFRA_CONTAINER_ID={container_id}"])


def plugin_stdin(net: NetworkList, plugin: dict[str, Any], prev: dict[str, Any] | None,
                 runtime_config: dict[str, Any] | None = None) -> bytes:
    conf = dict(plugin)
    conf["cniVersion"] = net.cni_version
    conf["name"] = net.name
    if prev is not None:
        conf["prevResult"] = prev
    caps = plugin.get("capabilities") or {}
    rc = {k: v for k, v in (runtime_config or {}).items() if caps.get(k)}
    if rc:
        conf["runtimeConfig"] = rc
    return json.dumps(conf).encode()


class CniInvoker:
    def __init__(self, conf_dir: str, bin_dirs: list[str], cache_dir: str, *, timeout: float = 60) -> None:
        self.conf_dir = conf_dir
        self.bin_dirs = bin_dirs
        self.cache_dir = Path(cache_dir)
        self.timeout = timeout
        self._locks: dict[str, asyncio.Lock] = {}
        # The last ADD per container: (started, finished epoch seconds, network, plugin types),
        # for the agent's NetworkReady event (`kubeling trace`); the agent takes it.
        self.add_times: dict[str, tuple[float, float, str, list[str]]] = {}

    def take_add_time(self, container_id: str) -> tuple[float, float, str, list[str]] | None:
        return self.add_times.pop(container_id, None)

    def _lock(self, container_id: str) -> asyncio.Lock:
        return self._locks.setdefault(container_id, asyncio.Lock())

    def find_plugin(self, typ: str) -> str:
        for d in self.bin_dirs:
            path = os.path.join(d, typ)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
        raise CniError(typ, "find", 0, f"failed to find plugin {typ!r} in path {self.bin_dirs}")

    async def _exec(self, plugin: dict[str, Any], command: str, stdin: bytes, env: dict[str, str]
                    ) -> dict[str, Any] | None:
        typ = plugin["type"]
        exe = self.find_plugin(typ)
        full_env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                    "CNI_COMMAND": command, "CNI_PATH": ":".join(self.bin_dirs), **env}
        # libcni passes the runtime's environment on; of ours, the kubeling plugins need where their
        # daemon listens when it is not the default (a node whose cni-daemon has its own socket).
        if CNI_SOCKET_ENV in os.environ:
            full_env[CNI_SOCKET_ENV] = os.environ[CNI_SOCKET_ENV]
        proc = await asyncio.create_subprocess_exec(exe, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE, env=full_env)
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), self.timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise CniError(typ, command, 11, f"timed out after {self.timeout}s") from None
        if proc.returncode != 0:
            # The error object comes on stdout; stderr is the plugin's log.
            try:
                doc = json.loads(out)
                raise CniError(typ, command, int(doc.get("code", proc.returncode)), doc.get("msg", ""),
                               doc.get("details", ""))
            except (ValueError, AttributeError):
                raise CniError(typ, command, proc.returncode,
                               (err or out).decode(errors="replace").strip()) from None
        if command != "ADD" or not out.strip():
            return None
        return json.loads(out)

    # ---- cache -------------------------------------------------------------

    def _cache_path(self, net: str, container_id: str, ifname: str) -> Path:
        return self.cache_dir / "results" / f"{net}-{container_id}-{ifname}"

    def _write_cache(self, net: NetworkList, container_id: str, ifname: str, args: str,
                     result: dict[str, Any]) -> None:
        path = self._cache_path(net.name, container_id, ifname)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"kind": "cniCacheV1", "containerId": container_id, "ifName": ifname,
               "networkName": net.name, "config": base64.b64encode(net.raw).decode(),
               "cniArgs": [kv.split("=", 1) for kv in args.split(";")], "result": result}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, path)

    def cached(self, container_id: str, ifname: str = "eth0") -> list[dict[str, Any]]:
        """Every cached entry for this sandbox (any network)."""
        out = []
        d = self.cache_dir / "results"
        suffix = f"-{container_id}-{ifname}"
        if d.is_dir():
            for p in d.iterdir():
                if p.name.endswith(suffix):
                    try:
                        out.append(json.loads(p.read_text()))
                    except (OSError, ValueError):
                        pass
        return out

    def cached_result(self, container_id: str, ifname: str = "eth0") -> dict[str, Any] | None:
        for entry in self.cached(container_id, ifname):
            if entry.get("networkName") != LOOPBACK_CONF["name"]:
                return entry.get("result")
        return None

    # ---- operations ----------------------------------------------------------

    async def _add_list(self, net: NetworkList, container_id: str, netns: str, ifname: str,
                        args: str) -> dict[str, Any]:
        env = {"CNI_CONTAINERID": container_id, "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_ARGS": args}
        prev: dict[str, Any] | None = None
        done: list[dict[str, Any]] = []
        try:
            for plugin in net.plugins:
                result = await self._exec(plugin, "ADD", plugin_stdin(net, plugin, prev), env)
                done.append(plugin)
                if result is not None:
                    prev = result
        except Exception:
            # Undo what was set up so a retry starts clean (libcni leaves this to
            # the runtime; kubelet then calls DEL).
            await self._del_list(net, container_id, netns, ifname, args, prev, quiet=True)
            raise
        result = prev or {"cniVersion": net.cni_version}
        self._write_cache(net, container_id, ifname, args, result)
        return result

    async def _del_list(self, net: NetworkList, container_id: str, netns: str, ifname: str, args: str,
                        prev: dict[str, Any] | None, quiet: bool = False) -> None:
        env = {"CNI_CONTAINERID": container_id, "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_ARGS": args}
        first_error: Exception | None = None
        for plugin in reversed(net.plugins):
            try:
                await self._exec(plugin, "DEL", plugin_stdin(net, plugin, prev), env)
            except Exception as exc:
                if quiet:
                    log.debug("cleanup DEL of %s failed: %s", plugin.get("type"), exc)
                elif first_error is None:
                    first_error = exc
        if first_error is not None:
            raise first_error

    async def add(self, container_id: str, netns: str, pod_namespace: str, pod_name: str,
                  ifname: str = "eth0") -> dict[str, Any]:
        """Loopback up, then the pod network's chain; returns the final result."""
        args = cni_args(pod_namespace, pod_name, container_id)
        async with self._lock(container_id):
            net = load_network(self.conf_dir)
            try:
                self.find_plugin("loopback")
                has_loopback = True
            except CniError:
                has_loopback = False
            if has_loopback:
                lo = NetworkList.parse(json.dumps(LOOPBACK_CONF).encode())
                await self._add_list(lo, container_id, netns, "lo", args)
            started = time.time()
            result = await self._add_list(net, container_id, netns, ifname, args)
            while len(self.add_times) >= 256:   # never taken (no agent reads them): bounded
                self.add_times.pop(next(iter(self.add_times)))
            self.add_times[container_id] = (started, time.time(), net.name,
                                            [str(p.get("type")) for p in net.plugins])
            return result

    async def check(self, container_id: str, netns: str, pod_namespace: str, pod_name: str,
                    ifname: str = "eth0") -> None:
        args = cni_args(pod_namespace, pod_name, container_id)
        async with self._lock(container_id):
            for entry in self.cached(container_id, ifname):
                net = NetworkList.parse(base64.b64decode(entry["config"]))
                env = {"CNI_CONTAINERID": container_id, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
                       "CNI_ARGS": args}
                for plugin in net.plugins:
                    await self._exec(plugin, "CHECK", plugin_stdin(net, plugin, entry.get("result")), env)

    async def delete(self, container_id: str, netns: str, pod_namespace: str, pod_name: str,
                     ifname: str = "eth0") -> None:
        """DEL in reverse with the cached config and result; without a cache, with
        the current config (DEL must succeed when things are already gone)."""
        args = cni_args(pod_namespace, pod_name, container_id)
        async with self._lock(container_id):
            entries = self.cached(container_id, ifname)
            if not entries:
                try:
                    net = load_network(self.conf_dir)
                except NoNetworkConfig:
                    net = None
                if net is not None:
                    await self._del_list(net, container_id, netns, ifname, args, None)
            for entry in entries:
                net = NetworkList.parse(base64.b64decode(entry["config"]))
                await self._del_list(net, container_id, netns, ifname, args, entry.get("result"))
                self._cache_path(net.name, container_id, ifname).unlink(missing_ok=True)
            for entry in self.cached(container_id, "lo"):
                net = NetworkList.parse(base64.b64decode(entry["config"]))
                await self._del_list(net, container_id, netns, "lo", args, entry.get("result"), quiet=True)
                self._cache_path(net.name, container_id, "lo").unlink(missing_ok=True)
        self._locks.pop(container_id, None)


def pod_ips(result: dict[str, Any] | None) -> list[str]:
    """Addresses (without prefix) of the container's interfaces in a CNI result."""
    if not result:
        return []
    ifaces = result.get("interfaces") or []
    out = []
    for ip in result.get("ips") or []:
        idx = ip.get("interface")
        if idx is not None and 0 <= idx < len(ifaces) and not ifaces[idx].get("sandbox"):
            continue
        addr = (ip.get("address") or "").split("/")[0]
        if addr:
            out.append(addr)
    return out
