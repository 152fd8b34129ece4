"""The EndpointSlice controller (Kubernetes' pkg/controller/endpointslice).

For every Service with a selector, discovery.k8s.io/v1 EndpointSlices named
`<service>-<random>` hold its pods' endpoints, at most 100 per slice, one group
of slices per (address type, resolved port set). Terminating pods stay in,
with ready=false and terminating=true, so consumers see them leave at once
while they may still finish in-flight work (serving follows the Ready condition).

Reconciling keeps churn low as Kubernetes does: an endpoint stays in the slice
that holds it, new endpoints fill slices with room before new slices are
made, emptied slices are deleted, and a service without endpoints keeps one
empty placeholder slice. Creates go first, then updates, then deletes, so an
endpoint is never missing from all slices in between.
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
from .event_recorder import EventRecorder
from .own_writes import OwnWrites
from .service_sync import Key, ServiceSyncController
from .triggertime import ANNOTATION as TRIGGER_TIME, TriggerTimeTracker

ENDPOINTSLICES = lookup("endpointslices")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100
# kubeling's events on a pod joining or leaving a Service's ready endpoints (`kubeling trace`).
ADDED_REASON, REMOVED_REASON = "AddedToEndpoints", "RemovedFromEndpoints"
SERVICE_ANNOTATION = "trace.kubeling.io/service"

PortsKey = tuple[tuple[str, int, str, str], ...]


def ports_key(ports: Any) -> PortsKey:
    return tuple(sorted((p.get("name") or "", p.get("port") or 0, p.get("protocol") or "TCP",
                         p.get("appProtocol") or "") for p in ports or []))


def endpoint_key(ep: dict[str, Any]) -> tuple[tuple[str, ...], str]:
    return tuple(ep.get("addresses") or ()), ((ep.get("targetRef") or {}).get("uid") or "")


def _norm_endpoint(ep: dict[str, Any]) -> dict[str, Any]:
    """The fields this controller sets, for comparing with what is stored."""
    ref = ep.get("targetRef") or {}
    cond = ep.get("conditions") or {}
    return {"addresses": ep.get("addresses") or [],
            "conditions": {k: cond.get(k) for k in ("ready", "serving", "terminating")},
            "hostname": ep.get("hostname"), "nodeName": ep.get("nodeName"), "zone": ep.get("zone"),
            "targetRef": {k: ref.get(k) for k in ("kind", "namespace", "name", "uid")} if ref else None}


def pod_endpoint(svc: dict[str, Any], pod: dict[str, Any], ip: str) -> dict[str, Any]:
    publish_not_ready = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    serving = publish_not_ready or service_pods.is_pod_ready(pod)
    terminating = service_pods.is_terminating(pod)
    ep: dict[str, Any] = {"addresses": [ip],
                          "conditions": {"ready": publish_not_ready or (serving and not terminating),
                                         "serving": serving, "terminating": terminating}}
    host = service_pods.hostname_for(svc, pod)
    if host:
        ep["hostname"] = host
    ep["targetRef"] = service_pods.target_ref(pod)
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        ep["nodeName"] = node
    return ep


def desired_endpoints(svc: dict[str, Any], pods: list[dict[str, Any]]
                      ) -> dict[tuple[str, PortsKey], tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """(address type, ports key) -> (ports, endpoints sorted by address), for
    every address type of the service (an empty list when none)."""
    out: dict[tuple[str, PortsKey], tuple[list, list]] = {}
    for family in service_pods.service_families(svc):
        for pod in pods:
            if not service_pods.should_pod_be_in_endpoints(pod, include_terminating=True):
                continue
            ip = service_pods.pod_ip_for_family(pod, family)
            if ip is None:
                continue
            ports = service_pods.endpoint_ports(svc, pod)
            group = out.setdefault((family, ports_key(ports)), (ports, []))
            group[1].append(pod_endpoint(svc, pod, ip))
    for _ports, eps in out.values():
        eps.sort(key=endpoint_key)
    return out


def owner_reference(svc: dict[str, Any]) -> dict[str, Any]:
    meta = svc.get("metadata") or {}
    return {"apiVersion": "v1", "kind": "Service", "name": meta.get("name"), "uid": meta.get("uid"),
            "controller": True, "blockOwnerDeletion": True}


def slice_labels(svc: dict[str, Any]) -> dict[str, str]:
    labels = service_pods.service_labels(svc)
    labels[SERVICE_NAME_LABEL] = (svc.get("metadata") or {}).get("name", "")
    labels[MANAGED_BY_LABEL] = CONTROLLER_NAME
    return labels


class Plan:
    """What one sync writes: new slices, changed slices, slice names to delete."""

    def __init__(self) -> None:
        self.create: list[dict[str, Any]] = []
        self.update: list[dict[str, Any]] = []
        self.delete: list[dict[str, Any]] = []

    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def _new_slice(svc: dict[str, Any], family: str, ports: list[dict[str, Any]],
               endpoints: list[dict[str, Any]]) -> dict[str, Any]:
    meta = svc.get("metadata") or {}
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"generateName": f"{meta.get('name')}-", "namespace": meta.get("namespace"),
                         "labels": slice_labels(svc), "ownerReferences": [owner_reference(svc)]},
            "addressType": family, "endpoints": endpoints, "ports": ports}


def _owned_by(slice_: dict[str, Any], svc: dict[str, Any]) -> bool:
    uid = (svc.get("metadata") or {}).get("uid")
    return any(ref.get("kind") == "Service" and ref.get("uid") == uid
               for ref in (slice_.get("metadata") or {}).get("ownerReferences") or [])


def plan_slices(svc: dict[str, Any], pods: list[dict[str, Any]], existing: list[dict[str, Any]],
                max_per_slice: int = MAX_ENDPOINTS_PER_SLICE) -> Plan:
    """Compare the desired endpoints with the service's existing slices."""
    plan = Plan()
    families = service_pods.service_families(svc)
    labels, owners = slice_labels(svc), [owner_reference(svc)]
    desired = desired_endpoints(svc, pods)
    existing = sorted(existing, key=lambda s: s["metadata"]["name"])
    kept: list[dict[str, Any]] = []
    for s in existing:
        if s.get("addressType") not in families or not _owned_by(s, svc):
            plan.delete.append(s)
        else:
            kept.append(s)
    for family in families:
        plan_family(svc, family, {k: v for k, v in desired.items() if k[0] == family},
                    [s for s in kept if s.get("addressType") == family], labels, owners,
                    max_per_slice, plan)
    return plan


