"""The pod network behind the runtime: ADD on setup with a checkpoint first, DEL
once, IPs from the checkpoint, readiness from the conflist."""
from __future__ import annotations

from typing import Any

import pytest

from agent.checkpoints import CheckpointStore
from agent.runtime.sandbox_network import SandboxNetwork


class FakeCni:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.fail = fail

    async def add(self, cid: str, netns: str, ns: str, name: str) -> dict[str, Any]:
        self.calls.append(("ADD", cid, netns))
        if self.fail:
            raise RuntimeError("plugin failed")
        return {"interfaces": [{"name": "eth0", "sandbox": netns}],
                "ips": [{"interface": 0, "address": "10.244.1.7/24"}]}

    async def delete(self, cid: str, netns: str, ns: str, name: str) -> None:
        self.calls.append(("DEL", cid, netns))

    def cached_result(self, cid: str) -> dict[str, Any] | None:
        return None


def make(tmp_path, fail=False):
    cni = FakeCni(fail)
    return cni, SandboxNetwork(cni, CheckpointStore(str(tmp_path)), str(tmp_path / "10-kubeling.conflist"))


async def test_setup_then_teardown_once(tmp_path):
    cni, net = make(tmp_path)
    assert await net.setup("sb1", 42, "u1", "p", "ns", host_network=False) == ["10.244.1.7"]
    assert cni.calls == [("ADD", "sb1", "/proc/42/ns/net")]
    assert net.ips("sb1") == ["10.244.1.7"]
    assert [cp.pod_uid for cp in net.checkpointed("u1")] == ["u1"]
    await net.teardown("sb1", 42)
    await net.teardown("sb1")
    assert cni.calls[1:] == [("DEL", "sb1", "/proc/42/ns/net")]
    net.forget("sb1")
    assert net.checkpointed() == [] and net.ips("sb1") == []


async def test_host_network_has_no_cni(tmp_path):
    cni, net = make(tmp_path)
    assert await net.setup("sb1", 42, "u1", "p", "ns", host_network=True) == []
    await net.teardown("sb1")
    assert cni.calls == []


async def test_failed_add_leaves_a_checkpoint_for_del(tmp_path):
    cni, net = make(tmp_path, fail=True)
    with pytest.raises(RuntimeError):
        await net.setup("sb1", 42, "u1", "p", "ns", host_network=False)
    await net.teardown("sb1")   # the netns is gone: DEL without it
    assert cni.calls[-1] == ("DEL", "sb1", "")


def test_ready_follows_the_conflist(tmp_path):
    _, net = make(tmp_path)
    assert not net.ready()
    (tmp_path / "10-kubeling.conflist").write_text("{}")
    assert net.ready()
