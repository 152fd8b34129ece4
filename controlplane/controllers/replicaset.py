"""The ReplicaSet controller (Kubernetes' pkg/controller/replicaset), which also
runs ReplicationControllers as Kubernetes' replication controller does: the same
code, a map selector instead of a LabelSelector.

For each ReplicaSet: claim the pods its selector matches (adopt orphans, release
what no longer matches), create or delete pods until the active ones number
spec.replicas, and write status (replicas, ready, available, observedGeneration).
Expectations keep a sync from acting twice on creates and deletes the pod
informer has not shown yet.
"""
from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import time
from typing import Any

from kubeling import errors
from kubeling.client import Client
from kubeling.resources import Resource, lookup
from kubeling.selectors import label_selector_from_dict, label_selector_from_set
from kubeling.shared_informers import SharedInformers

from . import controller_ref
from .event_recorder import EventRecorder
from .queue_worker import QueueWorker
from .workqueue import WorkQueue

PODS = lookup("pods")
Key = tuple[str, str]
BURST_REPLICAS = 500
SLOW_START_INITIAL_BATCH = 1
EXPECTATIONS_TIMEOUT = 30.0


def selector_of(res: Resource, obj: dict[str, Any]):
    """A matcher of label dicts for the workload's selector (matches nothing when invalid)."""
    sel = (obj.get("spec") or {}).get("selector")
    try:
        if res.plural == "replicationcontrollers":
            parsed = label_selector_from_set(sel) if sel else label_selector_from_dict(None)
        else:
            parsed = label_selector_from_dict(sel)
    except ValueError:
        parsed = label_selector_from_dict(None)
    if parsed.empty:
        return lambda labels: False
    return parsed.matches


def _rank(pod: dict[str, Any]) -> tuple:
    """Deletion order (controller.ActivePods' Less) without the age: unscheduled,
    pending, not ready, more restarts first."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase"), 0)
    restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or []
                   if isinstance(c, dict))
    return (1 if spec.get("nodeName") else 0, phase_rank, 1 if controller_ref.is_pod_ready(pod) else 0,
            -restarts)


def deletion_order(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pods in the order a scale-down removes them; among equals the newest goes first."""
    newest_first = sorted(pods, key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "",
                          reverse=True)
    return sorted(newest_first, key=_rank)  # stable: keeps newest-first within a rank


class Expectations:
    """Pending creates / deletes per controller key (controller.ControllerExpectations)."""

    def __init__(self) -> None:
        self._adds: dict[Key, int] = {}
        self._dels: dict[Key, set[str]] = {}
        self._stamp: dict[Key, float] = {}

    def expect(self, key: Key, adds: int = 0, dels: set[str] | None = None) -> None:
        self._adds[key] = adds
        self._dels[key] = set(dels or ())
        self._stamp[key] = time.monotonic()

    def creation_observed(self, key: Key) -> None:
        if self._adds.get(key, 0) > 0:
            self._adds[key] -= 1

    def creation_failed(self, key: Key) -> None:
        self.creation_observed(key)

    def deletion_observed(self, key: Key, pod_key: str) -> None:
        self._dels.get(key, set()).discard(pod_key)

    def satisfied(self, key: Key) -> bool:
        if key not in self._stamp:
            return True
        if self._adds.get(key, 0) <= 0 and not self._dels.get(key):
            return True
        return time.monotonic() - self._stamp[key] > EXPECTATIONS_TIMEOUT

    def forget(self, key: Key) -> None:
        for d in (self._adds, self._dels, self._stamp):
            d.pop(key, None)


def _key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


