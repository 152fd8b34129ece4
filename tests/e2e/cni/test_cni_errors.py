"""Every error path answers with the spec's error object on stdout and a non-zero exit."""
from __future__ import annotations

import pytest

from conftest import bridge_conf, in_pod

pytestmark = pytest.mark.e2e


def _assert_error(res, code: int, version: str = "1.0.0") -> None:
    assert res.code != 0, res
    assert res.out is not None, f"error must be JSON on stdout: {res.raw!r} / {res.err!r}"
    assert res.out["code"] == code, res.out
    assert res.out["cniVersion"] == version
    assert isinstance(res.out["msg"], str) and res.out["msg"]


@pytest.fixture(params=["daemon", "in-process"])
def mode(request):
    if request.param == "daemon":
        request.getfixturevalue("daemon")
    return request.param == "daemon"


@pytest.mark.parametrize("plugin", ["kubeling-bridge", "kubeling-ipam"])
def test_decode_failure_is_6(node, mode, plugin):
    pod = node.new_pod()
    res = node.cni(plugin, "ADD", b'{"cniVersion": "1.0.0", "name": ', cid="c", netns=pod, daemon=mode)
    _assert_error(res, 6, version="1.1.0")


@pytest.mark.parametrize("plugin", ["kubeling-bridge", "kubeling-ipam"])
def test_incompatible_version_is_1(node, mode, plugin, bridge, subnet, tmp_path):
    pod = node.new_pod()
    conf = bridge_conf("kc-net", bridge, subnet, str(tmp_path), version="9.9.9")
    res = node.cni(plugin, "ADD", conf, cid="c", netns=pod, daemon=mode)
    _assert_error(res, 1, version="9.9.9")
    assert "9.9.9" in res.out["details"]
    # CHECK needs 0.4.0, STATUS/GC 1.1.0
    old = bridge_conf("kc-net", bridge, subnet, str(tmp_path), version="0.3.1")
    _assert_error(node.cni(plugin, "CHECK", old, cid="c", netns=pod, daemon=mode), 1, version="0.3.1")


@pytest.mark.parametrize("missing", ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"])
def test_missing_environment_is_4(node, mode, missing, bridge, subnet, tmp_path):
    pod = node.new_pod()
    conf = bridge_conf("kc-net", bridge, subnet, str(tmp_path))
    res = node.cni("kubeling-bridge", "ADD", conf, cid="c", netns=pod, daemon=mode, drop=(missing,))
    _assert_error(res, 4)
    assert missing in res.out["msg"]
    assert bridge not in node.links()


def test_bad_environment_values_are_4(node, mode, bridge, subnet, tmp_path):
    pod = node.new_pod()
    conf = bridge_conf("kc-net", bridge, subnet, str(tmp_path))
    for env in ({"CNI_COMMAND": "FROB"}, {"CNI_CONTAINERID": "-bad id"}, {"CNI_IFNAME": "x" * 16},
                {"CNI_ARGS": "novalue"}):
        res = node.cni("kubeling-bridge", "ADD", conf, cid="c", netns=pod, daemon=mode, env=env)
        _assert_error(res, 4)


@pytest.mark.parametrize("patch", [
    {"mtu": "big"},
    {"hairpinMode": "yes"},
    {"bridge": "a-name-far-too-long"},
    {"ipam": {"type": "kubeling-ipam", "ranges": [[{"subnet": "10.250.0.0/33"}]]}},
    {"ipam": {"type": "kubeling-ipam", "ranges": [[{"subnet": "10.250.0.0/24", "gateway": "10.9.9.9"}]]}},
    {"ipam": {"type": "kubeling-ipam", "ranges": [[{"subnet": "10.250.0.0/31"}]]}},
    {"ipam": {"type": "kubeling-ipam"}},
])
def test_invalid_config_is_7(node, mode, patch, bridge, subnet, tmp_path):
    pod = node.new_pod()
    conf = bridge_conf("kc-net", bridge, subnet, str(tmp_path))
    conf.update(patch)
    res = node.cni("kubeling-bridge", "ADD", conf, cid="c", netns=pod, daemon=mode)
    _assert_error(res, 7)
    # A failed ADD leaves nothing behind in the pod.
    assert "eth0" not in in_pod(pod, "ip", "-o", "link").stdout


def test_unknown_ipam_plugin_and_bad_netns(node, mode, bridge, subnet, tmp_path):
    pod = node.new_pod()
    conf = bridge_conf("kc-net", bridge, subnet, str(tmp_path), ipam_type="no-such-ipam")
    res = node.cni("kubeling-bridge", "ADD", conf, cid="c", netns=pod, daemon=mode)
    _assert_error(res, 999)
    assert "no-such-ipam" in res.out["msg"]
    # The veth made before IPAM failed was taken back.
    assert [l for l in node.links() if l.startswith("veth")] == []
    conf = bridge_conf("kc-net", bridge, subnet, str(tmp_path))
    res = node.cni("kubeling-bridge", "ADD", conf, cid="c", netns="/run/netns/kc-does-not-exist", daemon=mode)
    _assert_error(res, 999)
    assert "netns" in res.out["msg"]
