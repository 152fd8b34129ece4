"""One pass of a pod worker (kubelet's SyncPod / SyncTerminatingPod): compare the
pod spec with what the runtime shows and take the next steps: sandbox + network,
init containers in order, app containers with restartPolicy and crash back-off,
status; on deletion, stop with the grace period, tear down, confirm."""
from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from agent import volumes
from agent.backoff import Backoff
from agent.checkpoints import CheckpointStore, SandboxCheckpoint
from agent.cni import CniInvoker, pod_ips
from agent.container_spec import cgroup_settings, command_and_args, container_hash, hosts_file
from agent.envvars import ConfigError, container_env
from agent.events import EventRecorder
from agent.pod_status import PodRuntimeView, by_name, pod_status
from agent.probe_results import ProbeResults
from agent.prober import Prober, run_pre_stop
from agent.runtime.types import (ContainerConfig, ContainerRecord, PullError, Runtime, RuntimeError_,
                                 SandboxConfig)
from agent.status_manager import StatusManager
from kubeling.timefmt import parse_time

log = logging.getLogger("agent.sync")

NORMAL, WARNING = "Normal", "Warning"
SANDBOX_RETRY = 2.0


@dataclass
class SyncConfig:
    node_name: str
    host_ip: str
    root_dir: str
    pause_image: str = "kubeling/pause:3.9"
    always_pull: bool = False   # no registry here: "Always" uses a present image unless set
    node_allocatable: dict[str, str] = field(default_factory=dict)


@dataclass
class SyncResult:
    """What the worker should do next."""

    resync_after: float | None = None
    done: bool = False     # the pod is finished with on this node (deleted)


def _epoch(docker_time: str) -> float:
    when = parse_time(docker_time) if docker_time else None
    return when.timestamp() if when else time.time()


def pod_full_name(pod: dict[str, Any]) -> str:
    m = pod["metadata"]
    return f"{m['name']}_{m['namespace']}({m['uid']})"


