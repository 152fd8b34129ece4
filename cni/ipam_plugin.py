"""kubeling-ipam: host-local compatible IPAM commands. Stdlib only, cheap to run anywhere."""
from __future__ import annotations

from typing import Any, Mapping

from cni.errors import INTERNAL, INVALID_NETWORK_CONFIG, CniError
from cni.ipam_allocator import allocate
from cni.ipam_config import IpamConfig, load_ipam_config
from cni.ipam_store import LINE_BREAK, DiskStore
from cni.spec import CmdArgs, format_result


def handle(args: CmdArgs, conf: dict[str, Any], stdin: bytes = b"") -> dict[str, Any] | None:
    ipam = load_ipam_config(conf, args.args_dict())
    store = DiskStore(ipam.data_dir, ipam.name)
    if args.command == "ADD":
        return format_result(add(store, ipam, args.container_id, args.ifname), conf["cniVersion"])
    if args.command == "DEL":
        with store.locked():
            store.release_by_id(args.container_id, args.ifname)
        return None
    if args.command == "CHECK":
        with store.locked():
            if not store.get_by_id(args.container_id, args.ifname):
                raise CniError(INTERNAL, f"kubeling-ipam: Failed to find address added by container {args.container_id}")
        return None
    if args.command == "GC":
        gc(store, conf)
        return None
    if args.command == "STATUS":
        return None
    raise CniError(INTERNAL, f"unexpected command {args.command}")


def add(store: DiskStore, ipam: IpamConfig, container_id: str, ifname: str) -> dict[str, Any]:
    requested = list(ipam.requested_ips)
    ips: list[dict[str, Any]] = []
    taken = []  # only what this call reserved may be undone: an earlier ADD's address stays
    with store.locked():
        try:
            for idx, ranges in enumerate(ipam.range_sets):
                want = next((ip for ip in requested if any(r.contains(ip) for r in ranges)), None)
                if want is not None:
                    requested.remove(want)
                try:
                    ip, owner = allocate(store, ranges, str(idx), container_id, ifname, want)
                except CniError as e:
                    raise CniError(e.code, f"failed to allocate for range {idx}: {e.msg}", e.details) from None
                taken.append(ip)
                ips.append({"address": f"{ip}/{owner.subnet.prefixlen}", "gateway": str(owner.gateway)})
            if requested:
                raise CniError(
                    INTERNAL, "failed to allocate all requested IPs: " + " ".join(str(ip) for ip in requested)
                )
        except BaseException:
            for ip in taken:
                store.release(ip)
            raise
    return {"ips": ips, "routes": [dict(r) for r in ipam.routes], "dns": {}}


def gc(store: DiskStore, conf: Mapping[str, Any]) -> None:
    """Release every allocation whose attachment the runtime no longer lists (CNI 1.1 GC)."""
    valid = conf.get("cni.dev/valid-attachments")
    if valid is None:
        valid = []
    if not isinstance(valid, list):
        raise CniError(INVALID_NETWORK_CONFIG, "cni.dev/valid-attachments must be a list")
    keep = set()
    for a in valid:
        if isinstance(a, Mapping):
            cid = str(a.get("containerID", "")).strip()
            keep.add(cid + LINE_BREAK + str(a.get("ifname", "")))
            keep.add(cid)  # legacy files hold only the id
    with store.locked():
        for ip, content in list(store.allocations()):
            if content not in keep:
                store.release(ip)
