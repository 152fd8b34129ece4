"""The garbage collector (Kubernetes' pkg/controller/garbagecollector).

It keeps a graph of every object's ownerReferences, fed by the shared informers
of all resources, and acts on three occasions:
- an owner is gone (or its uid is): dependents whose owners are all gone are
  deleted (background deletion);
- an owner is being deleted with the `foregroundDeletion` finalizer: its
  dependents are deleted first (in the foreground themselves); once none with
  blockOwnerDeletion is left, the finalizer is removed and the owner goes;
- an owner is being deleted with the `orphan` finalizer: the ownerReferences to
  it are removed from its dependents, then the finalizer.
An owner absent from the graph is looked up through the API before anything is
deleted, so a dependent seen before its owner is never collected by mistake.
"""
from __future__ import annotations

import logging
from typing import Any

from kubeling import errors
from kubeling.client import Client, resource_path
from kubeling.resources import RESOURCES, Resource, for_kind
from kubeling.shared_informers import SharedInformers

from .queue_worker import QueueWorker
from .workqueue import WorkQueue

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
# High-churn kinds nobody owns (Kubernetes' GC ignores events too).
IGNORED = {("", "events"), ("coordination.k8s.io", "leases"), ("events.k8s.io", "events")}


class Node:
    __slots__ = ("res", "obj", "dependents")

    def __init__(self, res: Resource, obj: dict[str, Any]) -> None:
        self.res, self.obj = res, obj
        self.dependents: set[str] = set()

    @property
    def meta(self) -> dict[str, Any]:
        return self.obj.get("metadata") or {}

    @property
    def owners(self) -> list[dict[str, Any]]:
        return [r for r in self.meta.get("ownerReferences") or [] if isinstance(r, dict) and r.get("uid")]


