"""Malformed configs and environments, at every level of the config: both plugins answer
with the spec's error object (code and msg on stdout, non-zero exit) and change nothing:
no link on the node, no allocation file, the pod's namespace as it was. Runs the plugins
in-process (no daemon): the daemon path decodes the same way (tests/e2e/cni/test_cni_errors.py
runs both for the basic cases)."""
from __future__ import annotations

import copy
import json
import os
from typing import Any, Iterator

import pytest

from conftest import bridge_conf, in_pod

pytestmark = pytest.mark.e2e

# Values of the wrong type for any field (fewer below the top: the decoders are per field),
# and for a string field, strings no name or path may be. Each replaces one field in turn.
WRONG_TYPES = [None, 7, [], {}, True]
BAD_STRINGS = ["\u0000\ud7ff日本", "x" * 5000, "../kc-escape", "-x\n"]


def _paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield (*prefix, key)
        yield from _paths(value, (*prefix, key))


def _get(conf: dict, path: tuple) -> Any:
    for key in path:
        conf = conf[key]
    return conf


def _replaced(conf: dict, path: tuple, value: Any) -> dict:
    out = copy.deepcopy(conf)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


def _deep(levels: int) -> str:
    return '{"a": ' * levels + "1" + "}" * levels


def _state(node, pod: str, data_dir: str) -> tuple:
    """What a failed command must not change: node links, allocation files, the pod's netns."""
    parent = os.path.dirname(data_dir)  # a name like "../x" must not escape the data dir either
    files = sorted(os.path.relpath(os.path.join(d, f), parent)
                   for d, _, fs in os.walk(parent) for f in fs if f != "lock")
    pod_view = in_pod(pod, "ip", "-o", "addr").stdout + in_pod(pod, "ip", "-o", "link").stdout
    return sorted(node.links()), files, pod_view, node.our_rules()


def _assert_error(res, where: str) -> None:
    assert res.code != 0, f"{where}: exit 0: {res.raw[:300]!r}"
    assert res.out is not None, f"{where}: error must be JSON on stdout: {res.raw[:300]!r} / {res.err[-800:]!r}"
    assert isinstance(res.out.get("code"), int) and res.out["code"] > 0, f"{where}: {res.out}"
    assert isinstance(res.out.get("msg"), str) and res.out["msg"], f"{where}: {res.out}"
    assert "Traceback" not in res.err, f"{where}: {res.err[-2000:]}"


def _mutants(conf: dict) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for path in _paths(conf):
        if path in (("cniVersion",),):
            continue  # an unknown version is its own error (test_cni_errors)
        original = _get(conf, path)
        values = WRONG_TYPES if len(path) == 1 else WRONG_TYPES[:4]
        if isinstance(original, str):
            values = values + BAD_STRINGS
        for value in values:
            mutant = _replaced(conf, path, value)
            out.append(("/".join(map(str, path)) + f"={json.dumps(value)[:20]}", mutant))
    return out


# Whole stdin documents that are not a config at all.
RAW_STDIN = [b"", b"null", b"[]", b"7", b'"conf"', b"{", b"\xff\xfe\x00\x00", b'{"cniVersion": NaN}',
             _deep(10_000).encode(), b'{"cniVersion": "1.0.0", "name": "n", "type": "t", "ipam": ' +
             _deep(10_000).encode() + b"}", b'{"cniVersion": "1.0.0", "name": "\\ud800"}',
             b'{"a": "' + b"x" * (20 * 1024 * 1024) + b'"}']


def _pod(node) -> str:
    pod = node.new_pod()
    in_pod(pod, "ip", "link", "set", "lo", "up")  # as the runtime has it; ADD brings lo up too
    return pod


def _setup(node, plugin: str, bridge: str, subnet: str, tmp_path) -> tuple[str, str, dict]:
    """A pod netns, an empty IPAM data dir, and a valid config for `plugin` (the IPAM plugin's
    own for kubeling-ipam) that the tests then spoil."""
    pod = _pod(node)
    data_dir = str(tmp_path / "ipam")
    os.makedirs(data_dir)
    conf = bridge_conf("kc-bad", bridge, subnet, data_dir)
    if plugin == "kubeling-ipam":
        conf = {"cniVersion": "1.0.0", "name": "kc-bad", "ipam": conf["ipam"]}
    return pod, data_dir, conf


