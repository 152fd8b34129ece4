"""Writes pod status to the API server, only when it changed (kubelet's status
manager), and makes the final delete of a terminated pod."""
from __future__ import annotations

import logging
from typing import Any

from kubeling import errors
from kubeling.client import Client
from kubeling.resources import lookup

log = logging.getLogger("agent.status")
PODS = lookup("pods")


class StatusManager:
    def __init__(self, client: Client) -> None:
        self.client = client
        self._last: dict[str, dict[str, Any]] = {}
        self.patches = 0

    def last(self, uid: str) -> dict[str, Any] | None:
        return self._last.get(uid)

    async def set(self, pod: dict[str, Any], status: dict[str, Any]) -> bool:
        """Patch pods/<name>/status when `status` differs from what was last
        written (or, after a restart, from what the API holds). True if sent."""
        meta = pod["metadata"]
        uid = meta["uid"]
        known = self._last.get(uid)
        if known is None and (pod.get("status") or {}) == status:
            self._last[uid] = status
            return False
        if known == status:
            return False
        try:
            await self.client.patch(PODS, meta["name"], {"metadata": {"uid": uid}, "status": status},
                                    meta["namespace"], subresource="status")
        except errors.ApiError as exc:
            if exc.code in (404, 409):
                return False
            log.warning("status of pod %s/%s not written: %s", meta["namespace"], meta["name"], exc.message)
            return False
        self._last[uid] = status
        self.patches += 1
        return True

    async def delete_pod(self, pod: dict[str, Any]) -> None:
        """The agent's confirmation that the pod is gone from the node."""
        meta = pod["metadata"]
        try:
            await self.client.delete(PODS, meta["name"], meta["namespace"], grace_period=0, uid=meta["uid"])
        except errors.ApiError as exc:
            if exc.code not in (404, 409):
                raise
        self.forget(meta["uid"])

    def forget(self, uid: str) -> None:
        self._last.pop(uid, None)
