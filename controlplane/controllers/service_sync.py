"""What the Endpoints and EndpointSlice controllers share: handlers on the
controller manager's shared Service and Pod informers (all namespaces, each
watched once per process) feeding indexes by namespace, the mapping from a pod
change to the services it affects, and a work queue of service keys
("namespace", "name") drained by a few workers with retries. A subclass may add
informers of its own (e.g. with a label selector) to `own_informers_list`."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from kubeling.client import Client
from kubeling.informer import Informer
from kubeling.resources import lookup
from kubeling.shared_informers import SharedInformers
from kubeling.tasks import guarded

from . import service_pods
from .queue_worker import QueueWorker
from .workqueue import WorkQueue

SERVICES, PODS = lookup("services"), lookup("pods")
Key = tuple[str, str]


def _ns_name(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


class ServiceSyncController(QueueWorker):
    """Subclasses set `name`, may add informers to `self.own_informers_list`, and implement
    `sync(key)`. Without `informers` (a controller run alone) the shared ones are run here."""

    name = "service-sync"

    def __init__(self, client: Client, informers: SharedInformers | None = None, workers: int = 4) -> None:
        self.client = client
        self.workers = workers
        self.log = logging.getLogger(f"kubeling.{self.name}")
        self.queue = WorkQueue()
        self.services: dict[str, dict[str, dict[str, Any]]] = {}  # ns -> name -> Service
        self.pods: dict[str, dict[str, dict[str, Any]]] = {}      # ns -> name -> Pod
        self.own_informers = informers is None
        self.informers = informers or SharedInformers(client)
        self.service_informer = self.watch(SERVICES, self._service_added, self._service_updated,
                                           self._service_deleted)
        self.pod_informer = self.watch(PODS, self._pod_added, self._pod_updated, self._pod_deleted)
        self.own_informers_list: list[Informer] = []

    # ---- indexes -------------------------------------------------------------

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.services.get(namespace, {}).get(name)

    def pods_of(self, svc: dict[str, Any]) -> list[dict[str, Any]]:
        """The namespace's pods matched by the service's selector, by name."""
        ns = (svc.get("metadata") or {}).get("namespace") or ""
        chosen = [p for p in self.pods.get(ns, {}).values() if service_pods.selects(svc, p)]
        return sorted(chosen, key=lambda p: p["metadata"]["name"])

    def services_of(self, pod: dict[str, Any]) -> set[Key]:
        ns = (pod.get("metadata") or {}).get("namespace") or ""
        return {(ns, name) for name, svc in self.services.get(ns, {}).items()
                if service_pods.selects(svc, pod)}

    # ---- event handlers ------------------------------------------------------

    def _service_added(self, svc: dict[str, Any]) -> None:
        ns, name = _ns_name(svc)
        self.services.setdefault(ns, {})[name] = svc
        self.queue.add((ns, name))

    def _service_updated(self, _old: dict[str, Any], svc: dict[str, Any]) -> None:
        self._service_added(svc)

    def _service_deleted(self, svc: dict[str, Any]) -> None:
        ns, name = _ns_name(svc)
        self.services.get(ns, {}).pop(name, None)
        self.queue.add((ns, name))

    def _pod_added(self, pod: dict[str, Any]) -> None:
        ns, name = _ns_name(pod)
        self.pods.setdefault(ns, {})[name] = pod
        for key in self.services_of(pod):
            self.queue.add(key)

    def _pod_updated(self, old: dict[str, Any], pod: dict[str, Any]) -> None:
        ns, name = _ns_name(pod)
        self.pods.setdefault(ns, {})[name] = pod
        labels_changed = (old.get("metadata") or {}).get("labels") != (pod.get("metadata") or {}).get("labels")
        if not labels_changed and service_pods.endpoint_view(old) == service_pods.endpoint_view(pod):
            return  # e.g. an annotation or container status change: no endpoint moves
        keys = self.services_of(pod)
        if labels_changed:
            keys |= self.services_of(old)
        for key in keys:
            self.queue.add(key)

    def _pod_deleted(self, pod: dict[str, Any]) -> None:
        ns, name = _ns_name(pod)
        self.pods.get(ns, {}).pop(name, None)
        for key in self.services_of(pod):
            self.queue.add(key)

    # ---- running -------------------------------------------------------------

    # The shared Service and Pod informers are the manager's (run by it); the subclass's
    # own informers are run here.

    def start_informers(self) -> list[asyncio.Task[Any]]:
        return super().start_informers() + [guarded(i.run(), f"{self.name} {i.res.plural} informer")
                                            for i in self.own_informers_list]

    async def wait_synced(self) -> None:
        await asyncio.gather(super().wait_synced(), *(i.synced.wait() for i in self.own_informers_list))
