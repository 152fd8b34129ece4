"""Exec runs in a bounded pool of its own: hung exec probes cannot take the
threads the pod workers' list/create/stop calls need."""
from __future__ import annotations

import asyncio
import threading

from agent.runtime.docker import DockerRuntime


async def test_hung_execs_do_not_starve_other_runtime_calls(tmp_path):
    rt = DockerRuntime(f"unix://{tmp_path}/no-docker.sock", workers=4, exec_workers=2)
    release = threading.Event()
    lock = threading.Lock()
    active = peak = 0

    def hung_exec_create(container_id, cmd, **kw):  # type: ignore[no-untyped-def]
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        release.wait(10)
        with lock:
            active -= 1
        return {"Id": "exec"}

    rt._api.exec_create = hung_exec_create  # type: ignore[method-assign]
    rt._api.containers = lambda **kw: []  # type: ignore[method-assign]
    try:
        got = await asyncio.gather(*(rt.exec("c1", ["sleep", "inf"], timeout=0.2) for _ in range(10)),
                                   return_exceptions=True)
        assert all(isinstance(g, asyncio.TimeoutError) for g in got)
        # Ten hung execs, more than the general pool has threads: a list still runs at once.
        assert await asyncio.wait_for(rt.list(), 2) == []
        assert peak <= 2, "exec threads are bounded by exec_workers"
    finally:
        release.set()
        await rt.close()
