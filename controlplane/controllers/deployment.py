"""The Deployment controller (Kubernetes' pkg/controller/deployment).

A Deployment owns ReplicaSets, one per pod template, each named
`<deployment>-<pod-template-hash>` with the hash as a pod label and selector term
so their pods never overlap. The new ReplicaSet is the one whose template equals
the Deployment's; RollingUpdate grows it while shrinking the old ones so that at
most replicas+maxSurge pods exist and at least replicas-maxUnavailable are
available; Recreate removes the old pods first. Revisions are the
`deployment.kubernetes.io/revision` annotations; old ReplicaSets beyond
revisionHistoryLimit are deleted once a rollout completes. `kubectl rollout undo`
works client-side by copying an old ReplicaSet's template back, `restart` by
changing a template annotation: both are just new templates here.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import math
from typing import Any

from kubeling import errors
from kubeling.client import Client
from kubeling.resources import lookup
from kubeling.selectors import label_selector_from_dict
from kubeling.shared_informers import SharedInformers

from . import controller_ref
from .event_recorder import EventRecorder
from .queue_worker import QueueWorker
from .workqueue import WorkQueue

DEPLOYMENTS, REPLICASETS, PODS = lookup("deployments"), lookup("replicasets"), lookup("pods")
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Annotations of the Deployment never copied to its ReplicaSets (skipCopyAnnotation).
NOT_COPIED = {LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS,
              "deprecated.deployment.rollback.to"}
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
Key = tuple[str, str]


def template_hash(template: dict[str, Any], collision_count: int = 0) -> str:
    """FNV-32a of the canonical template (plus collisionCount), encoded with the
    vowel-free alphabet Kubernetes uses (rand.SafeEncodeString)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return "".join(SAFE_ALPHABET[int(ch, 16) % len(SAFE_ALPHABET)] for ch in f"{h:010x}")[:10]


