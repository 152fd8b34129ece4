"""Netlink work of the bridge plugin: bridge, veth pair, addresses, routes.

The per-ADD requests go through cni.rtnl, batched; pyroute2 (an IPRoute opened only when
needed) serves the rare or state-reading work: creating or fixing the bridge, CHECK, cleanup.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import threading
from dataclasses import dataclass
from typing import Any, Iterable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from cni import netns, rtnl
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
    """Netlink and ioctl sockets bound to one network namespace (None: this thread's)."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self._ipr: IPRoute | None = None
        if path is None:
            self.nl, self.devs = rtnl.Socket(), Devices()
        else:
            with netns.entered(path):
                self.nl, self.devs = rtnl.Socket(), Devices()

    @property
    def ipr(self) -> IPRoute:
        """pyroute2, opened on first use (~2 ms of CPU, which most ADDs never need)."""
        if self._ipr is None:
            if self.path is None:
                self._ipr = IPRoute()
            else:
                with netns.entered(self.path):
                    self._ipr = IPRoute()
        return self._ipr

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
        self.nl.close()
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


def ensure_address(ns: Namespace, index: int, address: str, prefixlen: int) -> None:
    ns.nl.run(rtnl.add_address(index, address, prefixlen))


def addresses(ipr: IPRoute, index: int) -> set[str]:
    return {f"{m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}" for m in ipr.get_addr(index=index)}


def create_veth(ns: Namespace, host_name: str, ifname: str, netns_path: str, mtu: int | None,
                bridge_index: int, hairpin: bool) -> int:
    """Create the pair with the container end born inside the pod's netns as `ifname` and the
    host end up on the bridge (one request, as the kernel applies master and flags on creation)."""
    stale = ns.devs.index(host_name)
    if stale is not None:
        # Left by an ADD that died half-way for this very attachment (the name is derived from it).
        ns.nl.run(rtnl.del_link(stale))
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        ns.nl.run(rtnl.new_veth(host_name, ifname, fd, mtu, bridge_index))
    finally:
        os.close(fd)
    index = ns.devs.index(host_name)
    if index is None:
        raise RuntimeError(f"veth {host_name} missing after creation")
    if hairpin:
        # A bridge port setting, so only after the port exists: it needs the new index.
        ns.nl.run(rtnl.set_hairpin(index, True))
    return index


def configure_container(
    pod: Namespace, ifname: str, ips: Iterable[dict[str, Any]], routes: Iterable[dict[str, Any]]
) -> None:
    """lo up, addresses, link up, routes: one batch, which the kernel applies in order."""
    index = pod.devs.index(ifname)
    if index is None:
        raise RuntimeError(f"{ifname} missing in the pod namespace")
    batch = []
    lo = pod.devs.index("lo")
    if lo is not None and not (pod.devs.flags("lo") or 0) & IFF_UP:
        batch.append(rtnl.set_up(lo))
    for ip in ips:
        iface = ipaddress.ip_interface(ip["address"])
        batch.append(rtnl.add_address(index, str(iface.ip), iface.network.prefixlen))
    batch.append(rtnl.set_up(index))
    batch += [rtnl.add_route(index, r["dst"], r.get("gw")) for r in routes]
    pod.nl.run(*batch)


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
    ns.nl.run(rtnl.del_link(index))  # already gone (e.g. with its peer) counts as done
    return True


def write_sysctl(name: str, value: str) -> None:
    """Write a /proc/sys key; net.* keys resolve in the calling thread's namespace."""
    path = "/proc/sys/" + name.replace(".", "/")
    with open(path) as f:
        if f.read().strip() == value:
            return
    with open(path, "w") as f:
        f.write(value)
