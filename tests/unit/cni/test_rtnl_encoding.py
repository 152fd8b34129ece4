"""cni.rtnl: the bytes of the few rtnetlink requests an ADD sends, and how a batch's acks are read."""
from __future__ import annotations

import errno
import socket
import struct

import pytest

from cni import rtnl


def attrs(data: bytes) -> dict[int, bytes]:
    out, pos = {}, 0
    while pos < len(data):
        size, kind = struct.unpack_from("=HH", data, pos)
        out[kind & ~rtnl.NLA_F_NESTED] = data[pos + 4:pos + size]
        pos += (size + 3) & ~3
    return out


def test_default_route_via_gateway_has_no_destination():
    r = rtnl.add_route(7, "0.0.0.0/0", "10.1.2.1")
    family, dst_len, _, _, table, proto, scope, kind, _ = struct.unpack_from("=BBBBBBBBI", r.body)
    assert (family, dst_len, table, proto, scope, kind) == (socket.AF_INET, 0, 254, 3, 0, 1)
    a = attrs(r.body[12:])
    assert rtnl.RTA_DST not in a
    assert a[rtnl.RTA_GATEWAY] == bytes([10, 1, 2, 1]) and a[rtnl.RTA_OIF] == struct.pack("=I", 7)
    assert r.flags & rtnl.NLM_F_CREATE and errno.EEXIST in r.ok


def test_route_without_gateway_is_link_scoped():
    r = rtnl.add_route(3, "fd00:1::/64", None)
    family, dst_len, *_rest = struct.unpack_from("=BBBBBBBBI", r.body)
    assert (family, dst_len, r.body[6]) == (socket.AF_INET6, 64, rtnl.RT_SCOPE_LINK)
    assert attrs(r.body[12:])[rtnl.RTA_DST] == bytes.fromhex("fd000001" + "00" * 12)


def test_ipv4_address_carries_broadcast_like_the_reference():
    a = attrs(rtnl.add_address(5, "10.1.2.3", 24).body[8:])
    assert a[rtnl.IFA_LOCAL] == a[rtnl.IFA_ADDRESS] == bytes([10, 1, 2, 3])
    assert a[rtnl.IFA_BROADCAST] == bytes([10, 1, 2, 255])
    assert rtnl.IFA_BROADCAST not in attrs(rtnl.add_address(5, "10.1.2.3", 31).body[8:])


def test_veth_is_created_up_on_its_bridge_with_the_peer_in_the_pod():
    r = rtnl.new_veth("vethabc", "eth0", 42, 1400, master=9)
    _fam, _type, index, flags, change = struct.unpack_from("=BxHiII", r.body)
    assert (index, flags, change) == (0, rtnl.IFF_UP, rtnl.IFF_UP)
    top = attrs(r.body[16:])
    assert top[rtnl.IFLA_IFNAME] == b"vethabc\0" and top[rtnl.IFLA_MASTER] == struct.pack("=I", 9)
    info = attrs(top[rtnl.IFLA_LINKINFO])
    assert info[rtnl.IFLA_INFO_KIND] == b"veth"
    peer = attrs(attrs(info[rtnl.IFLA_INFO_DATA])[rtnl.VETH_INFO_PEER][16:])
    assert peer[rtnl.IFLA_IFNAME] == b"eth0\0" and peer[rtnl.IFLA_NET_NS_FD] == struct.pack("=I", 42)
    assert peer[rtnl.IFLA_MTU] == struct.pack("=I", 1400)


class FakeKernel:
    """Answers each request of a batch with the errno scripted for it, in one or two reads."""

    def __init__(self, errnos: list[int], split: bool = False) -> None:
        self.errnos, self.split, self.sent, self.replies = errnos, split, b"", []

    def send(self, data: bytes) -> int:
        self.sent, pos, acks = data, 0, []
        for code in self.errnos:
            size, _kind, _flags, seq, _pid = struct.unpack_from("=IHHII", data, pos)
            body = struct.pack("=i", -code) + data[pos:pos + 16]
            acks.append(struct.pack("=IHHII", 16 + len(body), rtnl.NLMSG_ERROR, 0, seq, 0) + body)
            pos += (size + 3) & ~3
        assert pos == len(data), "every request is in the one write"
        self.replies = [acks[:1], acks[1:]] if self.split else [acks]
        self.replies = [b"".join(r) for r in self.replies]
        return len(data)

    def recv(self, _n: int) -> bytes:
        return self.replies.pop(0)


def batch_socket(kernel: FakeKernel) -> rtnl.Socket:
    s = rtnl.Socket.__new__(rtnl.Socket)
    s.sock, s._seq = kernel, 0
    return s


@pytest.mark.parametrize("split", [False, True])
def test_a_batch_succeeds_when_every_refusal_is_an_accepted_one(split):
    kernel = FakeKernel([0, errno.EEXIST, 0], split)
    batch_socket(kernel).run(rtnl.set_up(1), rtnl.add_address(2, "10.0.0.2", 24), rtnl.add_route(2, "0.0.0.0/0", "10.0.0.1"))
    assert kernel.replies == []


def test_the_first_real_refusal_of_a_batch_is_raised_after_all_acks_are_read():
    kernel = FakeKernel([0, errno.ENODEV, errno.EPERM], split=True)
    with pytest.raises(rtnl.RtnlError) as e:
        batch_socket(kernel).run(rtnl.set_up(1), rtnl.set_up(2), rtnl.set_up(3))
    assert e.value.errno == errno.ENODEV
    assert kernel.replies == [], "acks left unread would be taken for the next batch's"
