"""Service validation, following ValidateService / ValidateServiceUpdate."""
from __future__ import annotations

import ipaddress

from kubeling.errors import FieldError, duplicate, forbidden, invalid_value, not_supported, required
from kubeling.validation import formats
from kubeling.validation.fields import Checker, child, index
from kubeling.validation.meta import (FIELD_IMMUTABLE, validate_labels, validate_object_meta,
                                      validate_object_meta_update)
from kubeling.validation.pod import PROTOCOLS

SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
SESSION_AFFINITIES = ["ClientIP", "None"]
TRAFFIC_POLICIES = ["Cluster", "Local"]
IP_FAMILY_POLICIES = ["PreferDualStack", "RequireDualStack", "SingleStack"]
IP_FAMILIES = ["IPv4", "IPv6"]
NODE_PORT_RANGE = (30000, 32767)
MAX_CLIENT_IP_AFFINITY_SECONDS = 86400


def validate_service(obj: dict, old: dict | None) -> list[FieldError]:
    c = Checker()
    validate_object_meta(c, obj, True, formats.dns1035_label)
    spec = c.obj(obj, "spec", "spec")
    if spec is None:
        spec = {}
    validate_service_spec(c, spec)
    c.obj(obj, "status", "status")
    if isinstance(old, dict):
        validate_object_meta_update(c, obj, old)
        old_spec = old.get("spec") if isinstance(old.get("spec"), dict) else {}
        validate_service_spec_update(c, spec, old_spec)
    return c.errors


