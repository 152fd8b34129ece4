"""Generic REST storage: create/get/list/update/patch/delete for every resource.

The registry turns API verbs into etcd transactions, running defaulting,
validation and the per-resource strategy in between. Nothing reaches etcd that
did not pass validation; every write is conditioned on the revision it read.
"""
from __future__ import annotations

import collections
import copy
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from typing import Any

from kubeling import bounded_decode, errors
from kubeling.defaulting import apply_defaults
from kubeling.patch import PatchError, apply_json_patch, apply_merge_patch, apply_strategic_merge_patch
from kubeling.patch.server_side_apply import apply_patch as server_side_apply
from kubeling.resources import Resource, for_kind
from kubeling.selectors import (check_field_selector, object_fields, parse_field_selector,
                                parse_label_selector)
from kubeling.validation import validate

from . import objectmeta, strategies, watch
from .namespaces import NamespaceCache
from .store import ClaimTaken, KeyExists, KeyMissing, RevisionMismatch, Store

PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+json": "apply",
}


def _kind_list(resource: Resource) -> str:
    return resource.kind + "List"


def _now_plus(seconds: int) -> str:
    return objectmeta.rfc3339(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds))


def _typed(res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    """obj with kind and apiVersion, copied (shallowly) when it lacks them: it is the store's."""
    if "kind" in obj and "apiVersion" in obj:
        return obj
    return {"kind": res.kind, "apiVersion": res.api_version, **obj}


def _everything(_: dict[str, Any]) -> bool:
    return True


# A watch cache hands one object to every watcher: a thousand watchers with field selectors
# (each node's agent: spec.nodeName=...) would compute its fields a thousand times. Objects
# from the store are never changed (store.py), so their fields are kept by identity; the
# entry holds the object, so its id cannot be reused while it is there. Those watchers ask in a
# row, as one event is handed out: a few entries serve them, and more would only keep old
# versions of objects alive: 4,096 of them grew the apiserver by 40 MiB over a soak's 800 cycles.
_FIELDS: collections.OrderedDict[int, tuple[dict[str, Any], dict[str, str]]] = collections.OrderedDict()
_FIELDS_KEPT = 64


def _fields_of(res: Resource, obj: dict[str, Any]) -> dict[str, str]:
    hit = _FIELDS.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    fields = object_fields(res, obj)
    _FIELDS[id(obj)] = (obj, fields)
    if len(_FIELDS) > _FIELDS_KEPT:
        _FIELDS.popitem(last=False)
    return fields


def _as_int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class Registry:
    """The only user of the Store: objects it reads are the store's and never changed
    here (a write works on a copy), since a store may share them between readers."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.namespaces = NamespaceCache(self)
        # Mutating admission on create (ServiceAccount admission for pods), run before
        # defaulting and validation: each is `await plugin(registry, resource, obj)`.
        self.create_admission: list[Callable[[Registry, Resource, dict[str, Any]], Awaitable[None]]] = []
        # Validating admission on create and update, after validation: each is
        # `await plugin(resource, obj, old)` (old None on create); RBAC's escalation check.
        self.validate_admission: list[Callable[[Resource, dict[str, Any], dict[str, Any] | None],
                                               Awaitable[None]]] = []

    # ---- reads -------------------------------------------------------------

    async def find(self, res: Resource, ns: str | None, name: str) -> dict[str, Any] | None:
        """The object, or None when there is none (get's 404)."""
        return await self._store.get(res.key(ns, name))

    async def get(self, res: Resource, ns: str | None, name: str) -> dict[str, Any]:
        obj = await self.find(res, ns, name)
        if obj is None:
            raise errors.not_found(res.plural, name, res.group)
        return obj

    async def list(self, res: Resource, ns: str | None, label_selector: str = "",
                   field_selector: str = "") -> dict[str, Any]:
        match = self.matcher(res, label_selector, field_selector)
        items, rev = await self._store.list(res.key_prefix(ns))
        items = [_typed(res, i) for i in items if match(i)]
        return {"kind": _kind_list(res), "apiVersion": res.api_version,
                "metadata": {"resourceVersion": str(rev)}, "items": items}

    def watch(self, res: Resource, ns: str | None, resource_version: str,
              match: Callable[[dict[str, Any]], bool]) -> watch.WatchStream:
        """The changes to `res` (in `ns`, or everywhere) after resource_version ("" or
        "0": the current state first), as Kubernetes watch events; 410 when too old."""
        return watch.events(self._store, res, res.key_prefix(ns), resource_version, match)

    @staticmethod
    def matcher(res: Resource, label_selector: str, field_selector: str
                ) -> Callable[[dict[str, Any]], bool]:
        try:
            labels = parse_label_selector(label_selector or "")
        except ValueError as exc:
            raise errors.bad_request(f"unable to parse requirement: {exc}")
        try:
            fields = parse_field_selector(field_selector or "")
            check_field_selector(res, fields)
        except ValueError as exc:
            raise errors.bad_request(str(exc))

        # The common case (no selector) and the label-only one skip the object's fields:
        # a LIST of 10k pods spent most of its time computing fields nobody asked for.
        if labels.empty and fields.empty:
            return _everything
        if fields.empty:
            return lambda obj: labels.matches((obj.get("metadata") or {}).get("labels") or {})

        def match(obj: dict[str, Any]) -> bool:
            meta = obj.get("metadata") or {}
            return labels.matches(meta.get("labels") or {}) and fields.matches(_fields_of(res, obj))
        return match

    # ---- admission ---------------------------------------------------------

    def _check_body(self, res: Resource, ns: str | None, body: Any, name: str | None = None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request(f"the body of the request must be a {res.kind} object")
        kind = body.get("kind")
        if kind not in (None, "", res.kind):
            raise errors.bad_request(
                f"the kind of the provided object ({kind}) does not match the resource ({res.kind})")
        api_version = body.get("apiVersion")
        if api_version not in (None, "", res.api_version):
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({res.api_version})")
        meta = body.get("metadata")
        if meta is None:
            meta = body["metadata"] = {}
        if not isinstance(meta, dict):
            raise errors.invalid(res.kind, "", [errors.invalid_value("metadata", meta, "must be an object")])
        if res.namespaced:
            body_ns = meta.get("namespace")
            if body_ns not in (None, "") and body_ns != ns:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if name is not None:
            body_name = meta.get("name")
            if body_name not in (None, "") and body_name != name:
                raise errors.bad_request(
                    f"the name of the object ({body_name}) does not match the name on the URL ({name})")
            meta["name"] = name
        body["kind"] = res.kind
        body["apiVersion"] = res.api_version
        return body

    def _admit(self, res: Resource, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        apply_defaults(res, obj)
        errs = validate(res, obj, old)
        if errs:
            name = (obj.get("metadata") or {}).get("name") or ""
            raise errors.invalid(res.kind, name if isinstance(name, str) else "", errs, res.group)

    async def _namespace_open(self, res: Resource, ns: str | None, name: str) -> None:
        if not res.namespaced:
            return
        nsobj = await self.namespaces.get(ns or "")
        if nsobj is None:
            raise errors.not_found("namespaces", ns or "")
        if (nsobj.get("metadata") or {}).get("deletionTimestamp"):
            raise errors.ApiError(
                403, "Forbidden",
                f'{res.plural} "{name}" is forbidden: unable to create new content in namespace {ns} '
                f"because it is being terminated",
                {"name": name, "kind": res.plural})

    # ---- create ------------------------------------------------------------

    async def create(self, res: Resource, ns: str | None, body: Any, *, dry_run: bool = False
                     ) -> dict[str, Any]:
        obj = self._check_body(res, ns, body)
        meta = obj["metadata"]
        if not meta.get("name") and isinstance(meta.get("generateName"), str) and meta["generateName"]:
            meta["name"] = objectmeta.generated_name(meta["generateName"])
        for field in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "generation", "selfLink"):
            meta.pop(field, None)
        strategy = strategies.for_resource(res)
        strategy.prepare_for_create(obj)
        for plugin in self.create_admission:
            await plugin(self, res, obj)
        self._admit(res, obj, None)
        for check in self.validate_admission:
            await check(res, obj, None)
        await self._namespace_open(res, ns, meta.get("name") or "")
        meta["uid"] = meta.get("uid") or objectmeta.new_uid()  # a strategy may need it early (Job selectors)
        meta["creationTimestamp"] = objectmeta.now()
        meta["generation"] = 1
        await strategy.allocate(self._store.claimed, obj, None)
        claims = tuple(sorted(strategy.claims(obj)))
        if dry_run:
            return obj
        try:
            return await self._store.create(res.key(ns, meta["name"]), obj, claims)
        except KeyExists:
            raise errors.already_exists(res.plural, meta["name"], res.group)
        except ClaimTaken as exc:
            raise strategy.claim_taken(res.kind, meta["name"], exc.claim, True)

    # ---- updates -----------------------------------------------------------

    async def _write(self, res: Resource, key: str, new: dict[str, Any], old: dict[str, Any],
                     dry_run: bool) -> dict[str, Any]:
        """Store `new` over `old` (read at old's resourceVersion), or remove the
        object when a finished deletion's last finalizer just went."""
        rev = int(old["metadata"]["resourceVersion"])
        strategy = strategies.for_resource(res)
        now_held, was_held = strategy.claims(new), strategy.claims(old)
        claims, releases = tuple(sorted(now_held - was_held)), tuple(sorted(was_held - now_held))
        if dry_run:
            return new
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") \
                and _as_int(meta.get("deletionGracePeriodSeconds")) == 0 and strategy.finalizable(new):
            await self._store.delete(key, rev, tuple(sorted(was_held)))
            return new
        return await self._store.update(key, new, rev, claims, releases)

    async def _guaranteed_update(
        self, res: Resource, ns: str | None, name: str,
        mutate: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
        *, precondition_rv: str | None = None, dry_run: bool = False,
        create: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Read, mutate, write conditioned on the read revision; retry on a race
        unless the caller named the resourceVersion it expects."""
        key = res.key(ns, name)
        for _ in range(20):
            current = await self._store.get(key)
            if current is None:
                if create is not None:
                    try:
                        return await create(), True
                    except errors.ApiError as exc:
                        if exc.reason == "AlreadyExists":
                            continue
                        raise
                raise errors.not_found(res.plural, name, res.group)
            if precondition_rv and precondition_rv != current["metadata"]["resourceVersion"]:
                raise errors.conflict(res.plural, name, errors.STALE, res.group)
            new = await mutate(copy.deepcopy(current))
            try:
                return await self._write(res, key, new, current, dry_run), False
            except RevisionMismatch:
                if precondition_rv:
                    raise errors.conflict(res.plural, name, errors.STALE, res.group)
                continue
            except KeyMissing:
                if precondition_rv:
                    raise errors.not_found(res.plural, name, res.group)
                continue
            except ClaimTaken as exc:
                raise strategies.for_resource(res).claim_taken(res.kind, name, exc.claim, False)
        raise errors.conflict(res.plural, name, "too many concurrent writers, try again", res.group)

    def _merge_update(self, res: Resource, subresource: str | None, new: dict[str, Any],
                      old: dict[str, Any]) -> dict[str, Any]:
        """Apply what a write to the main resource or to /status may change."""
        strategy = strategies.for_resource(res)
        if subresource == "status":
            new = strategy.prepare_for_status_update(new, old)
        elif subresource == "approval":
            new = strategy.prepare_for_approval_update(new, old)
        elif subresource == "finalize":
            new = strategy.prepare_for_finalize_update(new, old)
        else:
            strategy.prepare_for_update(new, old, res)
        meta, old_meta = new["metadata"], old["metadata"]
        for field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                      "generation", "namespace", "name"):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if subresource is None and new.get("spec") != old.get("spec"):
            meta["generation"] = _as_int(old_meta.get("generation"), 1) + 1
        return new

    async def update(self, res: Resource, ns: str | None, name: str, body: Any, *,
                     subresource: str | None = None, dry_run: bool = False
                     ) -> tuple[dict[str, Any], bool]:
        obj = self._check_body(res, ns, body, name)
        rv = obj["metadata"].get("resourceVersion") or None
        if rv is not None and not isinstance(rv, str):
            raise errors.bad_request("metadata.resourceVersion must be a string")

        async def mutate(current: dict[str, Any]) -> dict[str, Any]:
            return await self._prepare_write(res, subresource, copy.deepcopy(obj), current)

        async def create() -> dict[str, Any]:
            return await self.create(res, ns, copy.deepcopy(obj), dry_run=dry_run)
        may_create = strategies.for_resource(res).allow_create_on_update and subresource is None
        return await self._guaranteed_update(res, ns, name, mutate, precondition_rv=rv,
                                             dry_run=dry_run, create=create if may_create else None)

    async def _prepare_write(self, res: Resource, subresource: str | None, new: dict[str, Any],
                             current: dict[str, Any]) -> dict[str, Any]:
        """What every update and patch does between the client's object and etcd."""
        new = self._merge_update(res, subresource, new, current)
        strategy = strategies.for_resource(res)
        if subresource is None:  # allocated values live in the spec: only a spec write moves them
            strategy.keep_allocated(new, current)
        self._admit(res, new, current)
        for check in self.validate_admission:
            await check(res, new, current)
        if subresource is None:
            await strategy.allocate(self._store.claimed, new, current)
        return new

    async def patch(self, res: Resource, ns: str | None, name: str, content_type: str, raw: bytes, *,
                    subresource: str | None = None, dry_run: bool = False,
                    field_manager: str | None = None, force: bool = False,
                    check_fields: Callable[[dict[str, Any]], None] | None = None
                    ) -> tuple[dict[str, Any], bool]:
        """`check_fields` sees (and may prune or refuse) the patched object before
        anything else does: unknown fields are judged on the result of a patch."""
        kind = PATCH_TYPES.get(content_type.split(";")[0].strip().lower())
        if kind is None:
            raise errors.unsupported_media_type(content_type)
        patch_doc = _decode_patch(kind, raw)
        if kind == "apply" and not field_manager:
            raise errors.bad_request("PATCH, application/apply-patch+yaml requests require fieldManager")

        async def mutate(current: dict[str, Any]) -> dict[str, Any]:
            patched = _apply(kind, current, patch_doc, res, field_manager or "")
            if not isinstance(patched, dict):
                raise errors.bad_request("the patch did not produce an object")
            if check_fields is not None:
                check_fields(patched)
            patched = self._check_body(res, ns, patched, name)
            # A patch may carry a resourceVersion precondition of its own.
            want_rv = (patch_doc.get("metadata") or {}).get("resourceVersion") \
                if isinstance(patch_doc, dict) and isinstance(patch_doc.get("metadata"), dict) else None
            if want_rv and want_rv != current["metadata"]["resourceVersion"]:
                raise errors.conflict(res.plural, name, errors.STALE, res.group)
            return await self._prepare_write(res, subresource, patched, current)

        async def create() -> dict[str, Any]:
            obj = _apply(kind, None, patch_doc, res, field_manager or "")
            if check_fields is not None and isinstance(obj, dict):
                check_fields(obj)
            return await self.create(res, ns, self._check_body(res, ns, obj, name), dry_run=dry_run)
        may_create = kind == "apply" and subresource is None
        return await self._guaranteed_update(res, ns, name, mutate, dry_run=dry_run,
                                             create=create if may_create else None)

    # ---- delete ------------------------------------------------------------

    async def delete(self, res: Resource, ns: str | None, name: str,
                     options: dict[str, Any] | None = None, *, dry_run: bool = False
                     ) -> tuple[dict[str, Any], bool]:
        """Returns (object, removed): removed is False while a grace period or
        finalizers keep the object."""
        options = options or {}
        strategy = strategies.for_resource(res)
        strategy.check_delete(name)
        requested = options.get("gracePeriodSeconds")
        if requested is not None and not isinstance(requested, int):
            raise errors.bad_request("gracePeriodSeconds must be an integer")
        pre = options.get("preconditions") or {}
        if not isinstance(pre, dict):
            raise errors.bad_request("preconditions must be an object")
        key = res.key(ns, name)
        for _ in range(20):
            current = await self._store.get(key)
            if current is None:
                raise errors.not_found(res.plural, name, res.group)
            meta = current["metadata"]
            if pre.get("uid") and pre["uid"] != meta.get("uid"):
                raise errors.conflict(res.plural, name,
                                      f"Precondition failed: UID in precondition: {pre['uid']}, "
                                      f"UID in object meta: {meta.get('uid')}", res.group)
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
                raise errors.conflict(res.plural, name,
                                      f"Precondition failed: ResourceVersion in precondition: "
                                      f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                      f"{meta.get('resourceVersion')}", res.group)
            grace = strategy.grace_period(current, requested)
            rev = int(meta["resourceVersion"])
            finalizers = gc_finalizers(res, meta, options)
            hold = bool(finalizers) or grace > 0 or not strategy.finalizable(current)
            if not hold:
                if dry_run:
                    return current, True
                try:
                    await self._store.delete(key, rev, tuple(sorted(strategy.claims(current))))
                except (RevisionMismatch, KeyMissing):
                    continue
                return current, True
            new = copy.deepcopy(current)
            nmeta = new["metadata"]
            if finalizers != (meta.get("finalizers") or []):
                nmeta["finalizers"] = finalizers
            old_grace = nmeta.get("deletionGracePeriodSeconds")
            if nmeta.get("deletionTimestamp") and isinstance(old_grace, int) and old_grace <= grace:
                if new == current:
                    return current, False  # a later delete may only shorten the grace period
                grace = old_grace
            nmeta["deletionTimestamp"] = _now_plus(grace)
            nmeta["deletionGracePeriodSeconds"] = grace
            strategy.prepare_for_delete(new)
            if dry_run:
                return new, False
            try:
                return await self._write(res, key, new, current, False), False
            except (RevisionMismatch, KeyMissing):
                continue
        raise errors.conflict(res.plural, name, "too many concurrent writers, try again", res.group)

    async def delete_collection(self, res: Resource, ns: str | None, label_selector: str,
                                field_selector: str, options: dict[str, Any] | None = None
                                ) -> dict[str, Any]:
        listed = await self.list(res, ns, label_selector, field_selector)
        for item in listed["items"]:
            meta = item["metadata"]
            try:
                await self.delete(res, meta.get("namespace"), meta["name"], options)
            except errors.ApiError as exc:
                if exc.code != 404:
                    raise
        return listed

    # ---- pods/binding ------------------------------------------------------

    async def bind(self, res: Resource, ns: str, name: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a Binding object")
        target = body.get("target")
        if not isinstance(target, dict) or not isinstance(target.get("name"), str) or not target["name"]:
            raise errors.invalid("Binding", name, [errors.required("target.name")])
        if target.get("kind") not in (None, "", "Node"):
            raise errors.invalid("Binding", name, [errors.not_supported("target.kind", target.get("kind"), ["Node"])])
        node = target["name"]
        meta = body.get("metadata")
        want_uid = meta.get("uid") if isinstance(meta, dict) else None

        async def mutate(pod: dict[str, Any]) -> dict[str, Any]:
            meta, spec = pod["metadata"], pod.setdefault("spec", {})
            if want_uid and want_uid != meta.get("uid"):
                raise errors.conflict("pods", name, "the UID in the binding does not match the pod", "")
            if meta.get("deletionTimestamp"):
                raise errors.conflict("pods", name, f"pod {name} is being deleted, cannot be assigned to a host")
            if spec.get("nodeName"):
                raise errors.conflict("pods", name,
                                      f"pod {name} is already assigned to node \"{spec['nodeName']}\"")
            spec["nodeName"] = node
            status = pod.setdefault("status", {})
            conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                          "lastTransitionTime": objectmeta.now()})
            status["conditions"] = conds
            return pod

        await self._guaranteed_update(res, ns, name, mutate)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"
PROPAGATION_POLICIES = ("Orphan", "Background", "Foreground")
# The garbage collector's default when a delete names no policy (the strategies'
# DefaultGarbageCollectionPolicy): core/v1 ReplicationControllers orphan, for
# backwards compatibility; everything else deletes its dependents in the background.
ORPHAN_BY_DEFAULT = {("", "replicationcontrollers")}


def gc_finalizers(res: Resource, meta: dict[str, Any], options: dict[str, Any]) -> list[Any]:
    """The object's finalizers after a delete with these DeleteOptions: the
    garbage collector's `orphan` / `foregroundDeletion` added or removed as the
    propagation policy says (apiserver's deletionFinalizersForGarbageCollection)."""
    current = list(meta.get("finalizers") or [])
    policy = options.get("propagationPolicy")
    orphan = options.get("orphanDependents")
    if policy is not None and orphan is not None:
        raise errors.invalid("DeleteOptions", "", [errors.invalid_value(
            "orphanDependents", orphan, "Cannot both set OrphanDependents and PropagationPolicy")])
    if policy is not None and policy not in PROPAGATION_POLICIES:
        raise errors.invalid("DeleteOptions", "", [errors.not_supported(
            "propagationPolicy", policy, list(PROPAGATION_POLICIES))])
    if policy is None and orphan is not None:
        policy = "Orphan" if orphan else "Background"
    if policy is None:
        if meta.get("deletionTimestamp"):
            return current  # a repeated delete keeps what the first one chose
        has_gc = ORPHAN_FINALIZER in current or FOREGROUND_FINALIZER in current
        if has_gc or (res.group, res.plural) not in ORPHAN_BY_DEFAULT:
            return current
        policy = "Orphan"
    out = [f for f in current if f not in (ORPHAN_FINALIZER, FOREGROUND_FINALIZER)]
    if policy == "Orphan":
        out.append(ORPHAN_FINALIZER)
    elif policy == "Foreground":
        out.append(FOREGROUND_FINALIZER)
    return out


def _decode_patch(kind: str, raw: bytes) -> Any:
    try:
        if kind == "apply":
            doc = bounded_decode.loads_yaml(raw)
        else:
            doc = bounded_decode.loads_json(raw)
    except Exception as exc:  # any decoding failure is the client's
        raise errors.bad_request(f"error decoding patch: {exc}")
    if kind == "json":
        if not isinstance(doc, list):
            raise errors.bad_request("json patch must be a list of operations")
    elif not isinstance(doc, dict):
        raise errors.bad_request(f"the patch must be an object, got {type(doc).__name__}")
    return doc


def _apply(kind: str, current: dict[str, Any] | None, doc: Any, res: Resource, manager: str) -> Any:
    try:
        if kind == "json":
            return apply_json_patch(current, doc)
        if kind == "merge":
            return apply_merge_patch(current, doc)
        if kind == "strategic":
            return apply_strategic_merge_patch(current, doc, res.kind)
        return server_side_apply(current, doc, res.kind, manager, objectmeta.now())
    except PatchError as exc:
        raise errors.ApiError(422 if kind == "json" else 400, "Invalid" if kind == "json" else "BadRequest",
                              str(exc))


__all__ = ["Registry", "PATCH_TYPES", "for_kind"]
