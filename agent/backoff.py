"""kubelet's crash-loop back-off (client-go flowcontrol.Backoff as kubelet uses it):
the first restart is immediate, then 10 s doubling to 5 min; an entry idle for
2×max (10 min, i.e. a container that ran that long) starts over."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

INITIAL = 10.0
MAX = 300.0


@dataclass
class _Entry:
    backoff: float
    last_update: float


class Backoff:
    def __init__(self, initial: float = INITIAL, maximum: float = MAX,
                 clock: Callable[[], float] = time.time) -> None:
        self.initial, self.max, self.clock = initial, maximum, clock
        self._entries: dict[str, _Entry] = {}

    def get(self, key: str) -> float:
        e = self._entries.get(key)
        return e.backoff if e else 0.0

    def in_backoff_since(self, key: str, event_time: float) -> bool:
        """True while less than the current back-off has passed since event_time
        (the container's finish time)."""
        e = self._entries.get(key)
        now = self.clock()
        if e is None or self._expired(e, now):
            return False
        return now - event_time < e.backoff

    def remaining(self, key: str, event_time: float) -> float:
        e = self._entries.get(key)
        if e is None:
            return 0.0
        return max(0.0, e.backoff - (self.clock() - event_time))

    def next(self, key: str, event_time: float) -> None:
        e = self._entries.get(key)
        if e is None or self._expired(e, event_time):
            self._entries[key] = _Entry(self.initial, event_time)
        else:
            e.backoff = min(e.backoff * 2, self.max)
            e.last_update = event_time

    def _expired(self, e: _Entry, event_time: float) -> bool:
        return event_time - e.last_update > 2 * self.max

    def forget(self, prefix: str) -> None:
        for k in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[k]
