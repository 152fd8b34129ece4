"""A minimal rtnetlink client for the ADD/DEL hot path: encode a few request kinds, send them
as one batch, read one acknowledgement each.

pyroute2 spends ~2 ms of CPU per request building and decoding messages (and ~2 ms opening an
IPRoute); these requests are a few dozen bytes each and the kernel handles a batch of them in
one send (netlink_rcv_skb walks every message in the buffer and acks each). pyroute2 stays for
what is rare or reads state (bridge creation, CHECK).
"""
from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from typing import Iterable

NETLINK_ROUTE = 0
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
RTM_NEWLINK, RTM_DELLINK, RTM_SETLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 17, 19, 20, 24
IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_PROTINFO, IFLA_LINKINFO, IFLA_NET_NS_FD = 3, 4, 10, 12, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER, IFLA_BRPORT_MODE = 1, 2, 1, 4
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
NLA_F_NESTED = 0x8000
AF_BRIDGE = 7
IFF_UP = 0x1
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RTN_UNICAST = 254, 3, 0, 253, 1

_HDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")


class RtnlError(OSError):
    """The kernel refused one request of a batch."""


def attr(kind: int, data: bytes) -> bytes:
    size = 4 + len(data)
    return struct.pack("=HH", size, kind) + data + b"\0" * (-size & 3)


def _name(name: str) -> bytes:
    return name.encode() + b"\0"


def _u32(v: int) -> bytes:
    return struct.pack("=I", v)


class Request:
    """One message: its type, flags, body, and the errnos that count as success."""

    def __init__(self, kind: int, flags: int, body: bytes, ok: Iterable[int] = ()) -> None:
        self.kind, self.flags, self.body, self.ok = kind, flags, body, frozenset(ok)


def new_veth(host: str, peer: str, peer_netns_fd: int, mtu: int | None, master: int | None) -> Request:
    """The pair, its peer born in another namespace as `peer`; the host end up and enslaved."""
    peer_attrs = attr(IFLA_IFNAME, _name(peer)) + attr(IFLA_NET_NS_FD, _u32(peer_netns_fd))
    own = attr(IFLA_IFNAME, _name(host))
    if mtu:
        peer_attrs += attr(IFLA_MTU, _u32(mtu))
        own += attr(IFLA_MTU, _u32(mtu))
    if master is not None:
        own += attr(IFLA_MASTER, _u32(master))
    info = attr(IFLA_INFO_KIND, b"veth") + attr(
        IFLA_INFO_DATA, attr(VETH_INFO_PEER, _IFINFO.pack(0, 0, 0, 0, 0) + peer_attrs))
    body = _IFINFO.pack(0, 0, 0, IFF_UP if master is not None else 0, IFF_UP if master is not None else 0)
    return Request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body + own + attr(IFLA_LINKINFO, info))


def set_up(index: int) -> Request:
    return Request(RTM_NEWLINK, 0, _IFINFO.pack(0, 0, index, IFF_UP, IFF_UP))


def set_hairpin(index: int, on: bool) -> Request:
    protinfo = attr(IFLA_BRPORT_MODE, bytes([1 if on else 0]))
    body = _IFINFO.pack(AF_BRIDGE, 0, index, 0, 0) + attr(IFLA_PROTINFO | NLA_F_NESTED, protinfo)
    return Request(RTM_SETLINK, 0, body)


def del_link(index: int) -> Request:
    return Request(RTM_DELLINK, 0, _IFINFO.pack(0, 0, index, 0, 0), ok=(errno.ENODEV,))


def add_address(index: int, address: str, prefixlen: int) -> Request:
    """Adding what is already there succeeds (EEXIST)."""
    ip = ipaddress.ip_address(address)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    attrs = attr(IFA_LOCAL, ip.packed) + attr(IFA_ADDRESS, ip.packed)
    if ip.version == 4 and prefixlen < 31:
        net = ipaddress.ip_network(f"{ip}/{prefixlen}", strict=False)
        attrs += attr(IFA_BROADCAST, net.broadcast_address.packed)
    body = struct.pack("=BBBBI", family, prefixlen, 0, 0, index)
    return Request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body + attrs, ok=(errno.EEXIST,))


def add_route(index: int, dst: str, gateway: str | None) -> Request:
    """Adding what is already there succeeds (EEXIST)."""
    net = ipaddress.ip_network(dst, strict=False)
    family = socket.AF_INET6 if net.version == 6 else socket.AF_INET
    scope = RT_SCOPE_UNIVERSE if gateway else RT_SCOPE_LINK
    body = struct.pack("=BBBBBBBBI", family, net.prefixlen, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, scope, RTN_UNICAST, 0)
    attrs = attr(RTA_OIF, _u32(index))
    if net.prefixlen:
        attrs += attr(RTA_DST, net.network_address.packed)
    if gateway:
        attrs += attr(RTA_GATEWAY, ipaddress.ip_address(gateway).packed)
    return Request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body + attrs, ok=(errno.EEXIST,))


class Socket:
    """An rtnetlink socket in the network namespace of the thread that made it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self._seq = 0

    def run(self, *requests: Request) -> None:
        """Send all requests in one write, in order; raise RtnlError for the first refused one
        (the kernel still processes the rest, as separate requests would be)."""
        seqs: dict[int, Request] = {}
        out = []
        for r in requests:
            self._seq += 1
            seqs[self._seq] = r
            out.append(_HDR.pack(_HDR.size + len(r.body), r.kind, NLM_F_REQUEST | NLM_F_ACK | r.flags, self._seq, 0))
            out.append(r.body)
        self.sock.send(b"".join(out))
        failure: RtnlError | None = None
        while seqs:
            data = self.sock.recv(65536)
            pos = 0
            while pos + _HDR.size <= len(data):
                size, kind, _flags, seq, _pid = _HDR.unpack_from(data, pos)
                if size < _HDR.size:
                    break
                if kind == NLMSG_ERROR and seq in seqs:
                    code = -struct.unpack_from("=i", data, pos + _HDR.size)[0]
                    req = seqs.pop(seq)
                    if code and code not in req.ok and failure is None:
                        failure = RtnlError(code, f"{os.strerror(code)} (netlink message type {req.kind})")
                pos += (size + 3) & ~3
        if failure is not None:
            raise failure

    def close(self) -> None:
        self.sock.close()
