"""One pass of a pod worker (kubelet's SyncPod / SyncTerminatingPod): compare the
pod spec with what the runtime shows and take the next steps: sandbox (the runtime
sets up its network),
init containers in order, app containers with restartPolicy and crash back-off,
status; on deletion (`terminate`), stop with a grace period that may shrink while the
kill runs, tear down, confirm.

A sync may be cancelled (the pod worker does so when the pod is deleted): runtime calls
that make something (a sandbox, a container) then run to their end first, so what they
made is in the runtime's next list and the kill that follows tears it down."""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agent import volumes
from agent.backoff import Backoff
from agent.container_spec import cgroup_settings, command_and_args, container_hash, hosts_file
from agent.dns_config import ClusterDNS, write_pod_resolv_conf
from agent.envvars import ConfigError, container_env
from agent.events import EventRecorder
from agent.pod_status import PodRuntimeView, by_name, pod_status
from agent.probe_results import ProbeResults
from agent.prober import Prober, run_pre_stop
from agent.runtime.types import (ContainerConfig, ContainerRecord, Mount, PullError, Runtime, RuntimeError_,
                                 SandboxConfig)
from agent.status_manager import StatusManager
from agent.trace_events import PodTraceEvents

log = logging.getLogger("agent.sync")

NORMAL, WARNING = "Normal", "Warning"
# A container that could not be made (its config: a missing ConfigMap key, a bad volume;
# or the engine refused it) is tried again this soon: the cause is outside the node.
CREATE_RETRY = 2.0
MIN_STOP_AFTER_HOOK = 2   # kubelet keeps at least 2 s for the stop after a preStop hook
T = TypeVar("T")


@dataclass
class SyncConfig:
    node_name: str
    host_ip: str
    root_dir: str
    pause_image: str = "kubeling/pause:3.9"
    always_pull: bool = False   # no registry here: "Always" uses a present image unless set
    node_allocatable: dict[str, str] = field(default_factory=dict)
    dns: ClusterDNS | None = None  # with --cluster-dns: each container gets the pod's resolv.conf


@dataclass
class SyncResult:
    """What the worker should do next."""

    resync_after: float | None = None
    done: bool = False     # the pod is finished with on this node (deleted)


class RetryAfterFailure:
    """Back-off of an operation that failed (a sandbox, an image pull), keyed
    "<pod uid>/...": the back-off and the time of the last failure kept together."""

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff
        self._failed_at: dict[str, float] = {}

    def waiting(self, key: str) -> float | None:
        """Seconds until the next try, None when a try may run now."""
        at = self._failed_at.get(key)
        if at is None or not self.backoff.in_backoff_since(key, at):
            return None
        return self.backoff.remaining(key, at)

    def remaining(self, key: str) -> float:
        return self.backoff.remaining(key, self._failed_at.get(key, 0))

    def failed(self, key: str) -> float:
        """Record a failure now; returns the back-off it starts."""
        now = time.time()
        self.backoff.next(key, now)
        self._failed_at[key] = now
        return self.backoff.get(key)

    def succeeded(self, key: str) -> None:
        self._failed_at.pop(key, None)

    def forget_pod(self, uid: str) -> None:
        self.backoff.forget(uid + "/")
        for k in [k for k in self._failed_at if k.startswith(uid + "/")]:
            del self._failed_at[k]


class GracePeriod:
    """The grace period of one kill. It only ever shrinks (a second delete with a shorter
    one; a longer one changes nothing), and stops under way learn when it does, so they
    can be issued again with the shorter timeout."""

    def __init__(self, seconds: int) -> None:
        self.seconds = max(0, int(seconds))
        self._shrunk = asyncio.Event()

    def shrink(self, seconds: int) -> bool:
        """Take a new grace period if it is shorter; True if it was."""
        seconds = max(0, int(seconds))
        if seconds >= self.seconds:
            return False
        self.seconds = seconds
        # Wake whoever waits now; later waiters wait for the next shrink.
        self._shrunk.set()
        self._shrunk = asyncio.Event()
        return True

    def next_shrink(self) -> asyncio.Event:
        """An event set when the grace period next shrinks (taken before awaiting, so a
        shrink between taking it and waiting on it is not missed)."""
        return self._shrunk


def pod_grace_period(pod: dict[str, Any]) -> int:
    """The grace period a deletion asks for: the pod's deletionGracePeriodSeconds, else
    its spec's terminationGracePeriodSeconds."""
    grace = pod["metadata"].get("deletionGracePeriodSeconds")
    if isinstance(grace, int) and grace >= 0:
        return grace
    return _grace(pod)


