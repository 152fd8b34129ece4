"""A pod's QoS class, computed as Kubernetes' GetPodQOS does."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from kubeling.quantity import parse_quantity

_QOS_RESOURCES = ("cpu", "memory")


def _amounts(values: Any) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    if not isinstance(values, dict):
        return out
    for name, raw in values.items():
        if name not in _QOS_RESOURCES:
            continue
        try:
            q = parse_quantity(raw)
        except ValueError:
            continue
        if q > 0:
            out[name] = q
    return out


def pod_qos_class(pod: dict) -> str:
    """"Guaranteed", "Burstable" or "BestEffort"; tolerant of any malformed spec."""
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    containers = []
    for field in ("initContainers", "containers"):
        if isinstance(spec.get(field), list):
            containers += [c for c in spec[field] if isinstance(c, dict)]
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    for ctr in containers:
        res = ctr.get("resources") if isinstance(ctr.get("resources"), dict) else {}
        for name, q in _amounts(res.get("requests")).items():
            requests[name] = requests.get(name, Decimal(0)) + q
        found = _amounts(res.get("limits"))
        for name, q in found.items():
            limits[name] = limits.get(name, Decimal(0)) + q
        if not all(r in found for r in _QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed:
        for name, q in requests.items():
            if limits.get(name) != q:
                guaranteed = False
                break
    if guaranteed and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"
