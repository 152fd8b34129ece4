"""The status manager's writer on a fake API client: set() never waits on the network,
the newest status wins, failures are retried until the API recovers, and the final
delete comes after the pod's last status write with nothing written for it afterwards."""
from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from agent.status_manager import StatusManager
from kubeling import errors
from tests.unit.agent.waiting import wait_for


class FakeClient:
    """An API that writes down what it is sent; `gate` holds every call open until set,
    `fail` makes the next calls fail (the API server down)."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str, Any]] = []   # (kind, pod name, status phase | None)
        self.gate: asyncio.Event | None = None
        self.fail = 0
        self.calls = 0

    async def _call(self) -> None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            self.fail -= 1
            raise errors.ApiError(503, "ServiceUnavailable", "the server is unavailable")

    async def patch(self, res: Any, name: str, body: dict[str, Any], ns: str | None = None,
                    subresource: str | None = None) -> dict[str, Any]:
        await self._call()
        self.writes.append(("patch", name, copy.deepcopy(body["status"]).get("phase")))
        return body

    async def delete(self, res: Any, name: str, ns: str | None = None, **kw: Any) -> None:
        await self._call()
        self.writes.append(("delete", name, None))


def pod(name: str = "p", uid: str = "u1", phase: str = "Pending") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid}, "status": {"phase": phase}}


def status(phase: str, ip: str = "") -> dict[str, Any]:
    return {"phase": phase, "podIP": ip}


@pytest.fixture
async def manager():
    client = FakeClient()
    sm = StatusManager(client, retry_initial=0.02, retry_max=0.1)  # type: ignore[arg-type]
    writer = asyncio.create_task(sm.run())
    yield sm, client
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    if client.gate is not None:
        client.gate.set()


async def test_set_does_not_wait_on_a_stalled_api_and_the_newest_status_wins(manager):
    sm, client = manager
    client.gate = asyncio.Event()    # the API server hangs
    assert sm.set(pod(), status("Pending", "10.0.0.2")) is True
    await wait_for(lambda: client.calls == 1)
    # Syncs go on while the write hangs: each set() returns at once.
    assert sm.set(pod(), status("Running", "10.0.0.2")) is True
    assert sm.set(pod(), status("Running", "10.0.0.3")) is True
    assert sm.last("u1") == status("Running", "10.0.0.3"), "readers see the newest, written or not"
    assert client.writes == []
    client.gate.set()
    await wait_for(lambda: not sm.pending("u1"))
    assert client.writes == [("patch", "p", "Pending"), ("patch", "p", "Running")]
    assert sm.patches == 2
    assert sm.set(pod(), status("Running", "10.0.0.3")) is False, "unchanged: nothing to write"


async def test_a_failing_api_is_retried_until_it_recovers(manager):
    sm, client = manager
    client.fail = 3
    sm.set(pod(), status("Running"))
    await wait_for(lambda: client.writes, timeout=5)
    assert client.calls == 4 and client.writes == [("patch", "p", "Running")]
    assert sm.patches == 1 and not sm.pending("u1")


async def test_a_failing_pod_does_not_hold_the_others(manager):
    sm, client = manager
    client.fail = 1
    sm.set(pod("a", "ua"), status("Running"))
    sm.set(pod("b", "ub"), status("Running"))
    await wait_for(lambda: len(client.writes) == 2, timeout=5)
    assert [w[1] for w in client.writes] == ["b", "a"], "b is written while a backs off"


async def test_after_a_restart_a_status_equal_to_the_api_is_not_written(manager):
    sm, client = manager
    assert sm.set(pod(phase="Running"), {"phase": "Running"}) is False
    assert sm.last("u1") == {"phase": "Running"} and not sm.pending("u1")


async def test_the_final_delete_follows_the_last_status_and_nothing_comes_after(manager):
    sm, client = manager
    client.gate = asyncio.Event()
    sm.set(pod(), status("Running"))
    await wait_for(lambda: client.calls == 1)       # that write is under way
    sm.set(pod(), status("Failed"))                  # and a newer one waits
    deleting = asyncio.create_task(sm.delete_pod(pod()))
    await asyncio.sleep(0.05)
    assert not deleting.done(), "the delete waits for the writes before it"
    client.gate.set()
    await asyncio.wait_for(deleting, 5)
    assert client.writes == [("patch", "p", "Running"), ("patch", "p", "Failed"), ("delete", "p", None)]
    # Late syncs, a second confirmation: nothing more for that uid.
    assert sm.set(pod(), status("Running", "10.0.0.9")) is False
    await sm.delete_pod(pod())
    assert not sm.pending("u1") and sm.last("u1") is None
    assert client.writes[-1] == ("delete", "p", None) and len(client.writes) == 3


async def test_a_failed_final_delete_is_retried(manager):
    sm, client = manager
    client.fail = 2
    await asyncio.wait_for(sm.delete_pod(pod()), 5)
    assert client.writes == [("delete", "p", None)] and client.calls == 3


async def test_a_gone_pod_is_not_written_again(manager):
    sm, client = manager

    async def gone(*a: Any, **kw: Any) -> None:
        client.calls += 1
        raise errors.ApiError(404, "NotFound", "pods \"p\" not found")
    client.patch = gone  # type: ignore[method-assign]
    sm.set(pod(), status("Running"))
    await wait_for(lambda: not sm.pending("u1"))
    assert client.calls == 1 and sm.patches == 0


async def test_forget_drops_the_unwritten_status(manager):
    sm, client = manager
    client.gate = asyncio.Event()
    sm.set(pod("a", "ua"), status("Running"))
    await wait_for(lambda: client.calls == 1)
    sm.set(pod("b", "ub"), status("Running"))
    sm.forget("ub")
    client.gate.set()
    await wait_for(lambda: not sm.pending("ua"))
    assert [w[1] for w in client.writes] == ["a"] and not sm.pending("ub")
