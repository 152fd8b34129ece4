"""Which pods back a Service, and how: readiness, the pod IP of the service's IP
family, and each service port resolved against the pod's container ports.

Pure functions over plain dicts, shared by the Endpoints and EndpointSlice
controllers (Kubernetes' endpointslice util and podutil.FindPort).
"""
from __future__ import annotations

import ipaddress
from typing import Any

from kubeling.selectors import label_selector_from_set

HEADLESS_LABEL = "service.kubernetes.io/headless"


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def is_pod_ready(pod: dict[str, Any]) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def is_terminating(pod: dict[str, Any]) -> bool:
    return bool(_meta(pod).get("deletionTimestamp"))


def is_terminal(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_ips(pod: dict[str, Any]) -> list[str]:
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or [] if isinstance(p, dict) and p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return ips


def should_pod_be_in_endpoints(pod: dict[str, Any], include_terminating: bool) -> bool:
    """A finished pod never serves; a pod without an IP cannot; a terminating
    one only when the caller publishes terminating endpoints."""
    if is_terminal(pod) or not pod_ips(pod):
        return False
    return include_terminating or not is_terminating(pod)


def ip_family(ip: str) -> str:
    try:
        return "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
    except ValueError:
        return "IPv4"


def service_families(svc: dict[str, Any]) -> list[str]:
    spec = svc.get("spec") or {}
    families = [f for f in spec.get("ipFamilies") or [] if f in ("IPv4", "IPv6")]
    if families:
        return families
    cluster_ip = spec.get("clusterIP")
    if cluster_ip and cluster_ip != "None":
        return [ip_family(cluster_ip)]
    return ["IPv4"]


def pod_ip_for_family(pod: dict[str, Any], family: str) -> str | None:
    for ip in pod_ips(pod):
        if ip_family(ip) == family:
            return ip
    return None


def is_headless(svc: dict[str, Any]) -> bool:
    cluster_ip = (svc.get("spec") or {}).get("clusterIP")
    return not cluster_ip or cluster_ip == "None"


def has_selector(svc: dict[str, Any]) -> bool:
    """Whether the controllers manage this Service's endpoints: it has a
    selector and is not an ExternalName (those get none, issue 105986)."""
    spec = svc.get("spec") or {}
    return spec.get("selector") is not None and spec.get("type") != "ExternalName"


def selects(svc: dict[str, Any], pod: dict[str, Any]) -> bool:
    """An empty selector ({}) selects every pod of the namespace, as in Kubernetes."""
    if _meta(svc).get("namespace") != _meta(pod).get("namespace") or not has_selector(svc):
        return False
    return label_selector_from_set(svc["spec"]["selector"]).matches(_meta(pod).get("labels") or {})


def find_port(pod: dict[str, Any], service_port: dict[str, Any]) -> int | None:
    """The pod's port for a service port: a numeric targetPort as is, a named
    one through the container port of that name and protocol; None when the
    pod has no such port (the pod is then left out for this port)."""
    target = service_port.get("targetPort")
    if target in (None, "", 0):
        target = service_port.get("port")
    if isinstance(target, int):
        return target
    protocol = service_port.get("protocol") or "TCP"
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                number = port.get("containerPort")
                return number if isinstance(number, int) else None
    return None


def endpoint_ports(svc: dict[str, Any], pod: dict[str, Any]) -> list[dict[str, Any]]:
    """EndpointPorts of this pod, in service port order, skipping ports the
    pod cannot serve."""
    out = []
    for sp in (svc.get("spec") or {}).get("ports") or []:
        number = find_port(pod, sp)
        if number is None:
            continue
        port: dict[str, Any] = {"name": sp.get("name") or "", "port": number,
                                "protocol": sp.get("protocol") or "TCP"}
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        out.append(port)
    return out


def target_ref(pod: dict[str, Any]) -> dict[str, Any]:
    meta = _meta(pod)
    return {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta.get("name"),
            "uid": meta.get("uid")}


def hostname_for(svc: dict[str, Any], pod: dict[str, Any]) -> str | None:
    """A pod's own hostname is published when its subdomain names the service."""
    spec = pod.get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain") == _meta(svc).get("name") \
            and _meta(svc).get("namespace") == _meta(pod).get("namespace"):
        return spec["hostname"]
    return None


def endpoint_view(pod: dict[str, Any]) -> tuple[Any, ...]:
    """Everything about a pod that can change an endpoint; a pod update that
    leaves this equal (and the labels) needs no sync."""
    spec = pod.get("spec") or {}
    ports = tuple((c.get("name"), tuple((p.get("name"), p.get("containerPort"), p.get("protocol"))
                                        for p in c.get("ports") or []))
                  for c in spec.get("containers") or [])
    return (tuple(pod_ips(pod)), is_pod_ready(pod), is_terminating(pod), is_terminal(pod),
            spec.get("nodeName"), spec.get("hostname"), spec.get("subdomain"), ports)


def service_labels(svc: dict[str, Any], extra: dict[str, str] | None = None) -> dict[str, str]:
    """Labels of the service's endpoint objects: the service's own, plus the
    headless marker for headless services."""
    labels = dict(_meta(svc).get("labels") or {})
    labels.pop(HEADLESS_LABEL, None)
    labels.update(extra or {})
    if is_headless(svc):
        labels[HEADLESS_LABEL] = ""
    return labels
