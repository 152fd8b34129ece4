"""Env parsing, version handling, result shapes and the shim/daemon framing."""
from __future__ import annotations

import socket

import pytest

from cni import wire
from cni.errors import CniError
from cni.spec import format_result, parse_config, parse_env

BASE = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc", "CNI_NETNS": "/x", "CNI_IFNAME": "eth0", "CNI_PATH": "/a:/b"}


def test_env_parsing():
    args = parse_env(dict(BASE, CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=p"))
    assert args.path == ["/a", "/b"] and args.args_dict()["K8S_POD_NAME"] == "p"
    del_args = parse_env({"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "abc", "CNI_IFNAME": "eth0", "CNI_PATH": "/a"})
    assert del_args.netns == ""


@pytest.mark.parametrize("env", [
    {}, dict(BASE, CNI_COMMAND="NOPE"), {k: v for k, v in BASE.items() if k != "CNI_NETNS"},
    dict(BASE, CNI_CONTAINERID="_bad"), dict(BASE, CNI_IFNAME="a/b"), dict(BASE, CNI_ARGS="x"),
])
def test_env_errors_are_code_4(env):
    with pytest.raises(CniError) as e:
        parse_env(env)
    assert e.value.code == 4


def test_config_decode_and_versions():
    with pytest.raises(CniError) as e:
        parse_config(b"{")
    assert e.value.code == 6
    with pytest.raises(CniError) as e:
        parse_config(b'{"cniVersion": "2.0.0"}')
    assert e.value.code == 1
    assert parse_config(b'{"cniVersion": "0.4.0"}')["cniVersion"] == "0.4.0"


def test_result_versions():
    r = {"ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 2}], "routes": []}
    assert format_result(r, "0.4.0")["ips"][0]["version"] == "4"
    assert "version" not in format_result(r, "1.0.0")["ips"][0]
    assert format_result(r, "1.0.0")["dns"] == {}


def test_wire_round_trip():
    a, b = socket.socketpair()
    with a, b:
        items = [b"bridge", b'{"x": "\\u0000"}', b"K=V=W", b""]
        a.sendall(wire.encode(items))
        assert wire.recv(b) == items
        a.close()
        assert wire.recv(b) is None
