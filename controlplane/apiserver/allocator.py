"""ClusterIP and NodePort allocation for Services.

Each allocated IP or port is an etcd key (`/registry/ranges/...`) written in the
same transaction as the Service, so a collision is impossible even with several
apiservers; a Service deletion releases its keys in its own transaction.
"""
from __future__ import annotations

import ipaddress
import random
from typing import Any

from kubeling import errors

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
NODE_PORTS = range(30000, 32768)
IP_PREFIX = "/registry/ranges/serviceips/"
PORT_PREFIX = "/registry/ranges/servicenodeports/"


def ip_key(ip: str) -> str:
    return IP_PREFIX + ip


def port_key(port: int) -> str:
    return PORT_PREFIX + str(port)


def _wants_cluster_ip(svc: dict[str, Any]) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type", "ClusterIP") != "ExternalName" and spec.get("clusterIP") != "None"


def _wants_node_ports(svc: dict[str, Any]) -> bool:
    return (svc.get("spec") or {}).get("type") in ("NodePort", "LoadBalancer")


def held_claims(svc: dict[str, Any]) -> set[str]:
    """The allocation keys a stored Service holds."""
    spec = svc.get("spec") or {}
    held = set()
    ip = spec.get("clusterIP")
    if ip and ip != "None":
        held.add(ip_key(ip))
    for p in spec.get("ports") or []:
        if isinstance(p, dict) and p.get("nodePort"):
            held.add(port_key(p["nodePort"]))
    return held


def carry_forward(new: dict[str, Any], old: dict[str, Any]) -> None:
    """Keep allocated values a client left out of an update (kubectl replace of
    a file without clusterIP), as Kubernetes does before validating."""
    spec, old_spec = new.get("spec"), old.get("spec") or {}
    if not isinstance(spec, dict):
        return
    if not spec.get("clusterIP") and old_spec.get("clusterIP"):
        spec["clusterIP"] = old_spec["clusterIP"]
        if not spec.get("clusterIPs"):
            spec["clusterIPs"] = old_spec.get("clusterIPs") or [old_spec["clusterIP"]]
    ports, old_ports = spec.get("ports"), old_spec.get("ports") or []
    if not isinstance(ports, list):
        return
    by_port = {p.get("port"): p.get("nodePort") for p in old_ports if isinstance(p, dict)}
    for p in ports:
        if isinstance(p, dict) and not p.get("nodePort") and by_port.get(p.get("port")) \
                and spec.get("type") in ("NodePort", "LoadBalancer"):
            p["nodePort"] = by_port[p.get("port")]


def _check_ip(ip: str, field: str, name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        raise errors.invalid("Service", name, [errors.invalid_value(field, ip, "must be a valid IP address")])


def assign(svc: dict[str, Any], used_ips: set[str], used_ports: set[str],
           old: dict[str, Any] | None = None) -> None:
    """Fill spec.clusterIP(s) and nodePorts, choosing free values; raise Invalid
    when a requested value is outside the range or already taken."""
    spec = svc.setdefault("spec", {})
    name = (svc.get("metadata") or {}).get("name", "")
    old_spec = (old or {}).get("spec") or {}
    if _wants_cluster_ip(svc):
        ip = spec.get("clusterIP") or old_spec.get("clusterIP") or ""
        if ip and ip != old_spec.get("clusterIP"):
            addr = _check_ip(ip, "spec.clusterIPs", name)
            if addr not in SERVICE_CIDR:
                raise errors.invalid("Service", name, [errors.invalid_value(
                    "spec.clusterIPs", [ip],
                    f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. "
                    f"The range of valid IPs is {SERVICE_CIDR}")])
            if ip in used_ips:
                raise errors.invalid("Service", name, [errors.invalid_value(
                    "spec.clusterIPs", [ip], f"failed to allocate IP {ip}: provided IP is already allocated")])
        if not ip:
            ip = _free_ip(used_ips)
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
    elif spec.get("clusterIP") == "None":
        spec["clusterIPs"] = ["None"]
    if _wants_node_ports(svc):
        old_ports = {p.get("port"): p.get("nodePort") for p in old_spec.get("ports") or []
                     if isinstance(p, dict)}
        taken = set(used_ports)
        for i, p in enumerate(spec.get("ports") or []):
            if not isinstance(p, dict):
                continue
            want = p.get("nodePort") or old_ports.get(p.get("port"))
            if want and want != old_ports.get(p.get("port")):
                if not isinstance(want, int) or want not in NODE_PORTS:
                    raise errors.invalid("Service", name, [errors.invalid_value(
                        f"spec.ports[{i}].nodePort", want,
                        f"provided port is not in the valid range. The range of valid ports is "
                        f"{NODE_PORTS.start}-{NODE_PORTS.stop - 1}")])
                if str(want) in taken:
                    raise errors.invalid("Service", name, [errors.invalid_value(
                        f"spec.ports[{i}].nodePort", want, "provided port is already allocated")])
            if not want:
                want = _free_port(taken)
            taken.add(str(want))
            p["nodePort"] = want
    else:
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.pop("nodePort", None)


def _free_ip(used: set[str]) -> str:
    first = int(SERVICE_CIDR.network_address) + 2  # .1 is kept for the kubernetes Service
    last = int(SERVICE_CIDR.broadcast_address) - 1
    for _ in range(64):
        ip = str(ipaddress.ip_address(random.randint(first, last)))
        if ip not in used:
            return ip
    for n in range(first, last + 1):
        ip = str(ipaddress.ip_address(n))
        if ip not in used:
            return ip
    raise errors.ApiError(500, "InternalError", "Internal error occurred: range is full")


def _free_port(used: set[str]) -> int:
    for _ in range(64):
        port = random.choice(NODE_PORTS)
        if str(port) not in used:
            return port
    for port in NODE_PORTS:
        if str(port) not in used:
            return port
    raise errors.ApiError(500, "InternalError", "Internal error occurred: node port range is full")
