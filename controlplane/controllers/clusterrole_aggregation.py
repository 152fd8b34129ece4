"""The clusterrole-aggregation controller (pkg/controller/clusterroleaggregation).

A ClusterRole with an `aggregationRule` holds the rules of every ClusterRole its
selectors match (`rbac.authorization.k8s.io/aggregate-to-view: "true"` feeds
`view`), by the roles' names, without duplicates. Any ClusterRole change queues
every aggregated role (a label added anywhere may feed any of them); a sync
writes the role only when its rules differ. Needs `escalate` on clusterroles:
it writes rules it does not hold itself.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from kubeling import errors
from kubeling.client import Client
from kubeling.resources import lookup

from controlplane.apiserver.bootstrap_policy import aggregate

from kubeling.shared_informers import SharedInformers
from .workqueue import WorkQueue

log = logging.getLogger("kubeling.clusterrole_aggregation")
CLUSTER_ROLES = lookup("clusterroles.rbac.authorization.k8s.io")


class ClusterRoleAggregationController:
    def __init__(self, client: Client, informers: SharedInformers, workers: int = 1) -> None:
        self.client = client
        self.queue = WorkQueue()
        self.workers = workers
        self.informer = informers.add_handlers(CLUSTER_ROLES, on_add=self._changed,
                                               on_update=lambda _old, new: self._changed(new),
                                               on_delete=self._changed)

    def _changed(self, _role: dict[str, Any]) -> None:
        for role in self.informer.items():
            if role.get("aggregationRule"):
                self.queue.add(role["metadata"]["name"])

    async def sync(self, name: str) -> None:
        role = self.informer.get("", name)
        if role is None:
            return
        rules = aggregate(self.informer.items(), role)
        if rules is None or rules == (role.get("rules") or []):
            return
        updated = dict(role, rules=rules)
        await self.client.update(CLUSTER_ROLES, updated)
        log.info("clusterrole %s: %d rules aggregated", name, len(rules))

    async def _worker(self) -> None:
        while True:
            name = await self.queue.get()
            try:
                await self.sync(str(name))
                self.queue.forget(name)
            except errors.ApiError as exc:
                # A conflict means the informer is behind: the next event queues it again.
                if exc.code not in (404, 409):
                    log.warning("clusterrole %s: %s", name, exc.message)
                self.queue.add_rate_limited(name)
            except Exception:
                log.exception("clusterrole %s", name)
                self.queue.add_rate_limited(name)
            finally:
                self.queue.done(name)

    async def run(self) -> None:
        await asyncio.gather(*(self._worker() for _ in range(self.workers)))
