"""The storage interface the registry, the watch streams and the caches are written
against (kube-apiserver's storage.Interface); storage.py implements it over etcd.

Objects a Store hands out (get, list, watch events) belong to it: a caller that wants
to change one copies it first, so a store may share them (a watch cache, one object
sent to many watchers). mutation_detector.py checks this.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol


class KeyExists(Exception):
    pass


class KeyMissing(Exception):
    pass


class ClaimTaken(Exception):
    """An allocation key (an IP, a port) is held by another object."""

    def __init__(self, claim: str) -> None:
        super().__init__(claim)
        self.claim = claim


class RevisionMismatch(Exception):
    """The key changed since it was read; carries the current state if any."""

    def __init__(self, current: dict[str, Any] | None) -> None:
        super().__init__("revision mismatch")
        self.current = current


class Compacted(Exception):
    def __init__(self, revision: int) -> None:
        super().__init__(f"revision compacted below {revision}")
        self.revision = revision


class WatchLost(Exception):
    """The watch broke (etcd died, restarted or the stream failed). Events up to the
    last one delivered are complete; a new watch from the next revision resumes."""


@dataclass
class WatchEvent:
    type: str  # PUT or DELETE
    key: str
    obj: dict[str, Any] | None  # the new state for PUT
    prev: dict[str, Any] | None  # the state before, when the store still had it
    revision: int


class Store(Protocol):
    """Keys map to objects; an object's metadata.resourceVersion is the revision of its
    last write. Writes are conditional (create: the key is absent; update, delete: it is
    still at the revision read) and take or drop allocation keys ("claims") atomically."""

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def list(self, prefix: str) -> tuple[list[dict[str, Any]], int]:
        """All objects under a prefix, and the revision they were read at."""
        ...

    async def items(self, prefix: str) -> tuple[list[tuple[str, dict[str, Any]]], int]:
        """(key, object) of everything under a prefix, and the revision they were read at."""
        ...

    async def create(self, key: str, obj: dict[str, Any], claims: tuple[str, ...] = ()) -> dict[str, Any]:
        """Store obj (KeyExists, ClaimTaken); returns it with its resourceVersion set."""
        ...

    async def update(self, key: str, obj: dict[str, Any], revision: int,
                     claims: tuple[str, ...] = (), releases: tuple[str, ...] = ()) -> dict[str, Any]:
        """Store obj if the key is at `revision` (RevisionMismatch, KeyMissing, ClaimTaken)."""
        ...

    async def delete(self, key: str, revision: int, releases: tuple[str, ...] = ()) -> int:
        """Remove the key if at `revision`; returns the deletion's revision."""
        ...

    async def revision(self) -> int:
        """The store's current revision."""
        ...

    async def claimed(self, prefix: str) -> set[str]:
        """The names of the allocation keys held under a prefix."""
        ...

    async def count(self, prefix: str) -> int:
        """How many keys are under a prefix, without reading them (apiserver_storage_objects)."""
        ...

    def watch(self, prefix: str, start_revision: int, stop: asyncio.Event | None = None,
              match: Callable[[dict[str, Any]], bool] | None = None) -> AsyncIterator[WatchEvent]:
        """Events under prefix from start_revision on, in order; raises Compacted when
        that is too old and WatchLost when the stream breaks. Never ends quietly.
        `match` (the selectors) lets a store leave out events whose object matches
        neither before nor after; one that does not filter may pass them all."""
        ...


class StoreWrapper:
    """A Store that hands every call to `inner`: the base of the stores that wrap another (the
    watch cache, the mutation detector), which override only what they change."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    async def connect(self) -> None:
        await self.inner.connect()

    async def close(self) -> None:
        await self.inner.close()

    async def get(self, key: str) -> dict[str, Any] | None:
        return await self.inner.get(key)

    async def list(self, prefix: str) -> tuple[list[dict[str, Any]], int]:
        return await self.inner.list(prefix)

    async def items(self, prefix: str) -> tuple[list[tuple[str, dict[str, Any]]], int]:
        return await self.inner.items(prefix)

    async def create(self, key: str, obj: dict[str, Any], claims: tuple[str, ...] = ()) -> dict[str, Any]:
        return await self.inner.create(key, obj, claims)

    async def update(self, key: str, obj: dict[str, Any], revision: int,
                     claims: tuple[str, ...] = (), releases: tuple[str, ...] = ()) -> dict[str, Any]:
        return await self.inner.update(key, obj, revision, claims, releases)

    async def delete(self, key: str, revision: int, releases: tuple[str, ...] = ()) -> int:
        return await self.inner.delete(key, revision, releases)

    async def revision(self) -> int:
        return await self.inner.revision()

    async def claimed(self, prefix: str) -> set[str]:
        return await self.inner.claimed(prefix)

    async def count(self, prefix: str) -> int:
        return await self.inner.count(prefix)

    def watch(self, prefix: str, start_revision: int, stop: asyncio.Event | None = None,
              match: Callable[[dict[str, Any]], bool] | None = None) -> AsyncIterator[WatchEvent]:
        return self.inner.watch(prefix, start_revision, stop, match)