class GarbageCollector(QueueWorker):
    def __init__(self, client: Client, informers: SharedInformers, workers: int = 4) -> None:
        self.client = client
        self.log = logging.getLogger("kubeling.garbage-collector")
        self.queue = WorkQueue()
        self.workers = workers
        self.informers = informers
        self.nodes: dict[str, Node] = {}
        self.dependents: dict[str, set[str]] = {}  # owner uid -> dependent uids (owner may be unseen)
        for res in RESOURCES:
            if (res.group, res.plural) in IGNORED or "watch" not in res.verbs or "delete" not in res.verbs:
                continue
            self.watch(res, lambda o, r=res: self._upsert(r, o),
                                   lambda _old, o, r=res: self._upsert(r, o),
                                   lambda o, r=res: self._removed(o))

    # ---- graph ---------------------------------------------------------------

    def _upsert(self, res: Resource, obj: dict[str, Any]) -> None:
        uid = (obj.get("metadata") or {}).get("uid")
        if not uid:
            return
        old = self.nodes.get(uid)
        old_owners = {r["uid"] for r in old.owners} if old else set()
        node = Node(res, obj)
        self.nodes[uid] = node
        new_owners = {r["uid"] for r in node.owners}
        for o in old_owners - new_owners:
            self.dependents.get(o, set()).discard(uid)
        for o in new_owners:
            self.dependents.setdefault(o, set()).add(uid)
        meta = node.meta
        if meta.get("deletionTimestamp") and ({ORPHAN, FOREGROUND} & set(meta.get("finalizers") or [])):
            self.queue.add(uid)
        if new_owners - old_owners or any(o not in self.nodes or self._deleting_foreground(o)
                                          for o in new_owners):
            self.queue.add(uid)

    def _removed(self, obj: dict[str, Any]) -> None:
        uid = (obj.get("metadata") or {}).get("uid")
        if not uid:
            return
        node = self.nodes.pop(uid, None)
        if node is not None:
            for o in node.owners:
                self.dependents.get(o["uid"], set()).discard(uid)
                if o["uid"] in self.nodes:
                    self.queue.add(o["uid"])  # a foreground owner may now be free to go
        for dep in self.dependents.get(uid, set()):
            self.queue.add(dep)

    def _deleting_foreground(self, uid: str) -> bool:
        node = self.nodes.get(uid)
        return node is not None and bool(node.meta.get("deletionTimestamp")) \
            and FOREGROUND in (node.meta.get("finalizers") or [])

    # ---- actions -------------------------------------------------------------

    async def sync(self, uid: str) -> None:
        node = self.nodes.get(uid)
        if node is None:
            return
        meta = node.meta
        finalizers = meta.get("finalizers") or []
        if meta.get("deletionTimestamp") and ORPHAN in finalizers:
            await self._orphan_dependents(node)
            return
        if meta.get("deletionTimestamp") and FOREGROUND in finalizers:
            await self._delete_dependents_first(node)
            return
        if node.owners:
            await self._attempt_to_delete(node)

    async def _owner_state(self, node: Node, ref: dict[str, Any]) -> str:
        """"solid", "waiting" (deleting in the foreground) or "dangling"."""
        owner = self.nodes.get(ref["uid"])
        if owner is not None:
            return "waiting" if self._deleting_foreground(ref["uid"]) else "solid"
        res = for_kind(ref.get("apiVersion") or "", ref.get("kind") or "")
        if res is None:
            return "solid"  # a kind we cannot look up is never presumed gone
        ns = node.meta.get("namespace") if res.namespaced else None
        try:
            live = await self.client.request("GET", resource_path(res, ns, ref.get("name") or ""))
        except errors.ApiError as exc:
            if exc.code == 404:
                return "dangling"
            raise
        if (live.get("metadata") or {}).get("uid") != ref["uid"]:
            return "dangling"
        meta = live.get("metadata") or {}
        return "waiting" if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or []) \
            else "solid"

    async def _attempt_to_delete(self, node: Node) -> None:
        states = {ref["uid"]: await self._owner_state(node, ref) for ref in node.owners}
        dangling = [u for u, s in states.items() if s == "dangling"]
        waiting = [u for u, s in states.items() if s == "waiting"]
        solid = [u for u, s in states.items() if s == "solid"]
        if solid:
            if dangling:  # drop references to owners that are gone, keep the object
                patch = {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": u} for u in dangling],
                                      "uid": node.meta["uid"]}}
                await self._patch(node, patch)
            return
        if node.meta.get("deletionTimestamp"):
            return
        policy = "Foreground" if waiting else "Background"
        self.log.info("deleting %s %s/%s (owners gone: %s, %s)", node.res.kind, node.meta.get("namespace", ""),
                      node.meta.get("name"), dangling, policy)
        await self._delete(node, policy)

    async def _delete_dependents_first(self, node: Node) -> None:
        deps = [self.nodes[d] for d in self.dependents.get(node.meta["uid"], set()) if d in self.nodes]
        blocking = []
        for dep in deps:
            ref = next((r for r in dep.owners if r["uid"] == node.meta["uid"]), {})
            if ref.get("blockOwnerDeletion") is True:
                blocking.append(dep)
            if not dep.meta.get("deletionTimestamp"):
                await self._attempt_to_delete(dep)
        if blocking:
            return  # their deletion re-queues us
        await self._remove_finalizer(node, FOREGROUND)

    async def _orphan_dependents(self, node: Node) -> None:
        uid = node.meta["uid"]
        for dep_uid in list(self.dependents.get(uid, set())):
            dep = self.nodes.get(dep_uid)
            if dep is None:
                continue
            patch = {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": uid}], "uid": dep_uid}}
            await self._patch(dep, patch)
        await self._remove_finalizer(node, ORPHAN)

    async def _patch(self, node: Node, patch: dict[str, Any]) -> None:
        try:
            await self.client.patch(node.res, node.meta["name"], patch, node.meta.get("namespace"),
                                    patch_type="strategic")
        except errors.ApiError as exc:
            if exc.code != 404:
                raise

    async def _delete(self, node: Node, policy: str) -> None:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy,
                "preconditions": {"uid": node.meta["uid"]}}
        try:
            await self.client.request("DELETE", resource_path(node.res, node.meta.get("namespace"),
                                                              node.meta["name"]), body)
        except errors.ApiError as exc:
            if exc.code not in (404, 409):
                raise

    async def _remove_finalizer(self, node: Node, finalizer: str) -> None:
        """Remove one finalizer, conditioned on the version read (others may be editing the list)."""
        res, ns, name = node.res, node.meta.get("namespace"), node.meta["name"]
        for _ in range(5):
            try:
                live = await self.client.get(res, name, ns)
            except errors.ApiError as exc:
                if exc.code == 404:
                    return
                raise
            meta = live.get("metadata") or {}
            if meta.get("uid") != node.meta["uid"] or finalizer not in (meta.get("finalizers") or []):
                return
            patch = {"metadata": {"finalizers": [f for f in meta["finalizers"] if f != finalizer],
                                  "resourceVersion": meta["resourceVersion"]}}
            try:
                await self.client.patch(res, name, patch, ns, patch_type="merge")
                return
            except errors.ApiError as exc:
                if exc.code == 404:
                    return
                if exc.code != 409:
                    raise
        raise errors.conflict(res.plural, name, "finalizer removal kept conflicting")

    # ---- running -------------------------------------------------------------

    def after_synced(self) -> None:
        for uid, node in list(self.nodes.items()):
            if node.owners or node.meta.get("deletionTimestamp"):
                self.queue.add(uid)

    def key_text(self, uid: object) -> str:
        node = self.nodes.get(str(uid))
        if node is None:
            return f"uid {uid}"
        ns = node.meta.get("namespace")
        return f"{node.res.plural} {ns + '/' if ns else ''}{node.meta.get('name')} (uid {uid})"
