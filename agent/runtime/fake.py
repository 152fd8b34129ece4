"""An in-memory runtime behind the same interface (as kubelet's FakeRuntime and
cri-api's fake runtime service), for unit tests of the pod workers, the syncer, the
status manager and the PLEG. Every call is recorded in `calls`; tests hold an
operation open with the gates (an asyncio.Event that must be set before the
operation proceeds) to order things against it.

Stopping follows Docker's semantics: SIGTERM, then SIGKILL when the timeout is up. A
container stops at SIGTERM unless its name is in `ignore_sigterm`; then stop_container
returns once the container is gone, which a second stop with a shorter timeout (or the
first one's timeout) brings about."""
from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

from agent.runtime import types as t
from agent.runtime.types import ContainerConfig, ContainerEvent, ContainerRecord, SandboxConfig


class FakeRuntime(t.Runtime):
    def __init__(self) -> None:
        self.records: dict[str, ContainerRecord] = {}
        self.images: dict[str, str] = {}          # image -> id
        self.calls: list[tuple[Any, ...]] = []
        self.configs: dict[str, ContainerConfig] = {}
        self.sandbox_ips: dict[str, list[str]] = {}
        self.network_is_ready = True
        self.reachable = True
        # Gates: when set to an Event, the operation waits for it.
        self.pull_gate: asyncio.Event | None = None
        self.stop_gate: asyncio.Event | None = None
        self.sandbox_gate: asyncio.Event | None = None
        self.ignore_sigterm: set[str] = set()      # container names that trap SIGTERM
        self.pull_error: str | None = None
        self.exec_handler: Callable[[str, list[str]], Awaitable[tuple[int, bytes]]] | None = None
        self._ids = itertools.count(1)
        self._ips = itertools.count(2)
        self._events: asyncio.Queue[ContainerEvent] = asyncio.Queue()
        self._gone: dict[str, asyncio.Event] = {}   # container id -> set when it exited

    # ---- helpers for tests -----------------------------------------------------

    def _id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):04d}"

    def _emit(self, rec: ContainerRecord, typ: str) -> None:
        self._events.put_nowait(ContainerEvent(rec.id, rec.pod_uid, typ))

    def exit(self, container_id: str, code: int = 0) -> None:
        """The container's process ends on its own."""
        self._exited(container_id, code)

    def _exited(self, container_id: str, code: int) -> None:
        rec = self.records.get(container_id)
        if rec is None or not rec.running:
            return
        self.records[container_id] = replace(rec, state="exited", exit_code=code, finished_at=time.time())
        self._gone_event(container_id).set()
        self._emit(rec, t.STOPPED)

    def _gone_event(self, container_id: str) -> asyncio.Event:
        return self._gone.setdefault(container_id, asyncio.Event())

    def calls_of(self, name: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == name]

    def _check(self) -> None:
        if not self.reachable:
            raise t.RuntimeError_("fake runtime: unreachable")

    def _get(self, container_id: str) -> ContainerRecord:
        rec = self.records.get(container_id)
        if rec is None:
            raise t.NotFound(f"no such container: {container_id}")
        return rec

    # ---- engine ------------------------------------------------------------------

    async def version(self) -> str:
        return "fake-1.0"

    async def ping(self) -> bool:
        return self.reachable

    async def status(self) -> t.RuntimeStatus:
        return t.RuntimeStatus(runtime_ready=self.reachable, network_ready=self.network_is_ready)

    def network_ready(self) -> bool:
        return self.network_is_ready

    # ---- sandboxes ------------------------------------------------------------------

    async def _engine(self, op: Awaitable[Any]) -> Any:
        """Run an operation as an engine does: a caller that gives up (is cancelled) does
        not stop it, as Docker goes on with a create whose client went away."""
        return await asyncio.shield(asyncio.ensure_future(op))

    async def run_sandbox(self, cfg: SandboxConfig) -> ContainerRecord:
        self._check()
        return await self._engine(self._run_sandbox(cfg))

    async def _run_sandbox(self, cfg: SandboxConfig) -> ContainerRecord:
        self.calls.append(("run_sandbox", cfg.pod_uid, cfg.attempt))
        if self.sandbox_gate is not None:
            await self.sandbox_gate.wait()
        sid = self._id("sb")
        now = time.time()
        rec = ContainerRecord(id=sid, name=t.SANDBOX_NAME, pod_name=cfg.pod_name,
                              pod_namespace=cfg.pod_namespace, pod_uid=cfg.pod_uid, attempt=cfg.attempt,
                              is_sandbox=True, sandbox_id=sid, state="running", image=cfg.image,
                              created_at=now, started_at=now, pid=1000 + len(self.records),
                              labels=dict(cfg.labels))
        self.records[sid] = rec
        self.sandbox_ips[sid] = [] if cfg.host_network else [f"10.88.0.{next(self._ips)}"]
        self._emit(rec, t.STARTED)
        return rec

    async def stop_sandbox(self, sandbox_id: str) -> None:
        self.calls.append(("stop_sandbox", sandbox_id))
        self._exited(sandbox_id, 0)

    async def remove_sandbox(self, sandbox_id: str) -> None:
        self.calls.append(("remove_sandbox", sandbox_id))
        self._gone.pop(sandbox_id, None)
        rec = self.records.pop(sandbox_id, None)
        self.sandbox_ips.pop(sandbox_id, None)
        if rec is not None:
            self._emit(rec, t.DELETED)

    async def list_sandboxes(self, pod_uid: str | None = None) -> list[ContainerRecord]:
        return [r for r in await self.list(pod_uid) if r.is_sandbox]

    async def sandbox_status(self, sandbox_id: str) -> t.SandboxStatus | None:
        rec = self.records.get(sandbox_id)
        if rec is None:
            return None
        return t.SandboxStatus(sandbox_id, rec.state, list(self.sandbox_ips.get(sandbox_id, [])))

    # ---- containers --------------------------------------------------------------------

    async def create_container(self, cfg: ContainerConfig) -> str:
        self._check()
        self.calls.append(("create_container", cfg.pod_uid, cfg.name, cfg.attempt))
        if cfg.sandbox_id not in self.records:
            raise t.NotFound(f"no such sandbox: {cfg.sandbox_id}")
        cid = self._id("c")
        labels = {**cfg.labels, t.CONTAINER_HASH: cfg.container_hash,
                  t.INIT_CONTAINER: "true" if cfg.init else "false"}
        self.records[cid] = ContainerRecord(
            id=cid, name=cfg.name, pod_name=cfg.pod_name, pod_namespace=cfg.pod_namespace,
            pod_uid=cfg.pod_uid, attempt=cfg.attempt, is_sandbox=False, sandbox_id=cfg.sandbox_id,
            state="created", image=cfg.image, image_id=self.images.get(cfg.image, ""),
            created_at=time.time(), labels=labels)
        self.configs[cid] = cfg
        return cid

    async def start_container(self, container_id: str) -> None:
        self.calls.append(("start_container", container_id))
        rec = self._get(container_id)
        self.records[container_id] = replace(rec, state="running", started_at=time.time(), pid=2000)
        self._emit(rec, t.STARTED)

    async def stop_container(self, container_id: str, timeout: int) -> None:
        self.calls.append(("stop_container", container_id, timeout))
        if self.stop_gate is not None:
            await self.stop_gate.wait()
        rec = self.records.get(container_id)
        if rec is None or not rec.running:
            return
        if rec.name not in self.ignore_sigterm:
            self._exited(container_id, 143)
            return
        try:   # SIGTERM is ignored: SIGKILL when the timeout is up, unless it is gone before
            await asyncio.wait_for(self._gone_event(container_id).wait(), max(0, timeout))
        except asyncio.TimeoutError:
            self._exited(container_id, 137)

    async def remove_container(self, container_id: str) -> None:
        self.calls.append(("remove_container", container_id))
        self._gone.pop(container_id, None)
        rec = self.records.pop(container_id, None)
        if rec is not None:
            self._emit(rec, t.DELETED)

    async def inspect(self, container_id: str) -> ContainerRecord | None:
        return self.records.get(container_id)

    async def list(self, pod_uid: str | None = None) -> list[ContainerRecord]:
        self._check()
        return [r for r in self.records.values() if pod_uid is None or r.pod_uid == pod_uid]

    # ---- images --------------------------------------------------------------------------

    async def image_id(self, image: str) -> str | None:
        return self.images.get(image)

    async def pull(self, image: str) -> str:
        self.calls.append(("pull", image))
        if self.pull_gate is not None:
            await self.pull_gate.wait()
        if self.pull_error is not None:
            raise t.PullError(self.pull_error)
        self.images[image] = f"sha256:{abs(hash(image)):x}"
        return self.images[image]

    async def list_images(self) -> list[t.ImageRecord]:
        return [t.ImageRecord(i, (name,), 0) for name, i in self.images.items()]

    async def image_config(self, image: str) -> dict[str, Any]:
        return {}

    # ---- streams ---------------------------------------------------------------------------

    async def logs(self, container_id: str, *, follow: bool = False, tail: int | None = None,
                   since: float | None = None, timestamps: bool = False) -> AsyncIterator[bytes]:
        self._get(container_id)
        return
        yield b""  # an async generator with nothing to say

    async def events(self) -> AsyncIterator[ContainerEvent]:
        while True:
            yield await self._events.get()

    async def exec(self, container_id: str, cmd: list[str], timeout: float = 10) -> tuple[int, bytes]:
        self.calls.append(("exec", container_id, tuple(cmd)))
        self._get(container_id)
        if self.exec_handler is not None:
            return await asyncio.wait_for(self.exec_handler(container_id, cmd), timeout)
        return 0, b""
