"""Builders for Node and Pod objects in the scheduler's unit tests."""
from __future__ import annotations

import itertools
from typing import Any

from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.podinfo import PodInfo, pod_info

_uids = itertools.count(1)


def node_obj(name: str = "n1", *, cpu: str = "4", memory: str = "8Gi", pods: str = "110",
             labels: dict[str, str] | None = None, taints: list[dict[str, Any]] | None = None,
             ready: str | None = "True", unschedulable: bool = False,
             extra: dict[str, str] | None = None) -> dict[str, Any]:
    alloc = {"cpu": cpu, "memory": memory, "pods": pods, **(extra or {})}
    node: dict[str, Any] = {"metadata": {"name": name, "labels": labels or {}},
                            "spec": {}, "status": {"allocatable": alloc, "capacity": alloc}}
    if taints:
        node["spec"]["taints"] = taints
    if unschedulable:
        node["spec"]["unschedulable"] = True
    if ready is not None:
        node["status"]["conditions"] = [{"type": "Ready", "status": ready}]
    return node


def node_info(*pods: PodInfo, **kw: Any) -> NodeInfo:
    obj = node_obj(**kw)
    info = NodeInfo(obj["metadata"]["name"])
    info.set_node(obj)
    for p in pods:
        info.add_pod(p)
    return info


def pod_obj(name: str = "p", *, cpu: str | None = None, memory: str | None = None,
            extra: dict[str, str] | None = None, host_ports: list[int | tuple[str, str, int]] | None = None,
            node_selector: dict[str, str] | None = None, affinity_terms: list[dict[str, Any]] | None = None,
            tolerations: list[dict[str, Any]] | None = None, node_name: str = "",
            labels: dict[str, str] | None = None, owner_uid: str | None = None,
            namespace: str = "default") -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    requests.update(extra or {})
    container: dict[str, Any] = {"name": "c", "image": "busybox", "resources": {"requests": requests}}
    if host_ports:
        container["ports"] = [
            {"containerPort": 80, "hostPort": hp} if isinstance(hp, int)
            else {"containerPort": 80, "hostIP": hp[0], "protocol": hp[1], "hostPort": hp[2]}
            for hp in host_ports]
    spec: dict[str, Any] = {"containers": [container]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    if affinity_terms is not None:
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": affinity_terms}}}
    if tolerations:
        spec["tolerations"] = tolerations
    if node_name:
        spec["nodeName"] = node_name
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"uid-{next(_uids)}"}
    if labels:
        meta["labels"] = labels
    if owner_uid:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                    "uid": owner_uid, "controller": True}]
    return {"metadata": meta, "spec": spec}


def pod(name: str = "p", **kw: Any) -> PodInfo:
    return pod_info(pod_obj(name, **kw))


BOUND = 5.0  # these tests' events are all in-process
