"""The `scale` subresource: an autoscaling/v1 Scale view of a workload's replicas.

GET answers a Scale built from the object; PUT and PATCH change only the
parent's `spec.replicas` (through the normal update path, so generation moves and
validation runs). As in kube-apiserver, a Scale carrying a resourceVersion is a
precondition on the parent's.
"""
from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from kubeling import errors
from kubeling.resources import Resource
from kubeling.selectors import label_selector_from_dict, label_selector_from_set

from .registry import PATCH_TYPES, Registry, _apply, _decode_patch

API_VERSION = "autoscaling/v1"


def selector_string(res: Resource, obj: dict[str, Any]) -> str:
    """status.selector of the Scale: the parent's selector in label-query form."""
    sel = (obj.get("spec") or {}).get("selector")
    try:
        if res.kind == "ReplicationController":
            return str(label_selector_from_set(sel)) if sel else ""
        return str(label_selector_from_dict(sel)) if sel is not None else ""
    except ValueError:
        return ""


def to_scale(res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    scale_meta = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                  if k in meta}
    out: dict[str, Any] = {"kind": "Scale", "apiVersion": API_VERSION, "metadata": scale_meta,
                           "spec": {"replicas": spec.get("replicas", 0)},
                           "status": {"replicas": status.get("replicas", 0)}}
    selector = selector_string(res, obj)
    if selector:
        out["status"]["selector"] = selector
    return out


def _replicas_of(scale: Any, name: str) -> int:
    if not isinstance(scale, dict):
        raise errors.bad_request("the body of the request must be a Scale object")
    if scale.get("kind") not in (None, "", "Scale"):
        raise errors.bad_request(f"the kind of the provided object ({scale.get('kind')}) is not Scale")
    spec = scale.get("spec")
    replicas = spec.get("replicas", 0) if isinstance(spec, dict) else 0
    if replicas is None:
        replicas = 0
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise errors.invalid("Scale", name, [errors.type_invalid("spec.replicas", replicas,
                                                                   "must be of type integer")], "autoscaling")
    if replicas < 0:
        raise errors.invalid("Scale", name, [errors.invalid_value(
            "spec.replicas", replicas, "must be greater than or equal to 0")], "autoscaling")
    return replicas


async def _write(registry: Registry, res: Resource, ns: str | None, name: str,
                 new_scale: Any, dry_run: bool) -> dict[str, Any]:
    async def mutate(current: dict[str, Any]) -> dict[str, Any]:
        scale = new_scale(current) if callable(new_scale) else new_scale
        replicas = _replicas_of(scale, name)
        want_rv = (scale.get("metadata") or {}).get("resourceVersion") \
            if isinstance(scale.get("metadata"), dict) else None
        if want_rv and want_rv != current["metadata"]["resourceVersion"]:
            raise errors.conflict(res.plural, name, errors.STALE, res.group)
        new = copy.deepcopy(current)
        new.setdefault("spec", {})["replicas"] = replicas
        return await registry._prepare_write(res, None, new, current)

    obj, _ = await registry._guaranteed_update(res, ns, name, mutate, dry_run=dry_run)
    return to_scale(res, obj)


async def serve(request: web.Request, registry: Registry, res: Resource, ns: str | None, name: str,
                dry_run: bool) -> dict[str, Any]:
    """GET, PUT or PATCH of `<resource>/<name>/scale`; returns the Scale."""
    if request.method == "GET":
        return to_scale(res, await registry.get(res, ns, name))
    if request.method == "PUT":
        from .app import _read_body  # the apiserver's body decoding (JSON or YAML)
        body = await _read_body(request)
        return await _write(registry, res, ns, name, body, dry_run)
    if request.method == "PATCH":
        content_type = request.headers.get("Content-Type", "")
        kind = PATCH_TYPES.get(content_type.split(";")[0].strip().lower())
        if kind is None or kind == "apply":
            raise errors.unsupported_media_type(content_type)
        doc = _decode_patch(kind, await request.read())

        def patched(current: dict[str, Any]) -> Any:
            return _apply(kind, to_scale(res, current), doc, res, "")
        return await _write(registry, res, ns, name, patched, dry_run)
    raise errors.method_not_allowed(f"{request.method} is not supported on scale")
