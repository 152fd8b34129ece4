"""What the scheduler needs from a Pod, computed once per pod version.

Filters and scores run for every (pod, node) pair, so the pod's requests, host
ports, tolerations and affinity are parsed here, not in the hot loop.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from kubeling.quantity import cpu_millis, parse_quantity, to_bytes

# Kubernetes' defaults for pods that request nothing, used only for scoring
# (pkg/scheduler/util: DefaultMilliCPURequest, DefaultMemoryRequest).
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024

# A host port as (hostIP, protocol, port); "0.0.0.0" means every address.
HostPort = tuple[str, str, int]


@dataclass(slots=True)
class Requests:
    milli_cpu: int = 0
    memory: int = 0
    scalar: dict[str, int] = field(default_factory=dict)  # ephemeral-storage, extended resources

    def add(self, other: "Requests") -> None:
        self.milli_cpu += other.milli_cpu
        self.memory += other.memory
        for k, v in other.scalar.items():
            self.scalar[k] = self.scalar.get(k, 0) + v

    def sub(self, other: "Requests") -> None:
        self.milli_cpu -= other.milli_cpu
        self.memory -= other.memory
        for k, v in other.scalar.items():
            self.scalar[k] = self.scalar.get(k, 0) - v

    def max_with(self, other: "Requests") -> None:
        self.milli_cpu = max(self.milli_cpu, other.milli_cpu)
        self.memory = max(self.memory, other.memory)
        for k, v in other.scalar.items():
            self.scalar[k] = max(self.scalar.get(k, 0), v)


@lru_cache(maxsize=4096)
def _resource_value(name: str, q: str | int | float) -> int:
    if name == "cpu":
        return cpu_millis(q)
    if name in ("memory", "ephemeral-storage") or name.startswith("hugepages-"):
        return to_bytes(q)
    return int(parse_quantity(q))


def resource_value(name: str, q: Any) -> int:
    """A resource amount as an integer: millicores for cpu, units otherwise.
    Cached: a cluster uses few distinct quantities, and Decimal parsing is slow."""
    return _resource_value(name, q)


def requests_from(resources: dict[str, Any]) -> Requests:
    r = Requests()
    for name, q in resources.items():
        try:
            v = resource_value(name, q)
        except (ValueError, ArithmeticError, TypeError):
            continue
        if name == "cpu":
            r.milli_cpu = v
        elif name == "memory":
            r.memory = v
        else:
            r.scalar[name] = v
    return r


def _container_requests(c: dict[str, Any]) -> Requests:
    res = c.get("resources") or {}
    # The API server defaults requests to limits; do the same for pods that
    # reached us some other way, so a limit-only pod is never under-counted.
    merged = dict(res.get("limits") or {})
    merged.update(res.get("requests") or {})
    return requests_from(merged)


def pod_requests(spec: dict[str, Any]) -> tuple[Requests, Requests]:
    """(requests, non-zero requests for scoring), as Kubernetes' resource helpers
    compute them: the sum over containers, at least the largest init container,
    plus the pod overhead."""
    total, nonzero = Requests(), Requests()
    for c in spec.get("containers") or []:
        r = _container_requests(c)
        total.add(r)
        nonzero.milli_cpu += r.milli_cpu or DEFAULT_MILLI_CPU
        nonzero.memory += r.memory or DEFAULT_MEMORY
    for c in spec.get("initContainers") or []:
        r = _container_requests(c)
        total.max_with(r)
        nonzero.milli_cpu = max(nonzero.milli_cpu, r.milli_cpu or DEFAULT_MILLI_CPU)
        nonzero.memory = max(nonzero.memory, r.memory or DEFAULT_MEMORY)
    overhead = spec.get("overhead")
    if overhead:
        o = requests_from(overhead)
        total.add(o)
        nonzero.milli_cpu += o.milli_cpu
        nonzero.memory += o.memory
    return total, nonzero


def host_ports(spec: dict[str, Any]) -> list[HostPort]:
    ports: list[HostPort] = []
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for p in c.get("ports") or []:
            hp = p.get("hostPort")
            if isinstance(hp, int) and hp > 0:
                ports.append((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", hp))
    return ports


def spread_key(pod: dict[str, Any]) -> tuple[str, ...] | None:
    """The group a pod is spread with: its controller's pods, or else the pods
    of its namespace carrying the same labels. None: the pod is not spread."""
    meta = pod.get("metadata") or {}
    ns = meta.get("namespace") or ""
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller") and ref.get("uid"):
            return (ns, "controller", ref["uid"])
    labels = meta.get("labels")
    if labels:
        return (ns, "labels", *sorted(f"{k}={v}" for k, v in labels.items()))
    return None


@dataclass(slots=True)
class PodInfo:
    pod: dict[str, Any]
    uid: str
    namespace: str
    name: str
    requests: Requests
    nonzero: Requests
    host_ports: list[HostPort]
    tolerations: list[dict[str, Any]]
    node_selector: dict[str, str]
    required_affinity: list[dict[str, Any]] | None  # nodeSelectorTerms, ORed
    node_name: str
    spread_key: tuple[str, ...] | None
    priority: int
    # What static filters read (see framework.FilterPlugin), as one hashable value.
    static_key: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def pod_info(pod: dict[str, Any]) -> PodInfo:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    total, nonzero = pod_requests(spec)
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {})
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    terms = None if required is None else list(required.get("nodeSelectorTerms") or [])
    priority = spec.get("priority")
    tolerations = list(spec.get("tolerations") or [])
    node_selector = dict(spec.get("nodeSelector") or {})
    node_name = spec.get("nodeName") or ""
    return PodInfo(pod=pod, uid=meta.get("uid") or "", namespace=meta.get("namespace") or "",
                   name=meta.get("name") or "", requests=total, nonzero=nonzero,
                   host_ports=host_ports(spec), tolerations=tolerations,
                   node_selector=node_selector, required_affinity=terms,
                   node_name=node_name, spread_key=spread_key(pod),
                   priority=priority if isinstance(priority, int) else 0,
                   static_key=static_key(tolerations, node_selector, terms, node_name))


def static_key(tolerations: list[Any], node_selector: dict[str, str], terms: list[Any] | None,
               node_name: str) -> str:
    """Pods with equal keys get the same verdict from every static filter on every node.
    Most pods carry none of these fields: their key is the empty string, built for free."""
    if not (tolerations or node_selector or terms is not None or node_name):
        return ""
    return json.dumps([tolerations, node_selector, terms, node_name], sort_keys=True, default=str)
