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
    if a.group == "" and a.resource == "secrets":
        await _node_reads_secret(a, registry, node)
        return
    if a.group == "" and a.resource == "serviceaccounts" and a.subresource == "token":
        await _node_requests_token(a, registry, node, _decode(await read_body(), content_type))
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


def _pod_secret_names(pod: dict[str, Any]) -> set[str]:
    """Every Secret a pod references: volumes, projected sources, env, envFrom, image pull secrets
    (the edges Kubernetes' node authorizer graph holds)."""
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    names: set[str] = set()
    for ref in spec.get("imagePullSecrets") or []:
        if isinstance(ref, dict) and ref.get("name"):
            names.add(ref["name"])
    for vol in spec.get("volumes") or []:
        if not isinstance(vol, dict):
            continue
        if isinstance(vol.get("secret"), dict) and vol["secret"].get("secretName"):
            names.add(vol["secret"]["secretName"])
        for src in ((vol.get("projected") or {}).get("sources") or []) if isinstance(vol.get("projected"), dict) else []:
            if isinstance(src, dict) and isinstance(src.get("secret"), dict) and src["secret"].get("name"):
                names.add(src["secret"]["name"])
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(field) or []:
            if not isinstance(c, dict):
                continue
            for src in c.get("envFrom") or []:
                ref = src.get("secretRef") if isinstance(src, dict) else None
                if isinstance(ref, dict) and ref.get("name"):
                    names.add(ref["name"])
            for ev in c.get("env") or []:
                vf = ev.get("valueFrom") if isinstance(ev, dict) else None
                ref = vf.get("secretKeyRef") if isinstance(vf, dict) else None
                if isinstance(ref, dict) and ref.get("name"):
                    names.add(ref["name"])
    return names


async def _pods_on_node(registry: Registry, namespace: str, node: str) -> list[dict[str, Any]]:
    listed = await registry.list(BY_PLURAL[("", "pods")], namespace, field_selector=f"spec.nodeName={node}")
    return listed["items"]


def _no_relationship(a: Attributes, node: str) -> errors.ApiError:
    qualified = f"{a.resource}.{a.group}" if a.group else a.resource
    target = f'{qualified} "{a.name}"' if a.name else qualified
    scope = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    return errors.ApiError(
        403, "Forbidden",
        f'{target} is forbidden: User "system:node:{node}" cannot {a.verb} resource "{a.full_resource}" '
        f'in API group "{a.group}" {scope}: no relationship found between node \'{node}\' and this object',
        {"kind": a.resource, **({"name": a.name} if a.name else {})})


async def _node_reads_secret(a: Attributes, registry: Registry, node: str) -> None:
    """A node reads a Secret only by name, and only one a pod bound to it references
    (checked at request time instead of Kubernetes' graph: same answer, one list)."""
    if a.verb != "get" or not a.name:
        raise _no_relationship(a, node)
    for pod in await _pods_on_node(registry, a.namespace, node):
        if a.name in _pod_secret_names(pod):
            return
    raise _no_relationship(a, node)


async def _node_requests_token(a: Attributes, registry: Registry, node: str, body: Any) -> None:
    """NodeRestriction on TokenRequest: bound to a pod (with its uid) that runs on this
    node as this ServiceAccount."""
    spec = body.get("spec") if isinstance(body, dict) and isinstance(body.get("spec"), dict) else {}
    ref = spec.get("boundObjectRef")
    if not isinstance(ref, dict) or ref.get("kind") != "Pod":
        raise _forbidden(a, a.name, "node requested token not bound to a pod")
    if not ref.get("uid"):
        raise _forbidden(a, a.name, "node requested token with a pod binding without a uid")
    try:
        pod = await registry.get(BY_PLURAL[("", "pods")], a.namespace, ref.get("name") or "")
    except errors.ApiError:
        raise _forbidden(a, a.name, "node requested token bound to a pod that does not exist") from None
    pspec = pod.get("spec") or {}
    if pod["metadata"].get("uid") != ref["uid"]:
        raise _forbidden(a, a.name, "the UID in the bound object reference does not match the pod")
    if (pspec.get("nodeName") or "") != node:
        raise _forbidden(a, a.name, "node requested token bound to a pod scheduled on a different node")
    if (pspec.get("serviceAccountName") or "default") != a.name:
        raise _forbidden(a, a.name, "node requested token for a service account the pod does not use")
