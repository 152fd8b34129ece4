"""The proxy's control loop: Services and EndpointSlices in, one rules transaction per sync out
(an iptables-restore batch or an nft -f transaction, by the backend given).

Informer events only update the in-memory picture and wake the sync loop, so a burst of
changes is coalesced into one sync (the next one starts when the running one ends, and no
sooner than min_sync_interval after it started). Every sync_period a full sync rewrites every
chain of ours from scratch and removes chains of ours that nothing renders any more (a previous
run's included); in between, a sync rewrites only the chains whose rules changed. A failed sync
is retried as a full one after retry_interval.

The Services and EndpointSlices informers come from the process's shared informer factory;
a proxier given none makes and runs its own. The rule backend and the conntrack runner are
passed in, so the sync logic can be tested against recorders.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.proxy import conntrack, metrics, rules
from agent.proxy.iptables import IptablesError
from agent.proxy.nftables import NftablesError
from agent.proxy.model import Endpoint, ServicePort, service_ports, slice_endpoints, slice_service, usable
from kubeling.client import Client
from kubeling.informer import key_of
from kubeling.resources import lookup
from kubeling.shared_informers import SharedInformers
from kubeling.tasks import guarded

log = logging.getLogger("kubeling.proxy")

SERVICES, ENDPOINT_SLICES = lookup("services"), lookup("endpointslices")
ConntrackRunner = Callable[[list[list[str]]], object]  # runs `conntrack` argument lists


class RuleBackend(Protocol):
    """A proxy mode (iptables.IptablesSync, nftables.NftablesSync): writes the rules for these
    service ports and endpoints. `full`: rewrite everything ours and drop what is ours but no
    longer rendered; otherwise only what differs from the last successful sync, and `only`
    (when given) promises that nothing but these services' endpoints changed. Blocking; returns
    the number of lines written. After a failure the backend's next sync must be full."""
    mode: str

    def sync(self, ports: list[ServicePort], endpoints: Mapping[rules.EndpointKey, list[Endpoint]],
             full: bool, only: set[tuple[str, str]] | None = None) -> int: ...


@dataclass
class SyncStats:
    count: int = 0
    full: int = 0
    failures: int = 0
    last_ms: float = 0.0
    history: list[tuple[float, bool, float]] = field(default_factory=list)  # (end wall time, full, ms)


