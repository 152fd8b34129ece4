"""Legacy API discovery documents, built from the resource table."""
from __future__ import annotations

from typing import Any

from kubeling.resources import GROUPS, RESOURCES, Resource

SUBRESOURCE_VERBS = {
    "status": ["get", "patch", "update"],
    "binding": ["create"],
    "log": ["get"],
    "exec": ["create", "get"],
    "attach": ["create", "get"],
    "portforward": ["create", "get"],
    "finalize": ["update"],
    "approval": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
}
SUBRESOURCE_KINDS = {"binding": "Binding", "scale": "Scale", "exec": "PodExecOptions",
                     "attach": "PodAttachOptions", "portforward": "PodPortForwardOptions"}
# Subresources served in another group-version than their parent (kubectl's scale
# client reads these to know it talks autoscaling/v1 Scale).
SUBRESOURCE_GROUP_VERSIONS = {"scale": ("autoscaling", "v1")}


def _entries(r: Resource) -> list[dict[str, Any]]:
    main = {"name": r.plural, "singularName": r.singular_name, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": list(r.verbs)}
    if r.short_names:
        main["shortNames"] = list(r.short_names)
    if r.categories:
        main["categories"] = list(r.categories)
    out = [main]
    for sub in r.subresources:
        entry = {"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced,
                 "kind": SUBRESOURCE_KINDS.get(sub, r.kind), "verbs": SUBRESOURCE_VERBS.get(sub, ["get"])}
        if sub in SUBRESOURCE_GROUP_VERSIONS:
            entry["group"], entry["version"] = SUBRESOURCE_GROUP_VERSIONS[sub]
        out.append(entry)
    return out


def api_versions() -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}


def _group(name: str, version: str) -> dict[str, Any]:
    gv = {"groupVersion": f"{name}/{version}", "version": version}
    return {"name": name, "versions": [gv], "preferredVersion": gv}


def api_group_list() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(g, v) for g, v in GROUPS.items() if g]}


def api_group(name: str) -> dict[str, Any] | None:
    if not name or name not in GROUPS:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, GROUPS[name])}


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    if GROUPS.get(group) != version:
        return None
    gv = f"{group}/{version}" if group else version
    resources = [e for r in RESOURCES if r.group == group for e in _entries(r)]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def version_info() -> dict[str, Any]:
    return {"major": "1", "minor": "33", "gitVersion": "v1.33.0-kubeling", "gitCommit": "",
            "gitTreeState": "clean", "buildDate": "2026-11-25T00:00:00Z", "goVersion": "python3",
            "compiler": "cpython", "platform": "linux/amd64"}
