"""Pure IPAM logic: host-local's config rules and round-robin order, on a temp directory."""
from __future__ import annotations

import ipaddress

import pytest

from cni.errors import CniError
from cni.ipam_allocator import allocate
from cni.ipam_config import load_ipam_config
from cni.ipam_store import DiskStore


def conf(**ipam) -> dict:
    return {"cniVersion": "1.0.0", "name": "n", "ipam": {"type": "kubeling-ipam", **ipam}}


def test_range_defaults_skip_network_broadcast_and_gateway():
    cfg = load_ipam_config(conf(ranges=[[{"subnet": "10.1.2.0/24"}]]), {})
    [r] = cfg.range_sets[0]
    assert (str(r.start), str(r.end), str(r.gateway)) == ("10.1.2.1", "10.1.2.254", "10.1.2.1")
    assert cfg.data_dir == "/var/lib/cni/networks"


def test_legacy_single_subnet_and_requested_ip():
    cfg = load_ipam_config(conf(subnet="10.1.3.0/24", dataDir="/x"), {"IP": "10.1.3.9"})
    assert str(cfg.range_sets[0][0].subnet) == "10.1.3.0/24"
    assert cfg.requested_ips == [ipaddress.ip_address("10.1.3.9")]


@pytest.mark.parametrize("ipam", [
    {"ranges": [[{"subnet": "10.0.0.0/31"}]]},
    {"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.5"}]]},
    {"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.9", "rangeEnd": "10.0.0.3"}]]},
    {"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.128/25"}]]},
    {"ranges": []},
    {"ranges": [[{"subnet": "nope"}]]},
])
def test_invalid_configs_are_code_7(ipam):
    with pytest.raises(CniError) as e:
        load_ipam_config(conf(**ipam), {})
    assert e.value.code == 7


def test_round_robin_wraps_and_exhausts(tmp_path):
    cfg = load_ipam_config(conf(ranges=[[{"subnet": "10.9.0.0/29"}]]), {})
    store = DiskStore(str(tmp_path), "n")
    ranges = cfg.range_sets[0]
    got = [str(allocate(store, ranges, "0", f"c{i}", "eth0", None)[0]) for i in range(5)]
    assert got == ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"]
    with pytest.raises(CniError) as e:
        allocate(store, ranges, "0", "cx", "eth0", None)
    assert e.value.code == 999 and "no IP addresses available" in e.value.msg
    store.release_by_id("c1", "eth0")
    assert str(allocate(store, ranges, "0", "cy", "eth0", None)[0]) == "10.9.0.3"
    assert (tmp_path / "n" / "10.9.0.3").read_bytes() == b"cy\r\neth0"


def test_release_matches_id_and_ifname_and_legacy_files(tmp_path):
    store = DiskStore(str(tmp_path), "n")
    (tmp_path / "n" / "10.0.0.5").write_bytes(b"c1\r\neth0")
    (tmp_path / "n" / "10.0.0.6").write_bytes(b"c1\r\nnet1")
    (tmp_path / "n" / "10.0.0.7").write_bytes(b"c2")
    assert store.release_by_id("c1", "eth0") == [ipaddress.ip_address("10.0.0.5")]
    assert store.release_by_id("c2", "eth0") == [ipaddress.ip_address("10.0.0.7")]
    assert sorted(p.name for p in (tmp_path / "n").iterdir()) == ["10.0.0.6"]
