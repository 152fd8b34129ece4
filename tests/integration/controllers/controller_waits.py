"""Waiting on controllers from tests."""
from __future__ import annotations

import asyncio
import time

from kubeling import errors


async def eventually(check, timeout: float = 15.0):
    """Await check() until it returns something truthy; a 404 counts as "not yet"."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = await check()
        except errors.ApiError as exc:
            last = exc
            if exc.code != 404:
                raise
        if last and not isinstance(last, errors.ApiError):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached; last: {last!r}")
        await asyncio.sleep(0.05)
