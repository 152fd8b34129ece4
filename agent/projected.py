"""configMap, secret, downwardAPI and projected volumes on the node, as kubelet's
volume plugins: what each volume should hold is computed from the API objects (and,
for a serviceAccountToken source, a token the agent requests for the pod) and
written with the AtomicWriter. The agent calls `ObjectVolumes.sync(pod)` on every
pod sync (a resync comes at least every 10 s), so an object's change reaches the
files in place within that bound.
"""
from __future__ import annotations

import base64
import logging
import os
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import atomic_writer
from agent.atomic_writer import FileProjection
from agent.envvars import ConfigError, field_value, resource_value
from kubeling import errors

log = logging.getLogger("agent.volumes")

DEFAULT_MODE = 0o644
PLUGIN_DIRS = {"configMap": "kubernetes.io~configmap", "secret": "kubernetes.io~secret",
               "downwardAPI": "kubernetes.io~downward-api", "projected": "kubernetes.io~projected"}
DEFAULT_TOKEN_EXPIRATION = 3600
MAX_TOKEN_AGE = 24 * 3600

Getter = Callable[[str, str], Awaitable[dict[str, Any] | None]]
TokenRequester = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]


# As kubelet: Secret material (and tokens) live in memory, never on the node's disk.
MEMORY_BACKED = ("secret", "projected")


def _ensure_tmpfs(target: Path) -> None:
    if os.path.ismount(target):
        return
    target.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(target)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise VolumeSetupError(f"mounting tmpfs at {target}: {proc.stderr.strip()}")


class VolumeSetupError(Exception):
    """MountVolume.SetUp failed: the volume's files cannot be made (kubelet's FailedMount)."""


def volume_dir(root: str, uid: str, kind: str, name: str) -> Path:
    return Path(root, "pods", uid, "volumes", PLUGIN_DIRS[kind], name)


def _mode(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o777 else default


def _keyed(ref_kind: str, ns: str, name: str, contents: dict[str, bytes] | None, src: dict[str, Any],
           default_mode: int) -> dict[str, FileProjection]:
    """The files of a configMap or secret source: all keys, or its items (key -> path, mode)."""
    optional = bool(src.get("optional"))
    if contents is None:
        if optional:
            return {}
        raise VolumeSetupError(f'{ref_kind.lower()} "{name}" not found')
    items = src.get("items")
    if not items:
        return {k: FileProjection(v, default_mode) for k, v in contents.items()}
    out = {}
    for item in items:
        key = item.get("key", "")
        if key not in contents:
            if optional:
                continue
            if ref_kind == "Secret":
                raise VolumeSetupError(f"couldn't find key {key} in Secret {ns}/{name}")
            raise VolumeSetupError(f"configmap references non-existent config key: {key}")
        out[item.get("path") or key] = FileProjection(contents[key], _mode(item.get("mode"), default_mode))
    return out


def configmap_contents(cm: dict[str, Any] | None) -> dict[str, bytes] | None:
    if cm is None:
        return None
    out = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    for k, v in (cm.get("binaryData") or {}).items():
        out[k] = base64.b64decode(v)
    return out


def secret_contents(secret: dict[str, Any] | None) -> dict[str, bytes] | None:
    if secret is None:
        return None
    return {k: base64.b64decode(v or "") for k, v in (secret.get("data") or {}).items()}


def downward_payload(pod: dict[str, Any], items: list[dict[str, Any]], default_mode: int,
                     node_name: str = "", host_ip: str = "") -> dict[str, FileProjection]:
    out = {}
    containers = {c.get("name"): c for c in (pod.get("spec") or {}).get("containers") or []}
    for item in items or []:
        path = item.get("path", "")
        try:
            if item.get("fieldRef"):
                value = field_value(pod, item["fieldRef"].get("fieldPath", ""), node_name, host_ip)
            elif item.get("resourceFieldRef"):
                ref = item["resourceFieldRef"]
                container = containers.get(ref.get("containerName")) or {}
                value = resource_value(container, ref, {})
            else:
                continue
        except ConfigError as exc:
            raise VolumeSetupError(str(exc)) from None
        out[path] = FileProjection(value.encode(), _mode(item.get("mode"), default_mode))
    return out


@dataclass
class _Token:
    token: str
    issued: float
    expires: float


class TokenManager:
    """kubelet's token manager: one token per (pod, audience, lifetime), requested through
    TokenRequest bound to the pod, renewed once 80% of its lifetime (or 24 h) has passed."""

    def __init__(self, request: TokenRequester) -> None:
        self.request = request
        self._cache: dict[tuple[str, str, int], _Token] = {}

    def _fresh(self, t: _Token, now: float) -> bool:
        ttl = t.expires - t.issued
        return now < t.issued + 0.8 * ttl and now < t.issued + MAX_TOKEN_AGE

    async def get(self, pod: dict[str, Any], audience: str, expiration: int) -> str:
        meta = pod["metadata"]
        key = (meta["uid"], audience, expiration)
        now = time.time()
        cached = self._cache.get(key)
        if cached is not None and self._fresh(cached, now):
            return cached.token
        sa = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        spec: dict[str, Any] = {"expirationSeconds": expiration,
                                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": meta["name"],
                                                   "uid": meta["uid"]}}
        if audience:
            spec["audiences"] = [audience]
        try:
            answer = await self.request(meta.get("namespace") or "default", sa,
                                        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                         "spec": spec})
        except Exception as exc:
            if cached is not None and now < cached.expires:
                log.warning("token renewal for %s/%s failed, keeping the current one: %s",
                            meta.get("namespace"), meta["name"], exc)
                return cached.token
            raise VolumeSetupError(f"failed to fetch token: {exc}") from None
        token = (answer.get("status") or {}).get("token") or ""
        granted = (answer.get("spec") or {}).get("expirationSeconds") or expiration
        self._cache[key] = _Token(token, now, now + granted)
        return token

    def forget(self, uid: str) -> None:
        for key in [k for k in self._cache if k[0] == uid]:
            del self._cache[key]


