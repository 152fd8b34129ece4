"""The root CA publisher (Kubernetes' root-ca-cert-publisher): a ConfigMap
`kube-root-ca.crt` with key `ca.crt` in every active namespace, holding the CA that
verifies the apiserver (the controller-manager's --root-ca-file). Pods read it
through their kube-api-access projected volume. A changed or deleted copy is put back."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from kubeling import errors
from kubeling.client import Client
from kubeling.resources import lookup

from .serviceaccounts import _active
from .shared_informers import SharedInformers
from .workqueue import WorkQueue

log = logging.getLogger("kubeling.root-ca-cert-publisher")
NAMESPACES, CONFIGMAPS = lookup("namespaces"), lookup("configmaps")
NAME = "kube-root-ca.crt"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
               "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
               "guaranteed across distributions of Kubernetes clusters.")


class RootCACertPublisher:
    def __init__(self, client: Client, root_ca: bytes, informers: SharedInformers | None = None) -> None:
        self.client = client
        self.root_ca = root_ca.decode()
        self.own_informers = informers is None
        self.informers = informers or SharedInformers(client)
        self.queue = WorkQueue()
        self.ns_informer = self.informers.add_handlers(
            NAMESPACES, on_add=self._ns_seen, on_update=lambda _o, n: self._ns_seen(n))
        self.cm_informer = self.informers.add_handlers(
            CONFIGMAPS, on_update=lambda _o, cm: self._cm_seen(cm), on_delete=self._cm_seen)

    def _ns_seen(self, ns: dict[str, Any]) -> None:
        if _active(ns):
            self.queue.add(ns["metadata"]["name"])

    def _cm_seen(self, cm: dict[str, Any]) -> None:
        meta = cm.get("metadata") or {}
        if meta.get("name") == NAME:
            self.queue.add(meta.get("namespace") or "")

    async def sync(self, ns: str) -> None:
        if not _active(self.ns_informer.get("", ns)):
            return
        data = {"ca.crt": self.root_ca}
        current = self.cm_informer.get(ns, NAME)
        try:
            if current is None:
                await self.client.create(CONFIGMAPS, {"metadata": {
                    "name": NAME, "annotations": {"kubernetes.io/description": DESCRIPTION}}, "data": data}, ns)
                log.info("published %s in %s", NAME, ns)
            elif current.get("data") != data:
                await self.client.patch(CONFIGMAPS, NAME, {"data": {**{k: None for k in current.get("data") or {}},
                                                                    **data}}, ns)
        except errors.ApiError as exc:
            if exc.reason not in ("AlreadyExists", "Forbidden", "NotFound"):
                raise

    async def _worker(self) -> None:
        while True:
            ns = await self.queue.get()
            try:
                await self.sync(str(ns))
                self.queue.forget(ns)
            except Exception as exc:  # retried with backoff
                log.warning("namespace %s: %s", ns, exc)
                self.queue.add_rate_limited(ns)
            finally:
                self.queue.done(ns)

    async def run(self) -> None:
        tasks = [asyncio.create_task(self.informers.run())] if self.own_informers else []
        try:
            await self.informers.wait_synced()
            tasks += [asyncio.create_task(self._worker()) for _ in range(2)]
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            self.queue.shutdown()
