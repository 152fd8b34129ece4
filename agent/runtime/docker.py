"""The runtime over Docker Engine: the docker SDK's low-level client for calls
(blocking, so they run in a thread pool), raw async HTTP over the same socket for
the two endless streams (logs -f, events) so they can be cancelled."""
from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import docker
import docker.errors

from agent.runtime import types as t
from agent.runtime.sandbox_network import SandboxNetwork
from agent.runtime.types import ContainerConfig, ContainerEvent, ContainerRecord, SandboxConfig
from agent.streaming.docker_io import DockerStreamError, DockerStreams
from kubeling.timefmt import parse_time

API_VERSION = "1.41"
ZERO_TIME = "0001-01-01T00:00:00Z"


def container_name(container: str, pod: str, namespace: str, uid: str, attempt: int) -> str:
    return f"k8s_{container}_{pod}_{namespace}_{uid}_{attempt}"


def split_image(image: str) -> tuple[str, str]:
    """repo, tag (or digest) for a pull; 'latest' when none is given."""
    if "@" in image:
        repo, digest = image.split("@", 1)
        return repo, digest
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = image.rsplit(":", 1)
        return repo, tag
    return image, "latest"


def _time(value: str | None) -> float:
    """Docker's RFC 3339 (nanosecond) times as epoch seconds; 0 for Go's zero time."""
    if not value or value.startswith("0001-01-01"):
        return 0.0
    when = parse_time(value)
    return when.timestamp() if when else 0.0


# Docker event actions -> the neutral event types (others, e.g. exec_start, are not changes).
_EVENT_TYPES = {"start": t.STARTED, "die": t.STOPPED, "oom": t.STOPPED, "stop": t.STOPPED,
                "kill": t.STOPPED, "destroy": t.DELETED}


def event_from_docker(ev: dict[str, Any]) -> ContainerEvent | None:
    action = (ev.get("Action") or ev.get("status") or "").split(":")[0]
    typ = _EVENT_TYPES.get(action)
    actor = ev.get("Actor") or {}
    uid = (actor.get("Attributes") or {}).get(t.POD_UID)
    if typ is None or not uid:
        return None
    return ContainerEvent(actor.get("ID") or ev.get("id") or "", uid, typ)


def _bind(m: t.Mount) -> str:
    return f"{m.host_path}:{m.container_path}:{'ro' if m.read_only else 'rw'}"


def record_from_inspect(info: dict[str, Any]) -> ContainerRecord | None:
    labels = (info.get("Config") or {}).get("Labels") or {}
    if t.DOCKER_TYPE not in labels:
        return None
    state = info.get("State") or {}
    status = state.get("Status") or "unknown"
    if status in ("dead", "removing"):
        status = "exited"
    elif status in ("paused", "restarting"):
        status = "running"
    is_sandbox = labels.get(t.DOCKER_TYPE) == t.TYPE_SANDBOX
    try:
        attempt = int(labels.get(t.ATTEMPT) or info.get("Name", "").rsplit("_", 1)[-1])
    except ValueError:
        attempt = 0
    return ContainerRecord(
        id=info["Id"], name=labels.get(t.CONTAINER_NAME, ""),
        pod_name=labels.get(t.POD_NAME, ""), pod_namespace=labels.get(t.POD_NAMESPACE, ""),
        pod_uid=labels.get(t.POD_UID, ""), attempt=attempt, is_sandbox=is_sandbox,
        sandbox_id=info["Id"] if is_sandbox else labels.get(t.SANDBOX_ID, ""),
        state=status, image=(info.get("Config") or {}).get("Image", ""), image_id=info.get("Image", ""),
        exit_code=state.get("ExitCode") if status == "exited" else None,
        oom_killed=bool(state.get("OOMKilled")), error=state.get("Error") or "",
        created_at=_time(info.get("Created")), started_at=_time(state.get("StartedAt")),
        finished_at=_time(state.get("FinishedAt")), pid=state.get("Pid") or 0, labels=dict(labels))


