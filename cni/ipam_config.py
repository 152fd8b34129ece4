"""host-local compatible IPAM configuration: ranges, routes, dataDir, requested IPs."""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from cni.errors import INTERNAL, INVALID_NETWORK_CONFIG, CniError
from cni.spec import NETWORK_NAME

DEFAULT_DATA_DIR = "/var/lib/cni/networks"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Range:
    subnet: IPNetwork
    start: IPAddress
    end: IPAddress
    gateway: IPAddress

    def contains(self, ip: IPAddress) -> bool:
        return ip.version == self.start.version and self.start <= ip <= self.end

    def overlaps(self, other: "Range") -> bool:
        return self.start.version == other.start.version and not (
            self.end < other.start or other.end < self.start
        )

    def describe(self) -> str:
        return f"{self.start}-{self.end}"


@dataclass(frozen=True)
class IpamConfig:
    name: str
    cni_version: str
    range_sets: list[list[Range]]
    routes: list[dict[str, Any]]
    data_dir: str
    requested_ips: list[IPAddress] = field(default_factory=list)


def _bad(msg: str) -> CniError:
    return CniError(INVALID_NETWORK_CONFIG, msg)


def _ip(value: Any, what: str) -> IPAddress:
    if not isinstance(value, str):
        raise _bad(f"{what} must be a string")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise _bad(f"invalid {what} {value!r}") from None


def _range(raw: Any) -> Range:
    if not isinstance(raw, Mapping):
        raise _bad("a range must be an object")
    subnet_s = raw.get("subnet")
    if not isinstance(subnet_s, str):
        raise _bad("range is missing 'subnet'")
    try:
        subnet = ipaddress.ip_network(subnet_s, strict=False)
    except ValueError:
        raise _bad(f"invalid subnet {subnet_s!r}") from None
    if subnet.prefixlen > subnet.max_prefixlen - 2:
        raise _bad(f"Network {subnet} too small to allocate from")
    first = subnet.network_address + 1
    # IPv4 keeps the broadcast address out; IPv6 has none.
    last = subnet.broadcast_address - 1 if subnet.version == 4 else subnet.broadcast_address
    gateway = _ip(raw["gateway"], "gateway") if raw.get("gateway") else first
    if gateway not in subnet:
        raise _bad(f"gateway {gateway} not in network {subnet}")
    start = _ip(raw["rangeStart"], "rangeStart") if raw.get("rangeStart") else first
    end = _ip(raw["rangeEnd"], "rangeEnd") if raw.get("rangeEnd") else last
    for what, ip in (("rangeStart", start), ("rangeEnd", end)):
        if ip.version != subnet.version or ip not in subnet:
            raise _bad(f"{what} {ip} not in network {subnet}")
        if not first <= ip <= last:
            raise _bad(f"{what} {ip} is the network or broadcast address of {subnet}")
    if start > end:
        raise _bad(f"rangeStart {start} is after rangeEnd {end}")
    return Range(subnet=subnet, start=start, end=end, gateway=gateway)


def _range_set(raw: Any) -> list[Range]:
    if not isinstance(raw, list) or not raw:
        raise _bad("each entry of 'ranges' must be a non-empty list of ranges")
    ranges = [_range(r) for r in raw]
    for i, a in enumerate(ranges):
        for b in ranges[i + 1 :]:
            if a.overlaps(b):
                raise _bad(f"range {a.describe()} overlaps with {b.describe()}")
    return ranges


def _routes(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _bad("'routes' must be a list")
    out = []
    for r in raw:
        if not isinstance(r, Mapping) or not isinstance(r.get("dst"), str):
            raise _bad("each route needs a 'dst'")
        try:
            dst = ipaddress.ip_network(r["dst"], strict=False)
        except ValueError:
            raise _bad(f"invalid route dst {r['dst']!r}") from None
        route: dict[str, Any] = {"dst": str(dst)}
        if r.get("gw"):
            route["gw"] = str(_ip(r["gw"], "route gw"))
        out.append(route)
    return out


def load_ipam_config(conf: Mapping[str, Any], cni_args: Mapping[str, str]) -> IpamConfig:
    """Read the whole network config the way host-local does (single-range legacy form too)."""
    ipam = conf.get("ipam")
    if not isinstance(ipam, Mapping):
        raise CniError(INTERNAL, "IPAM config missing 'ipam' key")
    name = conf.get("name")
    if not isinstance(name, str) or not NETWORK_NAME.fullmatch(name):
        raise _bad("network config needs a valid 'name'")
    raw_sets: list[Any] = []
    runtime = conf.get("runtimeConfig") if isinstance(conf.get("runtimeConfig"), Mapping) else {}
    if isinstance(runtime.get("ipRanges"), list):
        raw_sets.extend(runtime["ipRanges"])
    if ipam.get("subnet"):
        raw_sets.append([{k: ipam.get(k) for k in ("subnet", "rangeStart", "rangeEnd", "gateway") if ipam.get(k)}])
    ranges = ipam.get("ranges")
    if ranges is not None and not isinstance(ranges, list):
        raise _bad("'ranges' must be a list")
    raw_sets.extend(ranges or [])
    if not raw_sets:
        raise _bad("no IP ranges specified")
    range_sets = [_range_set(s) for s in raw_sets]
    for i, a in enumerate(range_sets):
        for j, b in enumerate(range_sets[i + 1 :], start=i + 1):
            if any(x.overlaps(y) for x in a for y in b):
                raise _bad(f"range set {i} overlaps with {j}")
    requested: list[IPAddress] = []
    if cni_args.get("IP"):
        requested.append(_ip(cni_args["IP"], "CNI_ARGS IP"))
    args = conf.get("args")
    if isinstance(args, Mapping) and isinstance(args.get("cni"), Mapping):
        for ip in args["cni"].get("ips") or []:
            requested.append(_ip(ip, "args.cni.ips entry"))
    for ip in runtime.get("ips") or []:
        requested.append(_ip(str(ip).split("/")[0], "runtimeConfig.ips entry"))
    data_dir = ipam.get("dataDir") or DEFAULT_DATA_DIR
    # Absolute: a runtime's working directory is anyone's guess, and two runtimes with
    # different ones would keep two allocation stores and hand out one address twice.
    if not isinstance(data_dir, str) or "\0" in data_dir or not os.path.isabs(data_dir):
        raise _bad("'dataDir' must be an absolute path")
    return IpamConfig(
        name=name,
        cni_version=str(conf.get("cniVersion", "")),
        range_sets=range_sets,
        routes=_routes(ipam.get("routes")),
        data_dir=data_dir,
        requested_ips=requested,
    )
