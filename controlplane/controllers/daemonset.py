"""The DaemonSet controller (Kubernetes' pkg/controller/daemon).

One pod per eligible node. A node is eligible when the template's nodeSelector and
required node affinity match it and its NoSchedule/NoExecute taints are tolerated
(with the tolerations Kubernetes adds to every daemon pod); the scheduler's own
plugins decide the matching. A pod on a node that stopped being eligible stays while
its NoExecute taints are tolerated. Pods are placed as Kubernetes ≥ 1.12 does: a
required node affinity on `metadata.name` of the node, and the scheduler binds them.
RollingUpdate replaces out-of-date pods with at most maxUnavailable nodes
unavailable at once, or with maxSurge, starts the new pod beside the old one on up to
maxSurge nodes and removes the old one once the new one is available; OnDelete
leaves that to the user.
"""
from __future__ import annotations

import math
from typing import Any

from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.plugins.node_affinity import term_matches
from controlplane.scheduler.plugins.taint_toleration import tolerated
from kubeling.client import Client
from kubeling.resources import lookup
from kubeling.shared_informers import SharedInformers

from . import controller_ref
from .pod_owner import PodOwnerController, pod_from_template, template_hash

DAEMONSETS, NODES = lookup("daemonsets"), lookup("nodes")
REVISION_LABEL = "controller-revision-hash"
GENERATION_LABEL = "pod-template-generation"

# daemon.AddOrUpdateDaemonPodTolerations
DAEMON_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]
HOST_NETWORK_TOLERATION = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                           "effect": "NoSchedule"}


