"""kubeling-bridge: ADD / DEL / CHECK / STATUS / GC, behaving like the reference bridge plugin."""
from __future__ import annotations

import errno
import hashlib
import ipaddress
import os
from typing import Any

from cni import delegate, iptables_rules, netlink_ops
from cni.bridge_config import BridgeConfig, load_bridge_config
from cni.errors import INTERNAL, INVALID_NETWORK_CONFIG, CniError
from cni.ipam_config import load_ipam_config
from cni.spec import CmdArgs, format_result, normalize_result


IN_TREE_IPAM = "kubeling-ipam"


def host_veth_name(network: str, container_id: str, ifname: str) -> str:
    # Derived from the attachment, so a retried or half-finished ADD and a DEL without a netns
    # all find the same host end.
    return "veth" + hashlib.sha256(f"{network}\0{container_id}\0{ifname}".encode()).hexdigest()[:11]


def handle(args: CmdArgs, conf: dict[str, Any], stdin: bytes) -> dict[str, Any] | None:
    cfg = load_bridge_config(conf)
    if args.command == "ADD":
        if cfg.ipam_type == IN_TREE_IPAM:
            # Refuse a bad IPAM config or CNI_ARGS before the bridge exists: a failed ADD
            # must leave the node as it found it (another plugin's IPAM can only fail later).
            load_ipam_config(conf, args.args_dict())
        if cfg.ipam_type:
            delegate.find_plugin(cfg.ipam_type, args.path)  # a missing IPAM plugin, too, before any change
        return format_result(add(args, cfg, stdin), cfg.cni_version)
    if args.command == "DEL":
        delete(args, cfg, stdin)
        return None
    if args.command == "CHECK":
        check(args, cfg, stdin)
        return None
    if args.command == "STATUS":
        if cfg.ipam_type:
            delegate.run_ipam("STATUS", cfg.ipam_type, args.env, stdin)
        return None
    if args.command == "GC":
        gc(args, cfg, conf, stdin)
        return None
    raise CniError(INTERNAL, f"unexpected command {args.command}")


def _open_netns_error(path: str, e: OSError) -> CniError:
    return CniError(INTERNAL, f"failed to open netns {path!r}: {e.strerror}")


def _gateway_for(address: str) -> str:
    return str(ipaddress.ip_interface(address).network.network_address + 1)


def add(args: CmdArgs, cfg: BridgeConfig, stdin: bytes) -> dict[str, Any]:
    try:
        pod = netlink_ops.Namespace(args.netns)
    except OSError as e:
        raise _open_netns_error(args.netns, e) from None
    host = netlink_ops.Namespace()
    ipam_done = False
    veth = host_veth_name(cfg.name, args.container_id, args.ifname)
    try:
        if pod.devs.index(args.ifname) is not None:
            raise CniError(INTERNAL, f"container veth name provided ({args.ifname}) already exists")
        br_index = netlink_ops.ensure_bridge(host, cfg.bridge, cfg.mtu, cfg.promisc)
        netlink_ops.create_veth(host, veth, args.ifname, args.netns, cfg.mtu, br_index, cfg.hairpin)

        ipam: dict[str, Any] = {"ips": [], "routes": [], "dns": {}}
        if cfg.ipam_type:
            ipam = delegate.run_ipam("ADD", cfg.ipam_type, args.env, stdin) or ipam
            ipam_done = True
            if not ipam.get("ips"):
                raise CniError(INTERNAL, "IPAM plugin returned missing IP config")
        ips = [dict(ip, interface=2) for ip in ipam.get("ips", [])]
        routes = [dict(r) for r in ipam.get("routes") or []]
        if cfg.is_gateway:
            for ip in ips:
                ip.setdefault("gateway", _gateway_for(ip["address"]))
        if cfg.is_default_gateway:
            for ip in ips:
                default = ipaddress.ip_network("::/0" if ":" in ip["address"] else "0.0.0.0/0")
                if not any(ipaddress.ip_network(r["dst"]) == default for r in routes):
                    routes.append({"dst": str(default), "gw": ip["gateway"]})
        # A route without "gw" goes via the gateway of its family, as the reference does.
        pod_routes = []
        for r in routes:
            gw = r.get("gw") or next(
                (ip["gateway"] for ip in ips
                 if ip.get("gateway") and (":" in ip["address"]) == (":" in r["dst"])), None)
            pod_routes.append({"dst": r["dst"], "gw": gw} if gw else {"dst": r["dst"]})
        netlink_ops.configure_container(pod, args.ifname, ips, pod_routes)

        if cfg.is_gateway:
            for ip in ips:
                iface = ipaddress.ip_interface(ip["address"])
                netlink_ops.ensure_address(host, br_index, ip["gateway"], iface.network.prefixlen)
            if any(":" not in ip["address"] for ip in ips):
                netlink_ops.write_sysctl("net.ipv4.ip_forward", "1")
            if any(":" in ip["address"] for ip in ips):
                netlink_ops.write_sysctl("net.ipv6.conf.all.forwarding", "1")
        key = iptables_rules.pod_key(cfg.name, args.container_id, args.ifname)
        for ip in ips:
            iface = ipaddress.ip_interface(ip["address"])
            iptables_rules.ensure_pod_rules(
                cfg.bridge, br_index, str(iface.network), cfg.ip_masq, str(iface.ip), key,
                cfg.non_masquerade_cidrs)

        return {
            "interfaces": [
                {"name": cfg.bridge, "mac": host.devs.mac(cfg.bridge)},
                {"name": veth, "mac": host.devs.mac(veth)},
                {"name": args.ifname, "mac": pod.devs.mac(args.ifname), "sandbox": args.netns},
            ],
            "ips": ips,
            "routes": routes,
            "dns": ipam.get("dns") or {},
        }
    except BaseException:
        # Undo in reverse: veth (its pod end goes with it), then the address we were given.
        try:
            netlink_ops.delete_link(host, veth)
        except Exception:
            pass
        if ipam_done:
            try:
                delegate.run_ipam("DEL", cfg.ipam_type or "", args.env, stdin)
            except Exception:
                pass
        raise
    finally:
        pod.close()
        host.close()


