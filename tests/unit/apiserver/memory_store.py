"""An in-memory Store (store.py's protocol) for tests of the registry and the HTTP layer:
conditional writes, allocation claims, revisions and watches, as the etcd store has them.
Every read decodes a fresh object, as the etcd store does."""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from controlplane.apiserver.store import (ClaimTaken, Compacted, KeyExists, KeyMissing, RevisionMismatch,
                                          WatchEvent, WatchLost)


class MemoryStore:
    def __init__(self) -> None:
        self.rev = 1
        self.data: dict[str, tuple[str, int]] = {}  # key -> (JSON without resourceVersion, mod revision)
        self.claims: dict[str, str] = {}
        self.events: list[tuple[str, str, str | None, tuple[str, int] | None, int]] = []
        self.compacted = 0
        self.breaks = 0  # break_watches() count: a watch started before it raises WatchLost
        self._changed: asyncio.Event | None = None

    @staticmethod
    def _decode(raw: tuple[str, int]) -> dict[str, Any]:
        obj = json.loads(raw[0])
        obj.setdefault("metadata", {})["resourceVersion"] = str(raw[1])
        return obj

    @staticmethod
    def _encode(obj: dict[str, Any]) -> str:
        meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
        return json.dumps({**obj, "metadata": meta})

    def _commit(self, typ: str, key: str, value: str | None, prev: tuple[str, int] | None) -> int:
        self.rev += 1
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = (value, self.rev)
        self.events.append((typ, key, value, prev, self.rev))
        if self._changed is not None:
            self._changed.set()
        return self.rev

    def break_watches(self) -> None:
        """Every open watch fails, as when etcd restarts."""
        self.breaks += 1
        if self._changed is not None:
            self._changed.set()

    async def connect(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def get(self, key: str) -> dict[str, Any] | None:
        raw = self.data.get(key)
        return self._decode(raw) if raw else None

    async def list(self, prefix: str) -> tuple[list[dict[str, Any]], int]:
        items, rev = await self.items(prefix)
        return [obj for _, obj in items], rev

    async def items(self, prefix: str) -> tuple[list[tuple[str, dict[str, Any]]], int]:
        return [(k, self._decode(v)) for k, v in sorted(self.data.items()) if k.startswith(prefix)], self.rev

    async def create(self, key: str, obj: dict[str, Any], claims: tuple[str, ...] = ()) -> dict[str, Any]:
        if key in self.data:
            raise KeyExists(key)
        for c in claims:
            if c in self.claims:
                raise ClaimTaken(c)
        self.claims.update({c: key for c in claims})
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._commit("PUT", key, self._encode(obj), None))
        return obj

    def _check(self, key: str, revision: int) -> tuple[str, int]:
        raw = self.data.get(key)
        if raw is None:
            raise KeyMissing(key)
        if raw[1] != revision:
            raise RevisionMismatch(self._decode(raw))
        return raw

    async def update(self, key: str, obj: dict[str, Any], revision: int,
                     claims: tuple[str, ...] = (), releases: tuple[str, ...] = ()) -> dict[str, Any]:
        prev = self._check(key, revision)
        for c in claims:
            if c in self.claims:
                raise ClaimTaken(c)
        self.claims.update({c: key for c in claims})
        for r in releases:
            self.claims.pop(r, None)
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._commit("PUT", key, self._encode(obj), prev))
        return obj

    async def delete(self, key: str, revision: int, releases: tuple[str, ...] = ()) -> int:
        prev = self._check(key, revision)
        for r in releases:
            self.claims.pop(r, None)
        return self._commit("DELETE", key, None, prev)

    async def revision(self) -> int:
        return self.rev

    async def claimed(self, prefix: str) -> set[str]:
        return {c[len(prefix):] for c in self.claims if c.startswith(prefix)}

    async def count(self, prefix: str) -> int:
        return sum(1 for k in self.data if k.startswith(prefix))

    async def watch(self, prefix: str, start_revision: int, stop: asyncio.Event | None = None,
                    match: Any = None) -> AsyncIterator[WatchEvent]:
        if start_revision <= self.compacted:
            raise Compacted(self.compacted)
        if self._changed is None:
            self._changed = asyncio.Event()
        i, breaks = 0, self.breaks
        while True:
            if self.breaks != breaks:
                raise WatchLost("the store broke its watches")
            while i < len(self.events):
                typ, key, value, prev, rev = self.events[i]
                i += 1
                if rev < start_revision or not key.startswith(prefix):
                    continue
                obj = self._decode((value, rev)) if value is not None else None
                yield WatchEvent(typ, key, obj, self._decode(prev) if prev else None, rev)
            self._changed.clear()
            await self._changed.wait()
