"""The ServiceAccounts controller (Kubernetes' serviceaccounts-controller): every
active namespace has a `default` ServiceAccount; one that is deleted comes back.

A work queue of namespace names, fed by the namespace informer (a new namespace)
and the ServiceAccount informer (a `default` deleted)."""
from __future__ import annotations

import logging
from typing import Any

from kubeling import errors
from kubeling.client import Client
from kubeling.resources import lookup
from kubeling.shared_informers import SharedInformers

from .queue_worker import QueueWorker
from .workqueue import WorkQueue

log = logging.getLogger("kubeling.serviceaccounts")
NAMESPACES, SERVICEACCOUNTS = lookup("namespaces"), lookup("serviceaccounts")
MANAGED = ("default",)


def _active(ns: dict[str, Any] | None) -> bool:
    if ns is None:
        return False
    return not (ns.get("metadata") or {}).get("deletionTimestamp") and \
        (ns.get("status") or {}).get("phase") != "Terminating"


class PerNamespaceController(QueueWorker):
    """A controller that keeps something in every active namespace (this one and the
    root CA publisher): its keys are namespace names, queued when a namespace is seen
    and retried with backoff until they sync. It runs the informers itself when none
    are shared with it."""

    max_retries = None
    retry_log_level = logging.WARNING

    def __init__(self, client: Client, informers: SharedInformers | None, workers: int,
                 logger: logging.Logger) -> None:
        self.client = client
        self.log = logger
        self.workers = workers
        self.own_informers = informers is None
        self.informers = informers or SharedInformers(client)
        self.queue = WorkQueue()
        self.ns_informer = self.watch(
            NAMESPACES, on_add=self._ns_seen, on_update=lambda _o, n: self._ns_seen(n))

    def _ns_seen(self, ns: dict[str, Any]) -> None:
        if _active(ns):
            self.queue.add(ns["metadata"]["name"])

    def active(self, ns: str) -> bool:
        return _active(self.ns_informer.get("", ns))

    def key_text(self, ns: object) -> str:
        return f"namespace {ns}"


class ServiceAccountsController(PerNamespaceController):
    def __init__(self, client: Client, informers: SharedInformers | None = None, workers: int = 2) -> None:
        super().__init__(client, informers, workers, log)
        self.sa_informer = self.watch(SERVICEACCOUNTS, on_delete=self._sa_deleted)

    def _sa_deleted(self, sa: dict[str, Any]) -> None:
        meta = sa.get("metadata") or {}
        if meta.get("name") in MANAGED:
            self.queue.add(meta.get("namespace") or "")

    async def sync(self, ns: str) -> None:
        if not self.active(ns):
            return
        for name in MANAGED:
            if self.sa_informer.get(ns, name) is not None:
                continue
            try:
                await self.client.create(SERVICEACCOUNTS, {"metadata": {"name": name}}, ns)
                log.info("created ServiceAccount %s/%s", ns, name)
            except errors.ApiError as exc:
                # Exists already (our cache lags), or the namespace is going: nothing to do.
                if exc.reason not in ("AlreadyExists", "Forbidden", "NotFound"):
                    raise
