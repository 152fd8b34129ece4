"""A corrupt IPAM directory on the node (what a crash mid-write, a full disk or a stray
hand edit leaves) is detected and repaired, never trusted: no address is handed out
twice, an allocation that names a container stays, the ones that name nobody are
reclaimed instead of leaking, and the plugin answers (a result or an error object)
instead of crashing."""
from __future__ import annotations

import ipaddress
import os

import pytest

from conftest import bridge_conf

pytestmark = pytest.mark.e2e


def _ipam_conf(subnet: str, data_dir: str) -> dict:
    conf = bridge_conf("kc-corrupt", "unused", subnet, data_dir)
    return {"cniVersion": "1.0.0", "name": "kc-corrupt", "ipam": conf["ipam"]}


@pytest.mark.parametrize("last_reserved", ["garbage\x00", "10.9.9.9", "", "directory"])
def test_corrupt_allocations_are_reclaimed_and_never_handed_out_twice(node, tmp_path, last_reserved):
    net = ipaddress.ip_network(f"10.251.{os.getpid() % 250}.0/29")  # .1 gateway, .2-.6 for pods
    hosts = [str(h) for h in net.hosts()][1:]
    data_dir = str(tmp_path / "ipam")
    d = os.path.join(data_dir, "kc-corrupt")
    os.makedirs(d)
    held = hosts[0]
    with open(os.path.join(d, held), "w") as f:
        f.write("live-container\r\neth0")  # a real allocation: it must survive everything below
    open(os.path.join(d, hosts[1]), "w").close()  # empty: the writer crashed after O_EXCL
    with open(os.path.join(d, hosts[2]), "wb") as f:
        f.write(b"\x00\xff\x80\r\n\x01")  # binary junk
    os.makedirs(os.path.join(d, hosts[3], "junk"))  # a directory where a file belongs
    if last_reserved == "directory":
        os.makedirs(os.path.join(d, "last_reserved_ip.0"))
    else:
        with open(os.path.join(d, "last_reserved_ip.0"), "w") as f:
            f.write(last_reserved)
    with open(os.path.join(d, "not-an-ip"), "w") as f:
        f.write("stray")
    conf = _ipam_conf(str(net), data_dir)

    given = []
    for i in range(len(hosts) - 1):  # every address but the held one
        res = node.cni("kubeling-ipam", "ADD", conf, cid=f"c{i}", netns="/run/netns/none", daemon=False)
        assert res.ok, f"ADD c{i}: {res.raw[:300]!r} {res.err[-1500:]}"
        given.append(str(ipaddress.ip_interface(res.out["ips"][0]["address"]).ip))
    assert held not in given
    assert sorted(given) == sorted(hosts[1:]), given  # unique, and the corrupt three were reclaimed
    # The range is full now: a clean error object, not a crash and not the held address.
    res = node.cni("kubeling-ipam", "ADD", conf, cid="one-too-many", netns="/run/netns/none", daemon=False)
    assert not res.ok and res.out and res.out["code"] and res.out["msg"], res.raw
    assert "Traceback" not in res.err
    with open(os.path.join(d, held), newline="") as f:
        assert f.read() == "live-container\r\neth0"
    for i in range(len(given)):
        res = node.cni("kubeling-ipam", "DEL", conf, cid=f"c{i}", netns="", daemon=False)
        assert res.ok, res.raw
    left = sorted(n for n in os.listdir(d) if not n.startswith(("last_reserved_ip", "lock", ".")))
    assert left == sorted([held, "not-an-ip"]), left  # nothing leaked; nothing real removed


def test_corrupt_file_naming_a_container_is_kept(node, tmp_path):
    """A file that names a container (host-local's old one-line format too) is an allocation,
    even when its interface line is missing: repair never frees an address in use."""
    net = ipaddress.ip_network(f"10.252.{os.getpid() % 250}.0/30")  # one pod address: .2
    data_dir = str(tmp_path / "ipam")
    d = os.path.join(data_dir, "kc-corrupt")
    os.makedirs(d)
    only = str(list(net.hosts())[1])
    with open(os.path.join(d, only), "w") as f:
        f.write("old-format-container")
    res = node.cni("kubeling-ipam", "ADD", _ipam_conf(str(net), data_dir), cid="newcomer",
                   netns="/run/netns/none", daemon=False)
    assert not res.ok and res.out and res.out["code"] and res.out["msg"], res.raw
    with open(os.path.join(d, only)) as f:
        assert f.read() == "old-format-container"