def validate_service_spec(c: Checker, spec: dict) -> None:
    stype = c.str(spec, "type", "spec.type")
    if not stype:
        if spec.get("type") in (None, ""):
            c.add(required("spec.type", ""))
    elif stype not in SERVICE_TYPES:
        c.add(not_supported("spec.type", stype, SERVICE_TYPES))
        stype = None
    cluster_ip = c.str(spec, "clusterIP", "spec.clusterIP")
    cluster_ips = c.str_list(spec, "clusterIPs", "spec.clusterIPs")
    headless = cluster_ip == "None" or (cluster_ips[:1] == ["None"])

    if stype == "ExternalName":
        if cluster_ip or cluster_ips:
            c.add(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        ext = c.str(spec, "externalName", "spec.externalName")
        if not ext:
            if spec.get("externalName") in (None, ""):
                c.add(required("spec.externalName", ""))
        else:
            c.messages("spec.externalName", ext, formats.dns1123_subdomain(ext.rstrip(".")))
    else:
        _validate_cluster_ips(c, spec, stype, cluster_ip, cluster_ips)

    ports = c.items(spec, "ports", "spec.ports")
    if spec.get("ports") in (None, []) and not headless and stype != "ExternalName":
        c.add(required("spec.ports", ""))
    require_name = len(spec.get("ports") or []) > 1 if isinstance(spec.get("ports"), list) else False
    names: set[str] = set()
    seen: set[tuple[int, str]] = set()
    node_ports: set[tuple[int, str]] = set()
    for i, p, port in ports:
        name = c.str(port, "name", child(p, "name"))
        if not name:
            if require_name and port.get("name") in (None, ""):
                c.add(required(child(p, "name"), ""))
        elif c.messages(child(p, "name"), name, formats.dns1123_label(name)):
            if name in names:
                c.add(duplicate(child(p, "name"), name))
            names.add(name)
        num = c.int(port, "port", child(p, "port"))
        if num is None:
            if port.get("port") is None:
                c.add(required(child(p, "port"), ""))
        else:
            c.messages(child(p, "port"), num, formats.port_num(num))
        proto = c.str(port, "protocol", child(p, "protocol"))
        if not proto:
            if port.get("protocol") in (None, ""):
                c.add(required(child(p, "protocol"), ""))
        elif proto not in PROTOCOLS:
            c.add(not_supported(child(p, "protocol"), proto, PROTOCOLS))
        target = c.int_or_str(port, "targetPort", child(p, "targetPort"))
        if isinstance(target, int):
            if target != 0:  # 0 means "same as port", as defaulting fills in
                c.messages(child(p, "targetPort"), target, formats.port_num(target))
        elif isinstance(target, str) and target:
            c.messages(child(p, "targetPort"), target, formats.port_name(target))
        if num is not None and proto:
            if (num, proto) in seen:
                c.add(duplicate(p, {"port": num, "protocol": proto}))
            seen.add((num, proto))
        node_port = c.int(port, "nodePort", child(p, "nodePort"))
        if node_port:
            if stype in ("ClusterIP", "ExternalName"):
                c.add(forbidden(child(p, "nodePort"), f"may not be used when `type` is '{stype}'"))
            elif not NODE_PORT_RANGE[0] <= node_port <= NODE_PORT_RANGE[1]:
                c.add(invalid_value(child(p, "nodePort"), node_port,
                                    "provided port is not in the valid range. The range of valid "
                                    f"ports is {NODE_PORT_RANGE[0]}-{NODE_PORT_RANGE[1]}"))
            elif proto and (node_port, proto) in node_ports:
                c.add(duplicate(child(p, "nodePort"), node_port))
            if proto:
                node_ports.add((node_port, proto))
        c.str(port, "appProtocol", child(p, "appProtocol"))

    affinity = c.str(spec, "sessionAffinity", "spec.sessionAffinity")
    if not affinity:
        if spec.get("sessionAffinity") in (None, ""):
            c.add(required("spec.sessionAffinity", ""))
    elif affinity not in SESSION_AFFINITIES:
        c.add(not_supported("spec.sessionAffinity", affinity, SESSION_AFFINITIES))
    config = c.obj(spec, "sessionAffinityConfig", "spec.sessionAffinityConfig")
    if affinity == "ClientIP":
        client = c.obj(config, "clientIP", "spec.sessionAffinityConfig.clientIP") if config else None
        timeout = c.int(client, "timeoutSeconds", "spec.sessionAffinityConfig.clientIP.timeoutSeconds") \
            if client else None
        if timeout is None:
            if not client or client.get("timeoutSeconds") is None:
                c.add(required("spec.sessionAffinityConfig.clientIP.timeoutSeconds", ""))
        elif not 0 < timeout <= MAX_CLIENT_IP_AFFINITY_SECONDS:
            c.add(invalid_value("spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout,
                                f"must be greater than 0 and less than {MAX_CLIENT_IP_AFFINITY_SECONDS}"))
    elif affinity == "None" and config:
        c.add(forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None"))

    validate_labels(c, spec.get("selector"), "spec.selector")
    for field, allowed_when in (("internalTrafficPolicy", None), ("externalTrafficPolicy", ("NodePort", "LoadBalancer"))):
        v = c.str(spec, field, f"spec.{field}")
        if allowed_when is None:
            if stype == "ExternalName":
                continue
            if not v:
                if spec.get(field) in (None, ""):
                    c.add(required(f"spec.{field}", ""))
            elif v not in TRAFFIC_POLICIES:
                c.add(not_supported(f"spec.{field}", v, TRAFFIC_POLICIES))
        elif v:
            if stype not in allowed_when:
                c.add(invalid_value(f"spec.{field}", v,
                                    "may only be set when `type` is 'NodePort' or 'LoadBalancer'"))
            elif v not in TRAFFIC_POLICIES:
                c.add(not_supported(f"spec.{field}", v, TRAFFIC_POLICIES))
    for i, ip in enumerate(c.str_list(spec, "externalIPs", "spec.externalIPs")):
        c.messages(index("spec.externalIPs", i), ip, formats.ip(ip))
    c.bool(spec, "publishNotReadyAddresses", "spec.publishNotReadyAddresses")
    c.bool(spec, "allocateLoadBalancerNodePorts", "spec.allocateLoadBalancerNodePorts")
    policy = c.str(spec, "ipFamilyPolicy", "spec.ipFamilyPolicy")
    if policy and policy not in IP_FAMILY_POLICIES:
        c.add(not_supported("spec.ipFamilyPolicy", policy, IP_FAMILY_POLICIES))
    families = c.str_list(spec, "ipFamilies", "spec.ipFamilies")
    for i, fam in enumerate(families):
        if fam not in IP_FAMILIES:
            c.add(not_supported(index("spec.ipFamilies", i), fam, IP_FAMILIES))
        elif fam in families[:i]:
            c.add(duplicate(index("spec.ipFamilies", i), fam))
    if policy == "SingleStack" and len(families) > 1:
        c.add(invalid_value("spec.ipFamilies", families,
                            "when multiple IP families are specified, IP family policy must be "
                            "RequireDualStack or PreferDualStack"))


def _validate_cluster_ips(c: Checker, spec: dict, stype: str | None, cluster_ip: str | None,
                          cluster_ips: list[str]) -> None:
    if cluster_ip and cluster_ips and cluster_ips[0] != cluster_ip:
        c.add(invalid_value("spec.clusterIPs", cluster_ips, "must match `clusterIP` when the first value is set"))
        return
    # Report against clusterIP when that is what the client sent, as older Kubernetes did.
    values = cluster_ips or ([cluster_ip] if cluster_ip else [])
    base = "spec.clusterIPs" if cluster_ips else None
    families = [f for f in (spec.get("ipFamilies") or []) if isinstance(f, str)] \
        if isinstance(spec.get("ipFamilies"), list) else []
    for i, ip in enumerate(values):
        path = index(base, i) if base else "spec.clusterIP"
        if ip == "None":
            if i > 0:
                c.add(invalid_value(path, ip, "'None' must be the first and only value"))
            elif stype in ("NodePort", "LoadBalancer"):
                c.add(invalid_value(path, ip, f"may not be set to 'None' for {stype} services"))
            continue
        if not c.messages(path, ip, formats.ip(ip)):
            continue
        addr = ipaddress.ip_address(ip)
        want = families[i] if i < len(families) else ("IPv4" if i == 0 else None)
        got = "IPv4" if addr.version == 4 else "IPv6"
        if want in IP_FAMILIES and want != got:
            c.add(invalid_value(path, ip, f"expected an {want} value as indicated by `ipFamilies[{i}]`"))


def validate_service_spec_update(c: Checker, new: dict, old: dict) -> None:
    # clusterIP may change only to or from ExternalName, where it is unset.
    if old.get("type") == "ExternalName" or new.get("type") == "ExternalName":
        return
    old_ip, new_ip = old.get("clusterIP"), new.get("clusterIP")
    if old_ip not in (None, "") and new_ip != old_ip:
        c.add(invalid_value("spec.clusterIP", new_ip if new_ip is not None else "", FIELD_IMMUTABLE))
