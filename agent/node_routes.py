"""host-gw routing: on this node, a route `<podCIDR> via <InternalIP>` for every other Node.

What flannel's host-gw backend does, driven by a Node informer: a route appears as soon as a
Node has a pod CIDR and an InternalIP, follows a changed IP, and goes with the Node. Every
sync compares the wanted routes with what the kernel holds, so the periodic re-check also
brings back a route deleted by hand. The nodes must share an L2 segment (the gateway is
on-link); a gateway that is not gives "network unreachable", logged once, retried each sync.

Our routes carry the rtnetlink protocol ROUTE_PROTOCOL (`ip route show proto 108`): only
routes with that mark are ever replaced or deleted, and `agent --teardown` removes exactly
those. A route someone else made for the same destination is left alone (and logged).
"""
from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kubeling.client import Client
from kubeling.informer import Informer
from kubeling.resources import lookup

log = logging.getLogger("agent.node_routes")
NODES = lookup("nodes")
ROUTE_PROTOCOL = 108  # unassigned in /etc/iproute2/rt_protos; marks kubeling's host-gw routes
MAIN_TABLE = 254
RESYNC_PERIOD = 10.0

Routes = dict[str, str]  # pod CIDR -> gateway (the Node's InternalIP)


# ---- what the routes should be (pure) --------------------------------------------------------

def internal_ip(node: dict[str, Any]) -> str | None:
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP" and _ipv4(a.get("address")):
            return a["address"]
    return None


def pod_cidrs(node: dict[str, Any]) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    out = []
    for c in cidrs:
        try:
            net = ipaddress.ip_network(c, strict=False)
        except (TypeError, ValueError):
            continue
        if net.version == 4:
            out.append(str(net))
    return out


def _ipv4(ip: Any) -> bool:
    try:
        return ipaddress.ip_address(ip).version == 4
    except (TypeError, ValueError):
        return False


def route_key(node: dict[str, Any]) -> tuple[tuple[str, ...], str | None]:
    """What of a Node the routes depend on (status heartbeats change nothing here)."""
    return tuple(pod_cidrs(node)), internal_ip(node)


def desired_routes(nodes: Iterable[dict[str, Any]], self_name: str, own_cidrs: Sequence[str],
                   own_ips: Sequence[str]) -> Routes:
    """The routes this node should have. Never one that covers our own pod CIDR or goes via one
    of our own addresses; of two Nodes claiming overlapping CIDRs, the first by name wins."""
    own = [ipaddress.ip_network(c, strict=False) for c in own_cidrs if c]
    out: Routes = {}
    taken: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        if node["metadata"]["name"] == self_name:
            continue
        gw = internal_ip(node)
        if gw is None or gw in own_ips:
            continue
        for cidr in pod_cidrs(node):
            net = ipaddress.ip_network(cidr)
            if any(net.overlaps(o) for o in own) or any(net.overlaps(t) for t in taken):
                continue
            if net.overlaps(ipaddress.ip_network(f"{gw}/32")):
                continue  # a gateway inside the CIDR it routes: nonsense, skip it
            taken.append(net)
            out[cidr] = gw
    return out


# ---- the kernel side (blocking: run in an executor) -------------------------------------------

def _dump(ipr) -> tuple[Routes, set[str]]:
    """(our routes in the main table, destinations of everyone else's there)."""
    ours: Routes = {}
    foreign: set[str] = set()
    for msg in ipr.get_routes(family=socket.AF_INET):
        table = msg.get_attr("RTA_TABLE") or msg["table"]
        if table != MAIN_TABLE:
            continue
        dst = f"{msg.get_attr('RTA_DST') or '0.0.0.0'}/{msg['dst_len']}"
        if msg["proto"] == ROUTE_PROTOCOL:
            ours[dst] = msg.get_attr("RTA_GATEWAY") or ""
        else:
            foreign.add(dst)
    return ours, foreign


def current_routes() -> Routes:
    from pyroute2 import IPRoute
    with IPRoute() as ipr:
        return _dump(ipr)[0]