async def _within_grace(hook: asyncio.Task, grace: GracePeriod, deadline: float) -> float:
    """Wait for a preStop hook until it ends or `deadline` (loop time) passes; a grace
    period that shrinks meanwhile brings the deadline nearer. An unfinished hook is
    cancelled. Returns the deadline as it ended up."""
    loop = asyncio.get_running_loop()
    try:
        while not hook.done():
            event = grace.next_shrink()
            shrunk = asyncio.create_task(event.wait())
            try:
                await asyncio.wait({hook, shrunk}, timeout=max(0.0, deadline - loop.time()),
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                shrunk.cancel()
            if event.is_set():
                deadline = min(deadline, loop.time() + grace.seconds)
            elif not hook.done():
                break   # out of time
    finally:
        if not hook.done():
            hook.cancel()
        await asyncio.wait({hook})
    return deadline


async def _to_completion(aw: Awaitable[T]) -> T:
    """Await a runtime call that makes something; when the caller is cancelled meanwhile
    the call still runs to its end before the cancellation goes on, so nothing it made
    appears after the kill that follows has listed the pod."""
    task = asyncio.ensure_future(aw)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        # Cancelled again while waiting (a termination, then a shorter grace period, each
        # cancel the sync): still wait, or the kill would stop a sandbox in the middle of its
        # CNI ADD.
        while not task.done():
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:
                pass
        if not task.cancelled() and task.exception() is not None:
            # Its failure is the caller's no more (the caller is cancelled): said here, not
            # left to asyncio's "Task exception was never retrieved".
            log.info("a runtime call failed after its sync was cancelled: %s", task.exception())
        raise


def _epoch(when: float) -> float:
    """A runtime time (epoch seconds, 0 when unknown); unknown counts as now."""
    return when or time.time()


def _mount(bind: str) -> Mount:
    """volumes.binds' "host:container:ro|rw" as the runtime's typed mount."""
    host, ctr, mode = bind.rsplit(":", 2)
    return Mount(host, ctr, read_only=mode == "ro")


def pod_full_name(pod: dict[str, Any]) -> str:
    m = pod["metadata"]
    return f"{m['name']}_{m['namespace']}({m['uid']})"


class PodSyncer:
    def __init__(self, cfg: SyncConfig, runtime: Runtime, status: StatusManager, events: EventRecorder, probes: ProbeResults,
                 get_configmap: Callable[[str, str], Awaitable[dict[str, Any] | None]],
                 network_ready: Callable[[], bool] = lambda: True, prober: Prober | None = None,
                 object_volumes: Any = None,
                 get_secret: Callable[[str, str], Awaitable[dict[str, Any] | None]] | None = None) -> None:
        self.cfg = cfg
        self.runtime = runtime
        self.status = status
        self.events = events
        self.trace = PodTraceEvents(events, runtime, cfg.node_name)
        status.on_written = self.trace.status_written
        self.probes = probes
        self.get_configmap = get_configmap
        self.network_ready = network_ready
        self.prober = prober
        # configMap/secret/downwardAPI/projected volumes (agent.projected.ObjectVolumes) and
        # the Secret reader of env/envFrom.
        self.object_volumes = object_volumes
        self.get_secret = get_secret
        # Failure bookkeeping, one place per concern: the last FailedMount message per pod
        # (an event once per new message), crash back-off (counted from the container's
        # finish), image pulls, and sandbox creation (no network config yet, CNI errors:
        # 1 s doubling to 30 s).
        self._mount_failure: dict[str, str] = {}
        self.crash_backoff = Backoff()
        self.image_retry = RetryAfterFailure(Backoff())
        self.sandbox_retry = RetryAfterFailure(Backoff(1.0, 30.0))
        # Containers whose preStop hook started: it runs once, whatever kills the container
        # (a liveness kill cut short by a deletion, a kill whose grace period shrank).
        self._pre_stop_started: set[str] = set()

    def _forget_failures(self, uid: str) -> None:
        """The pod left the node: its failure bookkeeping (all of it is above) goes."""
        self._mount_failure.pop(uid, None)
        self.crash_backoff.forget(uid + "/")
        self.image_retry.forget_pod(uid)
        self.sandbox_retry.forget_pod(uid)
        self.trace.forget(uid)

    # ---- entry points ----------------------------------------------------------

    async def sync(self, pod: dict[str, Any]) -> SyncResult:
        """One pass of a pod that should run (a pod being deleted goes to `terminate`)."""
        if pod["metadata"].get("deletionTimestamp"):
            await self.terminate(pod, GracePeriod(pod_grace_period(pod)))
            return SyncResult(done=True)
        uid = pod["metadata"]["uid"]
        records = await self.runtime.list(uid)
        if not records:
            self.trace.accepted(pod)
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
        self.trace.status_computed(pod, base, status)
        self.status.set(pod, status)
        return SyncResult(resync_after=resync)

    async def terminate(self, pod: dict[str, Any], grace: GracePeriod) -> None:
        """The pod was deleted: stop its containers within `grace` (which may shrink
        meanwhile), tear everything down, confirm with the final delete. The runtime is
        listed afresh: a sync cancelled for this left whatever it made there."""
        uid = pod["metadata"]["uid"]
        began, asked = time.time(), grace.seconds
        await self.kill_pod(pod, await self.runtime.list(uid), grace)
        self.trace.stopped(pod, began, asked)
        await self.teardown(uid, grace=grace)
        self.trace.torn_down(pod)
        await self.status.delete_pod(pod)

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

    async def _stop_container(self, pod: dict[str, Any] | None, r: ContainerRecord,
                              grace: GracePeriod | int) -> None:
        """preStop hook first (it spends part of the grace period; it runs once per
        container), then SIGTERM and SIGKILL when the time is up. A grace period that
        shrinks meanwhile cuts the hook short and re-issues the stop with the new one."""
        grace = grace if isinstance(grace, GracePeriod) else GracePeriod(grace)
        loop = asyncio.get_running_loop()
        spec = _container_spec(pod, r.name) if pod is not None else None
        timeout = grace.seconds
        if pod is not None and spec is not None and (spec.get("lifecycle") or {}).get("preStop") \
                and grace.seconds > 0 and r.id not in self._pre_stop_started:
            self._pre_stop_started.add(r.id)
            began, asked = loop.time(), grace.seconds
            ip = await self._pod_ip(r.sandbox_id)
            hook = asyncio.create_task(run_pre_stop(pod, spec, r.id, ip, self.runtime.exec, asked,
                                                    self._probe_event))
            deadline = await _within_grace(hook, grace, min(began + asked, loop.time() + grace.seconds))
            if grace.seconds < asked:
                timeout = max(0, math.ceil(deadline - loop.time()))
            else:
                timeout = max(int(asked - (loop.time() - began)), MIN_STOP_AFTER_HOOK)
        await self._stop_within_grace(r.id, timeout, grace)

    async def _stop_within_grace(self, container_id: str, timeout: int, grace: GracePeriod) -> None:
        """stop_container(id, timeout); when the grace period shrinks to end sooner than the
        stop under way would, another stop with the shorter timeout (the runtime then kills
        sooner; the first call returns once the container is gone)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        stops = [asyncio.create_task(self.runtime.stop_container(container_id, timeout))]
        shrunk: asyncio.Task | None = None
        try:
            while True:
                event = grace.next_shrink()
                shrunk = asyncio.create_task(event.wait())
                await asyncio.wait({*stops, shrunk}, return_when=asyncio.FIRST_COMPLETED)
                if not event.is_set():
                    break
                seconds = grace.seconds
                if loop.time() + seconds < deadline:
                    deadline = loop.time() + seconds
                    stops.append(asyncio.create_task(self.runtime.stop_container(container_id, seconds)))
            results = await asyncio.gather(*stops, return_exceptions=True)
        finally:
            for task in [*stops, shrunk]:
                if task is not None and not task.done():
                    task.cancel()
        failed = [r for r in results if isinstance(r, BaseException)]
        if len(failed) == len(results):
            raise failed[0]   # no stop got through

    async def _pod_ip(self, sandbox_id: str) -> str | None:
        st = await self.runtime.sandbox_status(sandbox_id)
        return st.pod_ips[0] if st is not None and st.pod_ips else None

    def _probe_event(self, pod: dict[str, Any], reason: str, message: str, typ: str, container: str) -> None:
        self.events.pod_event(pod, typ, reason, message, container)

    async def _stop_finished(self, pod: dict[str, Any], records: list[ContainerRecord]) -> None:
        """A pod that finished keeps its containers (for logs) but not its network."""
        for r in records:
            if not r.is_sandbox and r.running:
                await self.runtime.stop_container(r.id, _grace(pod))
        for r in records:
            if r.is_sandbox:
                await self.runtime.stop_sandbox(r.id)

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
            wait = self.sandbox_retry.waiting(key)
            if wait is not None:
                view.records = records
                return view, wait + 0.05
            try:
                sandbox = await self._create_sandbox(pod, sandbox.attempt + 1 if sandbox else 0)
            except Exception as exc:
                log.warning("sandbox for %s failed: %s", pod_full_name(pod), exc)
                self.events.pod_event(pod, WARNING, "FailedCreatePodSandBox",
                                      f"Failed to create pod sandbox: {exc}")
                delay = self.sandbox_retry.failed(key)
                view.records = records
                return view, delay + 0.05
            self.sandbox_retry.succeeded(key)
            records = [*records, sandbox]
            view.records = records
        view.sandbox = sandbox
        st = await self.runtime.sandbox_status(sandbox.id)
        view.pod_ips = st.pod_ips if st is not None else []

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
                return self.image_retry.remaining(self._image_key(pod, c)) + 0.05, False
            return CREATE_RETRY, False
        # Keep one dead attempt (for --previous and lastState); older ones go.
        for old in by_name(view.records).get(name, [])[1:]:
            await self.runtime.remove_container(old.id)
            self._pre_stop_started.discard(old.id)
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
        if self.image_retry.waiting(key) is not None:
            view.waiting[name] = ("ImagePullBackOff", f'Back-off pulling image "{image}"')
            self.events.pod_event(pod, NORMAL, "BackOff", f'Back-off pulling image "{image}"', name, init)
            return False
        self.events.pod_event(pod, NORMAL, "Pulling", f'Pulling image "{image}"', name, init)
        t0 = time.monotonic()
        try:
            await self.runtime.pull(image)
        except (PullError, RuntimeError_) as exc:
            self.image_retry.failed(key)
            msg = f'Failed to pull image "{image}": {exc}'
            view.waiting[name] = ("ErrImagePull", msg)
            self.events.pod_event(pod, WARNING, "Failed", msg, name, init)
            self.events.pod_event(pod, WARNING, "Failed", "Error: ErrImagePull", name, init)
            return False
        self.image_retry.succeeded(key)
        self.events.pod_event(pod, NORMAL, "Pulled", f'Successfully pulled image "{image}" in '
                              f"{time.monotonic() - t0:.3f}s", name, init)
        return True

    async def _start_container(self, pod: dict[str, Any], c: dict[str, Any], attempt: int,
                               sandbox: ContainerRecord, view: PodRuntimeView, init: bool) -> bool:
        name = c["name"]
        meta = pod["metadata"]
        if not await self._ensure_image(pod, c, view, init):
            return False
        status = {**(self.status.last(meta["uid"]) or pod.get("status") or {})}
        if view.pod_ips:
            status["podIP"] = view.pod_ips[0]
            status["podIPs"] = [{"ip": ip} for ip in view.pod_ips]
        try:
            env = await container_env({**pod, "status": status}, c, self.get_configmap,
                                      node_name=self.cfg.node_name, host_ip=self.cfg.host_ip,
                                      node_alloc=self.cfg.node_allocatable, get_secret=self.get_secret)
            vols = volumes.prepare_volumes(self.cfg.root_dir, pod)
            mounts = [_mount(b) for b in volumes.binds(c, vols)]
        except (ConfigError, volumes.VolumeError, OSError) as exc:
            view.waiting[name] = ("CreateContainerConfigError", str(exc))
            self.events.pod_event(pod, WARNING, "Failed", f"Error: {exc}", name, init)
            return False
        hosts = volumes.pod_dir(self.cfg.root_dir, meta["uid"]) / "etc-hosts"
        if not (pod.get("spec") or {}).get("hostNetwork") and hosts.exists() and not any(
                m.container_path == "/etc/hosts" for m in mounts):
            mounts.append(Mount(str(hosts), "/etc/hosts"))
        if self.cfg.dns is not None and not any(m.container_path == "/etc/resolv.conf" for m in mounts):
            mounts.append(Mount(write_pod_resolv_conf(volumes.pod_dir(self.cfg.root_dir, meta["uid"]), pod,
                                                      self.cfg.dns), "/etc/resolv.conf"))
        env_map = dict(env)
        entry, cmd = command_and_args(c, env_map)
        cfg = ContainerConfig(
            name=name, pod_name=meta["name"], pod_namespace=meta["namespace"], pod_uid=meta["uid"],
            attempt=attempt, sandbox_id=sandbox.id, image=c.get("image", ""), entrypoint=entry, cmd=cmd,
            env=env, working_dir=c.get("workingDir"), mounts=mounts, tty=bool(c.get("tty")),
            stdin=bool(c.get("stdin")), init=init, container_hash=container_hash(c),
            **cgroup_settings(c))
        try:
            cid = await _to_completion(self.runtime.create_container(cfg))
        except RuntimeError_ as exc:
            view.waiting[name] = ("CreateContainerError", str(exc))
            self.events.pod_event(pod, WARNING, "Failed", f"Error: {exc}", name, init)
            return False
        self.events.pod_event(pod, NORMAL, "Created", f"Created container {name}", name, init)
        try:
            await _to_completion(self.runtime.start_container(cid))
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
        began = time.time()
        sb = await _to_completion(self.runtime.run_sandbox(SandboxConfig(
            pod_name=meta["name"], pod_namespace=meta["namespace"], pod_uid=meta["uid"], attempt=attempt,
            image=self.cfg.pause_image, hostname=spec.get("hostname") or meta["name"],
            host_network=host_network, labels=labels)))
        ip = await self._pod_ip(sb.id)
        self.trace.sandbox_created(pod, sb.id, began, ip, host_network)
        hosts = volumes.pod_dir(self.cfg.root_dir, meta["uid"]) / "etc-hosts"
        hosts.parent.mkdir(parents=True, exist_ok=True)
        hosts.write_text(hosts_file(ip or "",
                                    spec.get("hostname") or meta["name"], spec.get("hostAliases")))
        return sb

    async def _replace_sandbox(self, pod: dict[str, Any], records: list[ContainerRecord]) -> None:
        """The sandbox died: everything in it goes, kubelet then starts over."""
        self.events.pod_event(pod, NORMAL, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
        await self.kill_pod(pod, records, _grace(pod))
        for r in records:
            if r.is_sandbox:
                await self.runtime.remove_sandbox(r.id)

    # ---- stopping --------------------------------------------------------------

    async def kill_pod(self, pod: dict[str, Any] | None, records: list[ContainerRecord],
                       grace: GracePeriod | int) -> None:
        """Stop the running containers together (each within `grace`), then the sandboxes."""
        grace = grace if isinstance(grace, GracePeriod) else GracePeriod(grace)
        running = [r for r in records if not r.is_sandbox and r.running]

        async def stop(r: ContainerRecord) -> None:
            if pod is not None:
                self.events.pod_event(pod, NORMAL, "Killing", f"Stopping container {r.name}", r.name, r.init)
            await self._stop_container(pod, r, grace)
        await asyncio.gather(*(stop(r) for r in running))
        for r in records:
            if r.is_sandbox:
                await self.runtime.stop_sandbox(r.id)

    async def teardown(self, uid: str, records: list[ContainerRecord] | None = None,
                       grace: GracePeriod | int = 1) -> None:
        """Everything of the pod leaves the node: containers, network, volumes, state."""
        if records is None:
            records = await self.runtime.list(uid)
        await self.kill_pod(None, records, grace)
        # Sandboxes the runtime only remembers (container gone) are among these.
        for sb in await self.runtime.list_sandboxes(uid):
            await self.runtime.remove_sandbox(sb.id)
        for r in records:
            if not r.is_sandbox:
                await self.runtime.remove_container(r.id)
        self.probes.forget([r.id for r in records])
        if self.prober is not None:
            self.prober.remove_pod(uid)
        volumes.remove_pod_dir(self.cfg.root_dir, uid)
        if self.object_volumes is not None:
            self.object_volumes.forget(uid)
        self._forget_failures(uid)
        self._pre_stop_started.difference_update(r.id for r in records)
        self.status.forget(uid)

    async def kill_container(self, pod: dict[str, Any], name: str, message: str) -> None:
        """A liveness failure: stop the container; the next sync restarts it."""
        for r in await self.runtime.list(pod["metadata"]["uid"]):
            if not r.is_sandbox and r.name == name and r.running:
                self.events.pod_event(pod, NORMAL, "Killing", message, name)
                await self._stop_container(pod, r, GracePeriod(_grace(pod)))


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


def _monotonic_of(started_at: float) -> float:
    """A start time (epoch seconds) on the monotonic clock probes count delays on."""
    if not started_at:
        return time.monotonic()
    return time.monotonic() - max(0.0, time.time() - started_at)
