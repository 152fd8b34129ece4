"""OpenAPI v3 documents: `/openapi/v3` (the index) and one document per group-version.

kubectl reads these to decide that the server validates fields itself (a PATCH
operation for the kind, tagged with `x-kubernetes-group-version-kind`, that takes a
`fieldValidation` query parameter), to compute strategic merge patches (the
`x-kubernetes-patch-*` extensions) and for `kubectl explain`.
"""
from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from kubeling import schema
from kubeling.resources import GROUPS, RESOURCES, Resource

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
SCALE = "io.k8s.api.autoscaling.v1.Scale"
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")


def gv_path(group: str, version: str) -> str:
    """Index key of a group-version: `api/v1`, `apis/coordination.k8s.io/v1`."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": schema.REF_PREFIX + name}


def _query(name: str, description: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": kind, "uniqueItems": True}}


_DRY_RUN = _query("dryRun", "When present, indicates that modifications should not be persisted. "
                            "Valid value: All.")
_FIELD_MANAGER = _query("fieldManager", "A name associated with the actor or entity that is making these changes.")
_FIELD_VALIDATION = _query(
    "fieldValidation", "How the server handles fields of the request object that its schema does not know: "
                       "Ignore drops them, Warn drops them with a Warning header per field, Strict fails the "
                       "request with a BadRequest error.")
_FORCE = _query("force", "Force is going to \"force\" Apply requests: re-acquire conflicting fields owned by "
                         "other managers. Only valid for apply requests.", "boolean")
_LIST_PARAMS = [_query("labelSelector", "A selector to restrict the list of returned objects by their labels."),
                _query("fieldSelector", "A selector to restrict the list of returned objects by their fields."),
                _query("resourceVersion", "The resourceVersion to list or watch from."),
                _query("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
                _query("watch", "Watch for changes to the described resources.", "boolean"),
                _query("allowWatchBookmarks", "Request watch events with type BOOKMARK.", "boolean")]


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "uniqueItems": True}}


def _op(res: Resource, action: str, verb_id: str, response: str, *, params: list[dict[str, Any]] = (),
        body: str | None = None, body_types: tuple[str, ...] = ("*/*",), kind: str | None = None,
        group: tuple[str, str] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "description": f"{action} {res.kind}", "operationId": verb_id, "tags": [res.group or "core_v1"],
        "parameters": list(params),
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": _ref(response)}}},
                      "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": (group or (res.group, res.version))[0],
                                            "version": (group or (res.group, res.version))[1],
                                            "kind": kind or res.kind},
    }
    if body is not None:
        op["requestBody"] = {"required": True,
                             "content": {t: {"schema": _ref(body)} for t in body_types}}
    return op


def _paths_for(res: Resource) -> dict[str, dict[str, Any]]:
    definition = schema.kind_definition(res.kind)
    list_definition = schema.list_definition(res.kind)
    if definition is None or list_definition is None:
        return {}
    base = f"/api/{res.version}" if not res.group else f"/apis/{res.group}/{res.version}"
    ident = f"{(res.group.split('.')[0] or 'core').title()}{res.version.title()}"
    ns_kind = f"Namespaced{res.kind}" if res.namespaced else res.kind
    collection = f"{base}/namespaces/{{namespace}}/{res.plural}" if res.namespaced else f"{base}/{res.plural}"
    scope = [_path_param("namespace")] if res.namespaced else []
    write = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
    paths: dict[str, dict[str, Any]] = {
        collection: {
            "parameters": scope,
            "get": _op(res, "list", f"list{ident}{ns_kind}", list_definition, params=_LIST_PARAMS),
            "post": _op(res, "post", f"create{ident}{ns_kind}", definition, params=write, body=definition),
            "delete": _op(res, "deletecollection", f"deleteCollection{ident}{ns_kind}", f"{META}.Status",
                          params=_LIST_PARAMS[:2], body=f"{META}.DeleteOptions"),
        },
        f"{collection}/{{name}}": {
            "parameters": [_path_param("name"), *scope],
            "get": _op(res, "get", f"read{ident}{ns_kind}", definition),
            "put": _op(res, "put", f"replace{ident}{ns_kind}", definition, params=write, body=definition),
            "patch": _op(res, "patch", f"patch{ident}{ns_kind}", definition, params=[*write, _FORCE],
                         body=f"{META}.Patch", body_types=PATCH_TYPES),
            "delete": _op(res, "delete", f"delete{ident}{ns_kind}", f"{META}.Status",
                          params=[_DRY_RUN, _query("gracePeriodSeconds", "Seconds before the object is deleted.",
                                                   "integer")], body=f"{META}.DeleteOptions"),
        },
    }
    if res.namespaced:
        paths[f"{base}/{res.plural}"] = {
            "get": _op(res, "list", f"list{ident}{res.kind}ForAllNamespaces", list_definition, params=_LIST_PARAMS)}
    if "status" in res.subresources:
        paths[f"{collection}/{{name}}/status"] = {
            "parameters": [_path_param("name"), *scope],
            "get": _op(res, "get", f"read{ident}{ns_kind}Status", definition),
            "put": _op(res, "put", f"replace{ident}{ns_kind}Status", definition, params=write, body=definition),
            "patch": _op(res, "patch", f"patch{ident}{ns_kind}Status", definition, params=[*write, _FORCE],
                         body=f"{META}.Patch", body_types=PATCH_TYPES),
        }
    if "scale" in res.subresources:
        scale = SCALE
        paths[f"{collection}/{{name}}/scale"] = {
            "parameters": [_path_param("name"), *scope],
            "get": _op(res, "get", f"read{ident}{ns_kind}Scale", scale, kind="Scale", group=("autoscaling", "v1")),
            "put": _op(res, "put", f"replace{ident}{ns_kind}Scale", scale, params=write, body=scale, kind="Scale",
                       group=("autoscaling", "v1")),
            "patch": _op(res, "patch", f"patch{ident}{ns_kind}Scale", scale, params=[*write, _FORCE],
                         body=f"{META}.Patch", body_types=PATCH_TYPES, kind="Scale", group=("autoscaling", "v1")),
        }
    if "binding" in res.subresources:
        paths[f"{collection}/{{name}}/binding"] = {
            "parameters": [_path_param("name"), *scope],
            "post": _op(res, "post", f"create{ident}{ns_kind}Binding", "io.k8s.api.core.v1.Binding",
                        params=write, body="io.k8s.api.core.v1.Binding", kind="Binding"),
        }
    return paths


def _referenced(roots: list[str]) -> dict[str, Any]:
    """The named schemas plus every schema they reach through `$ref`."""
    defs = schema.definitions()
    out: dict[str, Any] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in out or name not in defs:
            continue
        out[name] = defs[name]
        todo.extend(_refs(defs[name]))
    return dict(sorted(out.items()))


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"][len(schema.REF_PREFIX):]] if isinstance(node.get("$ref"), str) else []
        for value in node.values():
            found.extend(_refs(value))
        return found
    if isinstance(node, list):
        return [r for item in node for r in _refs(item)]
    return []


@functools.lru_cache(maxsize=None)
def document_bytes(group: str, version: str) -> bytes | None:
    """The serialized OpenAPI v3 document of one group-version (None if not served)."""
    if GROUPS.get(group) != version:
        return None
    paths: dict[str, Any] = {}
    roots = [f"{META}.Status", f"{META}.DeleteOptions", f"{META}.Patch", f"{META}.WatchEvent"]
    for res in RESOURCES:
        if res.group == group and res.version == version:
            paths.update(_paths_for(res))
            roots += [n for n in (schema.kind_definition(res.kind), schema.list_definition(res.kind)) if n]
            if "binding" in res.subresources:
                roots.append("io.k8s.api.core.v1.Binding")
            if "scale" in res.subresources:
                roots.append(SCALE)
    schemas = _referenced(roots)
    schemas[f"{META}.Patch"] = {"type": "object", "description": "Patch is provided to give a concrete name "
                                "and type to the Kubernetes PATCH request body."}
    doc = {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.33.0"},
           "paths": dict(sorted(paths.items())), "components": {"schemas": dict(sorted(schemas.items()))}}
    return json.dumps(doc, separators=(",", ":")).encode()


def document_hash(group: str, version: str) -> str:
    data = document_bytes(group, version) or b""
    return hashlib.sha512(data).hexdigest().upper()


def index() -> dict[str, Any]:
    return {"paths": {gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{gv_path(g, v)}?hash={document_hash(g, v)}"}
                      for g, v in GROUPS.items()}}


def lookup_path(path: str) -> tuple[str, str] | None:
    """`/openapi/v3/api/v1` -> ("", "v1"); `/openapi/v3/apis/g/v` -> (g, v)."""
    parts = [p for p in path.split("/") if p][2:]
    if len(parts) == 2 and parts[0] == "api":
        return "", parts[1]
    if len(parts) == 3 and parts[0] == "apis":
        return parts[1], parts[2]
    return None
