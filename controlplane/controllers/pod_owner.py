"""What the DaemonSet, StatefulSet and Job controllers share: a work queue of owner
keys fed by the shared informers (the owner kind and pods; a pod event wakes the
controller of that pod), claiming pods by selector (controller_ref.claim), and pod
writes seen through OwnWrites so a sync never acts twice on a pod the informer has
not delivered yet. Subclasses set `res`, `component` and implement `sync_owner`."""
from __future__ import annotations

import copy
import json
import logging
from datetime import datetime, timezone
from typing import Any, Callable

from kubeling import errors
from kubeling.client import Client, resource_path
from kubeling.resources import Resource, lookup
from kubeling.selectors import label_selector_from_dict
from kubeling.shared_informers import SharedInformers
from kubeling.timefmt import parse_time

from . import controller_ref
from .event_recorder import EventRecorder
from .own_writes import OwnWrites
from .queue_worker import QueueWorker
from .workqueue import WorkQueue

PODS = lookup("pods")
Key = tuple[str, str]
NORMAL, WARNING = "Normal", "Warning"


def key_of(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def template_hash(template: Any) -> str:
    """A short stable hash of a pod template (the controller-revision-hash label)."""
    import hashlib
    raw = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(raw).hexdigest()
    # Kubernetes' hashes are rendered in a vowel-free alphabet; any stable short text will do here.
    return "".join("bcdfghjklmnpqrstvwxz2456789"[int(digest[i:i + 2], 16) % 27] for i in range(0, 20, 2))


def pod_from_template(owner: dict[str, Any], template: dict[str, Any], *, name: str = "",
                      generate_name: str = "", extra_labels: dict[str, str] | None = None
                      ) -> dict[str, Any]:
    """controller.GetPodFromTemplate: the template's labels, annotations and spec,
    and the owner's controllerRef."""
    tmeta = template.get("metadata") or {}
    meta: dict[str, Any] = {"labels": {**(tmeta.get("labels") or {}), **(extra_labels or {})},
                            "ownerReferences": [controller_ref.owner_ref(owner)]}
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        meta["finalizers"] = list(tmeta["finalizers"])
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = generate_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(template.get("spec") or {})}


