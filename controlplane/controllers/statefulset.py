"""The StatefulSet controller (Kubernetes' pkg/controller/statefulset).

Pods are named `<set>-<ordinal>` and carry `hostname` = their name and `subdomain`
= spec.serviceName, so the headless Service gives each a stable DNS name.
OrderedReady: pod N+1 is created only when pods 0..N are Running and Ready; scale
down removes the highest ordinal first, one at a time, and only while the lower
ones are healthy. Parallel: all at once. RollingUpdate replaces pods whose revision
differs from the template's, from the highest ordinal down to the partition, one at
a time, each only when all others are Running and Ready; OnDelete leaves that to
the user. volumeClaimTemplates are not provisioned (kubeling has no volumes of that kind).
"""
from __future__ import annotations

import re
from typing import Any

from kubeling.resources import lookup

from . import controller_ref
from .pod_owner import PodOwnerController, pod_from_template, template_hash

STATEFULSETS = lookup("statefulsets")
REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def ordinal_of(set_name: str, pod: dict[str, Any]) -> int | None:
    m = re.fullmatch(re.escape(set_name) + r"-(\d+)", (pod.get("metadata") or {}).get("name") or "")
    return int(m.group(1)) if m else None


def running_and_ready(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and controller_ref.is_pod_ready(pod)


def revision_of(pod: dict[str, Any]) -> str:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(REVISION_LABEL, "")


def update_revision(sts: dict[str, Any]) -> str:
    return f"{sts['metadata']['name']}-{template_hash((sts.get('spec') or {}).get('template'))}"


def new_pod(sts: dict[str, Any], ordinal: int, revision: str) -> dict[str, Any]:
    name = f"{sts['metadata']['name']}-{ordinal}"
    spec = sts.get("spec") or {}
    pod = pod_from_template(sts, spec.get("template") or {}, name=name, extra_labels={
        REVISION_LABEL: revision, POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal)})
    pod["spec"]["hostname"] = name
    if spec.get("serviceName"):
        pod["spec"]["subdomain"] = spec["serviceName"]
    return pod


def plan(sts: dict[str, Any], pods: list[dict[str, Any]]) -> tuple[list[int], list[dict[str, Any]]]:
    """(ordinals to create, pods to delete) for one sync: the ordering rules, as a
    pure function of the set and its pods."""
    spec = sts.get("spec") or {}
    replicas = spec.get("replicas")
    replicas = 1 if replicas is None else replicas
    parallel = spec.get("podManagementPolicy") == "Parallel"
    name = sts["metadata"]["name"]
    by_ordinal: dict[int, dict[str, Any]] = {}
    for p in pods:
        o = ordinal_of(name, p)
        if o is not None:
            by_ordinal[o] = p
    create: list[int] = []
    delete: list[dict[str, Any]] = []
    # Failed or succeeded pods are deleted and recreated under the same name.
    for o, p in sorted(by_ordinal.items()):
        if (p.get("status") or {}).get("phase") in ("Failed", "Succeeded") and \
                not (p.get("metadata") or {}).get("deletionTimestamp"):
            delete.append(p)
    if delete:
        return [], delete
    for o in range(replicas):
        p = by_ordinal.get(o)
        if p is None:
            create.append(o)
            if not parallel:
                return create, []
            continue
        if not parallel and (not running_and_ready(p) or (p.get("metadata") or {}).get("deletionTimestamp")):
            return create, []  # wait for this one before touching the next
    if create:
        return create, []
    condemned = sorted((o for o in by_ordinal if o >= replicas), reverse=True)
    if condemned:
        if parallel:
            return [], [by_ordinal[o] for o in condemned if not by_ordinal[o]["metadata"].get("deletionTimestamp")]
        top = by_ordinal[condemned[0]]
        if top["metadata"].get("deletionTimestamp"):
            return [], []  # one at a time: wait until it is gone
        if all(running_and_ready(by_ordinal[o]) for o in range(replicas) if o in by_ordinal):
            return [], [top]
        return [], []
    # Rolling update, highest ordinal first, down to the partition.
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return [], []
    partition = ((strategy.get("rollingUpdate") or {}).get("partition")) or 0
    revision = update_revision(sts)
    if not all(running_and_ready(by_ordinal[o]) and not by_ordinal[o]["metadata"].get("deletionTimestamp")
               for o in range(replicas)):
        return [], []
    for o in range(replicas - 1, partition - 1, -1):
        if revision_of(by_ordinal[o]) != revision:
            return [], [by_ordinal[o]]
    return [], []


class StatefulSetController(PodOwnerController):
    res = STATEFULSETS
    component = "statefulset-controller"

    async def sync_owner(self, sts: dict[str, Any]) -> None:
        if sts["metadata"].get("deletionTimestamp"):
            return
        pods = await self.owned_pods(sts)
        revision = update_revision(sts)
        create, delete = plan(sts, pods)
        name = sts["metadata"]["name"]
        for p in delete:
            await self.delete_pod(sts, p)
            self.log.info("statefulset %s/%s: deleted pod %s", sts["metadata"]["namespace"], name,
                          p["metadata"]["name"])
        for o in create:
            await self.create_pod(sts, new_pod(sts, o, revision))
        pods = await self.owned_pods(sts)
        await self._status(sts, pods, revision)

    async def _status(self, sts: dict[str, Any], pods: list[dict[str, Any]], revision: str) -> None:
        spec, old = sts.get("spec") or {}, sts.get("status") or {}
        live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
        replicas = spec.get("replicas")
        replicas = 1 if replicas is None else replicas
        ready = sum(1 for p in live if running_and_ready(p))
        updated = sum(1 for p in live if revision_of(p) == revision)
        current_rev = old.get("currentRevision") or revision
        current = sum(1 for p in live if revision_of(p) == current_rev)
        if updated == replicas and ready == replicas and len(live) == replicas:
            current_rev, current = revision, updated  # the rollout is done
        status = {"observedGeneration": sts["metadata"].get("generation", 1), "replicas": len(live),
                  "readyReplicas": ready, "currentReplicas": current, "updatedReplicas": updated,
                  "availableReplicas": sum(1 for p in live if controller_ref.is_pod_available(
                      p, int(spec.get("minReadySeconds") or 0))),
                  "currentRevision": current_rev, "updateRevision": revision, "collisionCount": 0}
        for k in ("readyReplicas", "currentReplicas", "updatedReplicas"):  # omitempty in Go
            if not status[k]:
                status.pop(k)
        await self.write_status(sts, status)
        self.recheck_availability(sts, live, int(spec.get("minReadySeconds") or 0))
