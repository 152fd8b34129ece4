"""Node IPAM: an update of a Node that arrives before the watch shows our own podCIDR
patch must not allocate a second range for it."""
from __future__ import annotations

import asyncio

from controlplane.controllers.nodeipam import NodeIpamController


class _RecordingClient:
    def __init__(self) -> None:
        self.patches: list[tuple[str, dict]] = []

    async def patch(self, _res, name, body, **_kw):
        self.patches.append((name, body))
        await asyncio.sleep(0)
        return body


async def test_a_node_update_during_the_assignment_assigns_nothing_more():
    client = _RecordingClient()
    ctl = NodeIpamController(client)  # type: ignore[arg-type]
    ctl.informer.synced.set()
    node = {"metadata": {"name": "a"}, "spec": {}}
    await asyncio.gather(ctl._sync(node), ctl._sync(node))  # add, then the agent's status update
    await ctl._sync(node)  # a later update, still before the watch delivers the patch
    assert [name for name, _ in client.patches] == ["a"]
    assert client.patches[0][1]["spec"]["podCIDR"] == "10.244.0.0/24"
    other = {"metadata": {"name": "b"}, "spec": {}}
    await ctl._sync(other)
    assert client.patches[1][1]["spec"]["podCIDR"] == "10.244.1.0/24"


async def test_a_refused_assignment_frees_the_range_for_the_next_try():
    from kubeling import errors

    class _Refusing(_RecordingClient):
        async def patch(self, _res, name, body, **_kw):
            self.patches.append((name, body))
            if len(self.patches) == 1:
                raise errors.ApiError(500, "InternalError", "etcd is down")
            return body

    client = _Refusing()
    ctl = NodeIpamController(client)  # type: ignore[arg-type]
    ctl.informer.synced.set()
    node = {"metadata": {"name": "a"}, "spec": {}}
    await ctl._sync(node)
    await ctl._sync(node)
    assert [b["spec"]["podCIDR"] for _, b in client.patches] == ["10.244.0.0/24", "10.244.0.0/24"]
