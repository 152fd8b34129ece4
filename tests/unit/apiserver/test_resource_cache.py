"""The apiserver's list-and-watch caches (namespaces, RBAC policy) over the registry:
they follow changes, resume after a lost watch and list again after a compaction."""
from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from controlplane.apiserver import cache
from controlplane.apiserver.cache import ResourceCache
from controlplane.apiserver.registry import Registry
from kubeling.resources import lookup

from .memory_store import MemoryStore

NAMESPACES = lookup("namespaces")
ROLES = lookup("roles")


async def until(cond: Callable[[], bool], what: str, timeout: float = 5) -> None:
    async def poll() -> None:
        while not cond():
            await asyncio.sleep(0.01)
    try:
        await asyncio.wait_for(poll(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"not within {timeout}s: {what}") from None


@pytest.fixture
async def setup(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(cache, "RETRY_DELAY", 0.01)
    store = MemoryStore()
    registry = Registry(store)  # type: ignore[arg-type]
    await registry.namespaces.start()
    for ns in ("a", "b"):
        await registry.create(NAMESPACES, None, {"metadata": {"name": ns}})
    roles = ResourceCache(registry, ROLES)
    await roles.start()
    yield store, registry, roles
    await roles.stop()
    await registry.namespaces.stop()


def role(name: str) -> dict:
    return {"metadata": {"name": name}, "rules": []}


async def test_follows_creates_updates_and_deletes(setup):
    store, registry, roles = setup
    await registry.create(ROLES, "a", role("r"))
    await registry.create(ROLES, "b", role("r"))
    await until(lambda: roles.get("a", "r") and roles.get("b", "r"), "both roles cached")
    await registry.patch(ROLES, "a", "r", "application/merge-patch+json", b'{"metadata":{"labels":{"x":"1"}}}')
    await until(lambda: (roles.get("a", "r")["metadata"].get("labels") or {}).get("x") == "1", "the update")
    await registry.delete(ROLES, "a", "r")
    await until(lambda: roles.get("a", "r") is None, "the deletion")
    assert [r["metadata"]["namespace"] for r in roles.in_namespace("b")] == ["b"]
    assert (await registry.namespaces.get("a")) is not None and (await registry.namespaces.get("zz")) is None


async def test_resumes_after_a_lost_watch_and_relists_after_a_compaction(setup):
    store, registry, roles = setup
    store.break_watches()
    await registry.create(ROLES, "a", role("after-break"))
    await until(lambda: roles.get("a", "after-break") is not None, "a change after the watch was lost")
    # Everything up to now is compacted away while the cache is not watching: a re-watch
    # gets 410 and the cache lists again.
    store.compacted = store.rev + 1
    store.break_watches()
    await registry.create(ROLES, "b", role("after-compaction"))
    await registry.delete(ROLES, "a", "after-break")
    await until(lambda: roles.get("b", "after-compaction") is not None and roles.get("a", "after-break") is None,
                "the state after a relist")
