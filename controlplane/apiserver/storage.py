"""etcd storage: one key per object, resourceVersion = the key's mod revision.

Create and update are etcd transactions, so two writers can never both win:
create requires the key not to exist, update and delete require the mod
revision the caller read (optimistic concurrency, like Kubernetes' etcd3 store).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aetcd
from aetcd import exceptions as etcd_errors

from kubeling import errors, fastjson

from . import encryption
# The interface and its errors live in store.py; they are re-exported for the callers
# that name them from here.
from .store import (ClaimTaken, Compacted, KeyExists, KeyMissing, RevisionMismatch, Store,  # noqa: F401
                    WatchEvent, WatchLost)


log = logging.getLogger("kubeling.apiserver")


def _encode(obj: dict[str, Any]) -> bytes:
    meta = obj.get("metadata") or {}
    rv = meta.pop("resourceVersion", None)
    try:
        # Resources named in --encryption-provider-config (secrets) are encrypted here.
        return encryption.to_storage(obj, fastjson.dumps(obj))
    finally:
        if rv is not None:
            meta["resourceVersion"] = rv


def _decode(value: bytes, revision: int) -> dict[str, Any]:
    obj = json.loads(encryption.from_storage(value))
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return obj


def _readable(key: bytes, value: bytes, revision: int) -> dict[str, Any] | None:
    """The object, or None (logged) when this apiserver cannot read it: one no key here
    decrypts, or corrupt bytes. Lists and watches pass over it rather than failing whole
    (one such object would otherwise stall every LIST and the watch cache of its kind);
    a GET of it still answers 500."""
    try:
        return _decode(value, revision)
    except (errors.ApiError, ValueError) as exc:
        log.error("cannot read %s at revision %d: %s", key.decode(errors="replace"), revision,
                  str(exc).splitlines()[0][:200])
        return None


def _prefix_end(prefix: bytes) -> bytes:
    return aetcd.utils.prefix_range_end(prefix)


def _unavailable(exc: Exception) -> errors.ApiError:
    return errors.ApiError(503, "ServiceUnavailable", f"etcd is unavailable: {exc}")


# Events expire an hour after their last write (kube-apiserver's --event-ttl default): they are
# written on an etcd lease, which etcd deletes them with. Nothing else in the API expires.
EVENTS_PREFIX = "/registry/events/"
EVENT_TTL = 3600
# One lease serves all the writes of a short window, as Kubernetes' leaseManager does (a lease per
# Event would double the writes); it is granted that much longer, so no Event goes early.
LEASE_REUSE_SECONDS, LEASE_REUSE_SHARE = 60.0, 0.05


class _SharedLease:
    def __init__(self, client: aetcd.Client, ttl: int) -> None:
        self._client, self.ttl = client, ttl
        self._reuse = min(LEASE_REUSE_SECONDS, LEASE_REUSE_SHARE * ttl)
        self._id: int | None = None
        self._granted = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> int:
        async with self._lock:
            if self._id is None or time.monotonic() - self._granted >= self._reuse:
                lease = await self._client.lease(self.ttl + int(self._reuse + 0.999))
                self._id, self._granted = lease.id, time.monotonic()
            return self._id

    def drop(self, lease_id: int) -> None:
        """The lease is gone from etcd (revoked, or expired while nobody wrote): grant a new one."""
        if self._id == lease_id:
            self._id = None


def _lease_missing(exc: Exception) -> bool:
    return "lease not found" in str(exc)


class EtcdStore:
    """The apiserver's only path to etcd: the Store of store.py."""

    def __init__(self, host: str = "127.0.0.1", port: int = 2379, event_ttl: int = EVENT_TTL) -> None:
        # Lists of thousands of objects exceed gRPC's default 4 MiB message limit.
        # gRPC's reconnect backoff grows to 2 minutes while etcd is down: capped at 2 s, the
        # apiserver serves again within seconds of etcd's return. Keepalive pings find a
        # connection that died without a close (a frozen or unplugged etcd) and fail its watches.
        self._client = aetcd.Client(host=host, port=port, timeout=10,
                                    options={"grpc.max_receive_message_length": 512 * 1024 * 1024,
                                             "grpc.max_send_message_length": 64 * 1024 * 1024,
                                             "grpc.initial_reconnect_backoff_ms": 200,
                                             "grpc.max_reconnect_backoff_ms": 2000,
                                             "grpc.keepalive_time_ms": 30_000,
                                             "grpc.keepalive_timeout_ms": 10_000})
        self._event_lease = _SharedLease(self._client, event_ttl)

    async def connect(self) -> None:
        await self._client.connect()

    async def close(self) -> None:
        await self._client.close()

    @property
    def client(self) -> aetcd.Client:
        return self._client

    async def get(self, key: str) -> dict[str, Any] | None:
        try:
            kv = await self._client.get(key.encode())
        except etcd_errors.ClientError as exc:
            raise _unavailable(exc) from exc
        if kv is None:
            return None
        return _decode(kv.value, kv.mod_revision)

    async def list(self, prefix: str) -> tuple[list[dict[str, Any]], int]:
        """All objects under a prefix, and the store revision they were read at."""
        items, rev = await self.items(prefix)
        return [obj for _, obj in items], rev

    async def items(self, prefix: str) -> tuple[list[tuple[str, dict[str, Any]]], int]:
        """(key, object) of everything under a prefix, and the revision they were read at."""
        try:
            rng = await self._client.get_prefix(prefix.encode())
        except etcd_errors.ClientError as exc:
            raise _unavailable(exc) from exc
        items = ((kv.key.decode(), _readable(kv.key, kv.value, kv.mod_revision)) for kv in rng.kvs)
        return [(key, obj) for key, obj in items if obj is not None], rng.header.revision

    async def create(self, key: str, obj: dict[str, Any],
                     claims: tuple[str, ...] = ()) -> dict[str, Any]:
        """Create key; `claims` are allocation keys (a ClusterIP, a node port)
        taken in the same transaction, so two objects can never hold one."""
        t = self._client.transactions
        keys = [key.encode(), *(c.encode() for c in claims)]
        value = _encode(obj)
        ok, resp = await self._leased(key, lambda lease: self._client.transaction(
            compare=[t.create(k) == 0 for k in keys],
            success=[t.put(keys[0], value, lease=lease), *(t.put(k, keys[0]) for k in keys[1:])],
            failure=[t.get(k) for k in keys]))
        if not ok:
            if resp and resp[0]:
                raise KeyExists(key)
            taken = [c for c, r in zip(claims, resp[1:]) if r]
            raise ClaimTaken(taken[0] if taken else key)
        obj.setdefault("metadata", {})["resourceVersion"] = str(resp[0].response_put.header.revision)
        return obj

    async def update(self, key: str, obj: dict[str, Any], revision: int,
                     claims: tuple[str, ...] = (), releases: tuple[str, ...] = ()) -> dict[str, Any]:
        """Write obj if the key is still at `revision`; else RevisionMismatch/KeyMissing.
        Claims are taken and releases dropped in the same transaction."""
        t = self._client.transactions
        k = key.encode()
        compare = [t.mod(k) == revision, *(t.create(c.encode()) == 0 for c in claims)]
        value = _encode(obj)
        # A put without the lease would detach the key from it: an updated Event would never go.
        ok, resp = await self._leased(key, lambda lease: self._client.transaction(
            compare=compare, success=[t.put(k, value, lease=lease), *(t.put(c.encode(), k) for c in claims),
                                      *(t.delete(r.encode()) for r in releases)],
            failure=[t.get(k), *(t.get(c.encode()) for c in claims)]))
        if not ok:
            self._raise_failed(key, resp, claims, revision)
        obj.setdefault("metadata", {})["resourceVersion"] = str(resp[0].response_put.header.revision)
        return obj

    async def _leased(self, key: str, txn: Any) -> Any:
        """Run txn(lease) with the Events' lease for an Event's key (None for any other key)."""
        lease = await self._lease_for(key)
        try:
            return await txn(lease)
        except etcd_errors.ClientError as exc:
            if lease is None or not _lease_missing(exc):
                raise _unavailable(exc) from exc
            self._event_lease.drop(lease)
        try:
            return await txn(await self._lease_for(key))
        except etcd_errors.ClientError as exc:
            raise _unavailable(exc) from exc

    async def _lease_for(self, key: str) -> int | None:
        if not key.startswith(EVENTS_PREFIX):
            return None
        try:
            return await self._event_lease.get()
        except etcd_errors.ClientError as exc:
            raise _unavailable(exc) from exc

    async def delete(self, key: str, revision: int, releases: tuple[str, ...] = ()) -> int:
        """Delete the key if still at `revision`; returns the deletion revision."""
        t = self._client.transactions
        k = key.encode()
        try:
            ok, resp = await self._client.transaction(
                compare=[t.mod(k) == revision],
                success=[t.delete(k), *(t.delete(r.encode()) for r in releases)],
                failure=[t.get(k)])
        except etcd_errors.ClientError as exc:
            raise _unavailable(exc) from exc
        if not ok:
            self._raise_failed(key, resp, (), revision)
        return resp[0].response_delete_range.header.revision

    @staticmethod
    def _raise_failed(key: str, resp: list[Any], claims: tuple[str, ...], revision: int) -> None:
        current = resp[0][0] if resp and resp[0] else None
        if current is None:
            raise KeyMissing(key)
        if current[1].mod_revision == revision:
            taken = [c for c, r in zip(claims, resp[1:]) if r]
            if taken:
                raise ClaimTaken(taken[0])
        raise RevisionMismatch(_decode(current[0], current[1].mod_revision))

    async def revision(self) -> int:
        """etcd's current revision (a keys-only read of a prefix that holds nothing)."""
        try:
            rng = await self._client.get_prefix(b"/kubeling/revision-probe/", keys_only=True)
        except etcd_errors.ClientError as exc:
            raise _unavailable(exc) from exc
        return rng.header.revision

    async def claimed(self, prefix: str) -> set[str]:
        """The allocation keys under a prefix (names only)."""
        rng = await self._client.get_prefix(prefix.encode(), keys_only=True)
        return {kv.key.decode()[len(prefix):] for kv in rng.kvs}

    async def count(self, prefix: str) -> int:
        """The keys under a prefix, counted by etcd (a count-only range: no key or value
        crosses the wire). aetcd has no call for it, so the request is built here."""
        p = prefix.encode()
        request = self._client._build_get_range_request(p, range_end=_prefix_end(p))
        request.count_only = True
        try:
            response = await self._client.kvstub.Range(request, timeout=self._client._timeout,
                                                       metadata=self._client.metadata)
        except Exception as exc:  # grpc's errors, which aetcd would translate, are not worth telling apart
            raise _unavailable(exc) from exc
        return int(response.count)

    async def watch(self, prefix: str, start_revision: int, stop: asyncio.Event | None = None,
                    match: Callable[[dict[str, Any]], bool] | None = None) -> AsyncIterator[WatchEvent]:
        """Events under prefix from start_revision (inclusive), in revision order.

        Never ends quietly: when etcd goes away (kill, restart) aetcd fails the
        shared gRPC stream and every watch on it; that, or any end we did not ask
        for, raises WatchLost, so callers end their own watches (Kubernetes'
        apiserver does the same: its watchers are terminated and clients re-watch).
        `match` is not applied here: the caller classifies every event anyway."""
        p = prefix.encode()
        try:
            watch = await self._client.watch(p, range_end=_prefix_end(p),
                                             start_revision=start_revision, prev_kv=True)
        except etcd_errors.RevisionCompactedError as exc:
            raise Compacted(exc.compacted_revision) from exc
        except etcd_errors.WatchTimeoutError as exc:
            # etcd did not confirm the watch in time (stopped, overloaded). Its late
            # "created" answer would be matched to the *next* watch created on the
            # shared stream (aetcd pairs them by order), so drop the stream: every watch
            # on it ends with WatchLost and the next one opens a fresh stream.
            await self._reset_watch_stream()
            raise _unavailable(exc) from exc
        except etcd_errors.ClientError as exc:
            raise _unavailable(exc) from exc
        try:
            async for ev in watch:
                kv = ev.kv
                key = kv.key.decode()
                if not key.startswith(prefix) or kv.mod_revision < start_revision:
                    # Not this watch's events: a mix-up on the shared stream. Never pass it on.
                    await self._reset_watch_stream()
                    raise WatchLost(f"etcd watch on {prefix} got an event for {key}@{kv.mod_revision}")
                # etcd sends an empty prev_kv for a creation.
                pkv = ev.prev_kv
                prev = _readable(pkv.key, pkv.value, pkv.mod_revision) if pkv is not None and pkv.mod_revision \
                    else None
                obj = _readable(kv.key, kv.value, kv.mod_revision) if ev.kind == "PUT" else None
                if obj is not None:
                    yield WatchEvent("PUT", key, obj, prev, kv.mod_revision)
                else:  # deleted, or now unreadable here: either way no object a reader can have
                    yield WatchEvent("DELETE", key, None, prev, kv.mod_revision)
        except etcd_errors.RevisionCompactedError as exc:
            raise Compacted(exc.compacted_revision) from exc
        except etcd_errors.ClientError as exc:
            raise WatchLost(f"etcd watch on {prefix} broke: {exc}") from exc
        finally:
            try:
                # Bounded: with etcd stopped the cancel request may find no reader.
                await asyncio.wait_for(watch.cancel(), 5)
            except Exception:  # the stream may already be gone; nothing to release then
                pass
        # aetcd ends an iterator without an error only when its stream was shut down.
        raise WatchLost(f"etcd watch on {prefix} ended")

    async def _reset_watch_stream(self) -> None:
        """End the shared etcd watch stream and every watch on it; the next watch opens
        a new one. (aetcd has no public call for this; its shutdown() is what close() uses.)"""
        watcher = getattr(self._client, "_watcher", None)
        if watcher is not None:
            try:
                await asyncio.wait_for(watcher.shutdown(), 5)
            except Exception:  # already torn down: nothing to end
                pass
