"""What the proxy needs to know of Services and EndpointSlices, as plain values.

A Service becomes one ServicePort per port; EndpointSlices (grouped by their
`kubernetes.io/service-name` label) become the endpoints of each port, matched by port name.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_SECONDS = 10800  # Kubernetes' default sessionAffinityConfig.clientIP.timeoutSeconds
# The one default of "serve terminating endpoints when none is ready" (the command line's
# --terminating-fallback, rules.Config and usable() all read it). Off: a deleted pod must stop
# getting new connections before it gets SIGTERM (DESIGN.md step 11).
USE_TERMINATING_DEFAULT = False


@dataclass(frozen=True)
class ServicePort:
    namespace: str
    name: str
    port_name: str
    protocol: str  # tcp | udp | sctp
    cluster_ip: str
    port: int
    node_port: int = 0
    affinity_seconds: int = 0  # 0: no ClientIP session affinity

    @property
    def service(self) -> tuple[str, str]:
        return self.namespace, self.name

    @property
    def key(self) -> str:
        """How kube-proxy names a service port: ns/name:port, or ns/name for an unnamed port."""
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port_name}" if self.port_name else base


@dataclass(frozen=True, order=True)
class Endpoint:
    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"


def service_ports(svc: dict[str, Any]) -> list[ServicePort]:
    """The proxied ports of a Service; none for headless and ExternalName Services."""
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    ip = spec.get("clusterIP") or ""
    if spec.get("type") == "ExternalName" or ip in ("", "None") or ":" in ip:
        return []  # IPv6 is out of scope: the rules are iptables (IPv4) only
    affinity = 0
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        affinity = int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_SECONDS)
    node_ports = spec.get("type") in ("NodePort", "LoadBalancer")
    out = []
    for p in spec.get("ports") or []:
        out.append(ServicePort(
            namespace=meta.get("namespace") or "default", name=meta.get("name") or "",
            port_name=p.get("name") or "", protocol=(p.get("protocol") or "TCP").lower(),
            cluster_ip=ip, port=int(p["port"]),
            node_port=int(p.get("nodePort") or 0) if node_ports else 0,
            affinity_seconds=affinity))
    return out


def slice_service(sl: dict[str, Any]) -> tuple[str, str] | None:
    meta = sl.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not name:
        return None
    return meta.get("namespace") or "default", name


def slice_endpoints(slices: Iterable[dict[str, Any]]) -> dict[tuple[str, str], list[Endpoint]]:
    """Endpoints per (port name, protocol) from the slices of one Service, deduplicated."""
    out: dict[tuple[str, str], dict[str, Endpoint]] = {}
    for sl in slices:
        if (sl.get("addressType") or "IPv4") != "IPv4":
            continue
        for p in sl.get("ports") or []:
            if p.get("port") is None:
                continue
            key = (p.get("name") or "", (p.get("protocol") or "TCP").lower())
            bucket = out.setdefault(key, {})
            for ep in sl.get("endpoints") or []:
                cond = ep.get("conditions") or {}
                # The API says an unknown (nil) ready/serving means ready/serving.
                ready = cond.get("ready") is not False
                serving = cond.get("serving", ready) is not False
                terminating = cond.get("terminating") is True
                for addr in ep.get("addresses") or []:
                    e = Endpoint(addr, int(p["port"]), ready, serving, terminating)
                    seen = bucket.get(e.address)
                    # During a slice handover one address may appear twice; ready wins.
                    if seen is None or (e.ready and not seen.ready):
                        bucket[e.address] = e
    return {k: sorted(v.values()) for k, v in out.items()}


def usable(endpoints: Iterable[Endpoint], use_terminating: bool = USE_TERMINATING_DEFAULT) -> list[Endpoint]:
    """The endpoints traffic goes to: the ready ones; only when there are none and
    `use_terminating`, the serving terminating ones (so connections still succeed while a
    rollout drains)."""
    eps = list(endpoints)
    ready = [e for e in eps if e.ready]
    if ready or not use_terminating:
        return ready
    return [e for e in eps if e.serving and e.terminating]
