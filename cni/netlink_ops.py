"""Netlink work of the bridge plugin, through pyroute2: bridge, veth pair, addresses, routes."""
from __future__ import annotations

import errno
import ipaddress
import os
import threading
from dataclasses import dataclass
from typing import Any, Iterable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from cni import netns
from cni.netdev import Devices

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


class Namespace:
    """A netlink socket and an ioctl socket bound to one network namespace."""

    def __init__(self, path: str | None = None) -> None:
        if path is None:
            self.ipr, self.devs = IPRoute(), Devices()
        else:
            with netns.entered(path):
                self.ipr, self.devs = IPRoute(), Devices()

    def close(self) -> None:
        self.ipr.close()
        self.devs.close()


def get_link(ipr: IPRoute, name: str) -> Link | None:
    """Full link details (slow: pyroute2 decodes everything); for CHECK and validation."""
    try:
        msgs = ipr.get_links(ifname=name)
    except NetlinkError as e:
        if e.code == errno.ENODEV:
            return None
        raise
    if not msgs:
        return None
    msg = msgs[0]
    info = msg.get_attr("IFLA_LINKINFO")
    return Link(
        index=msg["index"],
        name=msg.get_attr("IFLA_IFNAME"),
        mac=msg.get_attr("IFLA_ADDRESS"),
        mtu=msg.get_attr("IFLA_MTU"),
        master=msg.get_attr("IFLA_MASTER"),
        kind=info.get_attr("IFLA_INFO_KIND") if info is not None else None,
    )


# (netns inode, name, ifindex) of links already confirmed to be bridges: the kind check is the
# one expensive lookup, and an ifindex never comes back for a different link.
_known_bridges: set[tuple[int, str, int]] = set()
_known_lock = threading.Lock()


def _ns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def ensure_bridge(ns: Namespace, name: str, mtu: int | None, promisc: bool) -> int:
    index = ns.devs.index(name)
    if index is None:
        kwargs: dict[str, Any] = {"ifname": name, "kind": "bridge"}
        if mtu:
            kwargs["mtu"] = mtu
        try:
            ns.ipr.link("add", **kwargs)
        except NetlinkError as e:
            if e.code != errno.EEXIST:  # a concurrent ADD made it first
                raise
        index = ns.devs.index(name)
        if index is None:
            raise RuntimeError(f"bridge {name} vanished right after creation")
    key = (_ns_inode(), name, index)
    with _known_lock:
        known = key in _known_bridges
    if not known:
        link = get_link(ns.ipr, name)
        if link is None or link.kind != "bridge":
            raise RuntimeError(f"{name} already exists but is not a bridge")
        with _known_lock:
            _known_bridges.add(key)
    flags = ns.devs.flags(name) or 0
    changes: dict[str, Any] = {}
    if not flags & IFF_UP:
        changes["state"] = "up"
    if mtu and ns.devs.mtu(name) != mtu:
        changes["mtu"] = mtu
    if promisc and not flags & IFF_PROMISC:
        changes.update(flags=IFF_PROMISC, change=IFF_PROMISC)
    if changes:
        ns.ipr.link("set", index=index, **changes)
    return index


def ensure_address(ipr: IPRoute, index: int, address: str, prefixlen: int) -> None:
    try:
        ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
    except NetlinkError as e:
        if e.code != errno.EEXIST:
            raise


def addresses(ipr: IPRoute, index: int) -> set[str]:
    return {f"{m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}" for m in ipr.get_addr(index=index)}


def create_veth(ns: Namespace, host_name: str, ifname: str, netns_path: str, mtu: int | None) -> int:
    """Create the pair with the container end born inside the pod's netns as `ifname`."""
    stale = ns.devs.index(host_name)
    if stale is not None:
        # Left by an ADD that died half-way for this very attachment (the name is derived from it).
        delete_index(ns.ipr, stale)
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        peer: dict[str, Any] = {"ifname": ifname, "net_ns_fd": fd}
        kwargs: dict[str, Any] = {"ifname": host_name, "kind": "veth", "peer": peer}
        if mtu:
            kwargs["mtu"] = mtu
            peer["mtu"] = mtu
        ns.ipr.link("add", **kwargs)
    finally:
        os.close(fd)
    index = ns.devs.index(host_name)
    if index is None:
        raise RuntimeError(f"veth {host_name} missing after creation")
    return index


def attach_to_bridge(ipr: IPRoute, host_index: int, bridge_index: int, hairpin: bool) -> None:
    ipr.link("set", index=host_index, master=bridge_index, state="up")
    if hairpin:
        ipr.brport("set", index=host_index, mode=1)


def configure_container(
    pod: Namespace, ifname: str, ips: Iterable[dict[str, Any]], routes: Iterable[dict[str, Any]]
) -> None:
    index = pod.devs.index(ifname)
    if index is None:
        raise RuntimeError(f"{ifname} missing in the pod namespace")
    lo = pod.devs.index("lo")
    if lo is not None and not (pod.devs.flags("lo") or 0) & IFF_UP:
        pod.ipr.link("set", index=lo, state="up")
    for ip in ips:
        iface = ipaddress.ip_interface(ip["address"])
        ensure_address(pod.ipr, index, str(iface.ip), iface.network.prefixlen)
    pod.ipr.link("set", index=index, state="up")
    for r in routes:
        dst = ipaddress.ip_network(r["dst"], strict=False)
        kwargs: dict[str, Any] = {"dst": str(dst.network_address), "dst_len": dst.prefixlen, "oif": index}
        if r.get("gw"):
            kwargs["gateway"] = r["gw"]
        if dst.version == 6:
            kwargs["family"] = 10
        try:
            pod.ipr.route("add", **kwargs)
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise


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


def delete_index(ipr: IPRoute, index: int) -> None:
    try:
        ipr.link("del", index=index)
    except NetlinkError as e:
        if e.code != errno.ENODEV:  # already gone, e.g. with its peer
            raise


def delete_link(ns: Namespace, name: str) -> bool:
    index = ns.devs.index(name)
    if index is None:
        return False
    delete_index(ns.ipr, index)
    return True


def write_sysctl(name: str, value: str) -> None:
    """Write a /proc/sys key; net.* keys resolve in the calling thread's namespace."""
    path = "/proc/sys/" + name.replace(".", "/")
    with open(path) as f:
        if f.read().strip() == value:
            return
    with open(path, "w") as f:
        f.write(value)
