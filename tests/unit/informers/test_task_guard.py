"""Guarded long-lived tasks: an unexpected end (an exception or a plain return) is
logged and fails whoever awaits the task or the on_failure callback; cancellation
is a normal stop and is never swallowed; a return while stopping is normal."""
from __future__ import annotations

import asyncio
import logging

import pytest

from kubeling.tasks import ComponentFailed, guarded

BOUND = 5.0


async def test_a_loop_that_returns_fails_the_component(caplog: pytest.LogCaptureFixture) -> None:
    async def loop() -> None:
        return

    failures: list[BaseException] = []
    with caplog.at_level(logging.ERROR, logger="kubeling.tasks"):
        task = guarded(loop(), "pleg", on_failure=failures.append)
        with pytest.raises(ComponentFailed, match="pleg exited unexpectedly"):
            await asyncio.wait_for(task, BOUND)
        await asyncio.sleep(0)  # done callbacks run
    assert len(failures) == 1 and isinstance(failures[0], ComponentFailed)
    assert "pleg exited unexpectedly" in caplog.text


async def test_an_exception_is_logged_and_raised_as_it_was(caplog: pytest.LogCaptureFixture) -> None:
    async def loop() -> None:
        raise KeyError("gone")

    failures: list[BaseException] = []
    with caplog.at_level(logging.ERROR, logger="kubeling.tasks"):
        task = guarded(loop(), "informer", on_failure=failures.append)
        with pytest.raises(KeyError):
            await asyncio.wait_for(task, BOUND)
        await asyncio.sleep(0)
    assert [type(f) for f in failures] == [KeyError]
    assert "informer failed" in caplog.text


async def test_cancellation_is_a_stop_not_a_failure() -> None:
    cleaned = asyncio.Event()

    async def loop() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    failures: list[BaseException] = []
    task = guarded(loop(), "worker", on_failure=failures.append)
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert cleaned.is_set() and task.cancelled() and failures == []


async def test_a_return_while_stopping_is_normal() -> None:
    stopping = False

    async def loop() -> str:
        return "done"

    stopping = True
    failures: list[BaseException] = []
    task = guarded(loop(), "worker", on_failure=failures.append, stopping=lambda: stopping)
    assert await asyncio.wait_for(task, BOUND) == "done"
    await asyncio.sleep(0)
    assert failures == []