def _without_hash(template: dict[str, Any]) -> dict[str, Any]:
    t = copy.deepcopy(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
        if not labels:
            t["metadata"].pop("labels")
    if isinstance(t.get("metadata"), dict) and not t["metadata"]:
        t.pop("metadata")
    return t


def resolve(value: Any, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            pct = int(value[:-1])
        except ValueError:
            return 0
        exact = pct * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return 0


def surge_and_unavailable(d: dict[str, Any]) -> tuple[int, int]:
    """ResolveFenceposts: maxSurge rounds up, maxUnavailable down; both 0 → 1 unavailable."""
    spec = d.get("spec") or {}
    replicas = int(spec.get("replicas", 1) or 0)
    strategy = spec.get("strategy") or {}
    if strategy.get("type") != "RollingUpdate":
        return 0, 0
    ru = strategy.get("rollingUpdate") or {}
    surge = resolve(ru.get("maxSurge", "25%"), replicas, True)
    unavailable = resolve(ru.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def revision(rs: dict[str, Any]) -> int:
    try:
        return int(((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION) or 0)
    except ValueError:
        return 0


def _replicas(rs: dict[str, Any]) -> int:
    return int((rs.get("spec") or {}).get("replicas", 0) or 0)


def _status(rs: dict[str, Any], field: str) -> int:
    return int((rs.get("status") or {}).get(field) or 0)


PROGRESS_FIELDS = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")


def _seconds_since(ts: Any) -> float | None:
    try:
        then = dt.datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (dt.datetime.now(dt.timezone.utc) - then).total_seconds()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


class DeploymentController(QueueWorker):
    def __init__(self, client: Client, informers: SharedInformers, workers: int = 3) -> None:
        self.client = client
        self.log = logging.getLogger("kubeling.deployment-controller")
        self.events = EventRecorder(client, "deployment-controller")
        self.queue = WorkQueue()
        self.workers = workers
        self.informers = informers
        self.deployments = self.watch(DEPLOYMENTS, self._enqueue, lambda _o, n: self._enqueue(n),
                                                  self._enqueue)
        self.replicasets = self.watch(REPLICASETS, self._rs_changed,
                                                  lambda o, n: (self._rs_changed(o), self._rs_changed(n)),
                                                  self._rs_changed)
        # Pods matter only for Recreate (old pods must be gone before new ones start).
        self.pods = self.watch(PODS, None, None, self._pod_deleted)

    def _enqueue(self, d: dict[str, Any]) -> None:
        self.queue.add(_key(d))

    def _rs_changed(self, rs: dict[str, Any]) -> None:
        ns = (rs.get("metadata") or {}).get("namespace") or ""
        ref = controller_ref.controller_of(rs)
        if ref is not None:
            if ref.get("kind") == "Deployment":
                self.queue.add((ns, ref.get("name") or ""))
            return
        labels = (rs.get("metadata") or {}).get("labels") or {}
        for d in self.deployments.items():
            if d["metadata"].get("namespace") == ns and self._selects(d)(labels):
                self.queue.add(_key(d))

    def _pod_deleted(self, pod: dict[str, Any]) -> None:
        ref = controller_ref.controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        ns = pod["metadata"].get("namespace") or ""
        rs = self.replicasets.get(ns, ref.get("name") or "")
        dref = controller_ref.controller_of(rs) if rs else None
        if dref is not None and dref.get("kind") == "Deployment":
            d = self.deployments.get(ns, dref.get("name") or "")
            if d is not None and ((d.get("spec") or {}).get("strategy") or {}).get("type") == "Recreate":
                self.queue.add((ns, dref["name"]))

    @staticmethod
    def _selects(d: dict[str, Any]):
        try:
            sel = label_selector_from_dict((d.get("spec") or {}).get("selector"))
        except ValueError:
            return lambda labels: False
        return (lambda labels: False) if sel.empty else sel.matches

    # ---- sync ----------------------------------------------------------------

    async def sync(self, key: Key) -> None:
        ns, name = key
        d = self.deployments.get(ns, name)
        if d is None:
            return
        d = copy.deepcopy(d)
        d.setdefault("kind", "Deployment")
        d.setdefault("apiVersion", "apps/v1")
        if d["metadata"].get("deletionTimestamp"):
            return  # the garbage collector takes the ReplicaSets away
        selects = self._selects(d)
        candidates = [rs for rs in self.replicasets.items() if rs["metadata"].get("namespace") == ns]
        rses = await controller_ref.claim(self.client, REPLICASETS, d, candidates, selects)
        spec = d.get("spec") or {}
        new_rs, old_rses = self._find_new(d, rses)
        if spec.get("paused"):
            await self._scale_only(d, new_rs, old_rses)
            await self._sync_status(d, new_rs, old_rses, paused=True)
            return
        if new_rs is None or revision(new_rs) <= max((revision(r) for r in old_rses), default=0):
            new_rs = await self._ensure_new_rs(d, new_rs, old_rses)
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            await self._rollout_recreate(d, new_rs, old_rses)
        else:
            await self._rollout_rolling(d, new_rs, old_rses)
        await self._sync_status(d, new_rs, old_rses)
        if self._complete(d, new_rs, old_rses):
            await self._cleanup(d, old_rses)

    def _find_new(self, d: dict[str, Any], rses: list[dict[str, Any]]
                  ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        want = _without_hash((d.get("spec") or {}).get("template") or {})
        matching = [rs for rs in rses if _without_hash((rs.get("spec") or {}).get("template") or {}) == want]
        matching.sort(key=lambda r: r["metadata"].get("creationTimestamp") or "")
        new = matching[0] if matching else None
        return new, [rs for rs in rses if rs is not new]

    async def _ensure_new_rs(self, d: dict[str, Any], existing: dict[str, Any] | None,
                             old_rses: list[dict[str, Any]]) -> dict[str, Any]:
        max_old = max((revision(r) for r in old_rses), default=0)
        new_revision = str(max_old + 1)
        if existing is not None:
            # A template seen before (rollback): that ReplicaSet becomes the newest revision.
            ann = dict(existing["metadata"].get("annotations") or {})
            old_rev = ann.get(REVISION)
            ann[REVISION] = new_revision
            if old_rev:
                history = [h for h in (ann.get(REVISION_HISTORY) or "").split(",") if h]
                ann[REVISION_HISTORY] = ",".join(history + [old_rev])
            patched = await self.client.patch(
                REPLICASETS, existing["metadata"]["name"],
                {"metadata": {"annotations": ann, "resourceVersion": existing["metadata"]["resourceVersion"]}},
                d["metadata"]["namespace"])
            await self._set_deployment_revision(d, new_revision)
            return patched
        spec = d.get("spec") or {}
        replicas = int(spec.get("replicas", 1) or 0)
        collisions = int((d.get("status") or {}).get("collisionCount") or 0)
        template = copy.deepcopy(spec.get("template") or {})
        h = template_hash(_without_hash(template), collisions)
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = h
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            start = 0
        else:
            surge, _ = surge_and_unavailable(d)
            current = sum(_replicas(r) for r in old_rses)
            start = max(0, min(replicas + surge - current, replicas))
        ann = {k: v for k, v in (d["metadata"].get("annotations") or {}).items() if k not in NOT_COPIED}
        ann.update({REVISION: new_revision, DESIRED_REPLICAS: str(replicas),
                    MAX_REPLICAS: str(replicas + surge_and_unavailable(d)[0])})
        name = f"{d['metadata']['name']}-{h}"
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": name, "namespace": d["metadata"]["namespace"],
                           "labels": dict(template["metadata"]["labels"]), "annotations": ann,
                           "ownerReferences": [controller_ref.owner_ref(d)]},
              "spec": {"replicas": start, "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                       "selector": selector, "template": template}}
        try:
            created = await self.client.create(REPLICASETS, rs)
        except errors.ApiError as exc:
            if exc.reason != "AlreadyExists":
                raise
            other = await self.client.get(REPLICASETS, name, d["metadata"]["namespace"])
            ref = controller_ref.controller_of(other)
            if ref is not None and ref.get("uid") == d["metadata"]["uid"] and \
                    _without_hash(other["spec"]["template"]) == _without_hash(template):
                return other
            # A hash collision: bump collisionCount so the next sync picks another name.
            body = copy.deepcopy(d)
            body.setdefault("status", {})["collisionCount"] = collisions + 1
            await self.client.update(DEPLOYMENTS, body, subresource="status")
            raise
        self.events.event(d, "Normal", "ScalingReplicaSet",
                          f"Scaled up replica set {name} from 0 to {start}")
        await self._set_deployment_revision(d, new_revision)
        return created

    async def _set_deployment_revision(self, d: dict[str, Any], rev: str) -> None:
        if (d["metadata"].get("annotations") or {}).get(REVISION) == rev:
            return
        await self.client.patch(DEPLOYMENTS, d["metadata"]["name"],
                                {"metadata": {"annotations": {REVISION: rev}}}, d["metadata"]["namespace"])

    async def _scale(self, d: dict[str, Any], rs: dict[str, Any], replicas: int) -> dict[str, Any]:
        before = _replicas(rs)
        spec = d.get("spec") or {}
        want_ann = {DESIRED_REPLICAS: str(int(spec.get("replicas", 1) or 0)),
                    MAX_REPLICAS: str(int(spec.get("replicas", 1) or 0) + surge_and_unavailable(d)[0])}
        ann = rs["metadata"].get("annotations") or {}
        if before == replicas and all(ann.get(k) == v for k, v in want_ann.items()):
            return rs
        # Conditioned on the version we decided from: a stale cache must not break the surge bound.
        patch = {"metadata": {"annotations": want_ann, "resourceVersion": rs["metadata"]["resourceVersion"]},
                 "spec": {"replicas": replicas}}
        updated = await self.client.patch(REPLICASETS, rs["metadata"]["name"], patch, rs["metadata"]["namespace"])
        if before != replicas:
            direction = "up" if replicas > before else "down"
            self.events.event(d, "Normal", "ScalingReplicaSet",
                              f"Scaled {direction} replica set {rs['metadata']['name']} from {before} to {replicas}")
        rs.clear()
        rs.update(updated)
        return rs

    async def _scale_only(self, d: dict[str, Any], new_rs: dict[str, Any] | None,
                          old_rses: list[dict[str, Any]]) -> None:
        """A paused Deployment still follows replica changes: the active ReplicaSet takes them."""
        replicas = int((d.get("spec") or {}).get("replicas", 1) or 0)
        active = [r for r in ([new_rs] if new_rs else []) + old_rses if _replicas(r) > 0]
        if len(active) == 1:
            await self._scale(d, active[0], replicas)
        elif not active and new_rs is not None:
            await self._scale(d, new_rs, replicas)

    async def _rollout_recreate(self, d: dict[str, Any], new_rs: dict[str, Any],
                                old_rses: list[dict[str, Any]]) -> None:
        for rs in old_rses:
            if _replicas(rs) > 0:
                await self._scale(d, rs, 0)
        old_uids = {r["metadata"]["uid"] for r in old_rses}
        ns = d["metadata"]["namespace"]
        remaining = [p for p in self.pods.items() if p["metadata"].get("namespace") == ns
                     and (controller_ref.controller_of(p) or {}).get("uid") in old_uids
                     and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        if remaining:
            return  # wait for the old pods to be gone (a pod delete re-queues us)
        await self._scale(d, new_rs, int((d.get("spec") or {}).get("replicas", 1) or 0))

    async def _rollout_rolling(self, d: dict[str, Any], new_rs: dict[str, Any],
                               old_rses: list[dict[str, Any]]) -> None:
        replicas = int((d.get("spec") or {}).get("replicas", 1) or 0)
        surge, max_unavailable = surge_and_unavailable(d)
        # Scale the new ReplicaSet up as far as maxSurge allows (NewRSNewReplicas).
        if _replicas(new_rs) > replicas:
            await self._scale(d, new_rs, replicas)
        elif _replicas(new_rs) < replicas:
            current = sum(_replicas(r) for r in old_rses) + _replicas(new_rs)
            room = replicas + surge - current
            if room > 0:
                await self._scale(d, new_rs, _replicas(new_rs) + min(room, replicas - _replicas(new_rs)))
        else:
            await self._scale(d, new_rs, replicas)  # refreshes the desired-replicas annotation
        # Scale old ReplicaSets down as far as maxUnavailable allows.
        old_total = sum(_replicas(r) for r in old_rses)
        if old_total == 0:
            return
        all_total = old_total + _replicas(new_rs)
        min_available = replicas - max_unavailable
        new_unavailable = _replicas(new_rs) - _status(new_rs, "availableReplicas")
        max_scaled_down = all_total - min_available - new_unavailable
        if max_scaled_down <= 0:
            return
        oldest_first = sorted(old_rses, key=lambda r: (r["metadata"].get("creationTimestamp") or "",
                                                        r["metadata"]["name"]))
        # First old ReplicaSets' unhealthy pods: removing them costs no availability.
        for rs in oldest_first:
            if max_scaled_down <= 0:
                break
            unhealthy = _replicas(rs) - _status(rs, "availableReplicas")
            if unhealthy <= 0:
                continue
            cut = min(max_scaled_down, unhealthy)
            await self._scale(d, rs, _replicas(rs) - cut)
            max_scaled_down -= cut
        available = sum(_status(r, "availableReplicas") for r in old_rses) + _status(new_rs, "availableReplicas")
        budget = min(available - min_available, max_scaled_down)
        for rs in oldest_first:
            if budget <= 0:
                break
            if _replicas(rs) == 0:
                continue
            cut = min(_replicas(rs), budget)
            await self._scale(d, rs, _replicas(rs) - cut)
            budget -= cut

    def _complete(self, d: dict[str, Any], new_rs: dict[str, Any] | None, old_rses: list[dict[str, Any]]) -> bool:
        replicas = int((d.get("spec") or {}).get("replicas", 1) or 0)
        if new_rs is None:
            return False
        total = _status(new_rs, "replicas") + sum(_status(r, "replicas") for r in old_rses)
        return (_status(new_rs, "replicas") == replicas and _status(new_rs, "availableReplicas") == replicas
                and total == replicas and _replicas(new_rs) == replicas)

    async def _cleanup(self, d: dict[str, Any], old_rses: list[dict[str, Any]]) -> None:
        limit = (d.get("spec") or {}).get("revisionHistoryLimit")
        if not isinstance(limit, int):
            return
        idle = [r for r in old_rses if _replicas(r) == 0 and _status(r, "replicas") == 0
                and not r["metadata"].get("deletionTimestamp")]
        idle.sort(key=revision)
        for rs in idle[:max(0, len(idle) - limit)]:
            try:
                await self.client.request(
                    "DELETE", f"/apis/apps/v1/namespaces/{rs['metadata']['namespace']}/replicasets/"
                              f"{rs['metadata']['name']}",
                    {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background",
                     "preconditions": {"uid": rs["metadata"]["uid"]}})
            except errors.ApiError as exc:
                if exc.code not in (404, 409):
                    raise

    async def _sync_status(self, d: dict[str, Any], new_rs: dict[str, Any] | None,
                           old_rses: list[dict[str, Any]], paused: bool = False) -> None:
        spec = d.get("spec") or {}
        replicas = int(spec.get("replicas", 1) or 0)
        everything = ([new_rs] if new_rs else []) + old_rses
        available = sum(_status(r, "availableReplicas") for r in everything)
        total = sum(_status(r, "replicas") for r in everything)
        old = d.get("status") or {}
        status: dict[str, Any] = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": total,
            "updatedReplicas": _status(new_rs, "replicas") if new_rs else 0,
            "readyReplicas": sum(_status(r, "readyReplicas") for r in everything),
            "availableReplicas": available,
            "unavailableReplicas": max(replicas - available, 0),
        }
        if old.get("collisionCount"):
            status["collisionCount"] = old["collisionCount"]
        status = {k: v for k, v in status.items() if v != 0 or k == "observedGeneration"}
        _, max_unavailable = surge_and_unavailable(d)
        conds = {c.get("type"): c for c in old.get("conditions") or [] if isinstance(c, dict)}
        if available >= replicas - max_unavailable:
            self._condition(conds, "Available", "True", "MinimumReplicasAvailable",
                            "Deployment has minimum availability.")
        else:
            self._condition(conds, "Available", "False", "MinimumReplicasUnavailable",
                            "Deployment does not have minimum availability.")
        rs_name = new_rs["metadata"]["name"] if new_rs else ""
        if paused:
            self._condition(conds, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")
        elif new_rs is not None and self._complete(d, new_rs, old_rses):
            self._condition(conds, "Progressing", "True", "NewReplicaSetAvailable",
                            f'ReplicaSet "{rs_name}" has successfully progressed.')
        elif new_rs is not None:
            prev = conds.get("Progressing") or {}
            if prev.get("reason") == "DeploymentPaused":
                self._condition(conds, "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed")
            elif prev.get("reason") not in ("NewReplicaSetCreated", "ReplicaSetUpdated", "FoundNewReplicaSet",
                                            "ProgressDeadlineExceeded") \
                    or rs_name not in (prev.get("message") or ""):
                self._condition(conds, "Progressing", "True", "NewReplicaSetCreated",
                                f'Created new replica set "{rs_name}"')
            elif prev.get("reason") == "ProgressDeadlineExceeded":
                pass  # stays until the next template change (a new ReplicaSet)
            elif any(status.get(f, 0) != old.get(f, 0) for f in PROGRESS_FIELDS):
                # Progress: the deadline starts again from now.
                self._condition(conds, "Progressing", "True", "ReplicaSetUpdated",
                                f'ReplicaSet "{rs_name}" is progressing.', force=True)
            else:
                deadline = spec.get("progressDeadlineSeconds")
                if isinstance(deadline, int):
                    left = _seconds_since(prev.get("lastUpdateTime"))
                    if left is not None and left >= deadline:
                        self._condition(conds, "Progressing", "False", "ProgressDeadlineExceeded",
                                        f'ReplicaSet "{rs_name}" has timed out progressing.')
                    elif left is not None:
                        self.queue.add_after(_key(d), deadline - left + 1)
        status["conditions"] = [conds[t] for t in ("Available", "Progressing", "ReplicaFailure") if t in conds]
        if status == old:
            return
        body = copy.deepcopy(d)
        body["status"] = status
        # Status is this controller's alone: written without a resourceVersion precondition,
        # so a Deployment edit racing with it does not cost a retry.
        body["metadata"].pop("resourceVersion", None)
        try:
            await self.client.update(DEPLOYMENTS, body, subresource="status")
        except errors.ApiError as exc:
            if exc.code != 404:
                raise

    @staticmethod
    def _condition(conds: dict[str, dict[str, Any]], typ: str, status: str, reason: str, message: str,
                   force: bool = False) -> None:
        prev = conds.get(typ)
        now = _now()
        if prev and prev.get("status") == status and prev.get("reason") == reason \
                and prev.get("message") == message and not force:
            return
        transition = prev.get("lastTransitionTime") if prev and prev.get("status") == status else now
        conds[typ] = {"type": typ, "status": status, "lastUpdateTime": now,
                      "lastTransitionTime": transition or now, "reason": reason, "message": message}