class Proxier:
    def __init__(self, client: Client, cfg: rules.Config, backend: RuleBackend, *, sync_period: float = 30.0,
                 min_sync_interval: float = 0.0, retry_interval: float = 1.0,
                 on_synced: Callable[[SyncStats], None] | None = None,
                 informers: SharedInformers | None = None,
                 run_conntrack: ConntrackRunner = conntrack.run_deletions,
                 on_programmed: Callable[[set[tuple[str, str]], dict[tuple[str, str], float], float], None]
                 | None = None) -> None:
        """on_programmed(services whose endpoints changed, their changes' trigger times where
        known, rules-written time): after each sync that programmed endpoint changes (the
        proxy's trace events)."""
        self.client = client
        self.cfg = cfg
        self.backend = backend
        self.sync_period = sync_period
        self.min_sync_interval = min_sync_interval
        self.retry_interval = retry_interval
        self.on_synced = on_synced
        self.on_programmed = on_programmed
        self.run_conntrack = run_conntrack
        self.services: dict[tuple[str, str], list[ServicePort]] = {}
        self.slices: dict[tuple[str, str], dict[str, Any]] = {}  # (ns, slice name) → slice
        self.slices_of: dict[tuple[str, str], set[tuple[str, str]]] = {}  # (ns, service) → slice keys
        self.endpoints: dict[rules.EndpointKey, list[Endpoint]] = {}
        self._endpoint_keys: dict[tuple[str, str], set[rules.EndpointKey]] = {}
        self.flows: dict[ServicePort, tuple[Endpoint, ...]] = {}  # UDP endpoints last programmed
        self.stats = SyncStats()
        self.programming = metrics.NetworkProgrammingTracker()
        self._wake = asyncio.Event()
        # What changed since the last sync's snapshot: with no service change, only the
        # services whose endpoints changed are rendered again.
        self._ports_changed = True
        self._endpoints_changed: set[tuple[str, str]] = set()
        # Registered now, so a factory shared with other components and run by its owner after
        # they all registered lists these too.
        self._own_informers = informers is None
        self.informers = informers if informers is not None else SharedInformers(client)
        self.service_informer = self.informers.add_handlers(
            SERVICES, on_add=lambda o: self._service_changed(o),
            on_update=lambda old, o: self._service_changed(o),
            on_delete=lambda o: self._service_changed(o, deleted=True))
        self.slice_informer = self.informers.add_handlers(
            ENDPOINT_SLICES, on_add=lambda o: self._slice_changed(o),
            on_update=lambda old, o: self._slice_changed(o),
            on_delete=lambda o: self._slice_changed(o, deleted=True))

    # --- informer handlers: update state, wake the loop -------------------------------------

    def _service_changed(self, obj: dict[str, Any], deleted: bool = False) -> None:
        key = key_of(obj)
        if deleted:
            self.services.pop(key, None)
        else:
            self.services[key] = service_ports(obj)
        self._ports_changed = True
        self._wake.set()

    def _slice_changed(self, obj: dict[str, Any], deleted: bool = False) -> None:
        skey = key_of(obj)
        old = self.slices.pop(skey, None)
        touched = set()
        if old is not None and (svc := slice_service(old)) is not None:
            self.slices_of.get(svc, set()).discard(skey)
            touched.add(svc)
        svc = slice_service(obj)
        if not deleted and svc is not None:
            self.programming.changed(obj)
            self.slices[skey] = obj
            self.slices_of.setdefault(svc, set()).add(skey)
            touched.add(svc)
        for svc in touched:
            self._recompute_endpoints(svc)
        self._endpoints_changed |= touched
        if touched:
            self._wake.set()

    def _recompute_endpoints(self, svc: tuple[str, str]) -> None:
        for k in self._endpoint_keys.pop(svc, set()):
            self.endpoints.pop(k, None)
        keys = self.slices_of.get(svc) or set()
        if not keys:
            self.slices_of.pop(svc, None)
            return
        by_port = slice_endpoints(self.slices[k] for k in keys)
        ekeys = set()
        for (port_name, proto), eps in by_port.items():
            ek = (svc[0], svc[1], port_name, proto)
            self.endpoints[ek] = eps
            ekeys.add(ek)
        self._endpoint_keys[svc] = ekeys

    # --- syncing ------------------------------------------------------------------------------

    def sync_once(self, ports: list[ServicePort], endpoints: dict[rules.EndpointKey, list[Endpoint]],
                  full: bool, only: set[tuple[str, str]] | None = None) -> None:
        """Render and apply (runs in a worker thread; blocking subprocesses). `only`: nothing but
        these services' endpoints changed since the last successful sync."""
        t0 = time.monotonic()
        lines = self.backend.sync(ports, endpoints, full, only)
        t_written = time.monotonic()
        flows = {sp: tuple(usable(endpoints.get(rules.endpoint_key(sp), ()), self.cfg.use_terminating))
                 for sp in ports if sp.protocol == "udp"}
        self.run_conntrack(conntrack.stale_deletions(self.flows, flows))
        self.flows = flows
        ms = (time.monotonic() - t0) * 1000
        metrics.SYNC_PROXY_RULES_DURATION.observe(ms / 1000)
        metrics.SYNC_PROXY_RULES_LAST_TIMESTAMP.set_to_current_time()
        s = self.stats
        s.count += 1
        s.full += int(full)
        s.last_ms = ms
        s.history.append((time.time(), full, ms))
        del s.history[:-1000]
        log.info("sync %d (%s): %d service ports, %d lines written, %.1f ms (rules %.1f)",
                 s.count, "full" if full else "partial", len(ports), lines, ms, (t_written - t0) * 1000)

    async def _sync_loop(self) -> None:
        next_full = 0.0
        last_start = 0.0
        while True:
            wait = max(0.0, next_full - time.monotonic())
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except asyncio.TimeoutError:
                pass
            gap = self.min_sync_interval - (time.monotonic() - last_start)
            if gap > 0:
                await asyncio.sleep(gap)
            self._wake.clear()
            full = time.monotonic() >= next_full
            # A snapshot: handlers keep running on the loop while the worker thread syncs.
            ports = [sp for sps in self.services.values() for sp in sps]
            endpoints = dict(self.endpoints)
            touched = self._endpoints_changed
            only = None if self._ports_changed else touched
            self._ports_changed, self._endpoints_changed = False, set()
            last_start = time.monotonic()
            changes = self.programming.take()
            try:
                await asyncio.to_thread(self.sync_once, ports, endpoints, full, only)
            except Exception as exc:
                self.programming.failed(changes)
                self._endpoints_changed |= touched   # still to report once programmed
                self.stats.failures += 1
                if isinstance(exc, (IptablesError, NftablesError, OSError)):
                    # Expected now and then (the xtables lock, a racing rule change): no traceback.
                    log.error("sync failed: %s; retrying with a full sync in %.1fs", exc, self.retry_interval)
                else:
                    log.exception("sync failed; retrying with a full sync")
                next_full = time.monotonic() + self.retry_interval
                continue
            self.programming.programmed(changes)
            if touched and self.on_programmed is not None:
                self.on_programmed(touched, changes, time.time())
            if full:
                next_full = time.monotonic() + self.sync_period
            if self.on_synced is not None:
                self.on_synced(self.stats)

    async def run(self) -> None:
        tasks = [guarded(self.informers.run(), "proxy informers")] if self._own_informers else []
        synced = asyncio.create_task(self._wait_synced(), name="proxy cache sync")
        try:
            # The first sync waits for both caches (and our handlers' view of them), or it would
            # drop every rule of a previous run for an instant.
            await asyncio.wait([synced, *tasks], return_when=asyncio.FIRST_COMPLETED)
            if not synced.done():
                for t in tasks:
                    if t.done():
                        t.result()  # the informers ended before syncing: fail with why
            log.info("caches synced: %d services, %d endpoint slices", len(self.services), len(self.slices))
            tasks.append(guarded(self._sync_loop(), "proxy sync loop"))
            await asyncio.gather(*tasks)
        finally:
            synced.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.gather(synced, *tasks, return_exceptions=True)

    async def _wait_synced(self) -> None:
        await self.service_informer.synced.wait()
        await self.slice_informer.synced.wait()
