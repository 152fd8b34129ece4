"""ControllerRefs (Kubernetes' controller_ref_manager.go): the ownerReference a
controller puts on what it manages, and claiming objects by selector: adopt
orphans the selector matches, release owned objects it no longer matches, never
touch what another controller owns."""
from __future__ import annotations

import datetime as dt
from typing import Any, Callable

from kubeling import errors
from kubeling.client import Client
from kubeling.resources import Resource


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller") is True:
            return ref
    return None


def owner_ref(owner: dict[str, Any]) -> dict[str, Any]:
    meta = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"],
            "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}


def is_pod_ready(pod: dict[str, Any]) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def _ready_since(pod: dict[str, Any]) -> dt.datetime | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready" and cond.get("status") == "True":
            try:
                return dt.datetime.fromisoformat(str(cond.get("lastTransitionTime")).replace("Z", "+00:00"))
            except ValueError:
                return None
    return None


def is_pod_available(pod: dict[str, Any], min_ready_seconds: int, now: dt.datetime | None = None) -> bool:
    """Ready for at least minReadySeconds (podutil.IsPodAvailable)."""
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = _ready_since(pod)
    now = now or dt.datetime.now(dt.timezone.utc)
    return since is not None and since + dt.timedelta(seconds=min_ready_seconds) <= now


def is_active(pod: dict[str, Any]) -> bool:
    """Not finished and not being deleted (controller.FilterActivePods)."""
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") \
        and not (pod.get("metadata") or {}).get("deletionTimestamp")


async def claim(client: Client, res: Resource, owner: dict[str, Any], candidates: list[dict[str, Any]],
                selects: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """The candidates `owner` controls after adopting and releasing; patches as needed."""
    uid = owner["metadata"]["uid"]
    owner_deleting = bool(owner["metadata"].get("deletionTimestamp"))
    claimed = []
    for obj in candidates:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        ref = controller_of(obj)
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if selects(labels) or owner_deleting:
                claimed.append(obj)
                continue
            await _release(client, res, obj, uid)
            continue
        if owner_deleting or meta.get("deletionTimestamp") or not selects(labels):
            continue
        adopted = await _adopt(client, res, obj, owner)
        if adopted is not None:
            claimed.append(adopted)
    return claimed


async def _adopt(client: Client, res: Resource, obj: dict[str, Any], owner: dict[str, Any]
                 ) -> dict[str, Any] | None:
    meta = obj["metadata"]
    patch = {"metadata": {"ownerReferences": [owner_ref(owner)], "uid": meta["uid"]}}
    try:
        return await client.patch(res, meta["name"], patch, meta.get("namespace"), patch_type="strategic")
    except errors.ApiError as exc:
        if exc.code in (404, 409, 422):
            return None  # gone, or changed under us: the next sync decides again
        raise


async def _release(client: Client, res: Resource, obj: dict[str, Any], uid: str) -> None:
    meta = obj["metadata"]
    patch = {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": uid}], "uid": meta["uid"]}}
    try:
        await client.patch(res, meta["name"], patch, meta.get("namespace"), patch_type="strategic")
    except errors.ApiError as exc:
        if exc.code not in (404, 409, 422):
            raise
