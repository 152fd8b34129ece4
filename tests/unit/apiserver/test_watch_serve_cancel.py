"""watch.serve() lets a cancellation through (after closing its stream) instead of
swallowing it: a cancelled handler must not go on as if nothing happened."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from controlplane.apiserver import watch
from kubeling.resources import lookup


class QuietStream:
    def __init__(self) -> None:
        self.closed = False

    def __aiter__(self) -> "QuietStream":
        return self

    async def __anext__(self) -> tuple[str, dict[str, Any]]:
        await asyncio.Event().wait()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.closed = True


async def test_cancelled_watch_closes_its_stream_and_propagates() -> None:
    stream = QuietStream()
    request = make_mocked_request("GET", "/api/v1/pods?watch=true")
    task = asyncio.ensure_future(watch.serve(request, stream, lookup("pods"), 30, lambda o: o))
    await asyncio.sleep(0.05)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert stream.closed


async def test_a_watch_whose_time_is_up_ends_normally() -> None:
    stream = QuietStream()
    request = make_mocked_request("GET", "/api/v1/pods?watch=true")
    resp = await asyncio.wait_for(watch.serve(request, stream, lookup("pods"), 0.05, lambda o: o), 5)
    assert resp.status == 200 and stream.closed
