"""An informer's cache seen through our own recent writes.

After a create, update or delete the watch event arrives a little later; a
sync in between would otherwise work from the old object (a PUT with a stale
resourceVersion, or a second slice created for the same endpoints). Each write
is remembered with its resourceVersion (an etcd revision, so ordered) until the
informer has caught up with it.
"""
from __future__ import annotations

from typing import Any

from kubeling.informer import Informer


def _rv(obj: dict[str, Any] | None) -> int:
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


class OwnWrites:
    def __init__(self, informer: Informer) -> None:
        self.informer = informer
        self._written: dict[tuple[str, str], dict[str, Any]] = {}
        self._deleted: dict[tuple[str, str], int] = {}

    def wrote(self, obj: dict[str, Any]) -> None:
        k = _key(obj)
        self._written[k] = obj
        self._deleted.pop(k, None)

    def deleted(self, obj: dict[str, Any]) -> None:
        k = _key(obj)
        self._written.pop(k, None)
        self._deleted[k] = max(_rv(obj), _rv(self.informer.cache.get(k)))

    def observed_delete(self, obj: dict[str, Any]) -> None:
        """The informer saw `obj` deleted: a write of ours it had seen goes with it
        (for a cache that no longer holds the key, our copy would look newer)."""
        k = _key(obj)
        mine = self._written.get(k)
        if mine is not None and _rv(mine) <= _rv(obj):
            del self._written[k]

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._resolve((namespace or "", name), self.informer.cache.get((namespace or "", name)))

    def _resolve(self, k: tuple[str, str], cached: dict[str, Any] | None) -> dict[str, Any] | None:
        mine = self._written.get(k)
        if mine is not None:
            if cached is not None and _rv(cached) >= _rv(mine):
                del self._written[k]  # the informer has caught up
                return cached
            return mine
        gone = self._deleted.get(k)
        if gone is not None:
            if cached is None or _rv(cached) > gone:
                del self._deleted[k]  # the delete was seen, or the name was reused since
                return cached
            return None
        return cached

    def items(self) -> list[dict[str, Any]]:
        keys = set(self.informer.cache) | set(self._written)
        out = []
        for k in keys:
            obj = self._resolve(k, self.informer.cache.get(k))
            if obj is not None:
                out.append(obj)
        return out
