"""Pod status towards the API server (kubelet's status manager).

`set()` records the newest status of a pod and wakes the writer; it never waits on
the network, so a slow or failing API server never holds a pod sync. One writer task
(`run()`) patches pods/<name>/status for the pods whose newest status differs from
what the API last acknowledged: newest wins (statuses set while a write is under way
are written next), a failed write is tried again with back-off, a pod is written at
most once at a time, and pods take turns. The agent's confirmation that a pod is gone
(`delete_pod`, the final delete) goes through the same writer, after the pod's last
status write; after it nothing more is written for that uid."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from kubeling import errors
from kubeling.client import Client
from kubeling.resources import lookup

log = logging.getLogger("agent.status")
PODS = lookup("pods")

RETRY_INITIAL = 0.5
RETRY_MAX = 10.0
FINISHED_KEPT = 600.0   # seconds a deleted pod's uid is remembered (late set()s are dropped)


class StatusManager:
    def __init__(self, client: Client, retry_initial: float = RETRY_INITIAL,
                 retry_max: float = RETRY_MAX) -> None:
        self.client = client
        self.retry_initial, self.retry_max = retry_initial, retry_max
        self.patches = 0   # status writes the API accepted
        self._newest: dict[str, dict[str, Any]] = {}    # uid -> newest status set
        self._written: dict[str, dict[str, Any]] = {}   # uid -> what the API last acknowledged
        self._names: dict[str, tuple[str, str]] = {}    # uid -> (namespace, name)
        self._queue: dict[str, None] = {}               # uids with work, oldest first
        self._deletes: dict[str, tuple[dict[str, Any], asyncio.Future[None]]] = {}
        self._finished: dict[str, float] = {}           # uid -> when its final delete went
        self._failures: dict[str, int] = {}             # uid -> failed tries in a row
        self._retry_at: dict[str, float] = {}           # uid -> loop time of the next try
        self._writing: str | None = None                # uid of the write under way
        self._wake = asyncio.Event()
        # Called after each status the API accepted: (uid, namespace, name, previous, written).
        self.on_written: Callable[[str, str, str, dict[str, Any] | None, dict[str, Any]], None] | None = None

    # ---- what the pod workers call --------------------------------------------------

    def last(self, uid: str) -> dict[str, Any] | None:
        """The newest status set for the pod (written or not yet)."""
        return self._newest.get(uid)

    def set(self, pod: dict[str, Any], status: dict[str, Any]) -> bool:
        """Record the pod's newest status; True when it needs writing. After an agent
        restart the first status equal to the API's is taken as written."""
        meta = pod["metadata"]
        uid = meta["uid"]
        if uid in self._finished:
            return False
        self._names[uid] = (meta.get("namespace", ""), meta["name"])
        known = self._newest.get(uid)
        if known is None and (pod.get("status") or {}) == status:
            self._newest[uid] = self._written[uid] = status
            return False
        if known == status:
            return False
        self._newest[uid] = status
        if self._written.get(uid) == status:
            return False   # back to what the API already shows (a write may still be queued)
        self._enqueue(uid)
        return True

    def pending(self, uid: str) -> bool:
        """A status (or the final delete) of the pod is still to be written."""
        return uid in self._queue or uid == self._writing

    async def delete_pod(self, pod: dict[str, Any]) -> None:
        """The agent's confirmation that the pod is gone from the node: the final delete,
        made by the writer after the pod's last status write. Returns once it is done."""
        uid = pod["metadata"]["uid"]
        if uid in self._finished:
            return
        entry = self._deletes.get(uid)
        if entry is None:
            entry = self._deletes[uid] = (pod, asyncio.get_running_loop().create_future())
            self._names.setdefault(uid, (pod["metadata"].get("namespace", ""), pod["metadata"]["name"]))
            self._enqueue(uid)
        # The delete goes on when the awaiting pod worker is cancelled (agent shutdown).
        await asyncio.shield(entry[1])

    def forget(self, uid: str) -> None:
        """The pod left the node: its statuses are dropped (a final delete asked for stays)."""
        self._newest.pop(uid, None)
        self._written.pop(uid, None)
        if uid not in self._deletes:
            self._queue.pop(uid, None)
            self._names.pop(uid, None)
            self._failures.pop(uid, None)
            self._retry_at.pop(uid, None)

    # ---- the writer -------------------------------------------------------------------

    async def run(self) -> None:
        """The writer: runs for the agent's life."""
        loop = asyncio.get_running_loop()
        while True:
            uid, wait = self._next(loop.time())
            if uid is None:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except asyncio.TimeoutError:
                    pass
                continue
            del self._queue[uid]
            self._writing = uid
            try:
                done = await self._write(uid)
            except Exception as exc:   # the API is down or refused: try again later
                self._failed(uid, loop.time(), exc)
                self._queue[uid] = None
                continue
            finally:
                self._writing = None
            self._failures.pop(uid, None)
            self._retry_at.pop(uid, None)
            if not done:
                self._queue[uid] = None   # more to do for it (newer status, the delete): its turn comes again

    def _enqueue(self, uid: str) -> None:
        self._queue.setdefault(uid, None)
        self._wake.set()

    def _next(self, now: float) -> tuple[str | None, float | None]:
        """The first queued uid whose back-off is over, else how long until one is."""
        soonest: float | None = None
        for uid in self._queue:
            at = self._retry_at.get(uid)
            if at is None or at <= now:
                return uid, None
            soonest = at - now if soonest is None else min(soonest, at - now)
        return None, soonest

    def _failed(self, uid: str, now: float, exc: Exception) -> None:
        n = self._failures[uid] = self._failures.get(uid, 0) + 1
        delay = min(self.retry_initial * 2 ** (n - 1), self.retry_max)
        self._retry_at[uid] = now + delay
        namespace, name = self._names.get(uid, ("", uid))
        what = "final delete" if uid in self._deletes and uid not in self._newest else "status"
        log.warning("%s of pod %s/%s not written (try %d, again in %.1fs): %s", what, namespace, name, n,
                    delay, getattr(exc, "message", None) or exc)

    async def _write(self, uid: str) -> bool:
        """One step for the pod: its newest status if unwritten, else its final delete.
        True when nothing is left to do for it."""
        status = self._newest.get(uid)
        if status is not None and self._written.get(uid) != status and uid not in self._finished:
            await self._patch(uid, status)
            return self._newest.get(uid) == self._written.get(uid) and uid not in self._deletes
        if uid in self._deletes:
            await self._delete(uid)
        return True

    async def _patch(self, uid: str, status: dict[str, Any]) -> None:
        namespace, name = self._names[uid]
        try:
            await self.client.patch(PODS, name, {"metadata": {"uid": uid}, "status": status},
                                    namespace, subresource="status")
        except errors.ApiError as exc:
            if exc.code not in (404, 409):
                raise
            # The pod is gone, or its name is another pod's now: nothing to write.
        else:
            self.patches += 1
            if self.on_written is not None:
                self.on_written(uid, namespace, name, self._written.get(uid), status)
        if uid in self._newest:   # not forgotten while the write was under way
            self._written[uid] = status

    async def _delete(self, uid: str) -> None:
        pod, done = self._deletes[uid]
        meta = pod["metadata"]
        try:
            await self.client.delete(PODS, meta["name"], meta["namespace"], grace_period=0, uid=uid)
        except errors.ApiError as exc:
            if exc.code not in (404, 409):
                raise
        del self._deletes[uid]
        now = time.monotonic()
        self._finished = {u: t for u, t in self._finished.items() if now - t < FINISHED_KEPT}
        self._finished[uid] = now
        for table in (self._newest, self._written, self._names, self._failures, self._retry_at):
            table.pop(uid, None)
        if not done.done():
            done.set_result(None)