@pytest.mark.parametrize("plugin", ["kubeling-bridge", "kubeling-ipam"])
def test_malformed_configs_are_errors_that_change_nothing(node, plugin, bridge, subnet, tmp_path):
    pod, data_dir, conf = _setup(node, plugin, bridge, subnet, tmp_path)
    for label, mutant in _mutants(conf):
        before = _state(node, pod, data_dir)
        res = node.cni(plugin, "ADD", mutant, cid="bad", netns=pod, daemon=False)
        if res.code == 0:
            # A value that is in fact valid ("x" for a name, null for an optional field):
            # the result is a real one, and DEL takes the pod's part back.
            assert res.out and res.out.get("cniVersion") and "ips" in res.out, f"{label}: {res.raw[:300]!r}"
            delete = node.cni(plugin, "DEL", mutant, cid="bad", netns=pod, daemon=False)
            assert delete.code == 0, f"{label}: DEL failed: {delete.raw[:300]!r} {delete.err[-500:]!r}"
            assert _state(node, pod, data_dir)[2] == before[2], f"{label}: DEL left the pod changed"
            continue
        _assert_error(res, label)
        assert _state(node, pod, data_dir) == before, f"{label} changed the node or pod: {res.out}"
    # A relative dataDir ("x") would have been taken relative to our working directory.
    assert not os.path.exists("x") and not os.path.exists("-x\n"), "a dataDir escaped into the cwd"
    before = _state(node, pod, data_dir)
    for raw in RAW_STDIN:
        res = node.cni(plugin, "ADD", raw, cid="bad", netns=pod, daemon=False)
        _assert_error(res, f"stdin {raw[:40]!r}")
        assert _state(node, pod, data_dir) == before, f"stdin {raw[:40]!r} changed the node or pod"


BAD_ENVIRONMENTS = [
    {"CNI_COMMAND": ""}, {"CNI_COMMAND": "add"}, {"CNI_COMMAND": "ADD "},
    {"CNI_CONTAINERID": ""}, {"CNI_CONTAINERID": "../../etc/passwd"}, {"CNI_CONTAINERID": "x" * 5000},
    {"CNI_CONTAINERID": "a\nb"}, {"CNI_NETNS": ""}, {"CNI_NETNS": "/proc/self/ns/net"},
    {"CNI_NETNS": "/run/netns/../../etc/passwd"}, {"CNI_NETNS": "/dev/null"}, {"CNI_NETNS": "relative/path"},
    {"CNI_IFNAME": ""}, {"CNI_IFNAME": "."}, {"CNI_IFNAME": ".."}, {"CNI_IFNAME": "a/b"},
    {"CNI_IFNAME": "eth 0"}, {"CNI_IFNAME": "x" * 16}, {"CNI_IFNAME": "日本"},
    {"CNI_ARGS": "=x"}, {"CNI_ARGS": "IgnoreUnknown=maybe;K8S_POD_NAME"}, {"CNI_ARGS": ";;;;"},
    {"CNI_ARGS": "IP=not-an-ip"}, {"CNI_PATH": ""}, {"CNI_PATH": "/nonexistent"},
]


@pytest.mark.parametrize("plugin", ["kubeling-bridge", "kubeling-ipam"])
def test_malformed_environments_are_errors_that_change_nothing(node, plugin, bridge, subnet, tmp_path):
    pod, data_dir, conf = _setup(node, plugin, bridge, subnet, tmp_path)
    accepted = []
    for env in BAD_ENVIRONMENTS:
        label = json.dumps(env)[:60]
        before = _state(node, pod, data_dir)
        res = node.cni(plugin, "ADD", conf, cid="bad", netns=pod, daemon=False, env=env)
        if res.code == 0:
            accepted.append(label)
            node.cni(plugin, "DEL", conf, cid="bad", netns=pod, daemon=False, env=env)
            node.run("ip", "link", "del", bridge, check=False)
            continue
        _assert_error(res, label)
        assert _state(node, pod, data_dir) == before, f"{label} changed the node or pod: {res.out}"
    # Some of these are legal: CNI_ARGS with an unknown key the plugin ignores, a CNI_PATH the
    # in-tree IPAM does not need, a long container ID; the IPAM plugin, like host-local, never
    # enters the netns nor names an interface. What matters is that none crashes or half-applies.
    # The kernel takes a UTF-8 interface name, and the node's own netns is a netns.
    legal = ["CNI_ARGS", "CNI_PATH", "CNI_CONTAINERID", '"\\u65e5', "/proc/self/ns/net"]
    if plugin == "kubeling-ipam":
        legal += ["CNI_NETNS", "CNI_IFNAME"]
    assert [a for a in accepted if not any(key in a for key in legal)] == [], accepted
