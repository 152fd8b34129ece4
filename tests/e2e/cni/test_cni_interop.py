"""Drop-in both ways: kubeling-bridge with the reference host-local, the reference bridge with
kubeling-ipam; and the same observable result as the reference pair for the same config."""
from __future__ import annotations

import ipaddress
import os

import pytest

from conftest import bridge_conf, in_pod, ping

pytestmark = pytest.mark.e2e


def _allocs(d) -> list[str]:
    return sorted(f for f in os.listdir(d) if f[0].isdigit())


def test_kubeling_bridge_with_reference_host_local(node, daemon, bridge, subnet, tmp_path):
    conf = bridge_conf("kc-net", bridge, subnet, str(tmp_path / "ipam"), ipam_type="host-local")
    pods = [node.new_pod() for _ in range(2)]
    adds = [node.cni("kubeling-bridge", "ADD", conf, cid=f"c{i}", netns=p) for i, p in enumerate(pods)]
    assert all(a.ok for a in adds), adds
    ips = [a.out["ips"][0]["address"].split("/")[0] for a in adds]
    assert _allocs(tmp_path / "ipam" / "kc-net") == sorted(ips)
    assert ping(pods[0], ips[1])
    chk = node.cni("kubeling-bridge", "CHECK", dict(conf, prevResult=adds[0].out), cid="c0", netns=pods[0])
    assert chk.ok, chk
    for i, p in enumerate(pods):
        assert node.cni("kubeling-bridge", "DEL", conf, cid=f"c{i}", netns=p).ok
    assert _allocs(tmp_path / "ipam" / "kc-net") == []
    assert node.pod_rules() == []
    node.cleanup_network(bridge, "kc-net", str(tmp_path / "ipam"))


def test_reference_bridge_with_kubeling_ipam(node, bridge, subnet, tmp_path):
    conf = bridge_conf("kc-net", bridge, subnet, str(tmp_path / "ipam"), plugin="bridge", ipMasq=False)
    pods = [node.new_pod() for _ in range(2)]
    adds = [node.cni("/usr/lib/cni/bridge", "ADD", conf, cid=f"c{i}", netns=p) for i, p in enumerate(pods)]
    assert all(a.ok for a in adds), adds
    net = ipaddress.ip_network(subnet)
    assert [a.out["ips"][0]["address"] for a in adds] == [f"{net.network_address + 2}/24", f"{net.network_address + 3}/24"]
    assert (tmp_path / "ipam" / "kc-net" / str(net.network_address + 2)).read_bytes() == b"c0\r\neth0"
    assert ping(node.path, str(net.network_address + 2))
    chk = node.cni("/usr/lib/cni/bridge", "CHECK", dict(conf, prevResult=adds[1].out), cid="c1", netns=pods[1])
    assert chk.ok, chk
    for i, p in enumerate(pods):
        assert node.cni("/usr/lib/cni/bridge", "DEL", conf, cid=f"c{i}", netns=p).ok
    assert _allocs(tmp_path / "ipam" / "kc-net") == []


def test_same_observable_result_as_reference(node, daemon, tmp_path):
    """Same config to both pairs (each on its own bridge/subnet): same result shape, same pod view."""
    def view(pod: str) -> tuple:
        routes = in_pod(pod, "ip", "route").stdout
        routes = sorted(" ".join(w for w in r.split() if w not in ("proto", "static", "kernel")) for r in routes.splitlines())
        # (lo is left out: ours brings it up as the issue asks; the reference leaves that to
        # the loopback plugin)
        return routes, in_pod(pod, "ip", "-o", "-4", "addr", "show", "dev", "eth0").stdout.split()[3]

    out = {}
    for label, plugin, ipam, third in [("ours", "kubeling-bridge", "kubeling-ipam", 61), ("ref", "/usr/lib/cni/bridge", "host-local", 61)]:
        subnet = f"10.250.{third}.0/24"
        br = f"kcbr{label}{os.getpid() % 1000}"
        conf = bridge_conf("kc-same", br, subnet, str(tmp_path / label), ipam_type=ipam,
                           plugin=os.path.basename(plugin), isDefaultGateway=True)
        conf["ipam"]["routes"] = [{"dst": "192.168.50.0/24"}]
        pod = node.new_pod()
        res = node.cni(plugin, "ADD", conf, cid="same", netns=pod)
        assert res.ok, res
        r = res.out
        out[label] = (
            [sorted(i.keys()) for i in r["interfaces"]], [i["name"] == br for i in r["interfaces"]],
            r["ips"], r["routes"], view(pod),
        )
        assert node.cni(plugin, "DEL", conf, cid="same", netns=pod).ok
        # one node namespace, same subnet for both: the first pair must leave nothing behind
        node.cleanup_network(br)
    assert out["ours"] == out["ref"]
