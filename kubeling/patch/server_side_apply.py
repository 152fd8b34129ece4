"""Server-side apply (`application/apply-patch+yaml`) and `metadata.managedFields`.

An apply merges the applied configuration into the live object (lists merged by the
same keys as strategic merge patch; never a replace), records the set of fields the
manager applied as a FieldsV1 `managedFields` entry, and removes fields the manager
applied last time but no longer does, unless another manager also owns them. Changing
a value owned by another manager takes it over (as `force=true` would): there is no
conflict detection.
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Mapping

from .errors import PatchError
from .jsonvalue import deep_copy, json_equal
from .merge_keys import FieldMeta, lookup, schema_for
from .strategic_merge import _APPLY, _guard, _merge_map

Schema = Mapping[str, FieldMeta]
Path = tuple[str, ...]

# Never tracked as owned fields: identity and server-managed metadata.
_UNTRACKED_TOP = ("apiVersion", "kind")
_UNTRACKED_META = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                   "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields")

# SSA fills list-map key fields that have a default (container/service port protocol).
_KEY_DEFAULTS = {"protocol": "TCP"}


def _item_key(item: dict, keys: tuple[str, ...]) -> str:
    fields = {}
    for k in keys:
        if k in item and item[k] is not None:
            fields[k] = item[k]
        elif k in _KEY_DEFAULTS:
            fields[k] = _KEY_DEFAULTS[k]
    return "k:" + json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _value_key(value: Any) -> str:
    return "v:" + json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _fields_of_map(obj: dict, schema: Schema) -> dict:
    out: dict = {}
    for key, value in obj.items():
        if value is None:
            continue
        out["f:" + key] = _fields_of_value(value, lookup(schema, key))
    return out


def _fields_of_value(value: Any, meta: FieldMeta) -> dict:
    if isinstance(value, dict):
        return _fields_of_map(value, meta.schema)
    if isinstance(value, list) and value:
        if meta.list_type == "map" and all(isinstance(i, dict) for i in value):
            return {_item_key(item, meta.list_keys): {".": {}, **_fields_of_map(item, meta.schema)}
                    for item in value}
        if meta.list_type == "set":
            return {_value_key(item): {} for item in value}
    return {}


def fields_v1(obj: dict, kind: str) -> dict:
    """The FieldsV1 set of every field present in `obj` (identity metadata excluded)."""
    obj = {k: v for k, v in obj.items() if k not in _UNTRACKED_TOP}
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        metadata = {k: v for k, v in metadata.items() if k not in _UNTRACKED_META}
        if metadata:
            obj["metadata"] = metadata
        else:
            obj.pop("metadata")
    return _fields_of_map(obj, schema_for(kind))


def _members(fields: dict, prefix: Path = ()) -> Iterator[Path]:
    """Paths that are members of a FieldsV1 set (leaves and '.'-marked nodes)."""
    for key, child in fields.items():
        if key == ".":
            continue
        path = prefix + (key,)
        if not isinstance(child, dict) or not child or "." in child:
            yield path
        if isinstance(child, dict):
            yield from _members(child, path)


def _resolve(obj: Any, path: Path) -> tuple[Any, Any] | None:
    """(container, locator) of the last element of `path` in `obj`, or None if absent."""
    node, parent, locator = obj, None, None
    for element in path:
        kind, _, text = element.partition(":")
        try:
            wanted = json.loads(text) if kind in ("k", "v") else None
        except ValueError:
            return None
        if kind == "f" and isinstance(node, dict) and text in node:
            parent, locator = node, text
        elif kind == "k" and isinstance(node, list) and isinstance(wanted, dict):
            idx = next((i for i, item in enumerate(node) if isinstance(item, dict) and all(
                json_equal(item.get(k, _KEY_DEFAULTS.get(k)), v) for k, v in wanted.items())), None)
            if idx is None:
                return None
            parent, locator = node, idx
        elif kind == "v" and isinstance(node, list):
            idx = next((i for i, item in enumerate(node) if json_equal(item, wanted)), None)
            if idx is None:
                return None
            parent, locator = node, idx
        else:
            return None
        node = parent[locator]
    return (parent, locator) if parent is not None else None


def _value_at(obj: Any, path: Path) -> Any:
    found = _resolve(obj, path)
    return found[0][found[1]] if found else None


def _remove(obj: Any, path: Path) -> None:
    found = _resolve(obj, path)
    if found:
        container, locator = found
        del container[locator]


def _is_prefix(prefix: Path, paths: set[Path]) -> bool:
    return any(p[: len(prefix)] == prefix for p in paths)


def _is_item_key(path: Path) -> bool:
    """Whether `path` names a key field of a list item (kept while the item lives)."""
    if len(path) < 2 or not path[-2].startswith("k:") or not path[-1].startswith("f:"):
        return False
    try:
        return path[-1][2:] in json.loads(path[-2][2:])
    except (ValueError, TypeError):
        return False


def _build_fields(paths: set[Path]) -> dict:
    """A FieldsV1 tree holding exactly `paths` as members."""
    tree: dict = {}
    for path in sorted(paths, key=len):
        node = tree
        for element in path:
            node = node.setdefault(element, {})
    for path in paths:
        node = tree
        for element in path:
            node = node[element]
        if node:
            node["."] = {}
    return tree


def _strip_empty(entries: list) -> list:
    return [e for e in entries if isinstance(e, dict) and e.get("fieldsV1")]


def _check_applied(applied: Any) -> None:
    if not isinstance(applied, dict):
        raise PatchError("an apply configuration must be a JSON object")
    metadata = applied.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise PatchError("metadata must be a JSON object")
    if isinstance(metadata, dict) and metadata.get("managedFields") is not None:
        raise PatchError("metadata.managedFields must be nil")

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, child in value.items():
                if isinstance(key, str) and key.startswith("$"):
                    raise PatchError(f"field {key!r} is not allowed in an apply configuration")
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)
    walk(applied)


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _transfer(entries: list, taken: set[Path], before: Any, after: Any, skip: int | None) -> list:
    """Remove from the other entries the fields whose value this write changed."""
    out = []
    for i, entry in enumerate(entries):
        if i == skip or not isinstance(entry, dict) or not isinstance(entry.get("fieldsV1"), dict):
            out.append(entry)
            continue
        owned = set(_members(entry["fieldsV1"]))
        lost = {p for p in owned & taken if not json_equal(_value_at(before, p), _value_at(after, p))}
        if lost:
            entry = dict(entry, fieldsV1=_build_fields(owned - lost))
        out.append(entry)
    return out


def _managed_entries(obj: dict) -> list:
    metadata = obj.get("metadata")
    entries = metadata.get("managedFields") if isinstance(metadata, dict) else None
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _find_entry(entries: list, manager: str, operation: str, subresource: str | None) -> int | None:
    for i, entry in enumerate(entries):
        if (isinstance(entry, dict) and entry.get("manager") == manager and entry.get("operation") == operation
                and (entry.get("subresource") or None) == (subresource or None)):
            return i
    return None


def _entry(manager: str, operation: str, api_version: Any, now: str, fields: dict,
           subresource: str | None) -> dict:
    entry = {"manager": manager, "operation": operation, "apiVersion": api_version, "time": now,
             "fieldsType": "FieldsV1", "fieldsV1": fields}
    if subresource:
        entry["subresource"] = subresource
    return entry


def apply_patch(current: dict | None, applied: dict, kind: str, manager: str, now: str) -> dict:
    """Server-side apply of `applied` by `manager` onto `current` (None: create).

    Returns the new object with `metadata.managedFields` updated; inputs are untouched.
    `now` is the RFC 3339 time recorded in the entry.
    """
    if current is not None and not isinstance(current, dict):
        raise PatchError("the live object must be a JSON object")
    if not isinstance(manager, str) or not manager:
        raise PatchError("fieldManager is required for apply")

    def run() -> dict:
        _check_applied(applied)
        before = deep_copy(current) if current is not None else {}
        entries = _managed_entries(before)
        clean = _drop_nulls(deep_copy(applied))
        result = _merge_map(deep_copy(before), clean, schema_for(str(kind)), _APPLY)

        new_fields = fields_v1(clean, str(kind))
        new_paths = set(_members(new_fields))
        mine = _find_entry(entries, manager, "Apply", None)
        old_paths = set(_members(entries[mine]["fieldsV1"])) if mine is not None and isinstance(
            entries[mine].get("fieldsV1"), dict) else set()
        entries = _transfer(entries, new_paths, before, result, mine)
        others: set[Path] = set()
        for i, entry in enumerate(entries):
            if i != mine and isinstance(entry, dict) and isinstance(entry.get("fieldsV1"), dict):
                others |= set(_members(entry["fieldsV1"]))
        doomed = {p for p in old_paths - new_paths
                  if not _is_prefix(p, new_paths) and not _is_prefix(p, others)}
        # A list item is found by its key fields: remove the item, not its fields one by one.
        for path in sorted(doomed, key=len, reverse=True):
            if not any(path[:n] in doomed for n in range(1, len(path))) and not _is_item_key(path):
                _remove(result, path)

        record = _entry(manager, "Apply", applied.get("apiVersion") or before.get("apiVersion"), now,
                        new_fields, None)
        if mine is None:
            entries.append(record)
        else:
            entries[mine] = record
        metadata = result.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise PatchError("metadata must be a JSON object")
        metadata["managedFields"] = _strip_empty(entries)
        return result

    return _guard(run)


def record_update(old: dict | None, new: dict, kind: str, manager: str, now: str,
                  subresource: str | None = None) -> dict:
    """A copy of `new` whose managedFields credit `manager` (operation Update) with every
    field that differs from `old`, taking those fields away from other managers."""
    if old is not None and not isinstance(old, dict):
        raise PatchError("the old object must be a JSON object")
    if not isinstance(new, dict):
        raise PatchError("the new object must be a JSON object")

    def run() -> dict:
        before = deep_copy(old) if old is not None else {}
        result = deep_copy(new)
        metadata = result.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise PatchError("metadata must be a JSON object")
        entries = metadata.get("managedFields")
        if not isinstance(entries, list):
            entries = _managed_entries(before)
        all_paths = set(_members(fields_v1(result, str(kind))))
        changed = {p for p in all_paths if not json_equal(_value_at(before, p), _value_at(result, p))}
        # A changed leaf's ancestors that are members (list items) change with it.
        changed |= {p for p in all_paths if any(c[: len(p)] == p for c in changed)}
        mine = _find_entry(entries, manager, "Update", subresource)
        entries = _transfer(entries, changed, before, result, mine)
        owned = set(_members(entries[mine]["fieldsV1"])) if mine is not None and isinstance(
            entries[mine].get("fieldsV1"), dict) else set()
        owned = {p for p in owned if p in all_paths} | changed
        if not changed and mine is None:
            metadata["managedFields"] = _strip_empty(entries)
            return result
        record = _entry(manager, "Update", result.get("apiVersion"), now, _build_fields(owned), subresource)
        if mine is None:
            entries.append(record)
        else:
            entries[mine] = record
        metadata["managedFields"] = _strip_empty(entries)
        return result

    return _guard(run)
