"""Netlink work of the bridge plugin, through pyroute2: bridge, veth pair, addresses, routes."""
from __future__ import annotations

import errno
import ipaddress
import os
from dataclasses import dataclass
from typing import Any, Iterable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from cni import netns

IFF_UP = 0x1
IFF_PROMISC = 0x100


@dataclass
class Link:
    index: int
    name: str
    mac: str
    mtu: int
    master: int | None
    kind: str | None


def _link(msg: Any) -> Link:
    info = msg.get_attr("IFLA_LINKINFO")
    return Link(
        index=msg["index"],
        name=msg.get_attr("IFLA_IFNAME"),
        mac=msg.get_attr("IFLA_ADDRESS"),
        mtu=msg.get_attr("IFLA_MTU"),
        master=msg.get_attr("IFLA_MASTER"),
        kind=info.get_attr("IFLA_INFO_KIND") if info is not None else None,
    )


def get_link(ipr: IPRoute, name: str) -> Link | None:
    try:
        msgs = ipr.get_links(ifname=name)
    except NetlinkError as e:
        if e.code == errno.ENODEV:
            return None
        raise
    return _link(msgs[0]) if msgs else None


def ipr_in(path: str) -> IPRoute:
    """An IPRoute whose socket lives in the netns at `path`."""
    with netns.entered(path):
        return IPRoute()


def ensure_bridge(ipr: IPRoute, name: str, mtu: int | None, promisc: bool) -> Link:
    br = get_link(ipr, name)
    if br is None:
        kwargs: dict[str, Any] = {"ifname": name, "kind": "bridge"}
        if mtu:
            kwargs["mtu"] = mtu
        try:
            ipr.link("add", **kwargs)
        except NetlinkError as e:
            if e.code != errno.EEXIST:  # a concurrent ADD made it first
                raise
        br = get_link(ipr, name)
        if br is None:
            raise RuntimeError(f"bridge {name} vanished right after creation")
    elif br.kind != "bridge":
        raise RuntimeError(f"{name} already exists but is not a bridge")
    changes: dict[str, Any] = {"state": "up"}
    if mtu and br.mtu != mtu:
        changes["mtu"] = mtu
    if promisc:
        changes.update(flags=IFF_PROMISC, change=IFF_PROMISC)
    ipr.link("set", index=br.index, **changes)
    return br


def ensure_address(ipr: IPRoute, index: int, address: str, prefixlen: int) -> None:
    try:
        ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
    except NetlinkError as e:
        if e.code != errno.EEXIST:
            raise


def addresses(ipr: IPRoute, index: int) -> set[str]:
    out = set()
    for msg in ipr.get_addr(index=index):
        out.add(f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}")
    return out


def create_veth(
    ipr: IPRoute, host_name: str, ifname: str, netns_path: str, mtu: int | None
) -> Link:
    """Create the pair with the container end born inside the pod's netns as `ifname`."""
    stale = get_link(ipr, host_name)
    if stale is not None:
        # Left by an ADD that died half-way for this very attachment (the name is derived from it).
        ipr.link("del", index=stale.index)
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        peer: dict[str, Any] = {"ifname": ifname, "net_ns_fd": fd}
        kwargs: dict[str, Any] = {"ifname": host_name, "kind": "veth", "peer": peer}
        if mtu:
            kwargs["mtu"] = mtu
            peer["mtu"] = mtu
        ipr.link("add", **kwargs)
    finally:
        os.close(fd)
    host = get_link(ipr, host_name)
    if host is None:
        raise RuntimeError(f"veth {host_name} missing after creation")
    return host


def attach_to_bridge(ipr: IPRoute, host: Link, bridge: Link, hairpin: bool) -> None:
    ipr.link("set", index=host.index, master=bridge.index, state="up")
    if hairpin:
        ipr.brport("set", index=host.index, mode=1)


def configure_container(
    ipr: IPRoute, ifname: str, ips: Iterable[dict[str, Any]], routes: Iterable[dict[str, Any]]
) -> Link:
    link = get_link(ipr, ifname)
    if link is None:
        raise RuntimeError(f"{ifname} missing in the pod namespace")
    lo = get_link(ipr, "lo")
    if lo is not None:
        ipr.link("set", index=lo.index, state="up")
    for ip in ips:
        iface = ipaddress.ip_interface(ip["address"])
        ensure_address(ipr, link.index, str(iface.ip), iface.network.prefixlen)
    ipr.link("set", index=link.index, state="up")
    for r in routes:
        dst = ipaddress.ip_network(r["dst"], strict=False)
        kwargs: dict[str, Any] = {"dst": str(dst.network_address), "dst_len": dst.prefixlen, "oif": link.index}
        if r.get("gw"):
            kwargs["gateway"] = r["gw"]
        if dst.version == 6:
            kwargs["family"] = 10
        try:
            ipr.route("add", **kwargs)
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise
    return link


def route_exists(ipr: IPRoute, index: int, dst: str, gw: str | None) -> bool:
    net = ipaddress.ip_network(dst, strict=False)
    family = 10 if net.version == 6 else 2
    for msg in ipr.get_routes(family=family, oif=index):
        have_dst = msg.get_attr("RTA_DST") or ("::" if net.version == 6 else "0.0.0.0")
        if msg["dst_len"] != net.prefixlen or ipaddress.ip_address(have_dst) != net.network_address:
            continue
        if gw and msg.get_attr("RTA_GATEWAY") != gw:
            continue
        return True
    return False


def delete_container_link(ipr: IPRoute, ifname: str) -> list[str]:
    """Delete the pod's interface (and so its veth peer); return the addresses it carried."""
    link = get_link(ipr, ifname)
    if link is None:
        return []
    found = sorted(addresses(ipr, link.index))
    try:
        ipr.link("del", index=link.index)
    except NetlinkError as e:
        if e.code != errno.ENODEV:
            raise
    return found


def delete_link(ipr: IPRoute, name: str) -> bool:
    link = get_link(ipr, name)
    if link is None:
        return False
    try:
        ipr.link("del", index=link.index)
    except NetlinkError as e:
        if e.code != errno.ENODEV:
            raise
    return True


def bridge_ports(ipr: IPRoute, bridge: str) -> list[str]:
    br = get_link(ipr, bridge)
    if br is None:
        return []
    return [l.name for l in map(_link, ipr.get_links()) if l.master == br.index]


def write_sysctl(name: str, value: str) -> None:
    """Write a /proc/sys key; net.* keys resolve in the calling thread's namespace."""
    path = "/proc/sys/" + name.replace(".", "/")
    with open(path) as f:
        if f.read().strip() == value:
            return
    with open(path, "w") as f:
        f.write(value)
