"""Node validation (ValidateNode / ValidateNodeUpdate)."""
from __future__ import annotations

from kubeling.errors import FieldError, duplicate, forbidden, not_supported, required
from kubeling.quantity import parse_quantity
from kubeling.errors import invalid_value
from kubeling.validation import formats
from kubeling.validation.fields import Checker, child, index, key
from kubeling.validation.meta import validate_object_meta, validate_object_meta_update
from kubeling.validation.pod import TAINT_EFFECTS

ADDRESS_TYPES = ["ExternalDNS", "ExternalIP", "Hostname", "InternalDNS", "InternalIP"]


def validate_node(obj: dict, old: dict | None) -> list[FieldError]:
    c = Checker()
    validate_object_meta(c, obj, False, formats.dns1123_subdomain)
    spec = c.obj(obj, "spec", "spec") or {}
    cidrs = []
    pod_cidr = c.str(spec, "podCIDR", "spec.podCIDR")
    if pod_cidr:
        c.messages("spec.podCIDR", pod_cidr, formats.cidr(pod_cidr))
    for i, cidr in enumerate(c.str_list(spec, "podCIDRs", "spec.podCIDRs")):
        c.messages(index("spec.podCIDRs", i), cidr, formats.cidr(cidr))
        cidrs.append(cidr)
    c.bool(spec, "unschedulable", "spec.unschedulable")
    c.str(spec, "providerID", "spec.providerID")
    seen: set[tuple[str, str]] = set()
    for i, p, taint in c.items(spec, "taints", "spec.taints"):
        k = c.str(taint, "key", child(p, "key"))
        if not k:
            if taint.get("key") in (None, ""):
                c.add(required(child(p, "key"), ""))
        else:
            c.messages(child(p, "key"), k, formats.qualified_name(k))
        v = c.str(taint, "value", child(p, "value"))
        if v:
            c.messages(child(p, "value"), v, formats.label_value(v))
        effect = c.str(taint, "effect", child(p, "effect"))
        if not effect:
            if taint.get("effect") in (None, ""):
                c.add(required(child(p, "effect"), ""))
        elif effect not in TAINT_EFFECTS:
            c.add(not_supported(child(p, "effect"), effect, TAINT_EFFECTS))
        if k and effect:
            if (k, effect) in seen:
                c.add(duplicate(p, {"effect": effect, "key": k}))
            seen.add((k, effect))
        c.str(taint, "timeAdded", child(p, "timeAdded"))
    status = c.obj(obj, "status", "status") or {}
    for part in ("capacity", "allocatable"):
        for name, raw in (c.obj(status, part, f"status.{part}") or {}).items():
            try:
                q = parse_quantity(raw)
            except ValueError as exc:
                c.add(invalid_value(key(f"status.{part}", name), raw, str(exc)))
                continue
            if q < 0:
                c.add(invalid_value(key(f"status.{part}", name), raw, "must be greater than or equal to 0"))
    for i, p, addr in c.items(status, "addresses", "status.addresses"):
        t = c.str(addr, "type", child(p, "type"))
        if t is not None and t not in ADDRESS_TYPES:
            c.add(not_supported(child(p, "type"), t, ADDRESS_TYPES))
        c.str(addr, "address", child(p, "address"))
    for i, p, cond in c.items(status, "conditions", "status.conditions"):
        c.str(cond, "type", child(p, "type"))
        c.str(cond, "status", child(p, "status"))
    c.obj(status, "nodeInfo", "status.nodeInfo")
    c.obj(status, "daemonEndpoints", "status.daemonEndpoints")
    c.list(status, "images", "status.images")
    if isinstance(old, dict):
        validate_object_meta_update(c, obj, old)
        old_spec = old.get("spec") if isinstance(old.get("spec"), dict) else {}
        for field in ("podCIDR", "podCIDRs"):
            was = old_spec.get(field)
            if was not in (None, "", []) and spec.get(field) != was:
                c.add(forbidden(f"spec.{field}",
                                'node updates may not change podCIDR except from "" to valid'))
    return c.errors