class PodSyncer:
    def __init__(self, cfg: SyncConfig, runtime: Runtime, cni: CniInvoker, checkpoints: CheckpointStore,
                 status: StatusManager, events: EventRecorder, probes: ProbeResults,
                 get_configmap: Callable[[str, str], Awaitable[dict[str, Any] | None]],
                 network_ready: Callable[[], bool] = lambda: True, prober: Prober | None = None,
                 object_volumes: Any = None,
                 get_secret: Callable[[str, str], Awaitable[dict[str, Any] | None]] | None = None) -> None:
        self.cfg = cfg
        self.runtime = runtime
        self.cni = cni
        self.checkpoints = checkpoints
        self.status = status
        self.events = events
        self.probes = probes
        self.get_configmap = get_configmap
        self.network_ready = network_ready
        self.prober = prober
        # configMap/secret/downwardAPI/projected volumes (agent.projected.ObjectVolumes) and
        # the Secret reader of env/envFrom.
        self.object_volumes = object_volumes
        self.get_secret = get_secret
        self._mount_failure: dict[str, str] = {}
        self.crash_backoff = Backoff()
        self.image_backoff = Backoff()
        # Sandbox creation failures (no network config yet, CNI errors) retry at 1 s doubling to 30 s.
        self.sandbox_backoff = Backoff(1.0, 30.0)
        self._sandbox_failed_at: dict[str, float] = {}
        self._pull_failed_at: dict[str, float] = {}
        self._pull_error: dict[str, str] = {}

    # ---- entry points ----------------------------------------------------------

    async def sync(self, pod: dict[str, Any]) -> SyncResult:
        uid = pod["metadata"]["uid"]
        records = await self.runtime.list(uid)
        if pod["metadata"].get("deletionTimestamp"):
            grace = pod["metadata"].get("deletionGracePeriodSeconds")
            if grace is None:
                grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            await self.kill_pod(pod, records, int(grace))
            await self.teardown(uid, records=await self.runtime.list(uid))
            await self.status.delete_pod(pod)
            return SyncResult(done=True)
        base = self.status.last(uid) or pod.get("status") or {}
        if base.get("phase") in ("Succeeded", "Failed"):
            await self._stop_finished(pod, records)
            return SyncResult()
        await self._sync_object_volumes(pod)
        view, resync = await self._run(pod, records)
        self._update_prober(pod, view)
        status = pod_status({**pod, "status": base}, view, self.probes, self.cfg.host_ip)
        if status["phase"] in ("Succeeded", "Failed"):
            await self._stop_finished(pod, view.records)
        await self.status.set(pod, status)
        return SyncResult(resync_after=resync)

    async def _sync_object_volumes(self, pod: dict[str, Any]) -> None:
        """Write or refresh the pod's object volumes (every sync: updates reach the files in
        place). A failure is a FailedMount event; containers needing that volume wait."""
        if self.object_volumes is None:
            return
        uid = pod["metadata"]["uid"]
        try:
            await self.object_volumes.sync(pod)
            self._mount_failure.pop(uid, None)
        except Exception as exc:  # any failure of one volume must not stop the pod's sync
            message = str(exc)
            if self._mount_failure.get(uid) != message:
                self._mount_failure[uid] = message
                self.events.pod_event(pod, WARNING, "FailedMount", message)

    def _update_prober(self, pod: dict[str, Any], view: PodRuntimeView) -> None:
        """Probe workers follow the running app containers (a restart is a new id)."""
        if self.prober is None:
            return
        running = {}
        for name, attempts in by_name(view.records).items():
            latest = attempts[0]
            if latest.running and not latest.init:
                running[name] = (latest.id, _monotonic_of(latest.started_at))
        self.prober.update_pod(pod, running, view.pod_ips[0] if view.pod_ips else None)

    async def _stop_container(self, pod: dict[str, Any] | None, r: ContainerRecord, grace: int) -> None:
        """preStop hook first (it spends part of the grace period), then SIGTERM/SIGKILL."""
        spec = _container_spec(pod, r.name) if pod is not None else None
        if spec is not None and (spec.get("lifecycle") or {}).get("preStop"):
            cp = self.checkpoints.get(r.sandbox_id)
            ip = cp.pod_ips[0] if cp is not None and cp.pod_ips else None
            spent = await run_pre_stop(pod, spec, r.id, ip, self.runtime.exec, grace, self._probe_event)
            grace = max(int(grace - spent), 2)  # kubelet keeps at least 2 s for the stop itself
        await self.runtime.stop_container(r.id, grace)

    def _probe_event(self, pod: dict[str, Any], reason: str, message: str, typ: str, container: str) -> None:
        self.events.pod_event(pod, typ, reason, message, container)

    async def _stop_finished(self, pod: dict[str, Any], records: list[ContainerRecord]) -> None:
        """A pod that finished keeps its containers (for logs) but not its network."""
        for r in records:
            if not r.is_sandbox and r.running:
                await self.runtime.stop_container(r.id, _grace(pod))
        for r in records:
            if r.is_sandbox:
                await self._stop_sandbox(r.id, r if r.running else None)

    # ---- running a pod ---------------------------------------------------------

    async def _run(self, pod: dict[str, Any], records: list[ContainerRecord]
                   ) -> tuple[PodRuntimeView, float | None]:
        spec = pod.get("spec") or {}
        policy = spec.get("restartPolicy") or "Always"
        waiting: dict[str, tuple[str, str]] = {}
        view = PodRuntimeView(records, waiting=waiting)
        sandboxes = sorted((r for r in records if r.is_sandbox), key=lambda r: r.attempt, reverse=True)
        sandbox = sandboxes[0] if sandboxes else None
        hist = by_name(records)
        ran_before = any(hist.values())
        if sandbox is None or not sandbox.running:
            if sandbox is not None and policy == "Never" and ran_before:
                # The sandbox died after the containers ran: with Never nothing restarts.
                view.sandbox = sandbox
                return view, None
            if sandbox is not None:
                await self._replace_sandbox(pod, records)
                records = await self.runtime.list(pod["metadata"]["uid"])
                hist = by_name(records)
            key = f"{pod['metadata']['uid']}/POD"
            failed_at = self._sandbox_failed_at.get(key)
            if failed_at is not None and self.sandbox_backoff.in_backoff_since(key, failed_at):
                view.records = records
                return view, self.sandbox_backoff.remaining(key, failed_at) + 0.05
            try:
                sandbox = await self._create_sandbox(pod, sandbox.attempt + 1 if sandbox else 0)
            except Exception as exc:
                log.warning("sandbox for %s failed: %s", pod_full_name(pod), exc)
                self.events.pod_event(pod, WARNING, "FailedCreatePodSandBox",
                                      f"Failed to create pod sandbox: {exc}")
                now = time.time()
                self.sandbox_backoff.next(key, now)
                self._sandbox_failed_at[key] = now
                view.records = records
                return view, self.sandbox_backoff.get(key) + 0.05
            self._sandbox_failed_at.pop(key, None)
            records = [*records, sandbox]
            view.records = records
        view.sandbox = sandbox
        cp = self.checkpoints.get(sandbox.id)
        view.pod_ips = cp.pod_ips if cp else pod_ips(self.cni.cached_result(sandbox.id))

        resync: float | None = None
        started_any = False
        app_started = any(hist.get(c["name"]) for c in spec.get("containers") or [])
        if not app_started:
            for c in spec.get("initContainers") or []:
                h = hist.get(c["name"], [])
                latest = h[0] if h else None
                if latest is not None and latest.state == "exited" and latest.exit_code == 0:
                    continue
                if latest is not None and latest.running:
                    return view, None
                if latest is not None and latest.state == "exited" and policy == "Never":
                    return view, None  # init failed: the pod fails
                wait, started = await self._start_or_backoff(pod, c, latest, sandbox, view, init=True)
                resync = wait
                if started:
                    view.records = await self.runtime.list(pod["metadata"]["uid"])
                return view, resync
        for c in spec.get("containers") or []:
            h = hist.get(c["name"], [])
            latest = h[0] if h else None
            if latest is not None and latest.running:
                continue
            if latest is not None and latest.state == "exited":
                code = latest.exit_code or 0
                if policy == "Never" or (policy == "OnFailure" and code == 0):
                    continue
            wait, started = await self._start_or_backoff(pod, c, latest, sandbox, view, init=False)
            started_any = started_any or started
            if wait is not None:
                resync = wait if resync is None else min(resync, wait)
        if started_any:
            view.records = await self.runtime.list(pod["metadata"]["uid"])
        return view, resync

    async def _start_or_backoff(self, pod: dict[str, Any], c: dict[str, Any], latest: ContainerRecord | None,
                                sandbox: ContainerRecord, view: PodRuntimeView, init: bool
                                ) -> tuple[float | None, bool]:
        """Start the container's next attempt unless crash back-off holds it.
        Returns (resync after seconds, started)."""
        name = c["name"]
        key = f"{pod['metadata']['uid']}/{name}"
        attempt = 0
        if latest is not None:
            attempt = latest.attempt + 1
            finished = _epoch(latest.finished_at)
            if self.crash_backoff.in_backoff_since(key, finished):
                delay = self.crash_backoff.get(key)
                msg = f"back-off {_fmt_duration(delay)} restarting failed container={name} pod={pod_full_name(pod)}"
                view.waiting[name] = ("CrashLoopBackOff", msg)
                self.events.pod_event(pod, WARNING, "BackOff", "Back-off restarting failed container "
                                      f"{name} in pod {pod_full_name(pod)}", name, init)
                return self.crash_backoff.remaining(key, finished) + 0.05, False
            self.crash_backoff.next(key, finished)
        ok = await self._start_container(pod, c, attempt, sandbox, view, init)
        if not ok:
            reason = view.waiting.get(name, ("", ""))[0]
            if reason in ("ErrImagePull", "ImagePullBackOff"):
                return self.image_backoff.remaining(self._image_key(pod, c),
                                                    self._pull_failed_at.get(self._image_key(pod, c), 0)) + 0.05, False
            return SANDBOX_RETRY, False
        # Keep one dead attempt (for --previous and lastState); older ones go.
        for old in by_name(view.records).get(name, [])[1:]:
            await self.runtime.remove_container(old.id)
        return None, True

    def _image_key(self, pod: dict[str, Any], c: dict[str, Any]) -> str:
        return f"{pod['metadata']['uid']}/{c['name']}/{c.get('image', '')}"

    async def _ensure_image(self, pod: dict[str, Any], c: dict[str, Any], view: PodRuntimeView,
                            init: bool) -> bool:
        image = c.get("image", "")
        name = c["name"]
        policy = c.get("imagePullPolicy") or "IfNotPresent"
        present = await self.runtime.image_id(image)
        must_pull = present is None or (policy == "Always" and self.cfg.always_pull)
        if present is not None and not must_pull:
            self.events.pod_event(pod, NORMAL, "Pulled",
                                  f'Container image "{image}" already present on machine', name, init)
            return True
        if policy == "Never":
            msg = f'Container image "{image}" is not present with pull policy of Never'
            view.waiting[name] = ("ErrImageNeverPull", msg)
            self.events.pod_event(pod, WARNING, "ErrImageNeverPull", msg, name, init)
            return False
        key = self._image_key(pod, c)
        failed_at = self._pull_failed_at.get(key)
        if failed_at is not None and self.image_backoff.in_backoff_since(key, failed_at):
            view.waiting[name] = ("ImagePullBackOff", f'Back-off pulling image "{image}"')
            self.events.pod_event(pod, NORMAL, "BackOff", f'Back-off pulling image "{image}"', name, init)
            return False
        self.events.pod_event(pod, NORMAL, "Pulling", f'Pulling image "{image}"', name, init)
        t0 = time.monotonic()
        try:
            await self.runtime.pull(image)
        except (PullError, RuntimeError_) as exc:
            now = time.time()
            self.image_backoff.next(key, now)
            self._pull_failed_at[key] = now
            msg = f'Failed to pull image "{image}": {exc}'
            view.waiting[name] = ("ErrImagePull", msg)
            self.events.pod_event(pod, WARNING, "Failed", msg, name, init)
            self.events.pod_event(pod, WARNING, "Failed", "Error: ErrImagePull", name, init)
            return False
        self._pull_failed_at.pop(key, None)
        self.events.pod_event(pod, NORMAL, "Pulled", f'Successfully pulled image "{image}" in '
                              f"{time.monotonic() - t0:.3f}s", name, init)
        return True

    async def _start_container(self, pod: dict[str, Any], c: dict[str, Any], attempt: int,
                               sandbox: ContainerRecord, view: PodRuntimeView, init: bool) -> bool:
        name = c["name"]
        meta = pod["metadata"]
        if not await self._ensure_image(pod, c, view, init):
            return False
        status = {**(pod.get("status") or {})}
        if view.pod_ips:
            status["podIP"] = view.pod_ips[0]
            status["podIPs"] = [{"ip": ip} for ip in view.pod_ips]
        try:
            env = await container_env({**pod, "status": status}, c, self.get_configmap,
                                      node_name=self.cfg.node_name, host_ip=self.cfg.host_ip,
                                      node_alloc=self.cfg.node_allocatable, get_secret=self.get_secret)
            vols = volumes.prepare_volumes(self.cfg.root_dir, pod)
            binds = volumes.binds(c, vols)
        except (ConfigError, volumes.VolumeError, OSError) as exc:
            view.waiting[name] = ("CreateContainerConfigError", str(exc))
            self.events.pod_event(pod, WARNING, "Failed", f"Error: {exc}", name, init)
            return False
        hosts = volumes.pod_dir(self.cfg.root_dir, meta["uid"]) / "etc-hosts"
        if not (pod.get("spec") or {}).get("hostNetwork") and hosts.exists() and not any(
                b.split(":")[1] == "/etc/hosts" for b in binds):
            binds.append(f"{hosts}:/etc/hosts:rw")
        env_map = dict(env)
        entry, cmd = command_and_args(c, env_map)
        cfg = ContainerConfig(
            name=name, pod_name=meta["name"], pod_namespace=meta["namespace"], pod_uid=meta["uid"],
            attempt=attempt, sandbox_id=sandbox.id, image=c.get("image", ""), entrypoint=entry, cmd=cmd,
            env=env, working_dir=c.get("workingDir"), binds=binds, tty=bool(c.get("tty")),
            stdin=bool(c.get("stdin")), init=init, container_hash=container_hash(c),
            **cgroup_settings(c))
        try:
            cid = await self.runtime.create_container(cfg)
        except RuntimeError_ as exc:
            view.waiting[name] = ("CreateContainerError", str(exc))
            self.events.pod_event(pod, WARNING, "Failed", f"Error: {exc}", name, init)
            return False
        self.events.pod_event(pod, NORMAL, "Created", f"Created container {name}", name, init)
        try:
            await self.runtime.start_container(cid)
        except RuntimeError_ as exc:
            view.waiting[name] = ("RunContainerError", str(exc))
            self.events.pod_event(pod, WARNING, "Failed", f"Error: {exc}", name, init)
            return True  # the container exists (exited with the error): back-off applies
        self.events.pod_event(pod, NORMAL, "Started", f"Started container {name}", name, init)
        return True

    # ---- sandboxes -------------------------------------------------------------

    async def _create_sandbox(self, pod: dict[str, Any], attempt: int) -> ContainerRecord:
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        host_network = spec.get("hostNetwork") is True
        if not host_network and not self.network_ready():
            raise RuntimeError_("network is not ready: no CNI configuration for this node's pod CIDR yet")
        volumes.prepare_volumes(self.cfg.root_dir, pod)
        labels = {k: v for k, v in (meta.get("labels") or {}).items()}
        sb = await self.runtime.run_sandbox(SandboxConfig(
            pod_name=meta["name"], pod_namespace=meta["namespace"], pod_uid=meta["uid"], attempt=attempt,
            image=self.cfg.pause_image, hostname=spec.get("hostname") or meta["name"],
            host_network=host_network, labels=labels))
        cp = SandboxCheckpoint(sb.id, meta["uid"], meta["name"], meta["namespace"], host_network)
        self.checkpoints.save(cp)
        if not host_network:
            try:
                result = await self.cni.add(sb.id, f"/proc/{sb.pid}/ns/net", meta["namespace"], meta["name"])
            except Exception:
                await self._stop_sandbox(sb.id, sb)
                await self.runtime.remove_container(sb.id)
                self.checkpoints.remove(sb.id)
                raise
            cp.pod_ips = pod_ips(result)
            self.checkpoints.save(cp)
        hosts = volumes.pod_dir(self.cfg.root_dir, meta["uid"]) / "etc-hosts"
        hosts.parent.mkdir(parents=True, exist_ok=True)
        hosts.write_text(hosts_file(cp.pod_ips[0] if cp.pod_ips else "",
                                    spec.get("hostname") or meta["name"], spec.get("hostAliases")))
        return sb

    async def _stop_sandbox(self, sandbox_id: str, rec: ContainerRecord | None) -> None:
        """CNI DEL (while the netns still exists, if it does), then stop."""
        cp = self.checkpoints.get(sandbox_id)
        if cp is not None and not cp.host_network and not cp.network_torn_down:
            netns = f"/proc/{rec.pid}/ns/net" if rec is not None and rec.running and rec.pid else ""
            await self.cni.delete(sandbox_id, netns, cp.pod_namespace, cp.pod_name)
            cp.network_torn_down = True
            self.checkpoints.save(cp)
        if rec is not None and rec.running:
            await self.runtime.stop_sandbox(sandbox_id)

    async def _replace_sandbox(self, pod: dict[str, Any], records: list[ContainerRecord]) -> None:
        """The sandbox died: everything in it goes, kubelet then starts over."""
        self.events.pod_event(pod, NORMAL, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
        await self.kill_pod(pod, records, _grace(pod))
        for r in records:
            if r.is_sandbox:
                await self.runtime.remove_container(r.id)
                self.checkpoints.remove(r.id)

    # ---- stopping --------------------------------------------------------------

    async def kill_pod(self, pod: dict[str, Any] | None, records: list[ContainerRecord], grace: int) -> None:
        running = [r for r in records if not r.is_sandbox and r.running]

        async def stop(r: ContainerRecord) -> None:
            if pod is not None:
                self.events.pod_event(pod, NORMAL, "Killing", f"Stopping container {r.name}", r.name, r.init)
            await self._stop_container(pod, r, grace)
        await asyncio.gather(*(stop(r) for r in running))
        for r in records:
            if r.is_sandbox:
                await self._stop_sandbox(r.id, r)

    async def teardown(self, uid: str, records: list[ContainerRecord] | None = None, grace: int = 1) -> None:
        """Everything of the pod leaves the node: containers, network, volumes, state."""
        if records is None:
            records = await self.runtime.list(uid)
        await self.kill_pod(None, records, grace)
        for cp in self.checkpoints.for_pod(uid):
            if not cp.host_network and not cp.network_torn_down:
                await self.cni.delete(cp.sandbox_id, "", cp.pod_namespace, cp.pod_name)
            self.checkpoints.remove(cp.sandbox_id)
        for r in records:
            await self.runtime.remove_container(r.id)
        self.probes.forget([r.id for r in records])
        if self.prober is not None:
            self.prober.remove_pod(uid)
        volumes.remove_pod_dir(self.cfg.root_dir, uid)
        self._mount_failure.pop(uid, None)
        if self.object_volumes is not None:
            self.object_volumes.forget(uid)
        self.crash_backoff.forget(uid + "/")
        self.image_backoff.forget(uid + "/")
        self.sandbox_backoff.forget(uid + "/")
        self._sandbox_failed_at.pop(uid + "/POD", None)
        for k in [k for k in self._pull_failed_at if k.startswith(uid + "/")]:
            del self._pull_failed_at[k]
        self.status.forget(uid)

    async def kill_container(self, pod: dict[str, Any], name: str, message: str) -> None:
        """A liveness failure: stop the container; the next sync restarts it."""
        for r in await self.runtime.list(pod["metadata"]["uid"]):
            if not r.is_sandbox and r.name == name and r.running:
                self.events.pod_event(pod, NORMAL, "Killing", message, name)
                await self._stop_container(pod, r, _grace(pod))


def _grace(pod: dict[str, Any]) -> int:
    g = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return int(g) if isinstance(g, int) and g >= 0 else 30


def _fmt_duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 60:
        return f"{s // 60}m{s % 60}s"
    return f"{s}s"


def _container_spec(pod: dict[str, Any], name: str) -> dict[str, Any] | None:
    spec = pod.get("spec") or {}
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if isinstance(c, dict) and c.get("name") == name:
            return c
    return None


def _monotonic_of(started_at: str) -> float:
    """Docker's StartedAt (RFC 3339, nanoseconds) on the monotonic clock probes count delays on."""
    try:
        head, _, frac = started_at.rstrip("Z").partition(".")
        t = datetime.datetime.fromisoformat(head).replace(tzinfo=datetime.timezone.utc).timestamp()
        t += float("0." + frac[:6]) if frac else 0.0
    except ValueError:
        return time.monotonic()
    return time.monotonic() - max(0.0, time.time() - t)
