"""The node's InternalIP: the address other nodes route this node's pod CIDR to.

Order, as kubelet's (--node-ip, else the address it reaches the API server from), with one
rule more for multi-node clusters: never report a loopback address. An API server at
127.0.0.1 (the one-machine `kubeling up`, or a control-plane node talking to itself) gives a
loopback source, which no other node can route to; then the address of the interface holding
the default route is used, else the first other non-loopback address."""
from __future__ import annotations

import fcntl
import ipaddress
import logging
import socket
import struct
import urllib.parse
from collections.abc import Sequence

log = logging.getLogger("agent.node_ip")

SIOCGIFADDR = 0x8915
# A TEST-NET-1 address: connecting a UDP socket to it asks the kernel which source it would
# use on the default route, without sending a packet.
OUTSIDE_PROBE = "192.0.2.1"


def _usable(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return not (addr.is_loopback or addr.is_unspecified or addr.is_link_local or addr.is_multicast)


def choose_node_ip(explicit: str | None, towards_apiserver: str | None, default_route: str | None,
                   interfaces: Sequence[str]) -> tuple[str, str]:
    """(address, how it was chosen). Pure: every candidate is passed in."""
    if explicit:
        return explicit, "--node-ip"
    if _usable(towards_apiserver):
        return str(towards_apiserver), "source address of the route to the API server"
    if _usable(default_route):
        return str(default_route), "address of the interface holding the default route"
    for ip in interfaces:
        if _usable(ip):
            return ip, "first non-loopback interface address"
    # A machine with nothing but loopback: a one-node cluster, where 127.0.0.1 still works.
    return towards_apiserver or "127.0.0.1", "no non-loopback address found"


def source_ip_towards(host: str, port: int = 443) -> str | None:
    """The local address the kernel would use to reach host:port (no packet sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((host, port))
            return s.getsockname()[0]
        except OSError:
            return None


def apiserver_source_ip(url: str) -> str | None:
    parsed = urllib.parse.urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return source_ip_towards(parsed.hostname or "127.0.0.1", port)


def interface_addresses() -> list[str]:
    """The primary IPv4 address of every interface, in interface index order."""
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:
                res = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue  # no IPv4 address on this interface
            out.append(socket.inet_ntoa(res[20:24]))
    return out


def node_ip(explicit: str | None, apiserver_url: str) -> str:
    """The InternalIP to report, logged with the reason it was chosen."""
    towards = None if explicit else apiserver_source_ip(apiserver_url)
    needs_fallback = not explicit and not _usable(towards)
    default = source_ip_towards(OUTSIDE_PROBE) if needs_fallback else None
    ifaces = interface_addresses() if needs_fallback else []
    ip, how = choose_node_ip(explicit, towards, default, ifaces)
    if needs_fallback:
        log.warning("the API server is reached from %s, which other nodes cannot route to; "
                    "node IP %s (%s); set --node-ip to choose", towards or "nowhere", ip, how)
    else:
        log.info("node IP %s (%s)", ip, how)
    return ip
