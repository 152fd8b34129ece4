"""Pod to pod and host to pod over the bridge, with FORWARD policy DROP and br_netfilter on."""
from __future__ import annotations

import ipaddress

import pytest

from conftest import bridge_conf, ping

pytestmark = pytest.mark.e2e


def test_ping_pod_to_pod_and_host_to_pod(node, daemon, bridge, subnet, tmp_path):
    conf = bridge_conf("kc-net", bridge, subnet, str(tmp_path / "ipam"))
    pods = [node.new_pod() for _ in range(2)]
    adds = [node.cni("kubeling-bridge", "ADD", conf, cid=f"c{i}", netns=p) for i, p in enumerate(pods)]
    assert all(a.ok for a in adds), adds
    a, b = (r.out["ips"][0]["address"].split("/")[0] for r in adds)
    gw = str(ipaddress.ip_network(subnet).network_address + 1)
    assert ping(pods[0], b) and ping(pods[1], a)
    assert ping(node.path, a) and ping(node.path, b)
    assert ping(pods[0], gw)
    assert ping(pods[0], a)  # hairpin-free self ping still works

    # Our FORWARD chain is what lets bridged pod traffic through Docker's DROP policy.
    jump = next(l for l in node.our_rules() if l.startswith("-A FORWARD"))
    node.run("iptables", "-D", "FORWARD", *_rule_args(jump))
    assert not ping(pods[0], b)
    node.run("iptables", "-I", "FORWARD", "1", *_rule_args(jump))
    assert ping(pods[0], b)

    for i, p in enumerate(pods):
        assert node.cni("kubeling-bridge", "DEL", conf, cid=f"c{i}", netns=p).ok
    assert node.pod_rules() == []
    assert not ping(node.path, a)
    node.cleanup_network(bridge, "kc-net", str(tmp_path / "ipam"))


def _rule_args(line: str) -> list[str]:
    import shlex

    return shlex.split(line)[2:]
