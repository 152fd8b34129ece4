"""discovery.k8s.io/v1 EndpointSlice validation (ValidateEndpointSlice{Create,Update})."""
from __future__ import annotations

from kubeling.errors import FieldError, duplicate, invalid_value, not_supported, required
from kubeling.validation import formats
from kubeling.validation.fields import Checker, child, index
from kubeling.validation.meta import (FIELD_IMMUTABLE, validate_object_meta,
                                      validate_object_meta_update)
from kubeling.validation.pod import PROTOCOLS

ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"]
MAX_ENDPOINTS = 1000
MAX_PORTS = 100
MAX_ADDRESSES = 100
_ADDRESS_CHECKS = {"IPv4": formats.ipv4, "IPv6": formats.ipv6, "FQDN": formats.fully_qualified_domain_name}


def too_many(path: str, actual: int, limit: int) -> FieldError:
    return FieldError(path, "FieldValueTooMany", f"Too many: {actual}: must have at most {limit} items")


def validate_endpointslice(obj: dict, old: dict | None) -> list[FieldError]:
    c = Checker()
    validate_object_meta(c, obj, True, formats.dns1123_subdomain)
    atype = c.str(obj, "addressType", "addressType")
    if not atype:
        if obj.get("addressType") in (None, ""):
            c.add(required("addressType", ""))
    elif atype not in ADDRESS_TYPES:
        c.add(not_supported("addressType", atype, ADDRESS_TYPES))
    check = _ADDRESS_CHECKS.get(atype or "")
    endpoints = c.items(obj, "endpoints", "endpoints")
    if len(endpoints) > MAX_ENDPOINTS:
        c.add(too_many("endpoints", len(endpoints), MAX_ENDPOINTS))
    for i, ep, endpoint in endpoints:
        addrs = c.str_list(endpoint, "addresses", child(ep, "addresses"))
        if not addrs and endpoint.get("addresses") in (None, []):
            c.add(required(child(ep, "addresses"), "must contain at least 1 address"))
        elif len(addrs) > MAX_ADDRESSES:
            c.add(too_many(child(ep, "addresses"), len(addrs), MAX_ADDRESSES))
        for j, a in enumerate(addrs):
            if check is not None:
                c.messages(index(child(ep, "addresses"), j), a, check(a))
        cond = c.obj(endpoint, "conditions", child(ep, "conditions")) or {}
        for field in ("ready", "serving", "terminating"):
            c.bool(cond, field, child(child(ep, "conditions"), field))
        host = c.str(endpoint, "hostname", child(ep, "hostname"))
        if host:
            c.messages(child(ep, "hostname"), host, formats.dns1123_label(host))
        node = c.str(endpoint, "nodeName", child(ep, "nodeName"))
        if node:
            c.messages(child(ep, "nodeName"), node, formats.dns1123_subdomain(node))
        c.str(endpoint, "zone", child(ep, "zone"))
        c.obj(endpoint, "targetRef", child(ep, "targetRef"))
        c.obj(endpoint, "hints", child(ep, "hints"))
        c.obj(endpoint, "deprecatedTopology", child(ep, "deprecatedTopology"))
    ports = c.items(obj, "ports", "ports")
    if len(ports) > MAX_PORTS:
        c.add(too_many("ports", len(ports), MAX_PORTS))
    names: set[str] = set()
    for i, pp, port in ports:
        name = c.str(port, "name", child(pp, "name"))
        if name is None and port.get("name") is None:
            name = ""
        if name is not None:
            if name:
                c.messages(child(pp, "name"), name, formats.dns1123_label(name))
            if name in names:
                c.add(duplicate(child(pp, "name"), name))
            names.add(name)
        proto = c.str(port, "protocol", child(pp, "protocol"))
        if proto is not None and proto not in PROTOCOLS:
            c.add(not_supported(child(pp, "protocol"), proto, PROTOCOLS))
        num = c.int(port, "port", child(pp, "port"))
        if num is not None:
            c.messages(child(pp, "port"), num, formats.port_num(num))
        c.str(port, "appProtocol", child(pp, "appProtocol"))
    if isinstance(old, dict):
        validate_object_meta_update(c, obj, old)
        if old.get("addressType") != obj.get("addressType"):
            c.add(invalid_value("addressType", obj.get("addressType"), FIELD_IMMUTABLE))
    return c.errors
