"""One worker per pod: syncs of a pod run one at a time, pods run concurrently
(kubelet's podWorkers). A sync is asked for by the informer, the PLEG, probe
results and timers; asks that arrive during a sync fold into one more sync. A
liveness failure is a request to the pod's worker too: its kill runs in the
worker's turn, never beside a sync or a pod kill (the preStop hook runs once)."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from agent.pod_sync import SyncResult

log = logging.getLogger("agent.workers")

ERROR_RETRY = 2.0


class _Worker:
    def __init__(self) -> None:
        self.dirty = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.kills: dict[str, str] = {}   # container name -> why (liveness failures)


class PodWorkers:
    def __init__(self, sync: Callable[[dict[str, Any]], Awaitable[SyncResult]],
                 get_pod: Callable[[str], dict[str, Any] | None],
                 cleanup: Callable[[str], Awaitable[None]],
                 kill_container: Callable[[dict[str, Any], str, str], Awaitable[None]] | None = None) -> None:
        """sync(pod) runs one pass; get_pod(uid) is the newest pod object or None when
        the pod left the API; cleanup(uid) removes a pod that left; kill_container(pod,
        name, message) stops one container (the next sync restarts it)."""
        self._sync = sync
        self._kill_container = kill_container
        self._get_pod = get_pod
        self._cleanup = cleanup
        self._workers: dict[str, _Worker] = {}

    def __contains__(self, uid: str) -> bool:
        return uid in self._workers

    def uids(self) -> list[str]:
        return list(self._workers)

    def update(self, uid: str) -> None:
        w = self._workers.get(uid)
        if w is None:
            w = self._workers[uid] = _Worker()
            w.task = asyncio.create_task(self._loop(uid, w), name=f"pod-{uid}")
        w.dirty.set()

    def kill_container(self, uid: str, name: str, message: str) -> None:
        """Ask the pod's worker to stop a container before its next sync; asks for the
        same container fold into one."""
        if self._kill_container is None:
            return
        w = self._workers.get(uid)
        if w is None:
            self.update(uid)
            w = self._workers[uid]
        w.kills[name] = message
        w.dirty.set()

    async def _run_kills(self, pod: dict[str, Any], w: _Worker) -> None:
        kills, w.kills = w.kills, {}
        if self._kill_container is None or pod["metadata"].get("deletionTimestamp"):
            return  # a pod being deleted is killed whole by its sync
        for name, message in kills.items():
            await self._kill_container(pod, name, message)

    def _later(self, uid: str, w: _Worker, delay: float) -> None:
        if w.timer is not None:
            w.timer.cancel()
        w.timer = asyncio.get_running_loop().call_later(delay, w.dirty.set)

    async def _loop(self, uid: str, w: _Worker) -> None:
        try:
            while True:
                await w.dirty.wait()
                w.dirty.clear()
                pod = self._get_pod(uid)
                try:
                    if pod is None:
                        await self._cleanup(uid)
                        return
                    if w.kills:
                        await self._run_kills(pod, w)
                    result = await self._sync(pod)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("sync of pod %s failed", uid)
                    self._later(uid, w, ERROR_RETRY)
                    continue
                if result.done:
                    return
                if result.resync_after is not None:
                    self._later(uid, w, result.resync_after)
        finally:
            if w.timer is not None:
                w.timer.cancel()
            if self._workers.get(uid) is w:
                del self._workers[uid]

    async def stop(self) -> None:
        tasks = [w.task for w in self._workers.values() if w.task]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
