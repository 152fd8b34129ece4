"""A container's environment as kubelet builds it: envFrom first, then env in
order with $(VAR) expansion against what came before; valueFrom reads the
downward API (fieldRef, resourceFieldRef), ConfigMaps and Secrets (envFrom too)."""
from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable
from typing import Any

from agent.container_spec import expand
from kubeling.quantity import cpu_millis, to_bytes

ConfigMapGetter = Callable[[str, str], Awaitable[dict[str, Any] | None]]

_LABEL_REF = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ConfigError(Exception):
    """The container cannot be configured (kubelet's CreateContainerConfigError)."""


def field_value(pod: dict[str, Any], path: str, node_name: str = "", host_ip: str = "") -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    m = _LABEL_REF.match(path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName") or node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"), "status.hostIP": status.get("hostIP") or host_ip,
    }
    if path in simple:
        return str(simple[path] or "")
    if path == "status.podIPs":
        return ",".join(i.get("ip", "") for i in status.get("podIPs") or [])
    if path == "status.hostIPs":
        return ",".join(i.get("ip", "") for i in status.get("hostIPs") or []) or host_ip
    if path == "metadata.labels":
        return "\n".join(f'{k}="{v}"' for k, v in sorted((meta.get("labels") or {}).items()))
    if path == "metadata.annotations":
        return "\n".join(f'{k}="{v}"' for k, v in sorted((meta.get("annotations") or {}).items()))
    raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")


def resource_value(container: dict[str, Any], ref: dict[str, Any], node_alloc: dict[str, str]) -> str:
    resource = ref.get("resource", "")
    kind, _, name = resource.partition(".")
    res = container.get("resources") or {}
    value = (res.get(kind) or {}).get(name)
    if value is None and kind == "limits":
        value = node_alloc.get(name)  # no limit: the node's allocatable, as kubelet
    if value is None:
        return "0"
    divisor = ref.get("divisor") or "1"
    if name == "cpu":
        d = cpu_millis(divisor) or 1
        return str(-(-cpu_millis(value) // d))  # ceiling, as kubelet
    d = to_bytes(divisor) or 1
    return str(-(-to_bytes(value) // d))


async def container_env(pod: dict[str, Any], container: dict[str, Any], get_configmap: ConfigMapGetter,
                        *, node_name: str = "", host_ip: str = "",
                        node_alloc: dict[str, str] | None = None,
                        get_secret: ConfigMapGetter | None = None) -> list[tuple[str, str]]:
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    env: dict[str, str] = {}
    cache: dict[str, dict[str, Any] | None] = {}

    async def configmap(name: str) -> dict[str, Any] | None:
        if name not in cache:
            cache[name] = await get_configmap(ns, name)
        return cache[name]

    secrets_seen: dict[str, dict[str, str] | None] = {}

    async def secret(name: str) -> dict[str, str] | None:
        """The Secret's data decoded (text); None when it does not exist."""
        if name not in secrets_seen:
            obj = await get_secret(ns, name) if get_secret is not None else None
            secrets_seen[name] = None if obj is None else {
                k: base64.b64decode(v or "").decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
        return secrets_seen[name]

    for src in container.get("envFrom") or []:
        prefix = src.get("prefix") or ""
        ref = src.get("configMapRef")
        if ref:
            cm = await configmap(ref.get("name", ""))
            if cm is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'configmap "{ref.get("name")}" not found')
            for k, v in (cm.get("data") or {}).items():
                env[prefix + k] = str(v)
            continue
        ref = src.get("secretRef")
        if ref:
            secret_data = await secret(ref.get("name", ""))
            if secret_data is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'secret "{ref.get("name")}" not found')
            for k, v in secret_data.items():
                env[prefix + k] = v

    for ev in container.get("env") or []:
        name = ev.get("name", "")
        if "valueFrom" not in ev or ev.get("valueFrom") is None:
            env[name] = expand(str(ev.get("value") or ""), env)
            continue
        source = ev["valueFrom"]
        if source.get("fieldRef"):
            env[name] = field_value(pod, source["fieldRef"].get("fieldPath", ""), node_name, host_ip)
        elif source.get("resourceFieldRef"):
            env[name] = resource_value(container, source["resourceFieldRef"], node_alloc or {})
        elif source.get("configMapKeyRef"):
            ref = source["configMapKeyRef"]
            cm = await configmap(ref.get("name", ""))
            key = ref.get("key", "")
            if cm is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'configmap "{ref.get("name")}" not found')
            data = cm.get("data") or {}
            if key not in data:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'couldn\'t find key {key} in ConfigMap {ns}/{ref.get("name")}')
            env[name] = str(data[key])
        elif source.get("secretKeyRef"):
            ref = source["secretKeyRef"]
            secret_data = await secret(ref.get("name", ""))
            key = ref.get("key", "")
            if secret_data is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'secret "{ref.get("name")}" not found')
            if key not in secret_data:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'couldn\'t find key {key} in Secret {ns}/{ref.get("name")}')
            env[name] = secret_data[key]
    return list(env.items())
