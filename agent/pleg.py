"""Pod lifecycle events (kubelet's PLEG): a relist of the runtime every second
plus the runtime's container events, so a container that dies is noticed at once. Each
change is reported as the pod uid it belongs to."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from agent.runtime.types import Runtime

log = logging.getLogger("agent.pleg")


class Pleg:
    def __init__(self, runtime: Runtime, on_change: Callable[[str], None], period: float = 1.0) -> None:
        self.runtime = runtime
        self.on_change = on_change
        self.period = period
        self.healthy = False
        self.relisted = asyncio.Event()
        self._states: dict[str, tuple[str, str]] = {}  # container id -> (pod uid, state)

    def pod_uids(self) -> set[str]:
        return {uid for uid, _ in self._states.values()}

    async def relist(self) -> None:
        records = await self.runtime.list()
        fresh = {r.id: (r.pod_uid, r.state) for r in records}
        changed = {uid for cid, (uid, st) in fresh.items() if self._states.get(cid) != (uid, st)}
        changed |= {uid for cid, (uid, _) in self._states.items() if cid not in fresh}
        self._states = fresh
        for uid in changed:
            if uid:
                self.on_change(uid)

    async def run_relist(self) -> None:
        while True:
            try:
                await self.relist()
                self.healthy = True
                self.relisted.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.healthy:
                    log.warning("runtime relist failed: %s", exc)
                self.healthy = False
            await asyncio.sleep(self.period)

    async def run_events(self) -> None:
        while True:
            try:
                async for ev in self.runtime.events():
                    if ev.pod_uid:
                        self.on_change(ev.pod_uid)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("runtime event stream broke: %s", exc)
            await asyncio.sleep(1)
