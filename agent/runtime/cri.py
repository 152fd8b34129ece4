"""The runtime over the Container Runtime Interface (CRI v1, gRPC), as kubelet
speaks it to containerd's CRI plugin.

The runtime owns the pod network here (containerd runs the CNI plugins on
RunPodSandbox / StopPodSandbox), the container logs (files under the pod's log
directory, read by agent/runtime/cri_logs.py) and the exec/attach streams (served
on the runtime's streaming server, agent/streaming/cri_io.py). The Kubernetes
names the agent reads back are CRI labels (pod name/namespace/uid, container name)
and annotations (hash, restart count, init flag), as kubelet sets them.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from agent.runtime import cri_logs
from agent.runtime import types as t
from agent.runtime.cri_api import api_pb2 as pb
from agent.runtime.cri_api import api_pb2_grpc
from agent.runtime.types import ContainerConfig, ContainerEvent, ContainerRecord, SandboxConfig
from agent.streaming import cri_io

# kubelet's annotation keys; records show them with dockershim's "annotation." prefix
# (types.CONTAINER_HASH etc.), so pod status and sync read one set of names.
ANNOTATION_PREFIX = "annotation."
HASH_ANNOTATION = t.CONTAINER_HASH[len(ANNOTATION_PREFIX):]
RESTART_COUNT_ANNOTATION = t.RESTART_COUNT[len(ANNOTATION_PREFIX):]
INIT_ANNOTATION = t.INIT_CONTAINER[len(ANNOTATION_PREFIX):]
# What a sandbox needs to be described again after an agent restart (CreateContainer
# carries the sandbox's config, which the runtime does not give back).
HOSTNAME_ANNOTATION = "kubeling.io/hostname"

POD_LOG_ROOT = "/var/log/pods"
CGROUP_ROOT = "/kubepods"
CGROUP_FS = "/sys/fs/cgroup"

_STATES = {pb.CONTAINER_CREATED: "created", pb.CONTAINER_RUNNING: "running", pb.CONTAINER_EXITED: "exited",
           pb.CONTAINER_UNKNOWN: "unknown"}
_SANDBOX_STATES = {pb.SANDBOX_READY: "running", pb.SANDBOX_NOTREADY: "exited"}


def seconds(ns: int) -> float:
    """CRI times (nanoseconds since the epoch) as epoch seconds; 0 stays 0."""
    return ns / 1e9 if ns > 0 else 0.0


def pod_log_directory(root: str, namespace: str, name: str, uid: str) -> str:
    return os.path.join(root, f"{namespace}_{name}_{uid}")


def container_log_path(name: str, attempt: int) -> str:
    """Relative to the pod's log directory, as kubelet names it."""
    return f"{name}/{attempt}.log"


def record_labels(labels: dict[str, str], annotations: dict[str, str]) -> dict[str, str]:
    out = dict(labels)
    for k, v in annotations.items():
        out[ANNOTATION_PREFIX + k] = v
    return out


def record_from_sandbox(sb: pb.PodSandbox | pb.PodSandboxStatus) -> ContainerRecord:
    labels = dict(sb.labels)
    return ContainerRecord(
        id=sb.id, name=t.SANDBOX_NAME, pod_name=sb.metadata.name, pod_namespace=sb.metadata.namespace,
        pod_uid=sb.metadata.uid, attempt=sb.metadata.attempt, is_sandbox=True, sandbox_id=sb.id,
        state=_SANDBOX_STATES.get(sb.state, "unknown"), created_at=seconds(sb.created_at),
        labels=record_labels(labels, dict(sb.annotations)), runtime=CriRuntime.runtime_name)


