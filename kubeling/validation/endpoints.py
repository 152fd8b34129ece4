"""core/v1 Endpoints validation (ValidateEndpoints)."""
from __future__ import annotations

from kubeling.errors import FieldError, duplicate, not_supported, required
from kubeling.validation import formats
from kubeling.validation.fields import Checker, child
from kubeling.validation.meta import validate_object_meta, validate_object_meta_update
from kubeling.validation.pod import PROTOCOLS


def validate_endpoints(obj: dict, old: dict | None) -> list[FieldError]:
    c = Checker()
    validate_object_meta(c, obj, True, formats.dns1123_subdomain)
    for i, sp, subset in c.items(obj, "subsets", "subsets"):
        for part in ("addresses", "notReadyAddresses"):
            for j, ap, addr in c.items(subset, part, child(sp, part)):
                validate_endpoint_address(c, addr, ap)
        ports = subset.get("ports") if isinstance(subset.get("ports"), list) else []
        names: set[str] = set()
        for j, pp, port in c.items(subset, "ports", child(sp, "ports")):
            validate_endpoint_port(c, port, pp, len(ports) > 1, names)
    if isinstance(old, dict):
        validate_object_meta_update(c, obj, old)
    return c.errors


def validate_endpoint_address(c: Checker, addr: dict, path: str) -> None:
    ip = c.str(addr, "ip", child(path, "ip"))
    if ip is None:
        if addr.get("ip") is None:
            c.add(required(child(path, "ip"), ""))
    elif c.messages(child(path, "ip"), ip, formats.ip(ip)):
        c.messages(child(path, "ip"), ip, formats.non_special_ip(ip))
    hostname = c.str(addr, "hostname", child(path, "hostname"))
    if hostname:
        c.messages(child(path, "hostname"), hostname, formats.dns1123_label(hostname))
    node = c.str(addr, "nodeName", child(path, "nodeName"))
    if node:
        c.messages(child(path, "nodeName"), node, formats.dns1123_subdomain(node))
    c.obj(addr, "targetRef", child(path, "targetRef"))


def validate_endpoint_port(c: Checker, port: dict, path: str, require_name: bool,
                           names: set[str]) -> None:
    name = c.str(port, "name", child(path, "name"))
    if not name:
        if require_name and port.get("name") in (None, ""):
            c.add(required(child(path, "name"), ""))
    elif c.messages(child(path, "name"), name, formats.dns1123_label(name)):
        if name in names:
            c.add(duplicate(child(path, "name"), name))
        names.add(name)
    num = c.int(port, "port", child(path, "port"))
    if num is None:
        if port.get("port") is None:
            c.add(required(child(path, "port"), ""))
    else:
        c.messages(child(path, "port"), num, formats.port_num(num))
    proto = c.str(port, "protocol", child(path, "protocol"))
    if not proto:
        if port.get("protocol") in (None, ""):
            c.add(required(child(path, "protocol"), ""))
    elif proto not in PROTOCOLS:
        c.add(not_supported(child(path, "protocol"), proto, PROTOCOLS))
    c.str(port, "appProtocol", child(path, "appProtocol"))
