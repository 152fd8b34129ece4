"""Server-side Tables (meta.k8s.io/v1 Table), as kube-apiserver answers
`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`."""
from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Callable

from kubeling.printers import csr, events, nodes, pods, services, simple, workloads
from kubeling.printers import secrets as secret_printers
from kubeling.resources import Resource

RowFunc = Callable[[dict, datetime], dict]

# (group, plural) -> (column definitions, row function)
PRINTERS: dict[tuple[str, str], tuple[list[dict], RowFunc]] = {
    ("", "pods"): (pods.COLUMNS, pods.row),
    ("", "services"): (services.SERVICE_COLUMNS, services.service_row),
    ("", "endpoints"): (services.ENDPOINTS_COLUMNS, services.endpoints_row),
    ("", "nodes"): (nodes.COLUMNS, nodes.row),
    ("", "namespaces"): (simple.NAMESPACE_COLUMNS, simple.namespace_row),
    ("", "events"): (events.COLUMNS, events.row),
    ("", "configmaps"): (simple.CONFIGMAP_COLUMNS, simple.configmap_row),
    ("", "secrets"): (secret_printers.SECRET_COLUMNS, secret_printers.secret_row),
    ("", "serviceaccounts"): (secret_printers.SERVICEACCOUNT_COLUMNS, secret_printers.serviceaccount_row),
    ("coordination.k8s.io", "leases"): (simple.LEASE_COLUMNS, simple.lease_row),
    ("discovery.k8s.io", "endpointslices"):
        (services.ENDPOINTSLICE_COLUMNS, services.endpointslice_row),
    ("certificates.k8s.io", "certificatesigningrequests"): (csr.COLUMNS, csr.row),
    ("apps", "deployments"): (workloads.DEPLOYMENT_COLUMNS, workloads.deployment_row),
    ("apps", "replicasets"): (workloads.REPLICASET_COLUMNS, workloads.replicaset_row),
    ("", "replicationcontrollers"):
        (workloads.REPLICASET_COLUMNS, workloads.replicationcontroller_row),
}

# DaemonSet, StatefulSet, Job, CronJob
from kubeling.printers import sets_and_jobs  # noqa: E402
PRINTERS.update({
    ("apps", "daemonsets"): (sets_and_jobs.DAEMONSET_COLUMNS, sets_and_jobs.daemonset_row),
    ("apps", "statefulsets"): (sets_and_jobs.STATEFULSET_COLUMNS, sets_and_jobs.statefulset_row),
    ("batch", "jobs"): (sets_and_jobs.JOB_COLUMNS, sets_and_jobs.job_row),
    ("batch", "cronjobs"): (sets_and_jobs.CRONJOB_COLUMNS, sets_and_jobs.cronjob_row),
})

# issue 11, rbac
from kubeling.printers import rbac as rbac_printers  # noqa: E402
PRINTERS.update({
    ("rbac.authorization.k8s.io", "roles"): (rbac_printers.ROLE_COLUMNS, rbac_printers.role_row),
    ("rbac.authorization.k8s.io", "clusterroles"): (rbac_printers.ROLE_COLUMNS, rbac_printers.role_row),
    ("rbac.authorization.k8s.io", "rolebindings"): (rbac_printers.BINDING_COLUMNS, rbac_printers.binding_row),
    ("rbac.authorization.k8s.io", "clusterrolebindings"):
        (rbac_printers.BINDING_COLUMNS, rbac_printers.binding_row),
})

INCLUDE_OBJECT_VALUES = ("None", "Metadata", "Object")


def column_definitions(resource: Resource) -> list[dict]:
    columns, _ = PRINTERS.get((resource.group, resource.plural),
                              (simple.DEFAULT_COLUMNS, simple.default_row))
    return copy.deepcopy(columns)


def _row_object(obj: dict, include_object: str) -> dict | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata if isinstance(metadata, dict) else {}}


def to_table(resource: Resource, items: list[dict], *, list_meta: dict | None = None,
             include_object: str = "Metadata", now: datetime | None = None,
             no_headers: bool = False) -> dict:
    """A Table of `items` (all of kind `resource`).

    list_meta: the list's metadata (resourceVersion, continue, remainingItemCount);
    without it a single object's resourceVersion is used, as the apiserver does on
    GET of one object. include_object: TableOptions.includeObject — "None",
    "Metadata" (PartialObjectMetadata, the default) or "Object" (objects as given).
    no_headers: TableOptions.noHeaders — omit the column definitions.
    Raises ValueError for an unknown include_object (the apiserver answers 400).
    """
    if include_object not in INCLUDE_OBJECT_VALUES:
        raise ValueError(
            f'includeObject: Unsupported value: "{include_object}": supported values: '
            + ", ".join(f'"{v}"' for v in INCLUDE_OBJECT_VALUES))
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    columns, row_func = PRINTERS.get((resource.group, resource.plural),
                                     (simple.DEFAULT_COLUMNS, simple.default_row))

    metadata: dict = {}
    if isinstance(list_meta, dict):
        for key in ("resourceVersion", "continue", "remainingItemCount"):
            if list_meta.get(key) not in (None, ""):
                metadata[key] = list_meta[key]
    elif len(items) == 1 and isinstance(items[0], dict):
        rv = items[0].get("metadata", {}).get("resourceVersion") \
            if isinstance(items[0].get("metadata"), dict) else None
        if isinstance(rv, str) and rv:
            metadata["resourceVersion"] = rv

    rows = []
    for obj in items:
        source = obj if isinstance(obj, dict) else {}
        row = row_func(source, now)
        if include_object != "None":
            row["object"] = _row_object(source, include_object)
        rows.append(row)

    table: dict = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}
    if not no_headers:
        table["columnDefinitions"] = copy.deepcopy(columns)
    table["rows"] = rows
    return table
