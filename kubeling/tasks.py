"""Guarded long-lived tasks: a loop that should run for the life of its component
(an informer, a work-queue worker, a sync loop) and ends anyway is a failure, never
a silent hole.

`guarded(coro, name)` runs `coro` as a task that, when it ends other than by being
cancelled, logs why and fails: an exception is logged and raised again as it was; a
normal return (a loop that was meant to run for ever) raises `ComponentFailed`. So
whoever awaits the task (the component's `gather`) fails at once, the component's
`main` ends with an exception and the process exits non-zero: systemd restarts it.
For a task that nobody awaits until shutdown, pass `on_failure` to be told at once.

Cancellation is how a component stops; it is never treated as a failure and never
swallowed here.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger("kubeling.tasks")

T = TypeVar("T")


class ComponentFailed(RuntimeError):
    """A long-lived task ended on its own."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} exited unexpectedly")
        self.name = name


async def _guard(coro: Coroutine[Any, Any, T], name: str, stopping: Callable[[], bool] | None) -> T | None:
    try:
        result = await coro
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s failed", name)
        raise
    if stopping is not None and stopping():
        return result  # asked to stop (e.g. its work queue shut down): a normal end
    log.error("%s exited unexpectedly", name)
    raise ComponentFailed(name)


def guarded(coro: Coroutine[Any, Any, Any], name: str,
            on_failure: Callable[[BaseException], None] | None = None,
            stopping: Callable[[], bool] | None = None) -> asyncio.Task[Any]:
    """Start `coro` as a long-lived task named `name` (see the module's doc). A return
    while `stopping()` is true is the normal end of a component that was stopped."""
    task = asyncio.create_task(_guard(coro, name, stopping), name=name)
    if on_failure is not None:
        def _done(t: asyncio.Task[Any]) -> None:
            if not t.cancelled() and t.exception() is not None:
                on_failure(t.exception())  # type: ignore[arg-type]
        task.add_done_callback(_done)
    return task