class ReplicaSetController(QueueWorker):
    """`res` is replicasets (component replicaset-controller) or replicationcontrollers
    (component replication-controller)."""

    def __init__(self, client: Client, informers: SharedInformers, res: Resource | None = None,
                 workers: int = 3) -> None:
        self.client = client
        self.res = res or lookup("replicasets")
        self.component = "replication-controller" if self.res.plural == "replicationcontrollers" \
            else "replicaset-controller"
        self.log = logging.getLogger(f"kubeling.{self.component}")
        self.events = EventRecorder(client, self.component)
        self.queue = WorkQueue()
        self.expectations = Expectations()
        self.workers = workers
        self.informers = informers
        self.owners = self.watch(self.res, self._owner_changed,
                                             lambda _o, n: self._owner_changed(n), self._owner_deleted)
        self.pods = self.watch(PODS, self._pod_added, self._pod_updated, self._pod_deleted)

    # ---- event handlers --------------------------------------------------------

    def _owner_changed(self, obj: dict[str, Any]) -> None:
        self.queue.add(_key(obj))

    def _owner_deleted(self, obj: dict[str, Any]) -> None:
        self.expectations.forget(_key(obj))
        self.queue.add(_key(obj))

    def _owner_key(self, pod: dict[str, Any]) -> Key | None:
        ref = controller_ref.controller_of(pod)
        if ref is None or ref.get("kind") != self.res.kind:
            return None
        ns = (pod.get("metadata") or {}).get("namespace") or ""
        owner = self.owners.get(ns, ref.get("name") or "")
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return None
        return ns, ref["name"]

    def _matching_owners(self, pod: dict[str, Any]) -> list[Key]:
        ns = (pod.get("metadata") or {}).get("namespace") or ""
        labels = (pod.get("metadata") or {}).get("labels") or {}
        return [_key(o) for o in self.owners.items()
                if (o.get("metadata") or {}).get("namespace") == ns and selector_of(self.res, o)(labels)]

    def _pod_added(self, pod: dict[str, Any]) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            self.queue.add(key)
        elif controller_ref.controller_of(pod) is None:
            for k in self._matching_owners(pod):
                self.queue.add(k)

    def _pod_updated(self, old: dict[str, Any], pod: dict[str, Any]) -> None:
        keys = {self._owner_key(old), self._owner_key(pod)} - {None}
        if pod["metadata"].get("deletionTimestamp") and not old["metadata"].get("deletionTimestamp"):
            for k in keys:
                self.expectations.deletion_observed(k, pod["metadata"]["name"])
        if controller_ref.controller_of(pod) is None:
            keys |= set(self._matching_owners(pod))
        for k in keys:
            self.queue.add(k)  # type: ignore[arg-type]

    def _pod_deleted(self, pod: dict[str, Any]) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, pod["metadata"]["name"])
            self.queue.add(key)

    # ---- sync ----------------------------------------------------------------

    async def sync(self, key: Key) -> None:
        ns, name = key
        owner = self.owners.get(ns, name)
        if owner is None:
            self.expectations.forget(key)
            return
        owner = copy.deepcopy(owner)
        owner.setdefault("kind", self.res.kind)
        owner.setdefault("apiVersion", self.res.api_version)
        selects = selector_of(self.res, owner)
        candidates = [p for p in self.pods.items() if (p.get("metadata") or {}).get("namespace") == ns]
        # Finished pods are never adopted; they do not count either.
        candidates = [p for p in candidates if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                      or controller_ref.controller_of(p) is not None]
        claimed = await controller_ref.claim(self.client, PODS, owner, candidates, lambda labels: selects(labels))
        active = [p for p in claimed if controller_ref.is_active(p)]
        error: Exception | None = None
        if self.expectations.satisfied(key) and not owner["metadata"].get("deletionTimestamp"):
            try:
                await self._manage(key, owner, active)
            except errors.ApiError as exc:
                error = exc
        await self._update_status(owner, active)
        if error is not None:
            raise error
        min_ready = int((owner.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready > 0 and any(controller_ref.is_pod_ready(p) and not controller_ref.is_pod_available(
                p, min_ready) for p in active):
            self.queue.add_after(key, min_ready)  # availability changes with time alone

    async def _manage(self, key: Key, owner: dict[str, Any], active: list[dict[str, Any]]) -> None:
        want = int((owner.get("spec") or {}).get("replicas", 1) or 0)
        diff = len(active) - want
        if diff < 0:
            count = min(-diff, BURST_REPLICAS)
            self.expectations.expect(key, adds=count)
            created = await self._slow_start(key, owner, count)
            if created < count:
                raise errors.ApiError(500, "InternalError", f"created {created} of {count} pods")
        elif diff > 0:
            count = min(diff, BURST_REPLICAS)
            doomed = deletion_order(active)[:count]
            self.expectations.expect(key, dels={p["metadata"]["name"] for p in doomed})
            results = await asyncio.gather(*(self._delete_pod(key, owner, p) for p in doomed),
                                           return_exceptions=True)
            for r in results:
                if isinstance(r, Exception):
                    raise r

    async def _slow_start(self, key: Key, owner: dict[str, Any], count: int) -> int:
        """Create in doubling batches; stop at the first batch with a failure (quota, bad template)."""
        done, batch = 0, SLOW_START_INITIAL_BATCH
        while done < count:
            n = min(batch, count - done)
            results = await asyncio.gather(*(self._create_pod(owner) for _ in range(n)), return_exceptions=True)
            ok = sum(1 for r in results if r is True)
            done += ok
            for _ in range(n - ok):
                self.expectations.creation_failed(key)
            if ok < n:
                skipped = count - done - (n - ok)
                for _ in range(max(skipped, 0)):
                    self.expectations.creation_failed(key)
                return done
            batch *= 2
        return done

    def pod_from_template(self, owner: dict[str, Any]) -> dict[str, Any]:
        template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
        tmeta = template.get("metadata") or {}
        meta: dict[str, Any] = {"generateName": owner["metadata"]["name"] + "-",
                                "namespace": owner["metadata"]["namespace"],
                                "ownerReferences": [controller_ref.owner_ref(owner)]}
        for field in ("labels", "annotations", "finalizers"):
            if tmeta.get(field):
                meta[field] = tmeta[field]
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template.get("spec") or {}}

    async def _create_pod(self, owner: dict[str, Any]) -> bool:
        try:
            pod = await self.client.create(PODS, self.pod_from_template(owner))
        except errors.ApiError as exc:
            self.events.event(owner, "Warning", "FailedCreate", f"Error creating: {exc.message}")
            self.log.info("creating a pod for %s/%s failed: %s", owner["metadata"]["namespace"],
                          owner["metadata"]["name"], exc.message)
            return False
        self.events.event(owner, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")
        return True

    async def _delete_pod(self, key: Key, owner: dict[str, Any], pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        try:
            await self.client.delete(PODS, name, pod["metadata"]["namespace"])
        except errors.ApiError as exc:
            self.expectations.deletion_observed(key, name)
            if exc.code == 404:
                return
            self.events.event(owner, "Warning", "FailedDelete", f"Error deleting: {exc.message}")
            raise
        self.events.event(owner, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")

    async def _update_status(self, owner: dict[str, Any], active: list[dict[str, Any]]) -> None:
        spec = owner.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        now = dt.datetime.now(dt.timezone.utc)
        status = dict(owner.get("status") or {})
        new = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(1 for p in active if all(
                ((p.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in template_labels.items())),
            "readyReplicas": sum(1 for p in active if controller_ref.is_pod_ready(p)),
            "availableReplicas": sum(1 for p in active if controller_ref.is_pod_available(p, min_ready, now)),
            "observedGeneration": owner["metadata"].get("generation", 1),
        }
        merged = {**status, **new}
        for k in ("readyReplicas", "availableReplicas", "fullyLabeledReplicas"):
            if merged.get(k) == 0:
                merged.pop(k)  # omitempty, as the Go types serialize them
        if merged == (owner.get("status") or {}):
            return
        body = copy.deepcopy(owner)
        body["status"] = merged
        body["metadata"].pop("resourceVersion", None)  # status is ours alone (see deployment.py)
        try:
            await self.client.update(self.res, body, subresource="status")
        except errors.ApiError as exc:
            if exc.code != 404:
                raise
