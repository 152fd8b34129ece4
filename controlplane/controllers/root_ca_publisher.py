"""The root CA publisher (Kubernetes' root-ca-cert-publisher): a ConfigMap
`kube-root-ca.crt` with key `ca.crt` in every active namespace, holding the CA that
verifies the apiserver (the controller-manager's --root-ca-file). Pods read it
through their kube-api-access projected volume. A changed or deleted copy is put back."""
from __future__ import annotations

import logging
from typing import Any

from kubeling import errors
from kubeling.client import Client
from kubeling.resources import lookup
from kubeling.shared_informers import SharedInformers

from .serviceaccounts import PerNamespaceController

log = logging.getLogger("kubeling.root-ca-cert-publisher")
CONFIGMAPS = lookup("configmaps")
NAME = "kube-root-ca.crt"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
               "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
               "guaranteed across distributions of Kubernetes clusters.")


class RootCACertPublisher(PerNamespaceController):
    def __init__(self, client: Client, root_ca: bytes, informers: SharedInformers | None = None) -> None:
        super().__init__(client, informers, 2, log)
        self.root_ca = root_ca.decode()
        self.cm_informer = self.watch(
            CONFIGMAPS, on_update=lambda _o, cm: self._cm_seen(cm), on_delete=self._cm_seen)

    def _cm_seen(self, cm: dict[str, Any]) -> None:
        meta = cm.get("metadata") or {}
        if meta.get("name") == NAME:
            self.queue.add(meta.get("namespace") or "")

    async def sync(self, ns: str) -> None:
        if not self.active(ns):
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
