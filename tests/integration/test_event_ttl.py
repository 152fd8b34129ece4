"""Events expire, as with kube-apiserver's --event-ttl: the store writes them on an etcd lease, so
a cluster that runs for long does not keep every Event it ever recorded (the soak bench found
~23 Events per pod's life and none ever going). Other objects carry no lease."""
from __future__ import annotations

import asyncio
import secrets
import time

from controlplane.apiserver.storage import EtcdStore

TTL = 3  # etcd's smallest lease is about 2 s with its default election timeout


async def wait_gone(store: EtcdStore, key: str, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if await store.get(key) is None:
            return time.monotonic() - t0
        await asyncio.sleep(0.2)
    raise AssertionError(f"{key} still stored after {timeout}s")


async def lease_of(store: EtcdStore, key: str) -> int:
    kv = await store.client.get(key.encode())
    return kv.lease


async def test_an_event_goes_after_its_ttl_and_other_objects_stay(etcd):
    store = EtcdStore(etcd.host, etcd.port, event_ttl=TTL)
    await store.connect()
    tag = secrets.token_hex(4)
    event, pod = f"/registry/events/ttl-{tag}/e1", f"/registry/pods/ttl-{tag}/p1"
    try:
        await store.create(event, {"metadata": {"name": "e1"}, "reason": "Started"})
        await store.create(pod, {"metadata": {"name": "p1"}})
        assert await lease_of(store, event) != 0 and await lease_of(store, pod) == 0
        # Bounded by the TTL, a reuse window of 5 % of it and etcd's expiry check (about a second).
        await wait_gone(store, event, TTL + 10)
        assert await store.get(pod) is not None
    finally:
        for key in (event, pod):
            await store.client.delete(key.encode())
        await store.close()


async def test_an_updated_event_keeps_expiring(etcd):
    # A put without a lease would detach the key from its lease: an Event whose count was bumped
    # would then stay for ever.
    store = EtcdStore(etcd.host, etcd.port, event_ttl=TTL)
    await store.connect()
    key = f"/registry/events/ttl-{secrets.token_hex(4)}/e2"
    try:
        created = await store.create(key, {"metadata": {"name": "e2"}, "count": 1})
        await store.update(key, {"metadata": {"name": "e2"}, "count": 2},
                           int(created["metadata"]["resourceVersion"]))
        assert await lease_of(store, key) != 0
        await wait_gone(store, key, TTL + 10)
    finally:
        await store.client.delete(key.encode())
        await store.close()


async def test_a_revoked_lease_is_replaced_not_fatal(etcd):
    # The shared lease may be gone (revoked by an operator, or expired while the apiserver was
    # stopped): the next Event gets a fresh lease instead of an error.
    store = EtcdStore(etcd.host, etcd.port, event_ttl=60)
    await store.connect()
    tag = secrets.token_hex(4)
    first, second = f"/registry/events/ttl-{tag}/a", f"/registry/events/ttl-{tag}/b"
    try:
        await store.create(first, {"metadata": {"name": "a"}})
        await store.client.revoke_lease(await lease_of(store, first))
        await store.create(second, {"metadata": {"name": "b"}})
        assert await lease_of(store, second) not in (0, None)
    finally:
        for key in (first, second):
            await store.client.delete(key.encode())
        await store.close()


async def test_the_apiservers_event_ttl_flag(etcd, tmp_path):
    # Through the API: an Event created on an apiserver started with --event-ttl 3s is gone soon after.
    from kubeling import errors
    from kubeling.client import Client
    from kubeling.resources import lookup
    from tests.conftest import start_apiserver, stop_process
    proc, api = start_apiserver(etcd, tmp_path, extra_args=("--event-ttl", f"{TTL}s"))
    name = f"ttl-{secrets.token_hex(4)}"
    try:
        async with Client(api.url, api.token) as c:
            await c.create(lookup("events"), {"metadata": {"name": name}, "reason": "Tested", "message": "soak",
                                              "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"}},
                           "default")
            t0 = time.monotonic()
            while True:
                try:
                    await c.get(lookup("events"), name, "default")
                except errors.ApiError as exc:
                    assert exc.code == 404
                    break
                assert time.monotonic() - t0 < TTL + 10, "the Event outlived --event-ttl"
                await asyncio.sleep(0.2)
    finally:
        stop_process(proc)
