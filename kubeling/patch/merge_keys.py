"""Patch metadata per kind and field: the `patchStrategy` / `patchMergeKey` struct tags
of k8s.io/api (core/v1, discovery/v1, coordination/v1) and, for server-side apply, the
`listType` / `listMapKey` markers.

A field absent from a schema has no metadata: objects merge key by key, lists are
replaced whole (strategic merge) or owned atomically (server-side apply).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class FieldMeta:
    """What the patch machinery needs to know about one field."""

    strategy: str = ""              # "merge", "replace" or "" (lists: replace, objects: merge)
    merge_key: str = ""             # strategic merge key of list elements ("" for primitive lists)
    retain_keys: bool = False       # patchStrategy includes "retainKeys"
    schema: Mapping[str, "FieldMeta"] = field(default_factory=dict)  # fields of the object / list element
    list_keys: tuple[str, ...] = ()  # server-side apply listMapKeys (listType=map)
    set_list: bool = False           # server-side apply listType=set (primitive list merged as a set)

    @property
    def list_type(self) -> str:
        """Server-side apply list type: "map", "set" or "atomic"."""
        if self.list_keys:
            return "map"
        return "set" if self.set_list else "atomic"


NO_META = FieldMeta()


def lookup(schema: Mapping[str, FieldMeta] | None, name: str) -> FieldMeta:
    """Metadata of field `name` in `schema` (NO_META when unknown)."""
    if not schema:
        return NO_META
    return schema.get(name, NO_META)


def _merge_list(key: str, schema: Mapping[str, FieldMeta] | None = None, *,
                retain_keys: bool = False, list_keys: tuple[str, ...] | None = None) -> FieldMeta:
    return FieldMeta("merge", key, retain_keys, schema or {}, list_keys or (key,))


_CONDITIONS = _merge_list("type")
_BY_NAME = _merge_list("name")

OBJECT_META: Mapping[str, FieldMeta] = {
    "finalizers": FieldMeta("merge", set_list=True),
    "ownerReferences": _merge_list("uid"),
}

CONTAINER: Mapping[str, FieldMeta] = {
    # SSA keys container ports by (containerPort, protocol); strategic merge by containerPort.
    "ports": _merge_list("containerPort", list_keys=("containerPort", "protocol")),
    "env": _BY_NAME,
    "volumeMounts": _merge_list("mountPath"),
    "volumeDevices": _merge_list("devicePath"),
}

POD_SPEC: Mapping[str, FieldMeta] = {
    "volumes": _merge_list("name", retain_keys=True),
    "initContainers": _merge_list("name", CONTAINER),
    "containers": _merge_list("name", CONTAINER),
    "ephemeralContainers": _merge_list("name", CONTAINER),
    "imagePullSecrets": _BY_NAME,
    "hostAliases": _merge_list("ip"),
    "topologySpreadConstraints": _merge_list("topologyKey", list_keys=("topologyKey", "whenUnsatisfiable")),
    "schedulingGates": _BY_NAME,
    "resourceClaims": _merge_list("name", retain_keys=True),
    # tolerations, readinessGates: no strategy, replaced whole.
}

POD_STATUS: Mapping[str, FieldMeta] = {
    "conditions": _CONDITIONS,
    "podIPs": _merge_list("ip"),
    "hostIPs": _merge_list("ip"),
    "resourceClaimStatuses": _merge_list("name", retain_keys=True),
    # containerStatuses & co.: no strategy, replaced whole.
}

SERVICE_SPEC: Mapping[str, FieldMeta] = {
    "ports": _merge_list("port", list_keys=("port", "protocol")),
}

NODE_SPEC: Mapping[str, FieldMeta] = {
    "podCIDRs": FieldMeta("merge", set_list=True),
    # taints: no strategy, replaced whole.
}

NODE_STATUS: Mapping[str, FieldMeta] = {
    "conditions": _CONDITIONS,
    "addresses": _CONDITIONS,
}


def _object(**fields: Mapping[str, FieldMeta]) -> Mapping[str, FieldMeta]:
    schema = {"metadata": FieldMeta(schema=OBJECT_META)}
    schema.update({name: FieldMeta(schema=sub) for name, sub in fields.items()})
    return schema


KIND_SCHEMAS: Mapping[str, Mapping[str, FieldMeta]] = {
    "Pod": _object(spec=POD_SPEC, status=POD_STATUS),
    "Service": _object(spec=SERVICE_SPEC, status={"conditions": _CONDITIONS}),
    "Node": _object(spec=NODE_SPEC, status=NODE_STATUS),
    "Namespace": _object(status={"conditions": _CONDITIONS}),
    # Endpoints subsets, EndpointSlice endpoints/ports: no strategy (atomic lists).
    "Endpoints": _object(),
    "EndpointSlice": _object(),
    "Event": _object(),
    "ConfigMap": _object(),
    "Lease": _object(),
}

# Workloads carry a pod template: its spec merges as a pod's does (`kubectl set image`,
# `kubectl apply` of a Deployment patch containers by name).
POD_TEMPLATE = FieldMeta(schema={"metadata": FieldMeta(schema=OBJECT_META), "spec": FieldMeta(schema=POD_SPEC)})
WORKLOAD_SPEC: Mapping[str, FieldMeta] = {"template": POD_TEMPLATE}
KIND_SCHEMAS = {  # type: ignore[misc]
    **KIND_SCHEMAS,
    "Deployment": _object(spec=WORKLOAD_SPEC, status={"conditions": _CONDITIONS}),
    "ReplicaSet": _object(spec=WORKLOAD_SPEC, status={"conditions": _CONDITIONS}),
    "ReplicationController": _object(spec=WORKLOAD_SPEC, status={"conditions": _CONDITIONS}),
}

# DaemonSet, StatefulSet (volumeClaimTemplates: atomic), Job, CronJob (a job template
# holding a pod template).
KIND_SCHEMAS = {  # type: ignore[misc]
    **KIND_SCHEMAS,
    "DaemonSet": _object(spec=WORKLOAD_SPEC, status={"conditions": _CONDITIONS}),
    "StatefulSet": _object(spec=WORKLOAD_SPEC, status={"conditions": _CONDITIONS}),
    "Job": _object(spec=WORKLOAD_SPEC, status={"conditions": _CONDITIONS}),
    "CronJob": _object(spec={"jobTemplate": FieldMeta(schema={
        "metadata": FieldMeta(schema=OBJECT_META), "spec": FieldMeta(schema=WORKLOAD_SPEC)})}),
}

# Listed so callers can tell "known kind without special fields" from "unknown kind".
KNOWN_KINDS: frozenset[str] = frozenset(KIND_SCHEMAS)


def schema_for(kind: str) -> Mapping[str, FieldMeta]:
    """Top-level schema of a kind; an unknown kind gets ObjectMeta's metadata only."""
    return KIND_SCHEMAS.get(kind) or _object()
