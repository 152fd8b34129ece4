"""NodeRestriction: the checks on a node's writes that need the object itself.

The authorizer let a node through on attributes alone (create a Node or a Lease,
update some pod's status, delete some pod); here, before the write, the object
decides, as Kubernetes' plugin/pkg/admission/noderestriction does:
- a node creates only the Node and the Lease named after itself;
- it updates the status of, and deletes, only pods bound to it (spec.nodeName);
- it does not change its Node's taints (what would steer pods to or away from it).
"""
from __future__ import annotations

import json
from typing import Any

import yaml

from kubeling import errors
from kubeling.resources import BY_PLURAL

from .authn import UserInfo
from .authz import COORD, NODE_LEASE_NAMESPACE, Attributes
from .registry import Registry


def _forbidden(a: Attributes, name: str, message: str) -> errors.ApiError:
    qualified = f"{a.resource}.{a.group}" if a.group else a.resource
    return errors.ApiError(403, "Forbidden", f'{qualified} "{name}" is forbidden: {message}',
                           {"name": name, "kind": a.resource, **({"group": a.group} if a.group else {})})


def _decode(raw: bytes, content_type: str) -> Any:
    """The request body as the handler will decode it; None when it cannot (the
    handler then answers 400 itself)."""
    try:
        if "yaml" in content_type:
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError):
        return None


def _body_name(body: Any) -> str:
    meta = body.get("metadata") if isinstance(body, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else ""


async def admit(user: UserInfo, a: Attributes, registry: Registry, read_body: Any, content_type: str) -> None:
    """Raise a 403 ApiError when node `user` may not make this write.
    `read_body` is an awaitable factory of the raw request body (read only when needed)."""
    node = user.node_name
    if node is None:
        return
    if a.group == "" and a.resource == "nodes" and not a.subresource:
        if a.verb == "create":
            name = _body_name(_decode(await read_body(), content_type))
            if name != node:
                raise _forbidden(a, name, f'node "{node}" is not allowed to modify node "{name}"')
        elif a.verb == "update":
            body = _decode(await read_body(), content_type)
            await _no_taint_change(a, registry, node, body)
        return
    if a.group == COORD and a.resource == "leases" and a.verb == "create":
        name = _body_name(_decode(await read_body(), content_type))
        if a.namespace != NODE_LEASE_NAMESPACE or name != node:
            raise _forbidden(a, name, "can only access node lease with the same name as the requesting node")
        return
    if a.group == "" and a.resource == "pods" and a.name:
        if a.subresource == "status" and a.verb in ("update", "patch"):
            refusal = f'node "{node}" can only update pod status for pods with spec.nodeName set to itself'
        elif not a.subresource and a.verb == "delete":
            refusal = f'node "{node}" can only delete pods with spec.nodeName set to itself'
        else:
            return
        try:
            pod = await registry.get(BY_PLURAL[("", "pods")], a.namespace, a.name)
        except errors.ApiError:
            return  # not found: the handler answers 404
        # spec.nodeName never changes once set, so this check cannot go stale before the write.
        if ((pod.get("spec") or {}).get("nodeName") or "") != node:
            raise _forbidden(a, a.name, refusal)


async def _no_taint_change(a: Attributes, registry: Registry, node: str, body: Any) -> None:
    if not isinstance(body, dict):
        return
    try:
        current = await registry.get(BY_PLURAL[("", "nodes")], None, node)
    except errors.ApiError:
        return
    old = (current.get("spec") or {}).get("taints") or []
    spec = body.get("spec")
    new = (spec.get("taints") or []) if isinstance(spec, dict) else []
    if old != new:
        raise _forbidden(a, node, f'node "{node}" is not allowed to modify taints')
