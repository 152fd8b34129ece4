"""kubeling-ipam on its own: host-local's files, lock, round robin, exhaustion, sharing a data dir."""
from __future__ import annotations

import ipaddress
import os

import pytest

pytestmark = pytest.mark.e2e


def ipam_conf(data_dir: str, subnet: str, **rng) -> dict:
    return {"cniVersion": "1.0.0", "name": "kc-ipam", "ipam": {
        "type": "kubeling-ipam", "dataDir": data_dir, "ranges": [[dict(subnet=subnet, **rng)]],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.77.0/24", "gw": "10.250.0.1"}]}}


def _files(d) -> list[str]:
    return sorted(os.listdir(d))


def test_exhaustion_of_a_29(node, tmp_path):
    conf = ipam_conf(str(tmp_path), "10.250.7.0/29")
    got = []
    for i in range(5):  # .1 is the gateway, .0 the network, .7 the broadcast
        res = node.cni("kubeling-ipam", "ADD", conf, cid=f"c{i}", netns="/proc/1/ns/net")
        assert res.ok, res
        [ip] = res.out["ips"]
        assert ip["gateway"] == "10.250.7.1"
        got.append(ip["address"])
        assert res.out["routes"] == [{"dst": "0.0.0.0/0"}, {"dst": "192.168.77.0/24", "gw": "10.250.0.1"}]
        assert "interfaces" not in res.out
    assert got == [f"10.250.7.{i}/29" for i in range(2, 7)]
    full = node.cni("kubeling-ipam", "ADD", conf, cid="c-extra", netns="/proc/1/ns/net")
    assert full.code != 0 and full.out["code"] == 999
    assert "no IP addresses available in range set: 10.250.7.1-10.250.7.6" in full.out["msg"]
    assert "10.250.7.0" not in _files(tmp_path / "kc-ipam") and "10.250.7.7" not in _files(tmp_path / "kc-ipam")
    # Releasing one makes exactly that one available again.
    assert node.cni("kubeling-ipam", "DEL", conf, cid="c3").ok
    again = node.cni("kubeling-ipam", "ADD", conf, cid="c-extra", netns="/proc/1/ns/net")
    assert again.ok and again.out["ips"][0]["address"] == "10.250.7.5/29"
    for cid in ["c0", "c1", "c2", "c4", "c-extra"]:
        assert node.cni("kubeling-ipam", "DEL", conf, cid=cid).ok
    assert _files(tmp_path / "kc-ipam") == ["last_reserved_ip.0", "lock"]


def test_round_robin_files_and_release_by_id_and_ifname(node, tmp_path):
    conf = ipam_conf(str(tmp_path), "10.250.8.0/24", rangeStart="10.250.8.10", rangeEnd="10.250.8.20")
    a = node.cni("kubeling-ipam", "ADD", conf, cid="ca", ifname="eth0", netns="/proc/1/ns/net")
    assert a.out["ips"][0]["address"] == "10.250.8.10/24"
    assert (tmp_path / "kc-ipam" / "10.250.8.10").read_bytes() == b"ca\r\neth0"
    assert (tmp_path / "kc-ipam" / "last_reserved_ip.0").read_text() == "10.250.8.10"
    # Same container, other interface: its own address; a second ADD of the same pair is refused.
    b = node.cni("kubeling-ipam", "ADD", conf, cid="ca", ifname="net1", netns="/proc/1/ns/net")
    assert b.out["ips"][0]["address"] == "10.250.8.11/24"
    dup = node.cni("kubeling-ipam", "ADD", conf, cid="ca", ifname="eth0", netns="/proc/1/ns/net")
    assert dup.code != 0 and "duplicate allocation" in dup.out["msg"]
    assert node.cni("kubeling-ipam", "CHECK", conf, cid="ca", ifname="eth0", netns="/proc/1/ns/net").ok
    assert node.cni("kubeling-ipam", "DEL", conf, cid="ca", ifname="eth0").ok
    assert not (tmp_path / "kc-ipam" / "10.250.8.10").exists()
    assert (tmp_path / "kc-ipam" / "10.250.8.11").exists()
    miss = node.cni("kubeling-ipam", "CHECK", conf, cid="ca", ifname="eth0", netns="/proc/1/ns/net")
    assert miss.code != 0 and miss.out["code"] == 999
    # Round robin: the freed .10 is not reused before the range wraps.
    c = node.cni("kubeling-ipam", "ADD", conf, cid="cc", netns="/proc/1/ns/net")
    assert c.out["ips"][0]["address"] == "10.250.8.12/24"
    # Requested address through CNI_ARGS, as host-local supports.
    d = node.cni("kubeling-ipam", "ADD", conf, cid="cd", netns="/proc/1/ns/net",
                 env={"CNI_ARGS": "IgnoreUnknown=1;IP=10.250.8.19"})
    assert d.ok and d.out["ips"][0]["address"] == "10.250.8.19/24"
    for cid, ifn in [("ca", "net1"), ("cc", "eth0"), ("cd", "eth0")]:
        assert node.cni("kubeling-ipam", "DEL", conf, cid=cid, ifname=ifn).ok
        assert node.cni("kubeling-ipam", "DEL", conf, cid=cid, ifname=ifn).ok  # twice
    assert _files(tmp_path / "kc-ipam") == ["last_reserved_ip.0", "lock"]


def test_shares_a_data_dir_with_host_local(node, tmp_path):
    """Same files, same lock: alternating with the reference host-local never collides."""
    conf = ipam_conf(str(tmp_path), "10.250.9.0/28")
    seen = []
    for i in range(12):
        plugin = "kubeling-ipam" if i % 2 == 0 else "/usr/lib/cni/host-local"
        res = node.cni(plugin, "ADD", dict(conf, ipam=dict(conf["ipam"], type=os.path.basename(plugin))),
                       cid=f"c{i}", netns="/proc/1/ns/net")
        assert res.ok, res
        seen.append(res.out["ips"][0]["address"])
    assert len(set(seen)) == 12
    assert seen == [f"10.250.9.{i}/28" for i in range(2, 14)]
    # Each releases what the other allocated.
    for i in range(12):
        plugin = "/usr/lib/cni/host-local" if i % 2 == 0 else "kubeling-ipam"
        assert node.cni(plugin, "DEL", conf, cid=f"c{i}").ok
    assert _files(tmp_path / "kc-ipam") == ["last_reserved_ip.0", "lock"]
    assert all(ipaddress.ip_interface(a).ip.is_private for a in seen)