def delete(args: CmdArgs, cfg: BridgeConfig, stdin: bytes) -> None:
    # The devices go first, the address after (as the reference plugin's cmdDel): released
    # while still configured, a concurrent ADD could take it. When removing a link fails,
    # the address stays held and the runtime's retried DEL releases it.
    host = netlink_ops.Namespace()
    try:
        if args.netns:
            try:
                pod = netlink_ops.Namespace(args.netns)
            except OSError as e:
                # The sandbox is already gone: its interfaces went with it.
                if e.errno not in (errno.ENOENT, errno.EINVAL):
                    raise _open_netns_error(args.netns, e) from None
            else:
                try:
                    netlink_ops.delete_link(pod, args.ifname)
                finally:
                    pod.close()
        netlink_ops.delete_link(host, host_veth_name(cfg.name, args.container_id, args.ifname))
        if cfg.ipam_type:
            delegate.run_ipam("DEL", cfg.ipam_type, args.env, stdin)
        if cfg.ip_masq:
            key = iptables_rules.pod_key(cfg.name, args.container_id, args.ifname)
            iptables_rules.remove_pod_rules(key, cfg.bridge)
    finally:
        host.close()


def check(args: CmdArgs, cfg: BridgeConfig, stdin: bytes) -> None:
    if cfg.prev_result is None:
        raise CniError(INVALID_NETWORK_CONFIG, "required prevResult missing")
    prev = normalize_result(cfg.prev_result)
    if cfg.ipam_type:
        delegate.run_ipam("CHECK", cfg.ipam_type, args.env, stdin)
    interfaces = prev.get("interfaces") or []
    cont_idx = next((i for i, itf in enumerate(interfaces)
                     if itf.get("sandbox") and itf.get("name") == args.ifname), None)
    if cont_idx is None:
        raise CniError(INTERNAL, f"prevResult has no interface {args.ifname} in a sandbox")
    host = netlink_ops.Namespace()
    try:
        pod = netlink_ops.Namespace(args.netns)
    except OSError as e:
        host.close()
        raise _open_netns_error(args.netns, e) from None
    try:
        br = netlink_ops.get_link(host.ipr, cfg.bridge)
        if br is None or br.kind != "bridge":
            raise CniError(INTERNAL, f"bridge {cfg.bridge} not found")
        for itf in interfaces:
            if itf.get("sandbox") or itf.get("name") == cfg.bridge:
                continue
            hv = netlink_ops.get_link(host.ipr, itf["name"])
            if hv is None or hv.master != br.index:
                raise CniError(INTERNAL, f"host veth {itf['name']} is missing or not on {cfg.bridge}")
        link = netlink_ops.get_link(pod.ipr, args.ifname)
        if link is None:
            raise CniError(INTERNAL, f"interface {args.ifname} not found in {args.netns}")
        want_mac = interfaces[cont_idx].get("mac")
        if want_mac and want_mac.lower() != (link.mac or "").lower():
            raise CniError(INTERNAL, f"interface {args.ifname} mac {link.mac} differs from {want_mac}")
        have = netlink_ops.addresses(pod.ipr, link.index)
        for ip in prev.get("ips") or []:
            if ip.get("interface") not in (None, cont_idx):
                continue
            if str(ipaddress.ip_interface(ip["address"])) not in have:
                raise CniError(INTERNAL, f"address {ip['address']} not found on {args.ifname}")
        for r in prev.get("routes") or []:
            if not netlink_ops.route_exists(pod.ipr, link.index, r["dst"], r.get("gw")):
                raise CniError(INTERNAL, f"route {r} not found in {args.netns}")
    finally:
        pod.close()
        host.close()


def gc(args: CmdArgs, cfg: BridgeConfig, conf: dict[str, Any], stdin: bytes) -> None:
    if cfg.ipam_type:
        delegate.run_ipam("GC", cfg.ipam_type, args.env, stdin)
    valid = conf.get("cni.dev/valid-attachments") or []
    keys = {
        iptables_rules.pod_key(cfg.name, str(a.get("containerID", "")), str(a.get("ifname", "")))
        for a in valid if isinstance(a, dict)
    }
    iptables_rules.remove_stale_pod_rules(keys, cfg.bridge)
