"""The Endpoints controller (Kubernetes' pkg/controller/endpoint).

For every Service with a selector, one Endpoints object of the same name lists
the selected pods that have an IP: Ready pods under `addresses`, the others
under `notReadyAddresses`, grouped into subsets of pods sharing the same
resolved ports. As in Kubernetes, a terminating pod leaves the Endpoints at
once (unless the service publishes not-ready addresses); the EndpointSlices
keep it, marked terminating. Services without a selector are the user's.
"""
from __future__ import annotations

import json
from typing import Any

from kubeling import errors
from kubeling.client import Client
from kubeling.informer import Informer
from kubeling.resources import lookup
from kubeling.shared_informers import SharedInformers

from . import service_pods
from .own_writes import OwnWrites
from .service_sync import Key, ServiceSyncController
from .triggertime import ANNOTATION as TRIGGER_TIME, TriggerTimeTracker

ENDPOINTS = lookup("endpoints")
MAX_CAPACITY = 1000
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"


def _address(svc: dict[str, Any], pod: dict[str, Any], ip: str) -> dict[str, Any]:
    addr: dict[str, Any] = {"ip": ip}
    host = service_pods.hostname_for(svc, pod)
    if host:
        addr["hostname"] = host
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        addr["nodeName"] = node
    addr["targetRef"] = service_pods.target_ref(pod)
    return addr


def _port_key(port: dict[str, Any]) -> tuple[str, int, str, str]:
    return (port.get("name") or "", port.get("port") or 0, port.get("protocol") or "TCP",
            port.get("appProtocol") or "")


def _addr_key(addr: dict[str, Any]) -> tuple[str, str]:
    return addr["ip"], ((addr.get("targetRef") or {}).get("uid") or "")