class PodOwnerController(QueueWorker):
    res: Resource
    component = "controller"

    def __init__(self, client: Client, informers: SharedInformers, workers: int = 2) -> None:
        self.client = client
        self.workers = workers
        self.log = logging.getLogger(f"kubeling.{self.component}")
        self.events = EventRecorder(client, self.component)
        self.queue = WorkQueue()
        self.informers = informers
        self.owners = self.watch(self.res, self._owner_changed, lambda _o, n: self._owner_changed(n),
                                             self._owner_changed)
        self.pod_informer = self.watch(PODS, self._pod_changed, self._pod_updated, self._pod_deleted)
        self.pods = OwnWrites(self.pod_informer)

    # ---- event handlers --------------------------------------------------------

    def _owner_changed(self, obj: dict[str, Any]) -> None:
        self.queue.add(key_of(obj))

    def _owner_key(self, pod: dict[str, Any]) -> Key | None:
        ref = controller_ref.controller_of(pod)
        if ref is None or ref.get("kind") != self.res.kind:
            return None
        return (pod.get("metadata") or {}).get("namespace") or "", ref.get("name") or ""

    def _orphan_owners(self, pod: dict[str, Any]) -> list[Key]:
        """Owners whose selector matches an orphan pod (they may adopt it)."""
        if controller_ref.controller_of(pod) is not None:
            return []
        ns, labels = key_of(pod)[0], (pod.get("metadata") or {}).get("labels") or {}
        out = []
        for o in self.owners.items():
            if key_of(o)[0] == ns and self.selects(o)(labels):
                out.append(key_of(o))
        return out

    def _pod_changed(self, pod: dict[str, Any]) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.queue.add(key)
        for k in self._orphan_owners(pod):
            self.queue.add(k)

    def _pod_updated(self, old: dict[str, Any], pod: dict[str, Any]) -> None:
        for k in {self._owner_key(old), self._owner_key(pod)} - {None}:
            self.queue.add(k)  # type: ignore[arg-type]
        for k in self._orphan_owners(pod):
            self.queue.add(k)

    def _pod_deleted(self, pod: dict[str, Any]) -> None:
        self.pods.observed_delete(pod)
        key = self._owner_key(pod)
        if key is not None:
            self.queue.add(key)

    # ---- helpers for subclasses --------------------------------------------------

    def selects(self, owner: dict[str, Any]) -> Callable[[dict[str, str]], bool]:
        try:
            sel = label_selector_from_dict((owner.get("spec") or {}).get("selector"))
        except ValueError:
            return lambda _labels: False
        if not sel.requirements:  # an empty selector selects nothing for a controller
            return lambda _labels: False
        return sel.matches

    async def owned_pods(self, owner: dict[str, Any]) -> list[dict[str, Any]]:
        """The pods this owner controls (adopting matching orphans, releasing strays)."""
        ns = key_of(owner)[0]
        candidates = [p for p in self.pods.items() if key_of(p)[0] == ns]
        candidates = [p for p in candidates if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                      or controller_ref.controller_of(p) is not None]
        return await controller_ref.claim(self.client, PODS, owner, candidates, self.selects(owner))

    def recheck_availability(self, owner: dict[str, Any], pods: list[dict[str, Any]], min_ready: int) -> None:
        """Ready pods become available minReadySeconds later, with no event to say so:
        sync again then (Kubernetes' controllers requeue the same way)."""
        if min_ready <= 0:
            return
        now = utcnow()
        waits = []
        for p in pods:
            if controller_ref.is_pod_ready(p) and not controller_ref.is_pod_available(p, min_ready, now):
                since = next((parse_time(c.get("lastTransitionTime"))
                              for c in (p.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"),
                             None)
                if since is not None:
                    waits.append((since - now).total_seconds() + min_ready)
        if waits:
            self.queue.add_after(key_of(owner), max(min(waits), 0) + 0.05)

    async def create_pod(self, owner: dict[str, Any], pod: dict[str, Any]) -> dict[str, Any] | None:
        ns = key_of(owner)[0]
        try:
            created = await self.client.create(PODS, pod, ns)
        except errors.ApiError as exc:
            if exc.reason == "AlreadyExists":
                return None
            self.events.event(owner, WARNING, "FailedCreate", f"Error creating: {exc.message}")
            raise
        self.pods.wrote(created)
        self.events.event(owner, NORMAL, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
        return created

    async def delete_pod(self, owner: dict[str, Any], pod: dict[str, Any], *, event: bool = True) -> None:
        ns, name = key_of(pod)
        try:
            gone = await self.client.delete(PODS, name, ns, uid=(pod.get("metadata") or {}).get("uid"))
        except errors.ApiError as exc:
            if exc.code in (404, 409):
                return
            self.events.event(owner, WARNING, "FailedDelete", f"Error deleting: {exc.message}")
            raise
        if gone.get("kind") == "Pod" and (gone.get("metadata") or {}).get("deletionTimestamp"):
            self.pods.wrote(gone)
        else:
            self.pods.deleted(gone if gone.get("kind") == "Pod" else pod)
        if event:
            self.events.event(owner, NORMAL, "SuccessfulDelete", f"Deleted pod: {name}")

    async def write_status(self, owner: dict[str, Any], status: dict[str, Any]) -> dict[str, Any] | None:
        """PUT the owner's status subresource when it changed."""
        if (owner.get("status") or {}) == status:
            return None
        new = copy.deepcopy(owner)
        new["status"] = status
        try:
            return await self.client.update(self.res, new, "status")
        except errors.ApiError as exc:
            if exc.code in (404,):
                return None
            raise

    async def delete_object(self, res: Resource, ns: str, name: str, propagation: str = "Background") -> None:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        try:
            await self.client.request("DELETE", resource_path(res, ns, name), body)
        except errors.ApiError as exc:
            if exc.code != 404:
                raise

    # ---- running -------------------------------------------------------------------

    async def sync_owner(self, owner: dict[str, Any]) -> None:
        raise NotImplementedError

    async def sync(self, key: Key) -> None:
        owner = self.owners.get(*key)
        if owner is None:
            return
        owner = copy.deepcopy(owner)
        owner.setdefault("kind", self.res.kind)
        owner.setdefault("apiVersion", self.res.api_version)
        await self.sync_owner(owner)
