"""How pods reach the DNS servers: the `kube-dns` Service and one EndpointSlice per server.

kubeling's DNS runs as a host process on each control-plane machine (like the other
components), not as pods, so no selector can find it. The Service `kube-system/kube-dns` is
selector-less, at the tenth address of the service range (kubeadm's choice: 10.96.0.10), ports
`dns` 53/UDP and `dns-tcp` 53/TCP; each DNS server at start writes its own EndpointSlice
`kube-dns-<node>` (label `kubernetes.io/service-name: kube-dns`, managed by `kubeling-dns`, so
the endpointslice controller leaves it alone) with its address and port, and deletes it when it
stops. The proxy merges the slices of a Service, so the ClusterIP spreads queries over every
server that runs.
"""
from __future__ import annotations

import ipaddress
import logging
import re
from typing import Any

from kubeling import errors
from kubeling.client import Client
from kubeling.resources import lookup

log = logging.getLogger("kubeling.dns")

NAMESPACE = "kube-system"
SERVICE = "kube-dns"
MANAGED_BY = "kubeling-dns"


def tenth_address(service_cidr: str) -> str:
    return str(ipaddress.ip_network(service_cidr, strict=False)[10])


def service_object(cluster_ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE,
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS",
                                "kubernetes.io/cluster-service": "true"}},
        "spec": {"clusterIP": cluster_ip, "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]},
    }


def slice_name(node: str) -> str:
    return f"{SERVICE}-" + (re.sub(r"[^a-z0-9-]", "-", node.lower()).strip("-") or "server")[:50]


def slice_object(node: str, ip: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": slice_name(node), "namespace": NAMESPACE,
                     "labels": {"kubernetes.io/service-name": SERVICE,
                                "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
        "addressType": "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True, "serving": True, "terminating": False},
                       "nodeName": node}],
        "ports": [{"name": "dns", "port": port, "protocol": "UDP"},
                  {"name": "dns-tcp", "port": port, "protocol": "TCP"}],
    }


async def publish(client: Client, cluster_ip: str, node: str, ip: str, port: int) -> None:
    """Make sure the Service exists (never changed if it does) and write our slice."""
    svc_res, slice_res = lookup("services"), lookup("endpointslices")
    assert svc_res and slice_res
    try:
        await client.get(svc_res, SERVICE, NAMESPACE)
    except errors.ApiError as exc:
        if exc.code != 404:
            raise
        try:
            await client.create(svc_res, service_object(cluster_ip), NAMESPACE)
            log.info("created Service %s/%s at %s", NAMESPACE, SERVICE, cluster_ip)
        except errors.ApiError as exc2:
            # Another DNS server made it meanwhile (the apiserver, as Kubernetes', reports the
            # address taken before the name): fine if it is there now.
            if exc2.code not in (409, 422):
                raise
            await client.get(svc_res, SERVICE, NAMESPACE)
    want = slice_object(node, ip, port)
    try:
        await client.create(slice_res, want, NAMESPACE)
    except errors.ApiError as exc:
        if exc.code != 409:
            raise
        have = await client.get(slice_res, want["metadata"]["name"], NAMESPACE)
        want["metadata"]["resourceVersion"] = have["metadata"]["resourceVersion"]
        await client.update(slice_res, want)
    log.info("serving kube-dns at %s:%s (EndpointSlice %s)", ip, port, want["metadata"]["name"])


async def unpublish(client: Client, node: str) -> None:
    slice_res = lookup("endpointslices")
    assert slice_res
    try:
        await client.delete(slice_res, slice_name(node), NAMESPACE)
    except errors.ApiError as exc:
        if exc.code != 404:
            raise
