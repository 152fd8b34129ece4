"""Watch streams: etcd events turned into Kubernetes watch events.

A watch from resourceVersion N starts at etcd revision N+1; "" or "0" first
sends the current state as ADDED events. Selectors are applied to both the old
and the new state, so an object that stops matching is seen as DELETED and one
that starts matching as ADDED, as Kubernetes' watch cache does.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from kubeling import errors
from kubeling.resources import Resource

from .storage import Compacted, Store, WatchEvent

Matcher = Callable[[dict[str, Any]], bool]


def classify(ev: WatchEvent, match: Matcher) -> tuple[str, dict[str, Any]] | None:
    """The Kubernetes event type for one etcd event, or None when neither the
    old nor the new state matches the selectors."""
    old_ok = ev.prev is not None and match(ev.prev)
    if ev.type == "DELETE":
        if not old_ok or ev.prev is None:
            return None
        obj = ev.prev
        obj["metadata"]["resourceVersion"] = str(ev.revision)
        return "DELETED", obj
    assert ev.obj is not None
    new_ok = match(ev.obj)
    if new_ok and old_ok:
        return "MODIFIED", ev.obj
    if new_ok:
        return "ADDED", ev.obj
    if old_ok:
        return "DELETED", ev.obj
    return None


async def events(store: Store, res: Resource, prefix: str, resource_version: str,
                 match: Matcher) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(type, object) pairs for a watch; raises ApiError(410) when too old."""
    if resource_version in ("", "0"):
        items, rev = await store.list(prefix)
        for obj in items:
            if match(obj):
                yield "ADDED", obj
        start = rev + 1
    else:
        try:
            start = int(resource_version) + 1
        except ValueError:
            raise errors.bad_request(f"invalid resourceVersion: {resource_version!r}")
    try:
        async for ev in store.watch(prefix, start):
            out = classify(ev, match)
            if out is not None:
                yield out
    except Compacted as exc:
        raise errors.expired(
            f"too old resource version: {resource_version} ({exc.revision})")


async def serve(request: web.Request, stream: AsyncIterator[tuple[str, dict[str, Any]]],
                res: Resource, timeout: float,
                transform: Callable[[dict[str, Any]], dict[str, Any]]) -> web.StreamResponse:
    """Write events as JSON lines, flushed one by one, until timeout or hang-up."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                   "Cache-Control": "no-cache, private"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)

    async def pump() -> None:
        try:
            async for typ, obj in stream:
                obj.setdefault("kind", res.kind)
                obj.setdefault("apiVersion", res.api_version)
                line = json.dumps({"type": typ, "object": transform(obj)}, separators=(",", ":"))
                await resp.write(line.encode() + b"\n")
        except errors.ApiError as exc:
            line = json.dumps({"type": "ERROR", "object": exc.status()})
            await resp.write(line.encode() + b"\n")

    try:
        await asyncio.wait_for(pump(), timeout)
    except (asyncio.TimeoutError, ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    try:
        await resp.write_eof()
    except (ConnectionResetError, RuntimeError):
        pass
    return resp