class DockerRuntime(t.Runtime):
    runtime_name = "docker"

    def __init__(self, host: str = "unix:///var/run/docker.sock", *, pull_timeout: float = 60,
                 workers: int = 32, exec_workers: int = 8, network: SandboxNetwork | None = None) -> None:
        """network: CNI and checkpoints of sandboxes (as dockershim's); None runs
        sandboxes without a pod network (host network or none)."""
        self.host = host
        self.network = network
        self._api = docker.APIClient(base_url=host, version=API_VERSION, timeout=60,
                                     max_pool_size=workers)
        self._pull_api = docker.APIClient(base_url=host, version=API_VERSION, timeout=pull_timeout)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="docker")
        # Exec (probes, hooks) has a bounded pool of its own: a timed-out exec keeps its
        # thread until Docker answers, and hung probes must not take the threads that
        # list/create/stop of the pod workers need.
        self._exec_pool = ThreadPoolExecutor(exec_workers, thread_name_prefix="docker-exec")
        # id -> (docker's list State, record): inspect again only when the state moved.
        self._inspected: dict[str, tuple[str, ContainerRecord]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._streams: DockerStreams | None = None

    async def _call(self, fn, *args: Any, **kw: Any) -> Any:
        return await self._call_in(self._pool, fn, *args, **kw)

    async def _call_in(self, pool: ThreadPoolExecutor, fn, *args: Any, **kw: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, lambda: fn(*args, **kw))
        except docker.errors.ImageNotFound as exc:
            raise t.ImageNotFound(str(exc.explanation or exc)) from exc
        except docker.errors.NotFound as exc:  # 404: no such container (or exec)
            raise t.NotFound(str(exc.explanation or exc)) from exc
        except docker.errors.APIError as exc:
            raise t.RuntimeError_(str(exc.explanation or exc)) from exc
        except Exception as exc:  # connection refused, timeouts: the engine is unreachable
            if isinstance(exc, t.RuntimeError_):
                raise
            raise t.RuntimeError_(f"docker: {exc}") from exc

    # ---- engine ------------------------------------------------------------

    async def version(self) -> str:
        info = await self._call(self._api.version)
        return info.get("Version", "")

    async def ping(self) -> bool:
        try:
            return bool(await self._call(self._api.ping))
        except t.RuntimeError_:
            return False

    def network_ready(self) -> bool:
        return self.network.ready() if self.network is not None else True

    async def status(self) -> t.RuntimeStatus:
        return t.RuntimeStatus(runtime_ready=await self.ping(), network_ready=self.network_ready())

    # ---- sandboxes -----------------------------------------------------------

    async def run_sandbox(self, cfg: SandboxConfig) -> ContainerRecord:
        labels = {**cfg.labels, t.DOCKER_TYPE: t.TYPE_SANDBOX, t.CONTAINER_NAME: t.SANDBOX_NAME,
                  t.POD_NAME: cfg.pod_name, t.POD_NAMESPACE: cfg.pod_namespace, t.POD_UID: cfg.pod_uid,
                  t.ATTEMPT: str(cfg.attempt)}
        host_config = self._api.create_host_config(
            network_mode="host" if cfg.host_network else "none", ipc_mode="shareable",
            cpu_shares=2)
        name = container_name(t.SANDBOX_NAME, cfg.pod_name, cfg.pod_namespace, cfg.pod_uid, cfg.attempt)
        created = await self._call(self._api.create_container, cfg.image, name=name, labels=labels,
                                   hostname=None if cfg.host_network else cfg.hostname,
                                   host_config=host_config)
        cid = created["Id"]
        try:
            await self._call(self._api.start, cid)
            rec = await self.inspect(cid)
        except t.RuntimeError_:
            await self.remove_sandbox(cid)
            raise
        if rec is None or not rec.running:
            raise t.RuntimeError_(f"sandbox {cid[:12]} did not start")
        self._inspected[cid] = ("running", rec)
        if self.network is not None:
            try:
                await self.network.setup(cid, rec.pid, cfg.pod_uid, cfg.pod_name, cfg.pod_namespace,
                                         cfg.host_network)
            except Exception:
                # DEL undoes a partial ADD; nothing of the sandbox stays.
                await self.stop_sandbox(cid)
                await self.remove_sandbox(cid)
                raise
        return rec

    async def _record(self, container_id: str) -> ContainerRecord | None:
        """The last listed record (the callers just listed), else a fresh inspect."""
        hit = self._inspected.get(container_id)
        return hit[1] if hit is not None else await self.inspect(container_id)

    async def stop_sandbox(self, sandbox_id: str) -> None:
        rec = await self._record(sandbox_id)
        running = rec is not None and rec.running
        if self.network is not None:
            # DEL while the netns still exists, if it does.
            await self.network.teardown(sandbox_id, rec.pid if running and rec is not None else 0)
        if running:
            await self.stop_container(sandbox_id, 2)

    async def remove_sandbox(self, sandbox_id: str) -> None:
        # Under Docker a sandbox is the pause container plus its checkpoint.
        if self.network is not None:
            await self.network.teardown(sandbox_id)
        await self.remove_container(sandbox_id)
        if self.network is not None:
            self.network.forget(sandbox_id)

    async def list_sandboxes(self, pod_uid: str | None = None) -> list[ContainerRecord]:
        out = [r for r in await self.list(pod_uid) if r.is_sandbox]
        if self.network is not None:
            have = {r.id for r in out}
            for cp in self.network.checkpointed(pod_uid):
                if cp.sandbox_id not in have:
                    out.append(ContainerRecord(
                        id=cp.sandbox_id, name=t.SANDBOX_NAME, pod_name=cp.pod_name,
                        pod_namespace=cp.pod_namespace, pod_uid=cp.pod_uid, attempt=0, is_sandbox=True,
                        sandbox_id=cp.sandbox_id, state="exited"))
        return out

    async def release_unowned_sandboxes(self) -> list[str]:
        if self.network is None:
            return []
        released = []
        for sandbox_id in self.network.unowned():
            # A pause container still there names its pod: that pod's teardown reaches it.
            if await self.inspect(sandbox_id) is None:
                await self.network.teardown(sandbox_id)
                self.network.forget(sandbox_id)
                released.append(sandbox_id)
        return released

    async def sandbox_status(self, sandbox_id: str) -> t.SandboxStatus | None:
        rec = await self._record(sandbox_id)
        ips = self.network.ips(sandbox_id) if self.network is not None else []
        if rec is None and not ips:
            return None
        return t.SandboxStatus(sandbox_id, rec.state if rec is not None else "exited", ips)

    # ---- containers ----------------------------------------------------------

    async def create_container(self, cfg: ContainerConfig) -> str:
        labels = {**cfg.labels, t.DOCKER_TYPE: t.TYPE_CONTAINER, t.CONTAINER_NAME: cfg.name,
                  t.POD_NAME: cfg.pod_name, t.POD_NAMESPACE: cfg.pod_namespace, t.POD_UID: cfg.pod_uid,
                  t.SANDBOX_ID: cfg.sandbox_id, t.CONTAINER_HASH: cfg.container_hash,
                  t.RESTART_COUNT: str(cfg.attempt), t.ATTEMPT: str(cfg.attempt),
                  t.INIT_CONTAINER: "true" if cfg.init else "false"}
        sandbox = f"container:{cfg.sandbox_id}"
        hc: dict[str, Any] = dict(network_mode=sandbox, ipc_mode=sandbox, binds=[_bind(m) for m in cfg.mounts] or None,
                                  cpu_shares=cfg.cpu_shares)
        if cfg.memory_limit:
            # No swap, as kubelet: the limit is the limit.
            hc.update(mem_limit=cfg.memory_limit, memswap_limit=cfg.memory_limit)
        if cfg.cpu_quota:
            hc.update(cpu_quota=cfg.cpu_quota, cpu_period=cfg.cpu_period or 100000)
        host_config = self._api.create_host_config(**hc)
        name = container_name(cfg.name, cfg.pod_name, cfg.pod_namespace, cfg.pod_uid, cfg.attempt)
        kwargs: dict[str, Any] = dict(name=name, labels=labels, host_config=host_config,
                                      environment=[f"{k}={v}" for k, v in cfg.env],
                                      working_dir=cfg.working_dir or None, tty=cfg.tty,
                                      stdin_open=cfg.stdin)
        if cfg.entrypoint is not None:
            kwargs["entrypoint"] = cfg.entrypoint
            # With an entrypoint given, Docker ignores the image's Cmd; an empty
            # list must still be sent so the SDK does not leave Cmd unset.
            kwargs["command"] = cfg.cmd or []
        elif cfg.cmd is not None:
            kwargs["command"] = cfg.cmd
        created = await self._call(self._api.create_container, cfg.image, **kwargs)
        return created["Id"]

    async def start_container(self, container_id: str) -> None:
        self._inspected.pop(container_id, None)
        await self._call(self._api.start, container_id)

    async def stop_container(self, container_id: str, timeout: int) -> None:
        self._inspected.pop(container_id, None)
        try:
            await self._call(self._api.stop, container_id, timeout=max(0, int(timeout)))
        except t.NotFound:
            pass
        except t.RuntimeError_ as exc:
            if "is not running" not in str(exc):
                raise

    async def remove_container(self, container_id: str) -> None:
        self._inspected.pop(container_id, None)
        try:
            await self._call(self._api.remove_container, container_id, force=True, v=True)
        except t.NotFound:
            pass
        except t.RuntimeError_ as exc:
            if "already in progress" not in str(exc):
                raise

    async def inspect(self, container_id: str) -> ContainerRecord | None:
        try:
            info = await self._call(self._api.inspect_container, container_id)
        except t.NotFound:
            return None
        return record_from_inspect(info)

    async def list(self, pod_uid: str | None = None) -> list[ContainerRecord]:
        wanted = [t.DOCKER_TYPE]
        if pod_uid:
            wanted.append(f"{t.POD_UID}={pod_uid}")
        summaries = await self._call(self._api.containers, all=True, filters={"label": wanted})
        stale = [s for s in summaries
                 if self._inspected.get(s["Id"], ("",))[0] != s.get("State")]
        if stale:
            fresh = await asyncio.gather(*(self.inspect(s["Id"]) for s in stale))
            for s, rec in zip(stale, fresh):
                if rec is not None:
                    self._inspected[s["Id"]] = (s.get("State"), rec)
        if not pod_uid:
            live = {s["Id"] for s in summaries}
            for cid in list(self._inspected):
                if cid not in live:
                    del self._inspected[cid]
        out = []
        for s in summaries:
            hit = self._inspected.get(s["Id"])
            if hit is not None:
                out.append(hit[1])
        return out

    # ---- images ---------------------------------------------------------------

    async def image_id(self, image: str) -> str | None:
        try:
            info = await self._call(self._api.inspect_image, image)
        except (t.ImageNotFound, t.NotFound):
            return None
        return info.get("Id")

    async def list_images(self) -> list[t.ImageRecord]:
        return [t.ImageRecord(i.get("Id", ""), tuple(tag for tag in i.get("RepoTags") or [] if tag != "<none>:<none>"),
                              int(i.get("Size") or 0)) for i in await self._call(self._api.images)]

    async def image_config(self, image: str) -> dict[str, Any]:
        info = await self._call(self._api.inspect_image, image)
        return info.get("Config") or {}

    async def pull(self, image: str) -> str:
        repo, tag = split_image(image)
        try:
            await self._call(self._pull_api.pull, repo, tag=tag)
        except t.RuntimeError_ as exc:
            raise t.PullError(str(exc)) from exc
        got = await self.image_id(image)
        if got is None:
            raise t.PullError(f"image {image} not present after pull")
        return got

    # ---- streams ---------------------------------------------------------------

    def _http(self) -> tuple[aiohttp.ClientSession, str]:
        if self._session is None or self._session.closed:
            if self.host.startswith("unix://"):
                connector: aiohttp.BaseConnector = aiohttp.UnixConnector(path=self.host[len("unix://"):])
                self._base = "http://docker"
            else:
                connector = aiohttp.TCPConnector()
                self._base = self.host.replace("tcp://", "http://")
            self._session = aiohttp.ClientSession(connector=connector,
                                                  timeout=aiohttp.ClientTimeout(total=None))
        return self._session, f"{self._base}/v{API_VERSION}"

    async def logs(self, container_id: str, *, follow: bool = False, tail: int | None = None,
                   since: float | None = None, timestamps: bool = False) -> AsyncIterator[bytes]:
        session, base = self._http()
        params = {"stdout": "1", "stderr": "1", "follow": "1" if follow else "0",
                  "timestamps": "1" if timestamps else "0", "tail": "all" if tail is None else str(tail)}
        if since:
            params["since"] = f"{since:.9f}"
        info = await self._call(self._api.inspect_container, container_id)
        tty = bool((info.get("Config") or {}).get("Tty"))
        async with session.get(f"{base}/containers/{container_id}/logs", params=params) as resp:
            if resp.status >= 400:
                raise t.RuntimeError_((await resp.text()).strip())
            if tty:
                async for chunk in resp.content.iter_any():
                    yield chunk
                return
            # Non-tty logs are multiplexed: an 8-byte header (stream, 0, 0, 0, size) per frame.
            while True:
                try:
                    header = await resp.content.readexactly(8)
                except asyncio.IncompleteReadError:
                    return
                size = struct.unpack(">I", header[4:])[0]
                try:
                    yield await resp.content.readexactly(size)
                except asyncio.IncompleteReadError as exc:
                    yield exc.partial
                    return

    async def events(self) -> AsyncIterator[ContainerEvent]:
        session, base = self._http()
        filters = json.dumps({"type": ["container"], "label": [t.DOCKER_TYPE]})
        async with session.get(f"{base}/events", params={"filters": filters}) as resp:
            if resp.status >= 400:
                raise t.RuntimeError_((await resp.text()).strip())
            async for line in resp.content:
                if line.strip():
                    ev = event_from_docker(json.loads(line))
                    if ev is not None:
                        yield ev

    async def exec(self, container_id: str, cmd: list[str], timeout: float = 10) -> tuple[int, bytes]:
        def run() -> tuple[int, bytes]:
            ex = self._api.exec_create(container_id, cmd, stdout=True, stderr=True)
            out = self._api.exec_start(ex["Id"])
            code = self._api.exec_inspect(ex["Id"]).get("ExitCode")
            return (code if code is not None else -1), out
        # Past the timeout a queued exec is cancelled before it takes a thread.
        return await asyncio.wait_for(self._call_in(self._exec_pool, run), timeout)

    # Interactive sessions hijack the engine's connection (agent/streaming/docker_io.py).

    def _stream_client(self) -> DockerStreams:
        if self._streams is None:
            self._streams = DockerStreams(self.host)
        return self._streams

    async def exec_stream(self, container_id: str, cmd: list[str], *, stdin: bool, stdout: bool, stderr: bool,
                          tty: bool, size: tuple[int, int] | None = None) -> t.Process:
        try:
            return await self._stream_client().exec(container_id, cmd, stdin=stdin, stdout=stdout,
                                                    stderr=stderr, tty=tty, size=size)
        except DockerStreamError as exc:
            raise t.RuntimeError_(str(exc)) from None

    async def attach_stream(self, container_id: str, *, stdin: bool, stdout: bool, stderr: bool,
                            size: tuple[int, int] | None = None) -> t.Process:
        try:
            return await self._stream_client().attach(container_id, stdin=stdin, stdout=stdout,
                                                      stderr=stderr, size=size)
        except DockerStreamError as exc:
            raise t.RuntimeError_(str(exc)) from None

    async def sandbox_netns(self, sandbox_id: str) -> str | None:
        rec = await self.inspect(sandbox_id)
        if rec is None or not rec.running or not rec.pid:
            return None
        return f"/proc/{rec.pid}/ns/net"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._streams is not None:
            self._streams.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._exec_pool.shutdown(wait=False, cancel_futures=True)
        self._api.close()
        self._pull_api.close()