class RouteTable:
    """Applies a wanted set of routes to this network namespace's main table."""

    def __init__(self) -> None:
        self._reported: set[tuple[str, str, str]] = set()  # problems already logged

    def _once(self, key: tuple[str, str, str], msg: str, *args: Any) -> None:
        if key not in self._reported:
            self._reported.add(key)
            log.warning(msg, *args)

    def apply(self, want: Routes) -> Routes:
        """Make our routes exactly `want`; returns the routes in place afterwards."""
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError
        with IPRoute() as ipr:
            ours, foreign = _dump(ipr)
            for dst, gw in ours.items():
                if dst not in want:  # a changed gateway is replaced below, without a gap
                    try:
                        ipr.route("del", dst=dst, gateway=gw or None, proto=ROUTE_PROTOCOL, table=MAIN_TABLE)
                        log.info("route %s via %s removed", dst, gw)
                    except NetlinkError as e:
                        if e.code != errno.ESRCH:
                            log.warning("route %s via %s not removed: %s", dst, gw, e)
            for dst, gw in want.items():
                if ours.get(dst) == gw:
                    continue
                if dst in foreign:
                    self._once(("foreign", dst, gw), "not routing %s via %s: a route to %s that is not "
                               "kubeling's exists", dst, gw, dst)
                    continue
                try:
                    ipr.route("replace", dst=dst, gateway=gw, proto=ROUTE_PROTOCOL, table=MAIN_TABLE)
                    self._reported = {k for k in self._reported if k[1] != dst}
                    log.info("route %s via %s added", dst, gw)
                except NetlinkError as e:
                    self._once(("error", dst, gw), "route %s via %s not added: %s (is %s on a link of "
                               "this node?); retrying every sync", dst, gw, e, gw)
            return _dump(ipr)[0]


def remove_routes() -> int:
    """Delete every route of ours (agent --teardown); returns how many."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
    n = 0
    with IPRoute() as ipr:
        for dst, gw in _dump(ipr)[0].items():
            try:
                ipr.route("del", dst=dst, gateway=gw or None, proto=ROUTE_PROTOCOL, table=MAIN_TABLE)
                n += 1
            except NetlinkError as e:
                if e.code != errno.ESRCH:
                    raise
    return n


def _sysctl(name: str) -> str | None:
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return f.read().strip()
    except OSError:
        return None


def _set_sysctl(name: str, value: str) -> None:
    with open("/proc/sys/" + name.replace(".", "/"), "w") as f:
        f.write(value)


def ensure_forwarding() -> None:
    """What routed pod traffic needs in this network namespace: forwarding on, and reverse-path
    filtering not strict (a packet from another node's pod CIDR arrives on the link to that
    node, which strict mode checks against the route back; loose mode only asks for any)."""
    if _sysctl("net.ipv4.ip_forward") == "0":
        _set_sysctl("net.ipv4.ip_forward", "1")
        log.info("net.ipv4.ip_forward set to 1")
    for scope in ("all", "default"):
        name = f"net.ipv4.conf.{scope}.rp_filter"
        if _sysctl(name) == "1":
            _set_sysctl(name, "2")
            log.info("%s was 1 (strict); set to 2 (loose) for routed pod traffic", name)


# ---- the controller ------------------------------------------------------------------------

class NodeRoutesController:
    """Keeps this node's host-gw routes in step with the Node objects."""

    def __init__(self, client: Client, node_name: str, own_pod_cidr: Callable[[], str | None],
                 own_ip: str, period: float = RESYNC_PERIOD, table: RouteTable | None = None) -> None:
        self.node_name = node_name
        self.own_pod_cidr = own_pod_cidr
        self.own_ip = own_ip
        self.period = period
        self.table = table or RouteTable()
        self.routes: Routes = {}  # what the kernel held after the last sync
        self._dirty = asyncio.Event()
        self._forwarding_checked = False
        self.informer = Informer(client, NODES, on_add=self._changed, on_delete=self._changed,
                                 on_update=self._updated)

    def _changed(self, _node: dict[str, Any]) -> None:
        self._dirty.set()

    def _updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if route_key(old) != route_key(new):
            self._dirty.set()

    def desired(self) -> Routes:
        own = self.own_pod_cidr()
        return desired_routes(self.informer.items(), self.node_name, [own] if own else [], [self.own_ip])

    async def sync(self) -> Routes:
        want = self.desired()
        loop = asyncio.get_running_loop()
        if want and not self._forwarding_checked:
            try:
                await loop.run_in_executor(None, ensure_forwarding)
                self._forwarding_checked = True
            except OSError as exc:
                log.warning("forwarding sysctls not set: %s", exc)
        # pyroute2's blocking API runs an event loop of its own: keep it off ours.
        self.routes = await loop.run_in_executor(None, self.table.apply, want)
        return self.routes

    async def run(self) -> None:
        informer = asyncio.create_task(self.informer.run(), name="node-informer")
        try:
            # Never sync from an empty cache: it would delete every route until the list came.
            await self.informer.synced.wait()
            while True:
                self._dirty.clear()
                try:
                    await self.sync()
                except Exception as exc:
                    log.warning("node routes not synced: %s", exc)
                try:
                    await asyncio.wait_for(self._dirty.wait(), self.period)
                except asyncio.TimeoutError:
                    pass
        finally:
            informer.cancel()
            await asyncio.gather(informer, return_exceptions=True)
