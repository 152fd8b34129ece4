"""The loop every work-queue controller runs (client-go's processNextWorkItem,
runWorker and Run): wait for the informers to list, then a few workers each take
a key, sync it, forget its failures when it succeeds, and on failure queue it
again with backoff, up to `max_retries` times. On stop the queue is shut down
and the keys being synced get `drain_timeout` seconds to finish."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Hashable

from kubeling import errors
from kubeling.shared_informers import SharedInformers
from kubeling.tasks import guarded

from .workqueue import ShutDown, WorkQueue


class QueueWorker:
    """A mixin. The controller sets `self.queue` (a WorkQueue), `self.log`,
    `self.informers` (SharedInformers) and implements `sync(key)`. It may set
    `workers`, `max_retries` (None: retry for ever), `retry_log_level`,
    `own_informers` (True: run() runs the informers too), and override
    `key_text(key)` (how a key reads in the log) and `after_synced()`."""

    queue: WorkQueue
    log: logging.Logger
    informers: SharedInformers
    workers: int = 1
    max_retries: int | None = 15
    retry_log_level: int = logging.INFO
    own_informers: bool = False
    drain_timeout: float = 2.0

    async def sync(self, key: Any) -> None:
        raise NotImplementedError

    def key_text(self, key: Hashable) -> str:
        """A (namespace, name) key reads "namespace/name"."""
        if isinstance(key, tuple):
            return "/".join(str(k) for k in key)
        return str(key)

    def after_synced(self) -> None:
        """Hook run once the informers have listed, before the workers start (e.g. to find leftovers)."""

    def start_informers(self) -> list[asyncio.Task[Any]]:
        if not self.own_informers:
            return []
        return [guarded(self.informers.run(), f"{self.log.name} informers")]

    def watch(self, res: Any, on_add: Any = None, on_update: Any = None, on_delete: Any = None) -> Any:
        """Register handlers on the shared informer of `res`; the workers start once the
        informers this controller watches have listed (not every informer of the manager:
        one resource that cannot be listed must not stop the controllers that never read it)."""
        inf = self.informers.add_handlers(res, on_add, on_update, on_delete)
        watched = self.__dict__.setdefault("_watched", [])
        if inf not in watched:
            watched.append(inf)
        return inf

    async def wait_synced(self) -> None:
        watched = self.__dict__.get("_watched")
        if watched:
            await asyncio.gather(*(inf.synced.wait() for inf in watched))
        else:
            await self.informers.wait_synced()

    async def process_next(self) -> None:
        key = await self.queue.get()
        try:
            await self.sync(key)
            self.queue.forget(key)
        except Exception as exc:  # one failing key never stops the others
            msg = exc.message if isinstance(exc, errors.ApiError) else repr(exc)
            if self.max_retries is None or self.queue.retries(key) < self.max_retries:
                self.log.log(self.retry_log_level, "sync %s failed, retrying: %s", self.key_text(key), msg)
                self.queue.add_rate_limited(key)
            else:
                self.log.warning("dropping %s after %d retries: %s", self.key_text(key), self.max_retries, msg)
                self.queue.forget(key)
        finally:
            self.queue.done(key)

    async def worker(self) -> None:
        """Sync keys until the queue shuts down."""
        while True:
            try:
                await self.process_next()
            except ShutDown:
                return

    async def run(self) -> None:
        tasks = self.start_informers()
        try:
            await self.wait_synced()
            self.after_synced()
            tasks += [guarded(self.worker(), f"{self.log.name} worker", stopping=self.queue.shutting_down)
                      for _ in range(self.workers)]
            # asyncio.wait, not gather: cancelling run() must not cancel the workers before
            # the drain below lets the keys in flight finish.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()  # a guarded task only ends by failing: fail the controller with it
        finally:
            # Stop: no key is handed out any more, the ones being synced get a moment to finish.
            await self.queue.shut_down_with_drain(self.drain_timeout)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