def desired_subsets(svc: dict[str, Any], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The subsets for a service and its selected pods, packed as Kubernetes'
    RepackSubsets does: addresses sharing one set of ports form one subset;
    everything sorted so equal input gives equal output."""
    spec = svc.get("spec") or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    family = service_pods.service_families(svc)[0]
    # (address key, ready) -> (address, {port keys}); ports per key kept to rebuild dicts
    by_address: dict[tuple[tuple[str, str], bool], tuple[dict[str, Any], set]] = {}
    port_dicts: dict[tuple, dict[str, Any]] = {}
    for pod in pods:
        if not service_pods.should_pod_be_in_endpoints(pod, publish_not_ready):
            continue
        ip = service_pods.pod_ip_for_family(pod, family)
        if ip is None:
            continue
        addr = _address(svc, pod, ip)
        ready = publish_not_ready or service_pods.is_pod_ready(pod)
        if not spec.get("ports"):
            if service_pods.is_headless(svc):  # a headless service may have no ports
                by_address.setdefault((_addr_key(addr), ready), (addr, set()))
            continue
        for port in service_pods.endpoint_ports(svc, pod):
            pk = _port_key(port)
            port_dicts[pk] = port
            by_address.setdefault((_addr_key(addr), ready), (addr, set()))[1].add(pk)
    groups: dict[frozenset, tuple[list, list]] = {}
    for (_k, ready), (addr, ports) in by_address.items():
        if not ports and spec.get("ports"):
            continue
        ready_list, not_ready_list = groups.setdefault(frozenset(ports), ([], []))
        (ready_list if ready else not_ready_list).append(addr)
    subsets = []
    for ports, (ready_list, not_ready_list) in groups.items():
        subset: dict[str, Any] = {}
        if ready_list:
            subset["addresses"] = sorted(ready_list, key=_addr_key)
        if not_ready_list:
            subset["notReadyAddresses"] = sorted(not_ready_list, key=_addr_key)
        if ports:
            subset["ports"] = [port_dicts[pk] for pk in sorted(ports)]
        subsets.append(subset)
    subsets.sort(key=lambda s: json.dumps(s, sort_keys=True))
    return subsets


def truncate(subsets: list[dict[str, Any]], capacity: int = MAX_CAPACITY) -> bool:
    """Cut the subsets to `capacity` addresses, ready ones first, each subset
    keeping its proportional share (Kubernetes' truncateEndpoints). True when cut."""
    ready = sum(len(s.get("addresses") or []) for s in subsets)
    not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    if ready + not_ready <= capacity:
        return False
    cut_ready = ready > capacity
    budget = capacity if cut_ready else capacity - ready
    total = ready if cut_ready else not_ready
    left = budget
    field = "addresses" if cut_ready else "notReadyAddresses"
    for s in subsets:
        share = -(-len(s.get(field) or []) * budget // total)  # ceil
        share = min(share, left)
        s[field] = (s.get(field) or [])[:share]
        left -= len(s[field])
        if cut_ready:
            s["notReadyAddresses"] = []
    for s in subsets:
        for f in ("addresses", "notReadyAddresses"):
            if f in s and not s[f]:
                del s[f]
    return True


def _without_rv(subsets: Any) -> Any:
    """Subsets compared without the pods' resourceVersions in targetRefs."""
    out = json.loads(json.dumps(subsets or []))
    for s in out:
        for f in ("addresses", "notReadyAddresses"):
            for a in s.get(f) or []:
                (a.get("targetRef") or {}).pop("resourceVersion", None)
            if f in s and not s[f]:
                del s[f]
    return out


class EndpointsController(ServiceSyncController):
    name = "endpoints"

    def __init__(self, client: Client, informers: SharedInformers | None = None, workers: int = 4) -> None:
        super().__init__(client, informers, workers)
        self.endpoints_informer = Informer(client, ENDPOINTS, on_delete=self._endpoints_deleted)
        self.own_informers_list.append(self.endpoints_informer)
        self.endpoints = OwnWrites(self.endpoints_informer)
        self.trigger_times = TriggerTimeTracker()

    def _endpoints_deleted(self, ep: dict[str, Any]) -> None:
        self.endpoints.observed_delete(ep)
        meta = ep.get("metadata") or {}
        self.queue.add((meta.get("namespace") or "", meta.get("name") or ""))

    def after_synced(self) -> None:
        # Endpoints whose Service went while we were down are found here once.
        for ep in self.endpoints_informer.items():
            meta = ep.get("metadata") or {}
            if LEADER_ANNOTATION not in (meta.get("annotations") or {}):
                self.queue.add((meta.get("namespace") or "", meta.get("name") or ""))

    async def sync(self, key: Key) -> None:
        ns, name = key
        svc = self.service(ns, name)
        if svc is None:
            self.trigger_times.forget(ns, name)
            await self._delete(ns, name)
            return
        if not service_pods.has_selector(svc):
            return
        pods = self.pods_of(svc)
        trigger = self.trigger_times.compute(ns, svc, pods)
        subsets = desired_subsets(svc, pods)
        labels = service_pods.service_labels(svc)
        current = self.endpoints.get(ns, name)
        over = truncate(subsets)
        if current is not None:
            cmeta = current.get("metadata") or {}
            if _without_rv(current.get("subsets")) == _without_rv(subsets) \
                    and (cmeta.get("labels") or {}) == labels \
                    and (OVER_CAPACITY in (cmeta.get("annotations") or {})) == over:
                return
            new = json.loads(json.dumps(current))
        else:
            new = {"apiVersion": "v1", "kind": "Endpoints",
                   "metadata": {"name": name, "namespace": ns}}
        meta = new["metadata"]
        meta["labels"] = labels
        annotations = dict(meta.get("annotations") or {})
        if trigger:
            annotations[TRIGGER_TIME] = trigger
        else:
            annotations.pop(TRIGGER_TIME, None)
        if over:
            annotations[OVER_CAPACITY] = "truncated"
        else:
            annotations.pop(OVER_CAPACITY, None)
        meta["annotations"] = annotations
        new["subsets"] = subsets
        if current is None:
            try:
                written = await self.client.create(ENDPOINTS, new, ns)
            except errors.ApiError as exc:
                if exc.code in (403, 404) and self._namespace_going(exc):
                    return  # the namespace is being deleted; creates keep failing
                raise
        else:
            written = await self.client.update(ENDPOINTS, new)
        self.endpoints.wrote(written)
        self.log.debug("endpoints %s/%s written", ns, name)

    @staticmethod
    def _namespace_going(exc: errors.ApiError) -> bool:
        text = (exc.message or "").lower()
        return "terminat" in text or "namespaces" in text and "not found" in text

    async def _delete(self, ns: str, name: str) -> None:
        try:
            gone = await self.client.delete(ENDPOINTS, name, ns)
        except errors.ApiError as exc:
            if exc.code != 404:
                raise
            return
        if gone.get("kind") == "Endpoints":
            self.endpoints.deleted(gone)
        else:
            self.endpoints.deleted(self.endpoints.get(ns, name) or {"metadata": {"namespace": ns, "name": name}})
