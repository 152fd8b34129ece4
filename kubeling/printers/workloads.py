"""Rows for Deployments, ReplicaSets and ReplicationControllers, with the columns
of Kubernetes' printers.go (printDeployment, printReplicaSet, printReplicationController)."""
from __future__ import annotations

from datetime import datetime

from kubeling import timefmt
from kubeling.printers.access import format_labels, get, integer, items, text
from kubeling.printers.columns import age_column, column, name_column
from kubeling.selectors import label_selector_from_dict

_CONTAINERS = column("Containers", "Names of each container in the template.", priority=1)
_IMAGES = column("Images", "Images referenced by each container in the template.", priority=1)
_SELECTOR = column("Selector", "Label selector for pods. Existing ReplicaSets whose pods are selected "
                               "by this will be the ones affected by this deployment.", priority=1)

DEPLOYMENT_COLUMNS = [
    name_column(),
    column("Ready", "Number of the pod with ready state"),
    column("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have "
                         "the desired template spec.", type="integer"),
    column("Available", "Total number of available pods (ready for at least minReadySeconds) "
                        "targeted by this deployment.", type="integer"),
    age_column(),
    _CONTAINERS, _IMAGES, _SELECTOR,
]

REPLICASET_COLUMNS = [
    name_column(),
    column("Desired", "Replicas is the number of desired replicas.", type="integer"),
    column("Current", "Replicas is the most recently observed number of replicas.", type="integer"),
    column("Ready", "The number of ready replicas for this replica set.", type="integer"),
    age_column(),
    _CONTAINERS, _IMAGES,
    column("Selector", "Selector is a label query over pods that should match the replica count.",
           priority=1),
]


def _age(obj: dict, now: datetime) -> str:
    return timefmt.since(get(obj, "metadata", "creationTimestamp"), now)


def _template_columns(obj: dict) -> list[str]:
    containers = items(obj, "spec", "template", "spec", "containers")
    return [",".join(text(c, "name") for c in containers), ",".join(text(c, "image") for c in containers)]


def _selector(obj: dict) -> str:
    """metav1.FormatLabelSelector: `<none>` for none, `<error>` when unparsable."""
    sel = get(obj, "spec", "selector")
    if sel is None:
        return "<none>"
    try:
        parsed = label_selector_from_dict(sel)
    except ValueError:
        return "<error>"
    return str(parsed) or "<none>"


def deployment_row(d: dict, now: datetime) -> dict:
    desired = integer(d, "spec", "replicas")
    ready = integer(d, "status", "readyReplicas")
    return {"cells": [text(d, "metadata", "name"), f"{ready}/{desired}",
                      integer(d, "status", "updatedReplicas"), integer(d, "status", "availableReplicas"),
                      _age(d, now), *_template_columns(d), _selector(d)]}


def replicaset_row(rs: dict, now: datetime) -> dict:
    return {"cells": [text(rs, "metadata", "name"), integer(rs, "spec", "replicas"),
                      integer(rs, "status", "replicas"), integer(rs, "status", "readyReplicas"),
                      _age(rs, now), *_template_columns(rs), _selector(rs)]}


def replicationcontroller_row(rc: dict, now: datetime) -> dict:
    row = replicaset_row(rc, now)
    row["cells"][-1] = format_labels(get(rc, "spec", "selector"))
    return row