def record_from_status(st: pb.ContainerStatus, sandbox_id: str) -> ContainerRecord:
    labels = dict(st.labels)
    state = _STATES.get(st.state, "unknown")
    return ContainerRecord(
        id=st.id, name=st.metadata.name or labels.get(t.CONTAINER_NAME, ""),
        pod_name=labels.get(t.POD_NAME, ""), pod_namespace=labels.get(t.POD_NAMESPACE, ""),
        pod_uid=labels.get(t.POD_UID, ""), attempt=st.metadata.attempt, is_sandbox=False,
        sandbox_id=sandbox_id or labels.get(t.SANDBOX_ID, ""), state=state,
        image=st.image.image, image_id=st.image_ref,
        exit_code=st.exit_code if state == "exited" else None,
        oom_killed=st.reason == "OOMKilled",
        error=st.message if state == "exited" and st.reason not in ("", "Completed", "OOMKilled") else "",
        created_at=seconds(st.created_at), started_at=seconds(st.started_at),
        finished_at=seconds(st.finished_at), labels=record_labels(labels, dict(st.annotations)),
        runtime=CriRuntime.runtime_name)


def _namespace_options(host_network: bool) -> pb.NamespaceOption:
    # A pid namespace per container (no shareProcessNamespace), as under Docker.
    return pb.NamespaceOption(network=pb.NODE if host_network else pb.POD, pid=pb.CONTAINER, ipc=pb.POD)


def conditions(resp: pb.StatusResponse) -> t.RuntimeStatus:
    got = {c.type: c.status for c in resp.status.conditions}
    return t.RuntimeStatus(runtime_ready=got.get("RuntimeReady", False),
                           network_ready=got.get("NetworkReady", False))


def _error(exc: grpc.aio.AioRpcError, what: str) -> t.RuntimeError_:
    code, detail = exc.code(), exc.details() or str(code)
    if code == grpc.StatusCode.NOT_FOUND:
        return t.NotFound(f"{what}: {detail}")
    return t.RuntimeError_(f"{what}: {detail}")