def daemon_tolerations(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    tolerations = list(pod_spec.get("tolerations") or [])
    extra = DAEMON_TOLERATIONS + ([HOST_NETWORK_TOLERATION] if pod_spec.get("hostNetwork") else [])
    for t in extra:
        if not any(x.get("key") == t["key"] and x.get("effect") == t["effect"] for x in tolerations):
            tolerations.append(dict(t))
    return tolerations


def should_run(pod_spec: dict[str, Any], node: dict[str, Any]) -> tuple[bool, bool]:
    """(should run, should continue running) on `node` (NodeShouldRunDaemonPod)."""
    info = NodeInfo((node.get("metadata") or {}).get("name") or "")
    info.set_node(node)
    if pod_spec.get("nodeName") and pod_spec["nodeName"] != info.name:
        return False, False
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if info.labels.get(k) != v:
            return False, False
    terms = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
             .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
    if terms is not None and not any(term_matches(t, info) for t in terms):
        return False, False
    tolerations = daemon_tolerations(pod_spec)
    # Only the node's own taints count for "continue running" (NoExecute evicts);
    # for new pods the scheduler's view (with a not-ready node's taint) decides.
    own = (node.get("spec") or {}).get("taints") or []
    keep = all(tolerated(tolerations, t) for t in own if t.get("effect") == "NoExecute")
    run = all(tolerated(tolerations, t) for t in info.taints if t.get("effect") in ("NoSchedule", "NoExecute"))
    return run and keep, keep


def with_node_affinity(pod_spec: dict[str, Any], node_name: str) -> None:
    """util.ReplaceDaemonSetPodNodeNameNodeAffinity: require exactly this node."""
    affinity = pod_spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [{
        "matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}


def _scaled(value: Any, total: int) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)  # rounded up, as intstr does for DaemonSets
    return int(value or 0)


def _revision(pod: dict[str, Any]) -> str:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(REVISION_LABEL, "")


def max_surge(ds: dict[str, Any], desired: int) -> int:
    rolling = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
    return _scaled(rolling.get("maxSurge", 0), desired)


def max_unavailable(ds: dict[str, Any], desired: int) -> int:
    rolling = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
    n = _scaled(rolling.get("maxUnavailable", 1), desired)
    if max_surge(ds, desired):
        return n  # with a surge, 0 unavailable is allowed
    return max(n, 1) if desired else 0


class DaemonSetController(PodOwnerController):
    res = DAEMONSETS
    component = "daemonset-controller"

    def __init__(self, client: Client, informers: SharedInformers, workers: int = 2) -> None:
        super().__init__(client, informers, workers)
        self.nodes = self.watch(NODES, self._node_changed, self._node_updated, self._node_changed)

    def _node_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        # Heartbeats change a node every few seconds; only what eligibility reads matters.
        if _eligibility_view(old) != _eligibility_view(new):
            self._node_changed(new)

    def _node_changed(self, _node: dict[str, Any]) -> None:
        for ds in self.owners.items():
            self.queue.add(((ds.get("metadata") or {}).get("namespace") or "", ds["metadata"]["name"]))

    def _new_pod(self, ds: dict[str, Any], node: str, revision: str) -> dict[str, Any]:
        template = (ds.get("spec") or {}).get("template") or {}
        pod = pod_from_template(ds, template, generate_name=f"{ds['metadata']['name']}-", extra_labels={
            REVISION_LABEL: revision, GENERATION_LABEL: str(ds["metadata"].get("generation", 1))})
        with_node_affinity(pod["spec"], node)
        pod["spec"]["tolerations"] = daemon_tolerations(pod["spec"])
        return pod

    async def sync_owner(self, ds: dict[str, Any]) -> None:
        if ds["metadata"].get("deletionTimestamp"):
            return
        spec = ds.get("spec") or {}
        pod_spec = (spec.get("template") or {}).get("spec") or {}
        revision = template_hash(spec.get("template"))
        pods = await self.owned_pods(ds)
        by_node: dict[str, list[dict[str, Any]]] = {}
        for p in pods:
            node = _node_of(p)
            by_node.setdefault(node, []).append(p)
        nodes = {n["metadata"]["name"]: n for n in self.nodes.items()}
        eligible: set[str] = set()
        strategy = spec.get("updateStrategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        desired = sum(1 for n in nodes.values() if should_run(pod_spec, n)[0])
        surge = max_surge(ds, desired) if rolling else 0
        to_create: list[str] = []
        to_delete: list[dict[str, Any]] = []
        for name, node in nodes.items():
            run, keep = should_run(pod_spec, node)
            mine = [p for p in by_node.get(name, []) if not p["metadata"].get("deletionTimestamp")]
            if run:
                eligible.add(name)
            failed = [p for p in mine if (p.get("status") or {}).get("phase") == "Failed"]
            to_delete += failed  # a failed daemon pod is replaced
            mine = [p for p in mine if p not in failed]
            if run and not mine and not failed:
                to_create.append(name)
            elif not keep:
                to_delete += mine
            elif len(mine) > 1:
                # Keep the oldest (Kubernetes keeps the oldest running one); while surging,
                # the oldest of each revision (the old pod goes once the new one is available).
                mine.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "")
                if surge:
                    kept: set[str] = set()
                    for p in mine:
                        if _revision(p) in kept:
                            to_delete.append(p)
                        kept.add(_revision(p))
                else:
                    to_delete += mine[1:]
        for name, ps in by_node.items():
            if name and name not in nodes:
                to_delete += [p for p in ps if not p["metadata"].get("deletionTimestamp")]
        min_ready = int(spec.get("minReadySeconds") or 0)
        if rolling and surge and not to_create:
            # Surge: a new pod starts beside the old one on up to maxSurge nodes at a time;
            # the old one goes when the new one is available.
            surging, waiting = 0, []
            for name in sorted(eligible):
                mine = [p for p in by_node.get(name, []) if not p["metadata"].get("deletionTimestamp")
                        and p not in to_delete]
                current = [p for p in mine if _revision(p) == revision]
                outdated = [p for p in mine if _revision(p) != revision]
                if current and outdated:
                    if any(controller_ref.is_pod_available(p, min_ready) for p in current):
                        to_delete += outdated
                    else:
                        surging += 1
                elif outdated:
                    waiting.append((name, outdated))
            for name, outdated in waiting:
                if not any(controller_ref.is_pod_ready(p) for p in outdated):
                    to_delete += outdated  # an unavailable old pod is replaced at once
                elif surging < surge:
                    to_create.append(name)
                    surging += 1
        # Rolling update: out-of-date pods go while the unavailable budget allows.
        elif rolling and not to_create:
            budget = max_unavailable(ds, len(eligible))
            unavailable = 0
            old: list[dict[str, Any]] = []
            for name in eligible:
                mine = [p for p in by_node.get(name, []) if not p["metadata"].get("deletionTimestamp")]
                if not mine or not any(controller_ref.is_pod_available(p, min_ready) for p in mine):
                    unavailable += 1
                for p in mine:
                    if _revision(p) != revision and p not in to_delete:
                        old.append(p)
            # Unavailable old pods go first (they cost nothing), then available ones within the budget.
            old.sort(key=lambda p: controller_ref.is_pod_ready(p))
            for p in old:
                if not controller_ref.is_pod_ready(p):
                    to_delete.append(p)
                elif unavailable < budget:
                    to_delete.append(p)
                    unavailable += 1
        for p in to_delete:
            await self.delete_pod(ds, p)
        for name in to_create:
            await self.create_pod(ds, self._new_pod(ds, name, revision))
        await self._status(ds, eligible, revision)

    async def _status(self, ds: dict[str, Any], eligible: set[str], revision: str) -> None:
        pods = [p for p in await self.owned_pods(ds) if not p["metadata"].get("deletionTimestamp")]
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        scheduled: dict[str, list[dict[str, Any]]] = {}
        for p in pods:
            scheduled.setdefault(_node_of(p), []).append(p)
        current = ready = available = updated = misscheduled = 0
        for node, ps in scheduled.items():
            if not node:
                continue
            if node not in eligible:
                misscheduled += 1
                continue
            current += 1
            if any(controller_ref.is_pod_ready(p) for p in ps):
                ready += 1
            if any(controller_ref.is_pod_available(p, min_ready) for p in ps):
                available += 1
            if any((p["metadata"].get("labels") or {}).get(REVISION_LABEL) == revision for p in ps):
                updated += 1
        desired = len(eligible)
        status = {"currentNumberScheduled": current, "numberMisscheduled": misscheduled,
                  "desiredNumberScheduled": desired, "numberReady": ready,
                  "observedGeneration": ds["metadata"].get("generation", 1),
                  "updatedNumberScheduled": updated, "numberAvailable": available,
                  "numberUnavailable": desired - available}
        for k in ("updatedNumberScheduled", "numberAvailable", "numberUnavailable"):
            if not status[k]:
                status.pop(k)  # omitempty in Go
        await self.write_status(ds, status)
        self.recheck_availability(ds, pods, min_ready)


def _eligibility_view(node: dict[str, Any]) -> tuple[Any, ...]:
    meta, spec = node.get("metadata") or {}, node.get("spec") or {}
    ready = next((c.get("status") for c in (node.get("status") or {}).get("conditions") or []
                  if c.get("type") == "Ready"), None)
    return (meta.get("labels"), spec.get("taints"), spec.get("unschedulable"), ready)


def _node_of(pod: dict[str, Any]) -> str:
    """The node a daemon pod is on, or is meant for (its node affinity) before binding."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    terms = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
             .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    for term in terms:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and len(f.get("values") or []) == 1:
                return f["values"][0]
    return ""
