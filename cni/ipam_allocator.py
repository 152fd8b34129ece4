"""Round-robin allocation over one range set, host-local's algorithm."""
from __future__ import annotations

from typing import Iterator

from cni.errors import INTERNAL, CniError
from cni.ipam_config import IPAddress, Range
from cni.ipam_store import DiskStore


def _candidates(ranges: list[Range], last: IPAddress | None) -> Iterator[tuple[IPAddress, Range]]:
    """Every address of the set once, starting right after the last reserved one."""
    start_idx, start_ip = 0, ranges[0].start
    if last is not None:
        for i, r in enumerate(ranges):
            if r.contains(last):
                if last < r.end:
                    start_idx, start_ip = i, last + 1
                else:
                    start_idx = (i + 1) % len(ranges)
                    start_ip = ranges[start_idx].start
                break
    order = ranges[start_idx:] + ranges[:start_idx]
    # The starting range is visited twice: from start_ip to its end, then (at the very end)
    # from its beginning up to just before start_ip.
    first = order[0]
    ip = start_ip
    while ip <= first.end:
        yield ip, first
        ip += 1
    for r in order[1:]:
        ip = r.start
        while ip <= r.end:
            yield ip, r
            ip += 1
    ip = first.start
    while ip < start_ip:
        yield ip, first
        ip += 1


def allocate(
    store: DiskStore,
    ranges: list[Range],
    range_id: str,
    container_id: str,
    ifname: str,
    requested: IPAddress | None,
) -> tuple[IPAddress, Range]:
    """Reserve one address; the caller holds the store lock."""
    if requested is not None:
        owner = next((r for r in ranges if r.contains(requested)), None)
        if owner is None:
            raise CniError(INTERNAL, f"{requested} not in range set {_describe(ranges)}")
        if requested == owner.gateway:
            raise CniError(INTERNAL, f"requested ip {requested} is subnet's gateway")
        if not store.reserve(container_id, ifname, requested, range_id):
            raise CniError(
                INTERNAL, f"requested IP address {requested} is not available in range set {_describe(ranges)}"
            )
        return requested, owner
    for ip in store.get_by_id(container_id, ifname):
        if any(r.contains(ip) for r in ranges):
            # The spec forbids a second allocation for the same attachment (host-local agrees).
            raise CniError(INTERNAL, f"{ip} has been allocated to {container_id}, duplicate allocation is not allowed")
    for ip, r in _candidates(ranges, store.last_reserved_ip(range_id)):
        if ip == r.gateway:
            continue
        if store.reserve(container_id, ifname, ip, range_id):
            return ip, r
    raise CniError(INTERNAL, f"no IP addresses available in range set: {_describe(ranges)}")


def _describe(ranges: list[Range]) -> str:
    return ",".join(r.describe() for r in ranges)