class CriRuntime(t.Runtime):
    runtime_name = "containerd"

    def __init__(self, endpoint: str, *, pod_log_root: str = POD_LOG_ROOT, cgroup_root: str = CGROUP_ROOT,
                 timeout: float = 60, pull_timeout: float = 60, event_period: float = 0.5) -> None:
        """endpoint: unix:///path/containerd.sock. cgroup_root: the cgroupfs parent of
        the pods' cgroups (each pod gets <cgroup_root>/pod<uid>)."""
        self.endpoint = endpoint
        self.pod_log_root = pod_log_root
        self.cgroup_root = "/" + cgroup_root.strip("/")
        self.timeout = timeout
        self.pull_timeout = pull_timeout
        self.event_period = event_period
        self._channel = grpc.aio.insecure_channel(endpoint, options=[
            ("grpc.max_receive_message_length", 16 << 20)])
        self._rt = api_pb2_grpc.RuntimeServiceStub(self._channel)
        self._img = api_pb2_grpc.ImageServiceStub(self._channel)
        # id -> (listed state, record): ContainerStatus again only when the state moved.
        self._statuses: dict[str, tuple[int, ContainerRecord]] = {}
        self._sandbox_configs: dict[str, pb.PodSandboxConfig] = {}
        self._network_ready = False
        self._network_checked = 0.0
        self._network_check: asyncio.Task | None = None

    async def _call(self, method: Callable[..., Awaitable[Any]], request: Any, what: str,
                    timeout: float | None = None) -> Any:
        try:
            return await method(request, timeout=timeout or self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise _error(exc, what) from None

    # ---- engine ------------------------------------------------------------------

    async def version(self) -> str:
        resp = await self._call(self._rt.Version, pb.VersionRequest(version="v1"), "version")
        if resp.runtime_name:
            self.runtime_name = resp.runtime_name
        return resp.runtime_version

    async def status(self) -> t.RuntimeStatus:
        resp = await self._call(self._rt.Status, pb.StatusRequest(), "status", timeout=10)
        st = conditions(resp)
        self._network_ready, self._network_checked = st.network_ready, time.monotonic()
        return st

    async def ping(self) -> bool:
        try:
            return (await self.status()).runtime_ready
        except t.RuntimeError_:
            return False

    def network_ready(self) -> bool:
        """The last NetworkReady seen; a stale answer starts a refresh in the background
        (callers are synchronous and frequent; the CNI conf appears once)."""
        if time.monotonic() - self._network_checked > 1.0 and (
                self._network_check is None or self._network_check.done()):
            try:
                self._network_check = asyncio.get_running_loop().create_task(self.ping())
            except RuntimeError:
                pass
        return self._network_ready

    # ---- sandboxes -----------------------------------------------------------------

    def _sandbox_config(self, cfg: SandboxConfig) -> pb.PodSandboxConfig:
        labels = {**cfg.labels, t.POD_NAME: cfg.pod_name, t.POD_NAMESPACE: cfg.pod_namespace,
                  t.POD_UID: cfg.pod_uid}
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=cfg.pod_name, uid=cfg.pod_uid, namespace=cfg.pod_namespace,
                                           attempt=cfg.attempt),
            # Empty: the node's name, as for a hostNetwork pod under kubelet.
            hostname="" if cfg.host_network else cfg.hostname,
            log_directory=pod_log_directory(self.pod_log_root, cfg.pod_namespace, cfg.pod_name, cfg.pod_uid),
            labels=labels, annotations={HOSTNAME_ANNOTATION: cfg.hostname},
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=f"{self.cgroup_root}/pod{cfg.pod_uid}",
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=_namespace_options(cfg.host_network))))

    async def run_sandbox(self, cfg: SandboxConfig) -> ContainerRecord:
        config = self._sandbox_config(cfg)
        await asyncio.to_thread(os.makedirs, config.log_directory, 0o755, True)
        try:
            resp = await self._call(self._rt.RunPodSandbox, pb.RunPodSandboxRequest(config=config),
                                    "run pod sandbox", timeout=max(self.timeout, 120))
        except t.RuntimeError_:
            # containerd may keep the failed sandbox (NOTREADY); the caller never got its
            # id, so it goes here, as a failed Docker sandbox does.
            await self._remove_failed(config.metadata)
            raise
        self._sandbox_configs[resp.pod_sandbox_id] = config
        st = await self._sandbox_status(resp.pod_sandbox_id)
        if st is None:
            raise t.RuntimeError_(f"sandbox {resp.pod_sandbox_id[:12]} vanished after it started")
        return record_from_sandbox(st.status)

    async def _remove_failed(self, meta: pb.PodSandboxMetadata) -> None:
        try:
            left = [sb for sb in await self.list_sandboxes(meta.uid)
                    if sb.attempt == meta.attempt and not sb.running]
            for sb in left:
                await self.stop_sandbox(sb.id)
                await self.remove_sandbox(sb.id)
        except t.RuntimeError_:
            pass  # the agent's teardown of the pod finds it later
        await self._forget_pod(meta)

    async def _sandbox_status(self, sandbox_id: str, verbose: bool = False) -> pb.PodSandboxStatusResponse | None:
        try:
            return await self._call(self._rt.PodSandboxStatus,
                                    pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=verbose),
                                    "pod sandbox status")
        except t.NotFound:
            return None

    async def _config_of(self, sandbox_id: str) -> pb.PodSandboxConfig:
        """The sandbox's config, rebuilt from its status after an agent restart."""
        have = self._sandbox_configs.get(sandbox_id)
        if have is not None:
            return have
        resp = await self._sandbox_status(sandbox_id)
        if resp is None:
            raise t.NotFound(f"pod sandbox {sandbox_id} not found")
        st = resp.status
        host_network = st.linux.namespaces.options.network == pb.NODE
        annotations = dict(st.annotations)
        labels = {k: v for k, v in st.labels.items()}
        config = self._sandbox_config(SandboxConfig(
            pod_name=st.metadata.name, pod_namespace=st.metadata.namespace, pod_uid=st.metadata.uid,
            attempt=st.metadata.attempt, image="", hostname=annotations.get(HOSTNAME_ANNOTATION, st.metadata.name),
            host_network=host_network, labels=labels))
        self._sandbox_configs[sandbox_id] = config
        return config

    async def stop_sandbox(self, sandbox_id: str) -> None:
        # The runtime runs CNI DEL (once) and stops every container of the sandbox.
        try:
            await self._call(self._rt.StopPodSandbox, pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id),
                             "stop pod sandbox", timeout=max(self.timeout, 120))
        except t.NotFound:
            pass

    async def remove_sandbox(self, sandbox_id: str) -> None:
        resp = await self._sandbox_status(sandbox_id)
        try:
            await self._call(self._rt.RemovePodSandbox, pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id),
                             "remove pod sandbox", timeout=max(self.timeout, 120))
        except t.NotFound:
            pass
        self._sandbox_configs.pop(sandbox_id, None)
        for cid in [c for c, (_, r) in self._statuses.items() if r.sandbox_id == sandbox_id]:
            del self._statuses[cid]
        if resp is not None:
            await self._forget_pod(resp.status.metadata)

    async def _forget_pod(self, meta: pb.PodSandboxMetadata) -> None:
        """The pod's log directory and cgroup go with its last sandbox (kubelet's
        pod cleanup does the same); runc leaves the pod-level cgroup behind."""
        try:
            if await self.list_sandboxes(meta.uid):
                return
        except t.RuntimeError_:
            return  # not known: keep them (the next removal tries again)
        log_dir = pod_log_directory(self.pod_log_root, meta.namespace, meta.name, meta.uid)
        await asyncio.to_thread(shutil.rmtree, log_dir, True)
        await asyncio.to_thread(remove_pod_cgroups, self.cgroup_root, meta.uid)

    async def list_sandboxes(self, pod_uid: str | None = None) -> list[ContainerRecord]:
        flt = pb.PodSandboxFilter(label_selector={t.POD_UID: pod_uid}) if pod_uid else None
        resp = await self._call(self._rt.ListPodSandbox, pb.ListPodSandboxRequest(filter=flt),
                                "list pod sandboxes")
        return [record_from_sandbox(sb) for sb in resp.items]

    async def sandbox_status(self, sandbox_id: str) -> t.SandboxStatus | None:
        resp = await self._sandbox_status(sandbox_id)
        if resp is None:
            return None
        net = resp.status.network
        ips = [net.ip] if net.ip else []
        ips += [a.ip for a in net.additional_ips if a.ip and a.ip not in ips]
        return t.SandboxStatus(sandbox_id, _SANDBOX_STATES.get(resp.status.state, "unknown"), ips)

    async def sandbox_netns(self, sandbox_id: str) -> str | None:
        resp = await self._sandbox_status(sandbox_id, verbose=True)
        if resp is None or resp.status.state != pb.SANDBOX_READY:
            return None
        return netns_from_info(dict(resp.info))

    # ---- containers ------------------------------------------------------------------

    async def create_container(self, cfg: ContainerConfig) -> str:
        sandbox_config = await self._config_of(cfg.sandbox_id)
        host_network = sandbox_config.linux.security_context.namespace_options.network == pb.NODE
        labels = {**cfg.labels, t.POD_NAME: cfg.pod_name, t.POD_NAMESPACE: cfg.pod_namespace,
                  t.POD_UID: cfg.pod_uid, t.CONTAINER_NAME: cfg.name, t.SANDBOX_ID: cfg.sandbox_id}
        annotations = {HASH_ANNOTATION: cfg.container_hash, RESTART_COUNT_ANNOTATION: str(cfg.attempt),
                       INIT_ANNOTATION: "true" if cfg.init else "false"}
        # No shares given: the runtime's default, as under Docker.
        resources = pb.LinuxContainerResources(cpu_shares=cfg.cpu_shares or 0)
        if cfg.memory_limit:
            # containerd sets the swap limit to the memory limit: no swap, as kubelet.
            resources.memory_limit_in_bytes = cfg.memory_limit
        if cfg.cpu_quota:
            resources.cpu_quota = cfg.cpu_quota
            resources.cpu_period = cfg.cpu_period or 100000
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=cfg.name, attempt=cfg.attempt),
            image=pb.ImageSpec(image=cfg.image),
            # CRI's command/args are Kubernetes' (empty command: the image's entrypoint,
            # and the image's cmd too when args are empty).
            command=cfg.entrypoint or [], args=cfg.cmd or [],
            working_dir=cfg.working_dir or "",
            envs=[pb.KeyValue(key=k, value=v) for k, v in cfg.env],
            mounts=[pb.Mount(container_path=m.container_path, host_path=m.host_path, readonly=m.read_only,
                             propagation=pb.PROPAGATION_PRIVATE) for m in cfg.mounts],
            labels=labels, annotations=annotations, log_path=container_log_path(cfg.name, cfg.attempt),
            stdin=cfg.stdin, tty=cfg.tty,
            linux=pb.LinuxContainerConfig(
                resources=resources,
                security_context=pb.LinuxContainerSecurityContext(
                    namespace_options=_namespace_options(host_network))))
        resp = await self._call(self._rt.CreateContainer, pb.CreateContainerRequest(
            pod_sandbox_id=cfg.sandbox_id, config=config, sandbox_config=sandbox_config), "create container")
        return resp.container_id

    async def start_container(self, container_id: str) -> None:
        self._statuses.pop(container_id, None)
        await self._call(self._rt.StartContainer, pb.StartContainerRequest(container_id=container_id),
                         "start container")

    async def stop_container(self, container_id: str, timeout: int) -> None:
        self._statuses.pop(container_id, None)
        grace = max(0, int(timeout))
        try:
            # The RPC lasts as long as the grace period; SIGKILL follows it.
            await self._call(self._rt.StopContainer,
                             pb.StopContainerRequest(container_id=container_id, timeout=grace),
                             "stop container", timeout=self.timeout + grace)
        except t.NotFound:
            pass

    async def remove_container(self, container_id: str) -> None:
        self._statuses.pop(container_id, None)
        try:
            await self._call(self._rt.RemoveContainer, pb.RemoveContainerRequest(container_id=container_id),
                             "remove container")
        except t.NotFound:
            pass

    async def _container_status(self, container_id: str, verbose: bool = False) -> pb.ContainerStatusResponse | None:
        try:
            return await self._call(self._rt.ContainerStatus,
                                    pb.ContainerStatusRequest(container_id=container_id, verbose=verbose),
                                    "container status")
        except t.NotFound:
            return None

    async def inspect(self, container_id: str) -> ContainerRecord | None:
        resp = await self._container_status(container_id)
        if resp is not None:
            sandbox_id = dict(resp.status.labels).get(t.SANDBOX_ID, "")
            return record_from_status(resp.status, sandbox_id)
        sb = await self._sandbox_status(container_id)
        return record_from_sandbox(sb.status) if sb is not None else None

    async def list(self, pod_uid: str | None = None) -> list[ContainerRecord]:
        selector = {t.POD_UID: pod_uid} if pod_uid else {}
        sandboxes, containers = await asyncio.gather(
            self._call(self._rt.ListPodSandbox, pb.ListPodSandboxRequest(
                filter=pb.PodSandboxFilter(label_selector=selector)), "list pod sandboxes"),
            self._call(self._rt.ListContainers, pb.ListContainersRequest(
                filter=pb.ContainerFilter(label_selector=selector)), "list containers"))
        items = [c for c in containers.containers if t.POD_UID in c.labels]
        stale = [c for c in items if self._statuses.get(c.id, (None,))[0] != c.state]
        if stale:
            fresh = await asyncio.gather(*(self._container_status(c.id) for c in stale))
            for c, resp in zip(stale, fresh):
                if resp is not None:
                    self._statuses[c.id] = (c.state, record_from_status(resp.status, c.pod_sandbox_id))
        if not pod_uid:
            live = {c.id for c in items}
            for cid in [cid for cid in self._statuses if cid not in live]:
                del self._statuses[cid]
        out = [record_from_sandbox(sb) for sb in sandboxes.items]
        out += [self._statuses[c.id][1] for c in items if c.id in self._statuses]
        return out

    # ---- images ------------------------------------------------------------------------

    async def _image_status(self, image: str, verbose: bool = False) -> pb.ImageStatusResponse:
        return await self._call(self._img.ImageStatus,
                                pb.ImageStatusRequest(image=pb.ImageSpec(image=image), verbose=verbose),
                                f"image status of {image}")

    async def image_id(self, image: str) -> str | None:
        resp = await self._image_status(image)
        return resp.image.id if resp.HasField("image") and resp.image.id else None

    async def list_images(self) -> list[t.ImageRecord]:
        resp = await self._call(self._img.ListImages, pb.ListImagesRequest(), "list images")
        return [t.ImageRecord(i.id, tuple(i.repo_tags), int(i.size)) for i in resp.images]

    async def image_config(self, image: str) -> dict[str, Any]:
        """The image's config in Docker's key names (Entrypoint, Cmd, Env, WorkingDir, User)."""
        resp = await self._image_status(image, verbose=True)
        if not resp.HasField("image"):
            raise t.ImageNotFound(f"no such image: {image}")
        return image_config_from_info(dict(resp.info))

    async def pull(self, image: str) -> str:
        try:
            resp = await self._call(self._img.PullImage, pb.PullImageRequest(image=pb.ImageSpec(image=image)),
                                    f"pull {image}", timeout=self.pull_timeout)
        except t.RuntimeError_ as exc:
            raise t.PullError(str(exc)) from exc
        got = await self.image_id(image)
        if got is None:
            raise t.PullError(f"image {image} not present after pull ({resp.image_ref})")
        return got

    # ---- streams -------------------------------------------------------------------------

    async def logs(self, container_id: str, *, follow: bool = False, tail: int | None = None,
                   since: float | None = None, timestamps: bool = False) -> AsyncIterator[bytes]:
        resp = await self._container_status(container_id)
        if resp is None:
            raise t.NotFound(f"container {container_id} not found")
        path = resp.status.log_path
        if not path:
            return

        async def running() -> bool:
            st = await self._container_status(container_id)
            return st is not None and st.status.state in (pb.CONTAINER_RUNNING, pb.CONTAINER_CREATED)

        async for chunk in cri_logs.read_log(path, follow=follow, tail=tail, since=since, timestamps=timestamps,
                                             running=running):
            yield chunk

    async def events(self) -> AsyncIterator[ContainerEvent]:
        """containerd 1.6 has no GetContainerEvents: a light poll of ListContainers (no
        per-container status) tells a state change sooner than the PLEG's relist."""
        states: dict[str, tuple[str, int]] | None = None
        while True:
            resp = await self._call(self._rt.ListContainers, pb.ListContainersRequest(), "list containers")
            now = {c.id: (c.labels.get(t.POD_UID, ""), c.state) for c in resp.containers
                   if t.POD_UID in c.labels}
            if states is not None:
                for ev in state_changes(states, now):
                    yield ev
            states = now
            await asyncio.sleep(self.event_period)

    async def exec(self, container_id: str, cmd: list[str], timeout: float = 10) -> tuple[int, bytes]:
        req = pb.ExecSyncRequest(container_id=container_id, cmd=cmd, timeout=max(1, int(timeout + 0.999)))
        # The runtime kills the command at its timeout; the deadline covers a runtime that hangs.
        try:
            resp = await self._rt.ExecSync(req, timeout=timeout + 5)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                # As the Docker runtime's: a probe that timed out fails, it is no error.
                raise asyncio.TimeoutError(exc.details()) from None
            raise _error(exc, "exec") from None
        return resp.exit_code, bytes(resp.stdout) + bytes(resp.stderr)

    async def exec_stream(self, container_id: str, cmd: list[str], *, stdin: bool, stdout: bool, stderr: bool,
                          tty: bool, size: tuple[int, int] | None = None) -> t.Process:
        resp = await self._call(self._rt.Exec, pb.ExecRequest(
            # With a TTY there is no separate stderr (CRI refuses both).
            container_id=container_id, cmd=cmd, tty=tty, stdin=stdin, stdout=stdout, stderr=stderr and not tty),
            "exec")
        try:
            return await cri_io.connect(resp.url, is_exec=True, stdin=stdin, stdout=stdout, stderr=stderr, tty=tty,
                                        size=size if tty else None)
        except cri_io.CriStreamError as exc:
            raise t.RuntimeError_(str(exc)) from None

    async def attach_stream(self, container_id: str, *, stdin: bool, stdout: bool, stderr: bool,
                            size: tuple[int, int] | None = None) -> t.Process:
        st = await self._container_status(container_id, verbose=True)
        if st is None:
            raise t.NotFound(f"container {container_id} not found")
        tty = container_tty(dict(st.info))
        resp = await self._call(self._rt.Attach, pb.AttachRequest(
            container_id=container_id, stdin=stdin, tty=tty, stdout=stdout, stderr=stderr and not tty), "attach")
        try:
            return await cri_io.connect(resp.url, is_exec=False, stdin=stdin, stdout=stdout, stderr=stderr and not tty,
                                        tty=tty, size=size if tty else None)
        except cri_io.CriStreamError as exc:
            raise t.RuntimeError_(str(exc)) from None

    async def close(self) -> None:
        if self._network_check is not None:
            self._network_check.cancel()
        await self._channel.close()


