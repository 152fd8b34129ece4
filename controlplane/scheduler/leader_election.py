"""Leader election through a coordination.k8s.io/v1 Lease, as client-go's
leaderelection does: take the lease when it is free or its holder has not
renewed it for leaseDurationSeconds (timed by our own clock, from when we last
saw the record change, so clock skew between machines does not matter), renew
it every retry period, and give up leading if renewing fails for the renew
deadline. Every write carries the resourceVersion read, so of two candidates
racing for a lease exactly one wins (the other gets 409 Conflict).
"""
from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

from kubeling import errors
from kubeling.client import Client
from kubeling.resources import lookup

log = logging.getLogger("kubeling.scheduler.leaderelection")

LEASES = lookup("leases")


class LeadershipLost(Exception):
    pass


def micro_time() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, client: Client, namespace: str, name: str, identity: str, *,
                 lease_duration: float = 15.0, renew_deadline: float = 10.0, retry_period: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")
        self.client, self.namespace, self.name, self.identity = client, namespace, name, identity
        self.lease_duration, self.renew_deadline, self.retry_period = lease_duration, renew_deadline, retry_period
        self.clock = clock
        self._observed: dict[str, Any] | None = None  # the lease spec last seen
        self._observed_at = 0.0
        self._lease: dict[str, Any] | None = None  # the whole object last read or written
        self.leading = False

    async def run(self, lead: Callable[[], Awaitable[Any]]) -> None:
        """Wait to become leader, then run `lead()` while renewing. Raises
        LeadershipLost if the lease cannot be renewed in time; releases the
        lease when cancelled."""
        tasks: list[asyncio.Task[Any]] = []
        try:
            while not await self.try_acquire_or_renew():
                await asyncio.sleep(self.retry_period)
            log.info("%s became the leader (lease %s/%s)", self.identity, self.namespace, self.name)
            self.leading = True
            tasks = [asyncio.create_task(lead()), asyncio.create_task(self._keep_renewing())]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.leading:
                self.leading = False
                await asyncio.shield(self.release())

    async def _keep_renewing(self) -> None:
        last_ok = self.clock()
        while True:
            await asyncio.sleep(self.retry_period)
            try:
                ok = await asyncio.wait_for(self.try_acquire_or_renew(), self.renew_deadline)
            except asyncio.TimeoutError:
                ok = False
            if ok:
                last_ok = self.clock()
            elif self.clock() - last_ok >= self.renew_deadline:
                log.error("%s lost the lease %s/%s", self.identity, self.namespace, self.name)
                self.leading = False
                raise LeadershipLost(f"failed to renew lease {self.namespace}/{self.name}")

    def _spec(self, prior: dict[str, Any] | None) -> dict[str, Any]:
        now = micro_time()
        if prior and prior.get("holderIdentity") == self.identity:
            acquire, transitions = prior.get("acquireTime") or now, prior.get("leaseTransitions") or 0
        else:
            acquire = now
            transitions = (prior.get("leaseTransitions") or 0) + 1 if prior else 0
        return {"holderIdentity": self.identity, "leaseDurationSeconds": int(round(self.lease_duration)),
                "acquireTime": acquire, "renewTime": now, "leaseTransitions": transitions}

    async def try_acquire_or_renew(self) -> bool:
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except errors.ApiError as exc:
            if exc.code != 404:
                log.warning("reading lease %s/%s: %s", self.namespace, self.name, exc.message)
                return False
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace}, "spec": self._spec(None)}
            try:
                self._lease = await self.client.create(LEASES, body)
            except errors.ApiError as exc2:
                log.debug("creating lease: %s", exc2.message)
                return False
            self._observe(self._lease["spec"])
            return True
        spec = lease.get("spec") or {}
        self._observe(spec)
        holder = spec.get("holderIdentity") or ""
        duration = spec.get("leaseDurationSeconds") or self.lease_duration
        if holder and holder != self.identity and self.clock() < self._observed_at + duration:
            return False  # someone else holds a lease that has not expired
        new = copy.deepcopy(lease)
        new["spec"] = self._spec(spec)
        try:
            self._lease = await self.client.update(LEASES, new)  # carries the resourceVersion read
        except errors.ApiError as exc:
            log.debug("updating lease: %s", exc.message)
            return False
        self._observe(self._lease["spec"])
        return True

    def _observe(self, spec: dict[str, Any]) -> None:
        if spec != self._observed:
            self._observed = copy.deepcopy(spec)
            self._observed_at = self.clock()

    async def release(self) -> None:
        """Hand the lease back so a standby takes over without waiting it out."""
        if self._lease is None:
            return
        new = copy.deepcopy(self._lease)
        spec = new.setdefault("spec", {})
        if spec.get("holderIdentity") != self.identity:
            return
        now = micro_time()
        spec.update({"holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": now, "acquireTime": now})
        try:
            self._lease = await asyncio.wait_for(self.client.update(LEASES, new), self.retry_period)
            log.info("%s released the lease %s/%s", self.identity, self.namespace, self.name)
        except (errors.ApiError, asyncio.TimeoutError) as exc:
            log.warning("releasing lease %s/%s: %s", self.namespace, self.name, exc)
