"""Waiting in unit tests of the agent's asyncio parts."""
from __future__ import annotations

import asyncio
from typing import Any


async def wait_for(check: Any, timeout: float = 5) -> Any:
    """Await until check() is truthy (the loop keeps running the workers meanwhile)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        got = check()
        if got:
            return got
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s")