def plan_family(svc: dict[str, Any], family: str,
                desired: dict[tuple[str, PortsKey], tuple[list, list]], existing: list[dict[str, Any]],
                labels: dict[str, str], owners: list[dict[str, Any]], max_per_slice: int, plan: Plan) -> None:
    total_desired = sum(len(eps) for _p, eps in desired.values())
    if total_desired == 0:
        # one empty placeholder slice, so consumers can tell "no endpoints" from "not synced"
        keep = next((s for s in existing if not s.get("endpoints") and not s.get("ports")), None)
        for s in existing:
            if s is not keep:
                plan.delete.append(s)
        if keep is None:
            plan.create.append(_new_slice(svc, family, [], []))
        elif _meta_differs(keep, labels, owners):
            plan.update.append(_with_meta(keep, labels, owners))
        return
    by_ports: dict[PortsKey, list[dict[str, Any]]] = {}
    for s in existing:
        by_ports.setdefault(ports_key(s.get("ports")), []).append(s)
    for (_family, pkey), (ports, eps) in desired.items():
        plan_group(svc, family, ports, eps, by_ports.pop(pkey, []), labels, owners, max_per_slice, plan)
    for slices in by_ports.values():  # port sets no pod has any more
        plan.delete.extend(slices)


def plan_group(svc: dict[str, Any], family: str, ports: list[dict[str, Any]], eps: list[dict[str, Any]],
               existing: list[dict[str, Any]], labels: dict[str, str], owners: list[dict[str, Any]],
               max_per_slice: int, plan: Plan) -> None:
    wanted = {endpoint_key(ep): ep for ep in eps}
    changed: dict[str, dict[str, Any]] = {}   # name -> new body
    unchanged: list[dict[str, Any]] = []
    for s in existing:
        new_eps = []
        for ep in s.get("endpoints") or []:
            want = wanted.pop(endpoint_key(ep), None)
            if want is not None:
                new_eps.append(want)
        if not new_eps:
            plan.delete.append(s)
            continue
        if [_norm_endpoint(e) for e in new_eps] != [_norm_endpoint(e) for e in s.get("endpoints") or []] \
                or _meta_differs(s, labels, owners) or s.get("ports") != ports:
            body = _with_meta(s, labels, owners)
            body["endpoints"], body["ports"] = new_eps, ports
            changed[s["metadata"]["name"]] = body
        else:
            unchanged.append(s)
    rest = [ep for ep in eps if endpoint_key(ep) in wanted]  # new endpoints, in order
    # fill slices already being written first, then unchanged ones, before making new slices
    for body in list(changed.values()) + unchanged:
        room = max_per_slice - len(body.get("endpoints") or [])
        if room <= 0 or not rest:
            continue
        name = body["metadata"]["name"]
        if name not in changed:
            body = _with_meta(body, labels, owners)
            body["ports"] = ports
            changed[name] = body
        body["endpoints"] = list(body.get("endpoints") or []) + rest[:room]
        rest = rest[room:]
    for i in range(0, len(rest), max_per_slice):
        plan.create.append(_new_slice(svc, family, ports, rest[i:i + max_per_slice]))
    plan.update.extend(changed.values())


