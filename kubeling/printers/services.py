"""Rows for Services, Endpoints and EndpointSlices."""
from __future__ import annotations

from datetime import datetime

from kubeling import timefmt
from kubeling.printers.access import format_labels, get, integer, items, strings, text
from kubeling.printers.columns import age_column, column, name_column

SERVICE_COLUMNS = [
    name_column(),
    column("Type", "type determines how the Service is exposed."),
    column("Cluster-IP", "clusterIP is the IP address of the service."),
    column("External-IP", "externalIPs is a list of IP addresses for which nodes in the "
                          "cluster will also accept traffic for this service."),
    column("Port(s)", "The list of ports that are exposed by this service."),
    age_column(),
    column("Selector", "Route service traffic to pods with label keys and values "
                       "matching this selector.", priority=1),
]

ENDPOINTS_COLUMNS = [
    name_column(),
    column("Endpoints", "The set of all endpoints is the union of all subsets."),
    age_column(),
]

ENDPOINTSLICE_COLUMNS = [
    name_column(),
    column("AddressType", "addressType specifies the type of address carried by this "
                          "EndpointSlice."),
    column("Ports", "ports specifies the list of network ports exposed by each endpoint "
                    "in this slice."),
    column("Endpoints", "endpoints is a list of unique endpoints in this slice."),
    age_column(),
]

# Load balancer addresses are not clipped: the server always prints the wide form.
_MAX_LISTED = 3


def _load_balancer_addresses(svc: dict) -> list[str]:
    seen: list[str] = []
    for ingress in items(svc, "status", "loadBalancer", "ingress"):
        address = text(ingress, "ip") or text(ingress, "hostname")
        if address and address not in seen:
            seen.append(address)
    return seen


def external_ip(svc: dict) -> str:
    svc_type = text(svc, "spec", "type")
    external = strings(svc, "spec", "externalIPs")
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if svc_type == "LoadBalancer":
        addresses = _load_balancer_addresses(svc) + external
        return ",".join(addresses) if addresses else "<pending>"
    if svc_type == "ExternalName":
        return text(svc, "spec", "externalName")
    return "<unknown>"


def port_string(svc: dict) -> str:
    pieces = []
    for port in items(svc, "spec", "ports"):
        # The apiserver defaults protocol to TCP; show that for undefaulted input too.
        protocol = text(port, "protocol") or "TCP"
        node_port = integer(port, "nodePort")
        if node_port > 0:
            pieces.append(f"{integer(port, 'port')}:{node_port}/{protocol}")
        else:
            pieces.append(f"{integer(port, 'port')}/{protocol}")
    return ",".join(pieces)


def service_row(svc: dict, now: datetime) -> dict:
    cluster_ips = strings(svc, "spec", "clusterIPs")
    cluster_ip = (cluster_ips[0] if cluster_ips else text(svc, "spec", "clusterIP")) or "<none>"
    return {"cells": [
        text(svc, "metadata", "name"),
        text(svc, "spec", "type"),
        cluster_ip,
        external_ip(svc),
        port_string(svc) or "<none>",
        timefmt.since(get(svc, "metadata", "creationTimestamp"), now),
        format_labels(get(svc, "spec", "selector")),
    ]}


def _host_port(ip: str, port: int) -> str:
    # net.JoinHostPort brackets IPv6 literals.
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def format_endpoints(endpoints: dict) -> str:
    subsets = items(endpoints, "subsets")
    if not subsets:
        return "<none>"
    listed: list[str] = []
    count = 0
    more = False
    for subset in subsets:
        addresses = items(subset, "addresses")
        ports = items(subset, "ports")
        if not ports:
            # Headless services may have no ports: list bare IPs.
            count += len(addresses)
            for address in addresses:
                if len(listed) == _MAX_LISTED:
                    more = True
                    break
                listed.append(text(address, "ip"))
            continue
        for port in ports:
            count += len(addresses)
            for address in addresses:
                if len(listed) == _MAX_LISTED:
                    more = True
                    break
                listed.append(_host_port(text(address, "ip"), integer(port, "port")))
    joined = ",".join(listed)
    if more:
        return f"{joined} + {count - _MAX_LISTED} more..."
    return joined


def endpoints_row(endpoints: dict, now: datetime) -> dict:
    return {"cells": [
        text(endpoints, "metadata", "name"),
        format_endpoints(endpoints),
        timefmt.since(get(endpoints, "metadata", "creationTimestamp"), now),
    ]}


def _list_with_more(listed: list[str], more: bool, count: int) -> str:
    joined = ",".join(listed)
    if more:
        return f"{joined} + {count - _MAX_LISTED} more..."
    return joined or "<unset>"


def _slice_ports(eps: dict) -> str:
    listed: list[str] = []
    more = False
    ports = items(eps, "ports")
    for port in ports:
        if len(listed) < _MAX_LISTED:
            number = get(port, "port")
            if isinstance(number, int) and not isinstance(number, bool):
                listed.append(str(number))
            elif isinstance(get(port, "name"), str):
                listed.append(text(port, "name"))
            else:
                listed.append("*")
        else:
            more = True
    return _list_with_more(listed, more, len(ports))


def _slice_endpoints(eps: dict) -> str:
    listed: list[str] = []
    more = False
    count = 0
    for endpoint in items(eps, "endpoints"):
        for address in strings(endpoint, "addresses"):
            if len(listed) < _MAX_LISTED:
                listed.append(address)
            else:
                more = True
            count += 1
    return _list_with_more(listed, more, count)


def endpointslice_row(eps: dict, now: datetime) -> dict:
    return {"cells": [
        text(eps, "metadata", "name"),
        text(eps, "addressType"),
        _slice_ports(eps),
        _slice_endpoints(eps),
        timefmt.since(get(eps, "metadata", "creationTimestamp"), now),
    ]}
