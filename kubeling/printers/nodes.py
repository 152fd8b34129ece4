"""Node rows: STATUS from the Ready condition and cordoning, ROLES from labels."""
from __future__ import annotations

from datetime import datetime

from kubeling import timefmt
from kubeling.printers.access import boolean, get, items, mapping, text
from kubeling.printers.columns import age_column, column, name_column

COLUMNS = [
    name_column(),
    column("Status", "The status of the node"),
    column("Roles", "The roles of the node"),
    age_column(),
    column("Version", "Kubelet Version reported by the node."),
    column("Internal-IP", "List of addresses reachable to the node.", priority=1),
    column("External-IP", "List of addresses reachable to the node.", priority=1),
    column("OS-Image", "OS Image reported by the node from /etc/os-release "
                       "(e.g. Debian GNU/Linux 7 (wheezy)).", priority=1),
    column("Kernel-Version", "Kernel Version reported by the node from 'uname -r' "
                             "(e.g. 3.16.0-0.bpo.4-amd64).", priority=1),
    column("Container-Runtime", "ContainerRuntime Version reported by the node through "
                                "runtime remote API (e.g. containerd://1.4.2).", priority=1),
]

ROLE_LABEL_PREFIX = "node-role.kubernetes.io/"
ROLE_LABEL = "kubernetes.io/role"


def node_status(node: dict) -> str:
    status: list[str] = []
    ready = None
    for cond in items(node, "status", "conditions"):
        if text(cond, "type") == "Ready":
            ready = cond  # the last one wins, like the map Kubernetes builds
    if ready is not None:
        status.append("Ready" if text(ready, "status") == "True" else "NotReady")
    else:
        status.append("Unknown")
    if boolean(node, "spec", "unschedulable"):
        status.append("SchedulingDisabled")
    return ",".join(status)


def node_roles(node: dict) -> str:
    roles: set[str] = set()
    for key, value in mapping(node, "metadata", "labels").items():
        if not isinstance(key, str):
            continue
        if key.startswith(ROLE_LABEL_PREFIX):
            role = key[len(ROLE_LABEL_PREFIX):]
            if role:
                roles.add(role)
        elif key == ROLE_LABEL and isinstance(value, str) and value:
            roles.add(value)
    # Kubernetes lists a set in no particular order; sorted is one of its orders.
    return ",".join(sorted(roles)) or "<none>"


def _address(node: dict, kind: str) -> str:
    for address in items(node, "status", "addresses"):
        if text(address, "type") == kind:
            return text(address, "address")
    return "<none>"


def row(node: dict, now: datetime) -> dict:
    info = mapping(node, "status", "nodeInfo")
    return {"cells": [
        text(node, "metadata", "name"),
        node_status(node),
        node_roles(node),
        timefmt.since(get(node, "metadata", "creationTimestamp"), now),
        text(info, "kubeletVersion"),
        _address(node, "InternalIP"),
        _address(node, "ExternalIP"),
        text(info, "osImage") or "<unknown>",
        text(info, "kernelVersion") or "<unknown>",
        text(info, "containerRuntimeVersion") or "<unknown>",
    ]}