def _ready_pods(slices: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    out = {}
    for s in slices:
        for ep in s.get("endpoints") or []:
            ref = ep.get("targetRef") or {}
            if ref.get("kind") == "Pod" and ref.get("uid") and (ep.get("conditions") or {}).get("ready"):
                out[ref["uid"]] = {"name": ref.get("name", ""), "namespace": ref.get("namespace", ""),
                                   "uid": ref["uid"]}
    return out


def pod_membership_changes(before: list[dict[str, Any]], after: list[dict[str, Any]]
                           ) -> list[tuple[dict[str, str], str, str]]:
    """(pod ref, event reason, verb) for each pod whose ready endpoint came or went."""
    old, new = _ready_pods(before), _ready_pods(after)
    return ([(new[u], ADDED_REASON, "Added to") for u in new if u not in old]
            + [(old[u], REMOVED_REASON, "Removed from") for u in old if u not in new])


def _meta_differs(s: dict[str, Any], labels: dict[str, str], owners: list[dict[str, Any]]) -> bool:
    meta = s.get("metadata") or {}
    return (meta.get("labels") or {}) != labels or (meta.get("ownerReferences") or []) != owners


def _with_meta(s: dict[str, Any], labels: dict[str, str], owners: list[dict[str, Any]]) -> dict[str, Any]:
    body = json.loads(json.dumps(s))
    body["metadata"]["labels"] = dict(labels)
    body["metadata"]["ownerReferences"] = [dict(o) for o in owners]
    return body


def _is_managed(s: dict[str, Any]) -> bool:
    return ((s.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY_LABEL) == CONTROLLER_NAME


def _service_key(s: dict[str, Any]) -> Key | None:
    meta = s.get("metadata") or {}
    svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return (meta.get("namespace") or "", svc) if svc else None


class EndpointSliceController(ServiceSyncController):
    name = "endpointslices"

    def __init__(self, client: Client, informers: SharedInformers | None = None, workers: int = 4,
                 max_endpoints_per_slice: int = MAX_ENDPOINTS_PER_SLICE) -> None:
        super().__init__(client, informers, workers)
        self.max_per_slice = max_endpoints_per_slice
        self.slice_informer = Informer(client, ENDPOINTSLICES,
                                       label_selector=f"{MANAGED_BY_LABEL}={CONTROLLER_NAME}",
                                       on_add=self._slice_seen, on_update=lambda _o, n: self._slice_seen(n),
                                       on_delete=self._slice_deleted)
        self.own_informers_list.append(self.slice_informer)
        self.slices = OwnWrites(self.slice_informer)
        self.by_service: dict[Key, set[str]] = {}
        self.my_versions: dict[tuple[str, str], str] = {}  # slice -> resourceVersion we wrote
        self.trigger_times = TriggerTimeTracker()
        self.events = EventRecorder(client, "endpointslice-controller")

    def _slice_seen(self, s: dict[str, Any]) -> None:
        key = _service_key(s)
        if key is None or not _is_managed(s):
            return
        meta = s["metadata"]
        self.by_service.setdefault(key, set()).add(meta["name"])
        if self.slice_informer.synced.is_set() \
                and self.my_versions.get((key[0], meta["name"])) != meta.get("resourceVersion"):
            self.queue.add(key)  # changed by someone else: put it right

    def _slice_deleted(self, s: dict[str, Any]) -> None:
        self.slices.observed_delete(s)
        key = _service_key(s)
        if key is None:
            return
        meta = s["metadata"]
        self.by_service.get(key, set()).discard(meta["name"])
        self.my_versions.pop((key[0], meta["name"]), None)
        self.queue.add(key)

    def after_synced(self) -> None:
        for key in list(self.by_service):
            self.queue.add(key)  # slices of services deleted while we were down

    def slices_of(self, key: Key) -> list[dict[str, Any]]:
        out = []
        for name in sorted(self.by_service.get(key, ())):
            s = self.slices.get(key[0], name)
            if s is not None:
                out.append(s)
        return out

    async def sync(self, key: Key) -> None:
        ns, name = key
        svc = self.service(ns, name)
        existing = self.slices_of(key)
        if svc is None:
            self.trigger_times.forget(ns, name)
            for s in existing:
                await self._delete(s)
            return
        if not service_pods.has_selector(svc):
            return
        pods = self.pods_of(svc)
        trigger = self.trigger_times.compute(ns, svc, pods)
        plan = plan_slices(svc, pods, existing, self.max_per_slice)
        if plan.empty():
            return
        for body in plan.create + plan.update:
            annotations = body["metadata"].setdefault("annotations", {}) or {}
            if trigger:
                annotations[TRIGGER_TIME] = trigger
            else:
                annotations.pop(TRIGGER_TIME, None)
            body["metadata"]["annotations"] = annotations
        for body in plan.create:
            try:
                written = await self.client.create(ENDPOINTSLICES, body, ns)
            except errors.ApiError as exc:
                if exc.code == 403 and "terminat" in (exc.message or ""):
                    return  # the namespace is going away
                raise
            self._wrote(key, written)
        for body in plan.update:
            self._wrote(key, await self.client.update(ENDPOINTSLICES, body))
        for s in plan.delete:
            await self._delete(s)
        self._membership_events(svc, existing, plan, trigger)
        self.log.debug("slices of %s/%s: %d created, %d updated, %d deleted", ns, name,
                       len(plan.create), len(plan.update), len(plan.delete))

    def _membership_events(self, svc: dict[str, Any], existing: list[dict[str, Any]], plan: Any,
                           trigger: str | None) -> None:
        """An event on each pod that joined or left the Service's ready endpoints (for
        `kubeling trace`), with the change's trigger time the proxies measure from."""
        gone = {s["metadata"].get("name") for s in plan.update + plan.delete}
        kept = [s for s in existing if s["metadata"].get("name") not in gone]
        for ref, reason, verb in pod_membership_changes(existing, kept + plan.create + plan.update):
            obj = {"kind": "Pod", "apiVersion": "v1", "metadata": ref}
            self.events.event(obj, "Normal", reason,
                              f"{verb} the endpoints of Service {svc['metadata']['name']}",
                              {SERVICE_ANNOTATION: svc["metadata"]["name"], TRIGGER_TIME: trigger or ""})

    def _wrote(self, key: Key, written: dict[str, Any]) -> None:
        meta = written["metadata"]
        self.my_versions[(key[0], meta["name"])] = meta.get("resourceVersion")
        self.by_service.setdefault(key, set()).add(meta["name"])
        self.slices.wrote(written)

    async def _delete(self, s: dict[str, Any]) -> None:
        meta = s["metadata"]
        try:
            await self.client.delete(ENDPOINTSLICES, meta["name"], meta.get("namespace"),
                                     uid=meta.get("uid"))
        except errors.ApiError as exc:
            if exc.code not in (404, 409):  # gone already, or a different slice by that name
                raise
        self.slices.deleted(s)
