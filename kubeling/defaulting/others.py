"""Defaults of the smaller kinds: namespaces, nodes, endpoints, endpointslices."""
from __future__ import annotations

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def default_namespace(ns: dict) -> None:
    meta = ns.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("name"), str) and meta["name"]:
        labels = meta.get("labels")
        if labels is None:
            labels = meta["labels"] = {}
        if isinstance(labels, dict):
            labels[NAMESPACE_NAME_LABEL] = meta["name"]
    spec = ns.get("spec")
    if spec is None:
        spec = ns["spec"] = {}
    if isinstance(spec, dict) and spec.get("finalizers") is None:
        spec["finalizers"] = ["kubernetes"]
    status = ns.get("status")
    if status is None:
        status = ns["status"] = {}
    if isinstance(status, dict) and status.get("phase") in (None, ""):
        status["phase"] = "Active"


def default_node(node: dict) -> None:
    status = node.get("status")
    if isinstance(status, dict) and status.get("allocatable") is None \
            and isinstance(status.get("capacity"), dict):
        status["allocatable"] = dict(status["capacity"])


def default_endpoints(ep: dict) -> None:
    subsets = ep.get("subsets")
    for subset in subsets if isinstance(subsets, list) else []:
        ports = subset.get("ports") if isinstance(subset, dict) else None
        for port in ports if isinstance(ports, list) else []:
            if isinstance(port, dict) and port.get("protocol") in (None, ""):
                port["protocol"] = "TCP"


def default_endpointslice(slice_: dict) -> None:
    ports = slice_.get("ports")
    for port in ports if isinstance(ports, list) else []:
        if not isinstance(port, dict):
            continue
        if port.get("name") is None:
            port["name"] = ""
        if port.get("protocol") is None:
            port["protocol"] = "TCP"
