"""One worker per pod (kubelet's podWorkers): passes of a pod run one at a time, pods
run concurrently. A pass is asked for by the informer, the PLEG, probe results and
timers; asks that arrive during a pass fold into one more pass.

Each pod has one state record (kubelet's podSyncStatus): the update pending and the
one a pass works on, the pass under way, since when the pod is terminating and the
grace period of its kill. Termination (the pod got a deletionTimestamp, or left the
API) takes over at once: a sync under way is cancelled (what it made is in the
runtime, and the kill lists the runtime afresh), then the kill runs. A shorter grace
period that arrives during the kill reaches the stops under way; a longer one never
lengthens it. A liveness failure is a request to the pod's worker too: its kill runs
in the worker's turn, never beside a sync or a pod kill (the preStop hook runs once)."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.pod_sync import GracePeriod, PodSyncer, SyncResult, pod_grace_period

log = logging.getLogger("agent.workers")

ERROR_RETRY = 2.0
# A pod that left the API without a deletion the agent saw (a force delete, or a pod
# found only in the runtime) is killed with this grace period, as a forced deletion is.
LEFT_API_GRACE = 1


@dataclass
class PodSyncStatus:
    """What the worker of one pod knows about it."""

    uid: str
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None              # the worker's loop
    pending_update: dict[str, Any] | None = None  # the newest pod seen by update()
    active_update: dict[str, Any] | None = None   # the pod the pass under way (or the last) works on
    working: asyncio.Task | None = None           # the pass under way
    syncing: bool = False                         # that pass is a sync (a termination cancels it)
    terminating_since: float | None = None        # time.monotonic() termination was asked for
    grace: GracePeriod | None = None              # the kill's grace period: only ever shrinks
    left_api: bool = False
    kills: dict[str, str] = field(default_factory=dict)  # container name -> why (liveness failures)
    timer: asyncio.TimerHandle | None = None

    @property
    def terminating(self) -> bool:
        return self.terminating_since is not None


class PodWorkers:
    def __init__(self, syncer: PodSyncer, get_pod: Callable[[str], dict[str, Any] | None]) -> None:
        """`syncer` runs the passes (sync, terminate, teardown, kill_container); get_pod(uid)
        is the newest pod object, None once the pod left the API."""
        self._syncer = syncer
        self._get_pod = get_pod
        self._pods: dict[str, PodSyncStatus] = {}

    def __contains__(self, uid: str) -> bool:
        return uid in self._pods

    def uids(self) -> list[str]:
        return list(self._pods)

    def state(self, uid: str) -> PodSyncStatus | None:
        return self._pods.get(uid)

    def update(self, uid: str) -> None:
        """Something about the pod changed: one more pass. A deletion also ends a sync
        under way at once, and a shorter grace period reaches a kill under way."""
        st = self._pods.get(uid)
        if st is None:
            st = self._pods[uid] = PodSyncStatus(uid)
            st.task = asyncio.create_task(self._loop(st), name=f"pod-{uid}")
        pod = self._get_pod(uid)
        if pod is not None:
            st.pending_update = pod
        else:
            st.left_api = True
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            self._terminate(st, pod_grace_period(pod) if pod is not None else LEFT_API_GRACE)
        st.wake.set()

    def _terminate(self, st: PodSyncStatus, grace: int) -> None:
        if st.grace is None:
            st.terminating_since = time.monotonic()
            st.grace = GracePeriod(grace)
            log.info("pod %s terminating (grace period %ds)", st.uid, st.grace.seconds)
        elif st.grace.shrink(grace):
            log.info("pod %s: grace period shortened to %ds", st.uid, grace)
        if st.syncing and st.working is not None and not st.working.done():
            st.working.cancel()

    def kill_container(self, uid: str, name: str, message: str) -> None:
        """Ask the pod's worker to stop a container before its next sync; asks for the
        same container fold into one. A terminating pod is killed whole anyway."""
        st = self._pods.get(uid)
        if st is None:
            self.update(uid)
            st = self._pods[uid]
        if st.terminating:
            return
        st.kills[name] = message
        st.wake.set()

    def _later(self, st: PodSyncStatus, delay: float) -> None:
        if st.timer is not None:
            st.timer.cancel()
        st.timer = asyncio.get_running_loop().call_later(delay, st.wake.set)

    async def _loop(self, st: PodSyncStatus) -> None:
        try:
            while True:
                await st.wake.wait()
                st.wake.clear()
                if st.terminating:
                    if await self._pass(st, self._termination(st), syncing=False) is not None:
                        return   # killed, torn down, confirmed: the worker ends
                    continue
                pod = self._get_pod(st.uid)
                if pod is None:   # gone without an update() telling (defensive)
                    self._terminate(st, LEFT_API_GRACE)
                    st.wake.set()
                    continue
                st.active_update = pod
                result = await self._pass(st, self._sync(st, pod), syncing=True)
                if result is None:
                    continue
                if result.done:
                    return
                if result.resync_after is not None:
                    self._later(st, result.resync_after)
        finally:
            if st.timer is not None:
                st.timer.cancel()
            if self._pods.get(st.uid) is st:
                del self._pods[st.uid]

    async def _pass(self, st: PodSyncStatus, coro: Any, syncing: bool) -> SyncResult | None:
        """Run one pass as a task of its own (so a termination can cancel a sync without
        cancelling the worker). None when it failed (retried later) or was cancelled."""
        task = asyncio.create_task(coro, name=f"{'sync' if syncing else 'kill'}-{st.uid}")
        st.working, st.syncing = task, syncing
        try:
            await asyncio.wait({task})
        finally:
            st.working, st.syncing = None, False
            if not task.done():   # the worker itself is being stopped
                task.cancel()
                await asyncio.wait({task})
        if task.cancelled():
            log.info("sync of pod %s cancelled: the pod is terminating", st.uid)
            return None
        if task.exception() is not None:
            log.error("%s of pod %s failed", "sync" if syncing else "kill", st.uid,
                      exc_info=task.exception())
            self._later(st, ERROR_RETRY)
            return None
        return task.result()

    async def _sync(self, st: PodSyncStatus, pod: dict[str, Any]) -> SyncResult:
        if st.kills:
            kills, st.kills = st.kills, {}
            for name, message in kills.items():
                await self._syncer.kill_container(pod, name, message)
        return await self._syncer.sync(pod)

    async def _termination(self, st: PodSyncStatus) -> SyncResult:
        """Kill, tear down and (for a pod still in the API) confirm, within st.grace."""
        assert st.grace is not None
        st.kills.clear()
        pod = self._get_pod(st.uid)
        if pod is not None:
            st.active_update = pod
            await self._syncer.terminate(pod, st.grace)
        else:
            await self._syncer.teardown(st.uid, grace=st.grace)
        return SyncResult(done=True)

    async def stop(self) -> None:
        tasks = [st.task for st in self._pods.values() if st.task]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