def state_changes(before: dict[str, tuple[str, int]], now: dict[str, tuple[str, int]]) -> list[ContainerEvent]:
    """Events between two listings (container id -> (pod uid, CRI state))."""
    out = []
    for cid, (uid, state) in now.items():
        old = before.get(cid)
        if old is not None and old[1] == state:
            continue
        if state == pb.CONTAINER_RUNNING:
            out.append(ContainerEvent(cid, uid, t.STARTED))
        elif state == pb.CONTAINER_EXITED:
            out.append(ContainerEvent(cid, uid, t.STOPPED))
    out += [ContainerEvent(cid, uid, t.DELETED) for cid, (uid, _) in before.items() if cid not in now]
    return out


def _info_json(info: dict[str, str]) -> dict[str, Any]:
    try:
        return json.loads(info.get("info") or "{}")
    except ValueError:
        return {}


def netns_from_info(info: dict[str, str]) -> str | None:
    """containerd's verbose sandbox info: the netns path in the runtime spec (a pod
    network), else the pause process's (host network: the node's own)."""
    doc = _info_json(info)
    for ns in ((doc.get("runtimeSpec") or {}).get("linux") or {}).get("namespaces") or []:
        if ns.get("type") == "network" and ns.get("path"):
            return ns["path"]
    pid = doc.get("pid")
    return f"/proc/{pid}/ns/net" if pid else None


def container_tty(info: dict[str, str]) -> bool:
    doc = _info_json(info)
    return bool((doc.get("config") or {}).get("tty"))


def image_config_from_info(info: dict[str, str]) -> dict[str, Any]:
    cfg = ((_info_json(info).get("imageSpec") or {}).get("config")) or {}
    return {"Entrypoint": cfg.get("Entrypoint"), "Cmd": cfg.get("Cmd"), "Env": cfg.get("Env") or [],
            "WorkingDir": cfg.get("WorkingDir") or "", "User": cfg.get("User") or ""}


def remove_pod_cgroups(cgroup_root: str, pod_uid: str) -> None:
    """rmdir the pod's cgroup in each hierarchy (v1) or the unified one (v2): empty
    once its containers are gone. The cgroup_root itself stays."""
    rel = f"{cgroup_root.strip('/')}/pod{pod_uid}"
    try:
        hierarchies = os.listdir(CGROUP_FS)
    except OSError:
        return
    for path in [os.path.join(CGROUP_FS, h, rel) for h in hierarchies] + [os.path.join(CGROUP_FS, rel)]:
        try:
            os.rmdir(path)
        except OSError:
            pass
