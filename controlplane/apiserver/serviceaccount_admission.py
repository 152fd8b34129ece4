"""ServiceAccount admission (Kubernetes' plugin/pkg/admission/serviceaccount), for pods
being created:
- a pod that names no ServiceAccount runs as `default`;
- the ServiceAccount must exist (403 otherwise, worded as Kubernetes words it);
- unless the pod or its ServiceAccount says `automountServiceAccountToken: false`,
  the pod gets the projected volume `kube-api-access-<5 random>` (a bound token the
  node asks for, the cluster CA from the `kube-root-ca.crt` ConfigMap, the namespace
  from the downward API) mounted read-only at the usual path in every container.
"""
from __future__ import annotations

import secrets
from typing import Any

from kubeling import errors
from kubeling.resources import BY_PLURAL, Resource

DEFAULT_SA = "default"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_PREFIX = "kube-api-access-"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
# 1 hour + 7 s: kubelet's tokens ask for this much; the odd 7 marks them as such.
TOKEN_EXPIRATION = 3607
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def api_access_volume(name: str) -> dict[str, Any]:
    return {"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}}


def _forbidden(pod_name: str, message: str) -> errors.ApiError:
    return errors.ApiError(403, "Forbidden", f'pods "{pod_name}" is forbidden: {message}',
                           {"name": pod_name, "kind": "pods"})


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for field in ("initContainers", "containers", "ephemeralContainers"):
        items = spec.get(field)
        if isinstance(items, list):
            out.extend(c for c in items if isinstance(c, dict))
    return out


async def admit(registry: Any, res: Resource, obj: dict[str, Any]) -> None:
    """Mutate (and check) a pod being created; other resources pass."""
    if res.group != "" or res.plural != "pods":
        return
    meta = obj.get("metadata") or {}
    if (meta.get("annotations") or {}).get(MIRROR_ANNOTATION):
        return  # mirror pods may not use ServiceAccounts; nothing to add
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return  # validation answers
    name = spec.get("serviceAccountName") or spec.get("serviceAccount") or DEFAULT_SA
    if not isinstance(name, str):
        return
    spec["serviceAccountName"] = name
    spec["serviceAccount"] = name  # the deprecated field mirrors it, as the API does
    ns = meta.get("namespace") or ""
    try:
        sa = await registry.get(BY_PLURAL[("", "serviceaccounts")], ns, name)
    except errors.ApiError as exc:
        if exc.code != 404:
            raise
        raise _forbidden(meta.get("name") or "",
                         f'error looking up service account {ns}/{name}: serviceaccount "{name}" not found')
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        automount = sa.get("automountServiceAccountToken")
    if automount is False:
        return
    volumes = spec.get("volumes")
    if volumes is None:
        volumes = spec["volumes"] = []
    if not isinstance(volumes, list):
        return
    taken = {v.get("name") for v in volumes if isinstance(v, dict)}
    vol_name = ""
    while not vol_name or vol_name in taken:
        vol_name = VOLUME_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(5))
    added = False
    for c in _containers(spec):
        mounts = c.get("volumeMounts")
        if mounts is None:
            mounts = c["volumeMounts"] = []
        if not isinstance(mounts, list):
            continue
        if any(isinstance(m, dict) and m.get("mountPath") == MOUNT_PATH for m in mounts):
            continue  # the pod mounts its own credentials there
        mounts.append({"name": vol_name, "readOnly": True, "mountPath": MOUNT_PATH})
        added = True
    if added:
        volumes.append(api_access_volume(vol_name))
