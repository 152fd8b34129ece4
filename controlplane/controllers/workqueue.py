"""A work queue of keys, like client-go's workqueue: a key waiting in the queue
is stored once however often it is added (bursts coalesce into one sync), a key
is never handed to two workers at once, and a key added while it is being
processed is queued again when that processing ends. Failed keys come back
after a per-key exponential backoff.

`shutdown()` stops the queue: nothing new is added, and a worker waiting in `get()`
is released with `ShutDown` once the keys already queued are handed out.
`shut_down_with_drain()` also waits for the keys being processed to be `done()`.

A queue with a `name` reports client-go's workqueue_* metrics (workqueue_metrics.py)."""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Hashable

from .workqueue_metrics import QueueMetrics, track


class ShutDown(Exception):
    """Raised by `get()` once the queue is shut down and empty: the worker should return."""


class WorkQueue:
    def __init__(self, base_delay: float = 0.005, max_delay: float = 60.0, name: str = "") -> None:
        self._queue: deque[Hashable] = deque()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._failures: dict[Hashable, int] = {}
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()  # set while no key is being processed
        self._idle.set()
        self._shutting_down = False
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.metrics: QueueMetrics | None = None
        self.name = name

    @property
    def name(self) -> str:
        return self.metrics.name if self.metrics is not None else ""

    @name.setter
    def name(self, name: str) -> None:
        """Naming a queue (the controller manager names its controllers' queues) starts its metrics."""
        if name == self.name:
            return
        self.metrics = QueueMetrics(name) if name else None
        if self.metrics is not None:
            track(self)

    def depth(self) -> int:
        """Keys waiting: queued, or added again while being processed (client-go's depth)."""
        return len(self._dirty)

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: Hashable) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if self.metrics is not None:
            self.metrics.add(key)
        if key in self._processing:
            return  # done() re-queues it
        self._queue.append(key)
        self._notify()

    def add_after(self, key: Hashable, delay: float) -> None:
        if self._shutting_down:
            return
        if self.metrics is not None:  # client-go counts every delayed add as a retry
            self.metrics.retry()
        if delay <= 0:
            self.add(key)
            return
        old = self._timers.get(key)
        if old is not None:
            if old.when() <= asyncio.get_running_loop().time() + delay:
                return  # an earlier wake-up is already scheduled
            old.cancel()
        self._timers[key] = asyncio.get_running_loop().call_later(delay, self._fire, key)

    def _fire(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: Hashable) -> None:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        self.add_after(key, min(self.base_delay * (2 ** n), self.max_delay))

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def retries(self, key: Hashable) -> int:
        return self._failures.get(key, 0)

    def _notify(self) -> None:
        self._wakeup.set()

    async def get(self) -> Hashable:
        """The next key; raises ShutDown once the queue is shut down and empty."""
        while not self._queue:
            if self._shutting_down:
                raise ShutDown()
            self._wakeup.clear()
            await self._wakeup.wait()
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        self._idle.clear()
        if self.metrics is not None:
            self.metrics.get(key)
        return key

    def done(self, key: Hashable) -> None:
        self._processing.discard(key)
        if self.metrics is not None:
            self.metrics.done(key)
        if key in self._dirty and not self._shutting_down:
            self._queue.append(key)
            self._notify()
        if not self._processing:
            self._idle.set()

    def shutting_down(self) -> bool:
        return self._shutting_down

    def shutdown(self) -> None:
        """Stop the queue; wake every waiting `get()` (they raise ShutDown when nothing is queued)."""
        self._shutting_down = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._notify()

    async def shut_down_with_drain(self, timeout: float | None = None) -> bool:
        """Shut down, then wait (at most `timeout` seconds) for the keys being processed
        to be done. True when drained."""
        self.shutdown()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True