class ObjectVolumes:
    def __init__(self, root: str, get_configmap: Getter, get_secret: Getter,
                 request_token: TokenRequester | None, node_name: str = "", host_ip: str = "",
                 memory_backed: bool = False) -> None:
        self.root = root
        self.memory_backed = memory_backed  # tmpfs for secret/projected volumes (needs root)
        self.get_configmap = get_configmap
        self.get_secret = get_secret
        self.tokens = TokenManager(request_token) if request_token is not None else None
        self.node_name = node_name
        self.host_ip = host_ip

    async def payload(self, pod: dict[str, Any], vol: dict[str, Any]) -> tuple[str, dict[str, FileProjection]] | None:
        """(plugin kind, files) of one volume; None for volumes of other kinds."""
        ns = (pod.get("metadata") or {}).get("namespace") or "default"
        if vol.get("configMap") is not None:
            src = vol["configMap"]
            name = src.get("name", "")
            contents = configmap_contents(await self.get_configmap(ns, name))
            return "configMap", _keyed("ConfigMap", ns, name, contents, src,
                                       _mode(src.get("defaultMode"), DEFAULT_MODE))
        if vol.get("secret") is not None:
            src = vol["secret"]
            name = src.get("secretName", "")
            contents = secret_contents(await self.get_secret(ns, name))
            return "secret", _keyed("Secret", ns, name, contents, src, _mode(src.get("defaultMode"), DEFAULT_MODE))
        if vol.get("downwardAPI") is not None:
            src = vol["downwardAPI"]
            return "downwardAPI", downward_payload(pod, src.get("items") or [],
                                                   _mode(src.get("defaultMode"), DEFAULT_MODE),
                                                   self.node_name, self.host_ip)
        if vol.get("projected") is not None:
            src = vol["projected"]
            mode = _mode(src.get("defaultMode"), DEFAULT_MODE)
            files: dict[str, FileProjection] = {}
            for s in src.get("sources") or []:
                if s.get("configMap") is not None:
                    ref = s["configMap"]
                    files.update(_keyed("ConfigMap", ns, ref.get("name", ""),
                                        configmap_contents(await self.get_configmap(ns, ref.get("name", ""))),
                                        ref, mode))
                elif s.get("secret") is not None:
                    ref = s["secret"]
                    files.update(_keyed("Secret", ns, ref.get("name", ""),
                                        secret_contents(await self.get_secret(ns, ref.get("name", ""))), ref, mode))
                elif s.get("downwardAPI") is not None:
                    files.update(downward_payload(pod, s["downwardAPI"].get("items") or [], mode,
                                                  self.node_name, self.host_ip))
                elif s.get("serviceAccountToken") is not None:
                    ref = s["serviceAccountToken"]
                    if self.tokens is None:
                        raise VolumeSetupError("this node cannot request service account tokens")
                    token = await self.tokens.get(pod, ref.get("audience") or "",
                                                  int(ref.get("expirationSeconds") or DEFAULT_TOKEN_EXPIRATION))
                    files[ref.get("path") or "token"] = FileProjection(token.encode(), mode)
            return "projected", files
        return None

    async def sync(self, pod: dict[str, Any]) -> None:
        """Write (or update in place) every object volume of the pod. Raises
        VolumeSetupError naming the first volume that cannot be set up; the others
        are still written."""
        uid = pod["metadata"]["uid"]
        failure: VolumeSetupError | None = None
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            name = vol.get("name", "")
            try:
                got = await self.payload(pod, vol)
                if got is None:
                    continue
                kind, files = got
                target = volume_dir(self.root, uid, kind, name)
                if self.memory_backed and kind in MEMORY_BACKED:
                    _ensure_tmpfs(target)
                if atomic_writer.write(target, files):
                    log.info("volume %s of pod %s/%s written (%d files)", name,
                             pod["metadata"].get("namespace"), pod["metadata"].get("name"), len(files))
            except (VolumeSetupError, atomic_writer.PayloadError, ValueError, errors.ApiError) as exc:
                failure = failure or VolumeSetupError(f'MountVolume.SetUp failed for volume "{name}" : {exc}')
        if failure is not None:
            raise failure

    def forget(self, uid: str) -> None:
        if self.tokens is not None:
            self.tokens.forget(uid)
