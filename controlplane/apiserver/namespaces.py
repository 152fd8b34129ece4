"""A watch-fed cache of Namespaces, so a create does not cost an etcd read.

Like Kubernetes' NamespaceLifecycle admission: trust the cache when it knows the
namespace, ask the registry when it does not (a namespace created a moment ago)."""
from __future__ import annotations

from typing import Any, Protocol

from kubeling.resources import BY_PLURAL, Resource

from .cache import ResourceCache, Source

NAMESPACES = BY_PLURAL[("", "namespaces")]


class Registry(Source, Protocol):
    async def find(self, res: Resource, ns: str | None, name: str) -> dict[str, Any] | None: ...


class NamespaceCache:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.cache = ResourceCache(registry, NAMESPACES)

    async def start(self) -> None:
        await self.cache.start()

    async def stop(self) -> None:
        await self.cache.stop()

    async def get(self, name: str) -> dict[str, Any] | None:
        ns = self.cache.get("", name)
        if ns is not None:
            return ns
        return await self.registry.find(NAMESPACES, None, name)
