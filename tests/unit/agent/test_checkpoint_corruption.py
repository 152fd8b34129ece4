"""A truncated or corrupt sandbox checkpoint is detected, not trusted: it never crashes
the agent, never lends a wrong value (a string of IPs read as a list, "false" read as
true) and never stops the sandbox's CNI DEL (the IP would leak): the DEL still runs,
keyed by the sandbox ID (all the IPAM needs), and the file is rewritten whole."""
from __future__ import annotations

import json

import pytest

from agent.checkpoints import CheckpointStore
from tests.unit.agent.test_sandbox_network import make

GOOD = {"sandbox_id": "sb1", "pod_uid": "u1", "pod_name": "p", "pod_namespace": "ns",
        "host_network": False, "pod_ips": ["10.244.1.7"], "network_torn_down": False}

CORRUPT = {
    "empty": b"",
    "truncated": json.dumps(GOOD).encode()[:40],
    "binary": b"\x00\xff\xfe\x80garbage",
    "null": b"null",
    "a-list": b"[1, 2]",
    "host-network-a-string": json.dumps({**GOOD, "host_network": "false"}).encode(),
    "ips-a-string": json.dumps({**GOOD, "pod_ips": "10.244.1.7"}).encode(),
    "ips-not-strings": json.dumps({**GOOD, "pod_ips": [1, None]}).encode(),
    "uid-a-number": json.dumps({**GOOD, "pod_uid": 5}).encode(),
    "unknown-field": json.dumps({**GOOD, "surprise": 1}).encode(),
    "other-sandbox-id": json.dumps({**GOOD, "sandbox_id": "sb2"}).encode(),
    "torn-down-a-string": json.dumps({**GOOD, "network_torn_down": "yes"}).encode(),
    "deeply-nested": b"[" * 100_000 + b"]" * 100_000,
    "huge": b'{"sandbox_id": "' + b"x" * (8 * 1024 * 1024) + b'"}',
}


def _write(tmp_path, content: bytes) -> None:
    d = tmp_path / "sandboxes"
    d.mkdir(parents=True, exist_ok=True)
    (d / "sb1.json").write_bytes(content)


@pytest.mark.parametrize("case", sorted(CORRUPT))
async def test_corrupt_checkpoint_still_gets_its_del_and_is_rewritten(tmp_path, case):
    cni, net = make(tmp_path)
    _write(tmp_path, CORRUPT[case])
    store = CheckpointStore(str(tmp_path))
    cp = store.get("sb1")
    assert cp is not None and cp.sandbox_id == "sb1" and cp.recovered
    assert cp.pod_ips == [] and cp.host_network is False and cp.network_torn_down is False
    assert net.ips("sb1") == []  # nothing invented; the CNI cache is asked instead (None here)
    await net.teardown("sb1")
    assert cni.calls == [("DEL", "sb1", "")]
    # Rewritten whole: valid JSON, the DEL remembered, so the next teardown does not repeat it.
    assert json.loads((tmp_path / "sandboxes" / "sb1.json").read_text())["network_torn_down"] is True
    await net.teardown("sb1")
    assert cni.calls == [("DEL", "sb1", "")]
    # A checkpoint that names no pod is no pod's: the agent's pod lists never see a uid "".
    assert net.checkpointed() == [] and net.checkpointed("u1") == []
    net.forget("sb1")
    assert not (tmp_path / "sandboxes" / "sb1.json").exists()


async def test_a_good_checkpoint_is_trusted(tmp_path):
    cni, net = make(tmp_path)
    _write(tmp_path, json.dumps(GOOD).encode())
    cp = CheckpointStore(str(tmp_path)).get("sb1")
    assert cp is not None and not cp.recovered and cp.pod_ips == ["10.244.1.7"]
    assert [c.pod_uid for c in net.checkpointed()] == ["u1"]
    await net.teardown("sb1")
    assert cni.calls == [("DEL", "sb1", "")]


def test_missing_checkpoint_is_none_and_a_directory_is_corrupt(tmp_path):
    store = CheckpointStore(str(tmp_path))
    assert store.get("sb1") is None
    (tmp_path / "sandboxes" / "sb1.json").mkdir(parents=True)
    cp = store.get("sb1")
    assert cp is not None and cp.recovered
    store.save(cp)  # the directory is replaced by a whole file
    assert store.get("sb1") is not None and not (tmp_path / "sandboxes" / "sb1.json").is_dir()
