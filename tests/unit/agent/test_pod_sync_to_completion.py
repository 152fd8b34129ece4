"""A runtime call that makes something runs to its end even when its sync is cancelled
more than once (a termination, then a shorter grace period): the kill that follows must
not find a sandbox half made (found by the fault suite: a sandbox stopped during its CNI ADD)."""
from __future__ import annotations

import asyncio
import logging

import pytest

from agent.pod_sync import _to_completion


async def test_the_call_outlasts_repeated_cancellation_of_its_caller() -> None:
    release = asyncio.Event()
    finished: list[str] = []

    async def make() -> str:
        await release.wait()
        finished.append("made")
        return "sandbox"

    caller = asyncio.create_task(_to_completion(make()))
    await asyncio.sleep(0)
    for _ in range(3):
        caller.cancel()
        await asyncio.sleep(0)
        assert not caller.done(), "the caller went on while the call still ran"
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert finished == ["made"]


async def test_a_failure_after_the_cancellation_is_retrieved(caplog) -> None:
    caplog.set_level(logging.INFO, logger="agent.sync")
    release = asyncio.Event()

    async def make() -> str:
        await release.wait()
        raise RuntimeError("CNI ADD failed")

    caller = asyncio.create_task(_to_completion(make()))
    await asyncio.sleep(0)
    caller.cancel()
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert "CNI ADD failed" in caplog.text
