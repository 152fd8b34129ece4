"""Kubernetes strategic merge patch (`application/strategic-merge-patch+json`) and the
three-way patch kubectl's client-side apply computes.

Behaviour follows apimachinery's util/strategicpatch: lists with a merge strategy are
merged by their merge key (or as sets of scalars), other lists are replaced; `null`
deletes a key; directives `$patch` (replace/delete/merge), `$setElementOrder/<field>`,
`$retainKeys` and `$deleteFromPrimitiveList/<field>` are honoured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .errors import PatchError
from .jsonvalue import canonical, deep_copy, go_string, json_equal, json_kind, sorted_keys
from .merge_keys import FieldMeta, lookup, schema_for

Schema = Mapping[str, FieldMeta]

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER_PREFIX = "$setElementOrder"
DELETE_PRIMITIVE_PREFIX = "$deleteFromPrimitiveList"

LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass(frozen=True)
class _MergeOptions:
    # True when applying a patch to an object (server side); False when combining the
    # two halves of a three-way patch, where directives must survive untouched.
    merge_parallel_list: bool
    ignore_unmatched_nulls: bool


_APPLY = _MergeOptions(merge_parallel_list=True, ignore_unmatched_nulls=True)
_COMBINE = _MergeOptions(merge_parallel_list=False, ignore_unmatched_nulls=False)


@dataclass(frozen=True)
class _DiffOptions:
    set_element_order: bool = False
    ignore_changes_and_additions: bool = False
    ignore_deletions: bool = False
    build_retain_keys: bool = False


def _fail(message: str) -> PatchError:
    return PatchError(message)


def _describe(value: Any) -> str:
    text = canonical(value)
    return text if len(text) <= 200 else text[:200] + "..."


# ---------------------------------------------------------------------------
# list helpers


def _element_kind(*lists: list) -> str | None:
    """The one JSON kind shared by every element of the lists (None if all empty)."""
    kind = None
    for items in lists:
        for item in items:
            k = json_kind(item)
            if k == "array":
                raise _fail("lists of lists are not supported by strategic merge patch")
            if kind is None:
                kind = k
            elif kind != k:
                raise _fail(f"list element types are not identical: {_describe(lists)}")
    return kind


def _require_dicts_with_key(items: list, merge_key: str) -> None:
    for item in items:
        if not isinstance(item, dict):
            raise _fail(f"expected an object in the list, got {_describe(item)}")
        if merge_key not in item:
            raise _fail(f"map: {_describe(item)} does not contain declared merge key: {merge_key}")


def _key_of(item: Any, merge_key: str) -> Any:
    if merge_key:
        return item.get(merge_key) if isinstance(item, dict) else None
    return item


def _index(items: list, value: Any, merge_key: str) -> int:
    wanted = _key_of(value, merge_key)
    for i, item in enumerate(items):
        if json_equal(_key_of(item, merge_key), wanted):
            return i
    return -1


def _find_by_key(items: list, merge_key: str, value: Any) -> int:
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _fail(f"expected an object in the list, got {_describe(item)}")
        if merge_key in item and json_equal(item[merge_key], value):
            return i
    return -1


def _dedupe(items: list) -> list:
    seen: set[str] = set()
    out = []
    for item in items:
        text = canonical(item)
        if text not in seen:
            seen.add(text)
            out.append(item)
    return out


def _is_delete_item(item: Any) -> bool:
    return isinstance(item, dict) and item.get(DIRECTIVE) == "delete"


def _normalize_slice_order(to_sort: list, order: list, merge_key: str, kind: str | None) -> list:
    """Sort `to_sort` by position in `order`; delete directives go last."""
    to_delete: list = []
    if kind == "object":
        _require_dicts_with_key(to_sort, merge_key)
        _require_dicts_with_key(order, merge_key)
        to_delete = [item for item in to_sort if _is_delete_item(item)]
        to_sort = [item for item in to_sort if not _is_delete_item(item)]
    positions = [_index(order, item, merge_key) for item in to_sort]
    ranked = sorted(range(len(to_sort)), key=lambda i: (positions[i] < 0, positions[i], i))
    return [to_sort[i] for i in ranked] + to_delete


def _merge_sorted(left: list, right: list, server_order: list, merge_key: str) -> list:
    """Interleave server-only items (left) with patch items (right), keeping each side's order;
    a server item goes first only when both are found in the live order and it comes earlier."""
    out: list = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j]); j += 1
        elif j >= len(right):
            out.append(left[i]); i += 1
        else:
            li = _index(server_order, left[i], merge_key)
            ri = _index(server_order, right[j], merge_key)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i]); i += 1
            else:
                out.append(right[j]); j += 1
    return out


def _normalize_element_order(patch_items: list, server_only: list, patch_order: list,
                             server_order: list, merge_key: str, kind: str | None) -> list:
    patch_items = _normalize_slice_order(patch_items, patch_order, merge_key, kind)
    server_only = _normalize_slice_order(server_only, server_order, merge_key, kind)
    return _merge_sorted(server_only, patch_items, server_order, merge_key)


def _partition(merged: list, by: list, merge_key: str) -> tuple[list, list]:
    """Split into (items present in `by`, items only on the server)."""
    present, server_only = [], []
    if merge_key:
        _require_dicts_with_key(merged, merge_key)
    for item in merged:
        if merge_key:
            found = any(isinstance(b, dict) and merge_key in b and json_equal(b[merge_key], item[merge_key])
                        for b in by)
        else:
            found = any(json_equal(b, item) for b in by)
        (present if found else server_only).append(item)
    return present, server_only


# ---------------------------------------------------------------------------
# applying a patch


def _merge_map(original: dict, patch: dict, schema: Schema, opts: _MergeOptions) -> dict:
    """Merge `patch` into `original`; both are private copies and may be modified."""
    if DIRECTIVE in patch:
        directive = patch[DIRECTIVE]
        if directive == "delete":
            return {}
        if directive == "replace":
            rest = {k: v for k, v in patch.items() if k != DIRECTIVE}
            # Nested directives and nulls inside the replacement still take effect.
            return _merge_map({}, rest, schema, opts) if opts.merge_parallel_list else rest
        if directive != "merge":
            raise _fail(f"unknown patch type: {_describe(directive)} in map: {_describe(patch)}")
        if opts.merge_parallel_list:
            patch = {k: v for k, v in patch.items() if k != DIRECTIVE}

    _apply_retain_keys(original, patch, opts)
    _merge_ordered_lists(original, patch, schema, opts)

    for key, patch_value in patch.items():
        delete_list = False
        if key.startswith(DELETE_PRIMITIVE_PREFIX):
            if not opts.merge_parallel_list:
                original[key] = patch_value
                continue
            key = _strip_prefix(key, DELETE_PRIMITIVE_PREFIX)
            delete_list = True
            if not isinstance(patch_value, list):
                raise _fail(f"invalid patch: {DELETE_PRIMITIVE_PREFIX}/{key} must be a list")
            if key not in original:
                continue
            current = original[key]
            if not isinstance(current, list):
                raise _fail(f"cannot delete from {key!r}: it is not a list")
            original[key] = [v for v in current if not any(json_equal(v, d) for d in patch_value)]
            continue

        if patch_value is None:
            original.pop(key, None)
            if opts.ignore_unmatched_nulls:
                continue

        meta = lookup(schema, key)
        if key not in original or json_kind(original[key]) != json_kind(patch_value):
            original[key] = _fresh(patch_value, meta, opts)
            continue
        current = original[key]
        if isinstance(current, dict):
            if meta.strategy == "replace":
                original[key] = _fresh(patch_value, meta, opts)
            else:
                original[key] = _merge_map(current, patch_value, meta.schema, opts)
        elif isinstance(current, list):
            original[key] = _merge_list_field(current, patch_value, meta, opts, delete_list)
        else:
            original[key] = patch_value
    return original


def _fresh(value: Any, meta: FieldMeta, opts: _MergeOptions) -> Any:
    """A patch value that lands where nothing was: when applying, its own directives
    and nulls are resolved against an empty value rather than stored verbatim."""
    if not opts.merge_parallel_list:
        return value
    if isinstance(value, dict):
        if meta.strategy == "replace":
            return _merge_map({}, {k: v for k, v in value.items() if k != DIRECTIVE}, meta.schema, opts)
        return _merge_map({}, value, meta.schema, opts)
    if isinstance(value, list) and meta.strategy == "merge":
        return _merge_slice([], value, meta, opts, False)
    return value


def _merge_list_field(current: list, patch_value: Any, meta: FieldMeta, opts: _MergeOptions,
                      delete_list: bool) -> list:
    if not isinstance(patch_value, list):
        raise _fail(f"expected a list, got {_describe(patch_value)}")
    if meta.strategy == "merge":
        return _merge_slice(current, patch_value, meta, opts, delete_list)
    return _fresh(patch_value, meta, opts)


def _strip_prefix(key: str, prefix: str) -> str:
    head, sep, rest = key.partition("/")
    if head != prefix or not sep:
        if prefix == DELETE_PRIMITIVE_PREFIX:
            raise _fail("invalid patch: the key of a deletion list must be $deleteFromPrimitiveList/<field>")
        raise _fail("invalid patch: the key of a $setElementOrder list must be $setElementOrder/<field>")
    return rest


def _apply_retain_keys(original: dict, patch: dict, opts: _MergeOptions) -> None:
    if RETAIN_KEYS not in patch:
        return
    retain = patch.pop(RETAIN_KEYS)
    if not opts.merge_parallel_list:
        if RETAIN_KEYS in original and not json_equal(original[RETAIN_KEYS], retain):
            raise _fail(f"{RETAIN_KEYS} lists of the two patches differ")
        original[RETAIN_KEYS] = retain
        return
    if not isinstance(retain, list):
        raise _fail(f"invalid patch: {RETAIN_KEYS} must be a list of field names")
    keep = {k for k in retain if isinstance(k, str)}
    for key, value in patch.items():
        if value is None or key.startswith(DELETE_PRIMITIVE_PREFIX) or key.startswith(SET_ORDER_PREFIX):
            continue
        if key not in keep:
            raise _fail(f"invalid patch: field {key!r} is not in the {RETAIN_KEYS} list")
    for key in list(original):
        if key not in keep:
            del original[key]


def _validate_set_order(patch_list: list, order: list, merge_key: str) -> None:
    """Patch items must appear in the $setElementOrder list, in the same relative order."""
    if not order or not patch_list:
        return
    items = [i for i in patch_list if not _is_delete_item(i)] if merge_key else patch_list
    pi = oi = 0
    while pi < len(items) and oi < len(order):
        item = items[pi]
        if isinstance(item, dict) and DIRECTIVE in item:
            pi += 1
            continue
        if merge_key:
            for x in (item, order[oi]):
                if not isinstance(x, dict) or merge_key not in x:
                    raise _fail(f"map: {_describe(x)} does not contain declared merge key: {merge_key}")
            equal = json_equal(item[merge_key], order[oi][merge_key])
        else:
            equal = json_equal(item, order[oi])
        if equal:
            pi += 1
        oi += 1
    if pi < len(items):
        raise _fail(f"the order in patch list {_describe(patch_list)} doesn't match "
                    f"{SET_ORDER_PREFIX} list {_describe(order)}")


def _merge_ordered_lists(original: dict, patch: dict, schema: Schema, opts: _MergeOptions) -> None:
    """Handle every `$setElementOrder/<field>` of `patch` together with its list."""
    for key in [k for k in patch if k.startswith(SET_ORDER_PREFIX)]:
        order = patch.pop(key)
        if not opts.merge_parallel_list:
            if key in original and not json_equal(original[key], order):
                raise _fail(f"{key} lists of the two patches differ")
            original[key] = order
        if not isinstance(order, list):
            raise _fail(f"invalid patch: {key} must be a list")
        field = _strip_prefix(key, SET_ORDER_PREFIX)
        found_original, found_patch = field in original, field in patch
        original_list = original.get(field) if found_original else []
        patch_list = patch.get(field) if found_patch else []
        if not isinstance(original_list, list) or not isinstance(patch_list, list):
            raise _fail(f"{field!r} must be a list to be ordered by {key}")
        meta = lookup(schema, field)
        merge_key = meta.merge_key
        _validate_set_order(patch_list, order, merge_key)
        if not found_original and not found_patch:
            continue
        if found_original and found_patch:
            merged = _merge_list_field(original_list, patch_list, meta, opts, False)
        elif found_patch:
            merged = _fresh(patch_list, meta, opts)
        else:
            merged = original_list
        present, server_only = _partition(merged, order, merge_key)
        kind = _element_kind(original_list, patch_list)
        original[field] = _normalize_element_order(present, server_only, order, original_list, merge_key, kind)
        patch.pop(field, None)


def _merge_slice(original: list, patch: list, meta: FieldMeta, opts: _MergeOptions, delete_list: bool) -> list:
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    merge_key = meta.merge_key
    if kind != "object":
        if opts.merge_parallel_list and delete_list:
            return [v for v in original if not any(json_equal(v, d) for d in patch)]
        merged = _dedupe(original + patch)
        merge_key = ""
    else:
        if not merge_key:
            raise _fail("cannot merge lists of objects without a merge key")
        original, patch = _apply_list_directives(original, patch, merge_key, opts)
        merged = list(original)
        for item in patch:
            if merge_key not in item:
                raise _fail(f"map: {_describe(item)} does not contain declared merge key: {merge_key}")
            at = _find_by_key(merged, merge_key, item[merge_key])
            if at >= 0:
                merged[at] = _merge_map(merged[at], item, meta.schema, opts)
            else:
                merged.append(_fresh(item, FieldMeta(schema=meta.schema), opts))
    present, server_only = _partition(merged, patch, merge_key)
    return _normalize_element_order(present, server_only, patch, original, merge_key, kind)


def _apply_list_directives(original: list, patch: list, merge_key: str,
                           opts: _MergeOptions) -> tuple[list, list]:
    """Apply `$patch: delete|replace` elements; return (original, patch without them)."""
    plain: list = []
    replace = False
    for item in patch:
        if DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[DIRECTIVE]
        if directive == "delete":
            if merge_key not in item:
                raise _fail(f"map: {_describe(item)} does not contain declared merge key: {merge_key}")
            if opts.merge_parallel_list:
                original = [o for o in original
                            if not (isinstance(o, dict) and merge_key in o and json_equal(o[merge_key], item[merge_key]))]
            else:
                # Combining patches: keep the directive for the server to act on.
                original = original + [item]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            plain.append({k: v for k, v in item.items() if k != DIRECTIVE})
        else:
            raise _fail(f"unknown patch type: {_describe(directive)} in map: {_describe(item)}")
    if replace:
        return plain, []
    return original, plain


def apply_strategic_merge_patch(original: dict, patch: dict, kind: str) -> dict:
    """Apply a strategic merge patch for an object of `kind` (Pod, Service, ...).

    Returns a new object; `original` and `patch` are not modified. Unknown kinds are
    patched with ObjectMeta's strategies only (lists replaced, objects merged).
    """
    if not isinstance(original, dict):
        raise PatchError("the object to patch must be a JSON object")
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    return _guard(lambda: _merge_map(deep_copy(original), deep_copy(patch), schema_for(str(kind)), _APPLY))


def _guard(run: Callable[[], Any]) -> Any:
    """Run patch logic so that nothing but PatchError escapes, whatever the JSON input."""
    try:
        return run()
    except PatchError:
        raise
    except RecursionError:
        raise PatchError("document is nested too deeply") from None
    except Exception as exc:  # a malformed document we did not foresee: still a client error
        raise PatchError(f"invalid patch: {type(exc).__name__}: {exc}") from None


# ---------------------------------------------------------------------------
# computing a patch


def _diff_maps(original: dict, modified: dict, schema: Schema, opts: _DiffOptions) -> dict:
    patch: dict = {}
    retain: list = []
    for key, modified_value in modified.items():
        if opts.build_retain_keys and modified_value is not None:
            retain.append(key)
        if key not in original:
            if not opts.ignore_changes_and_additions:
                patch[key] = modified_value
            continue
        original_value = original[key]
        if key == DIRECTIVE:
            if not isinstance(original_value, str) or not isinstance(modified_value, str):
                raise _fail(f"invalid value for special key: {DIRECTIVE}")
            if original_value != modified_value:
                patch[key] = modified_value
            continue
        if json_kind(original_value) != json_kind(modified_value):
            if not opts.ignore_changes_and_additions:
                patch[key] = modified_value
            continue
        meta = lookup(schema, key)
        if isinstance(original_value, dict):
            if meta.strategy == "replace":
                if not opts.ignore_changes_and_additions and not json_equal(original_value, modified_value):
                    patch[key] = modified_value
                continue
            sub = _diff_maps(original_value, modified_value, meta.schema,
                             _with(opts, build_retain_keys=meta.retain_keys))
            if sub:
                patch[key] = sub
        elif isinstance(original_value, list) and meta.strategy == "merge":
            _diff_list_field(key, original_value, modified_value, meta,
                             _with(opts, build_retain_keys=meta.retain_keys), patch)
        elif not opts.ignore_changes_and_additions and not json_equal(original_value, modified_value):
            patch[key] = modified_value
    if not opts.ignore_deletions:
        for key in original:
            if key not in modified:
                patch[key] = None
    if retain and (patch or any(v is not None and k not in modified for k, v in original.items())):
        patch[RETAIN_KEYS] = sorted(retain)
    return patch


def _with(opts: _DiffOptions, **changes: Any) -> _DiffOptions:
    values = dict(opts.__dict__)
    values.update(changes)
    return _DiffOptions(**values)


def _diff_list_field(key: str, original: list, modified: list, meta: FieldMeta,
                     opts: _DiffOptions, patch: dict) -> None:
    additions, deletions, order = _diff_lists(original, modified, meta, opts)
    if additions:
        patch[key] = additions
    if deletions:
        patch[f"{DELETE_PRIMITIVE_PREFIX}/{key}"] = deletions
    if order:
        patch[f"{SET_ORDER_PREFIX}/{key}"] = order


def _diff_lists(original: list, modified: list, meta: FieldMeta,
                opts: _DiffOptions) -> tuple[list, list, list]:
    if not original:
        if not modified or opts.ignore_changes_and_additions:
            return [], [], []
        return modified, [], []
    kind = _element_kind(original, modified)
    merge_key = meta.merge_key
    if kind == "object":
        if not merge_key:
            raise _fail("cannot diff lists of objects without a merge key")
        changes, deletions = _diff_lists_of_maps(original, modified, meta, opts)
        changes = _normalize_slice_order(changes, modified, merge_key, kind)
        order_same = len(original) == len(modified) and all(
            json_equal(o[merge_key], m[merge_key]) for o, m in zip(original, modified))
        changes = changes + deletions
        order: list = []
        if opts.set_element_order and (
                (not opts.ignore_changes_and_additions and (changes or not order_same))
                or (not opts.ignore_deletions and changes)):
            order = [{merge_key: item[merge_key]} for item in modified]
        return changes, [], order
    additions, deletions = _diff_lists_of_scalars(original, modified, opts)
    additions = _normalize_slice_order(additions, modified, "", kind)
    order = []
    if opts.set_element_order and (
            (not opts.ignore_deletions and deletions)
            or (not opts.ignore_changes_and_additions and not json_equal(original, modified))):
        order = modified
    return additions, deletions, order


def _diff_lists_of_scalars(original: list, modified: list, opts: _DiffOptions) -> tuple[list, list]:
    original_keys = {canonical(v) for v in original}
    modified_keys = {canonical(v) for v in modified}
    additions: list = []
    if not opts.ignore_changes_and_additions:
        additions = _dedupe([v for v in modified if canonical(v) not in original_keys])
    deletions: list = []
    if not opts.ignore_deletions:
        deletions = _dedupe([v for v in original if canonical(v) not in modified_keys])
        deletions.sort(key=go_string)
    return additions, deletions


def _diff_lists_of_maps(original: list, modified: list, meta: FieldMeta,
                        opts: _DiffOptions) -> tuple[list, list]:
    merge_key = meta.merge_key
    _require_dicts_with_key(original, merge_key)
    _require_dicts_with_key(modified, merge_key)
    by_key = {}
    for item in original:
        by_key.setdefault(canonical(item[merge_key]), item)
    modified_keys = {canonical(item[merge_key]) for item in modified}
    changes: list = []
    for item in sorted(modified, key=lambda i: go_string(i[merge_key])):
        match = by_key.get(canonical(item[merge_key]))
        if match is None:
            if not opts.ignore_changes_and_additions:
                changes.append(item)
            continue
        sub = _diff_maps(match, item, meta.schema, opts)
        if sub:
            sub[merge_key] = item[merge_key]
            changes.append(sub)
    deletions: list = []
    if not opts.ignore_deletions:
        for item in sorted(original, key=lambda i: go_string(i[merge_key])):
            if canonical(item[merge_key]) not in modified_keys:
                deletions.append({merge_key: item[merge_key], DIRECTIVE: "delete"})
    return changes, deletions


def create_two_way_merge_patch(original: dict, modified: dict, kind: str) -> dict:
    """A patch that turns `original` into `modified` (kubectl edit / label use these)."""
    if not isinstance(original, dict) or not isinstance(modified, dict):
        raise PatchError("both documents must be JSON objects")
    return _guard(lambda: sorted_keys(_diff_maps(deep_copy(original), deep_copy(modified), schema_for(str(kind)),
                                                  _DiffOptions(set_element_order=True))))


def create_three_way_merge_patch(original: dict | None, modified: dict, current: dict, kind: str) -> dict:
    """kubectl client-side apply's patch: changes from `current` (live) to `modified`
    (the file, carrying its new last-applied annotation), plus deletions of fields that
    `original` (the previous last-applied configuration) had and `modified` dropped.
    Fields set on the server by others are left alone. `{}` means "unchanged".
    """
    if original is not None and not isinstance(original, dict):
        raise PatchError("the original configuration must be a JSON object")
    if not isinstance(modified, dict) or not isinstance(current, dict):
        raise PatchError("the modified and current documents must be JSON objects")

    def run() -> dict:
        schema = schema_for(str(kind))
        delta = _diff_maps(deep_copy(current), deep_copy(modified), schema,
                           _DiffOptions(set_element_order=True, ignore_deletions=True))
        deletions = _diff_maps(deep_copy(original or {}), deep_copy(modified), schema,
                               _DiffOptions(set_element_order=True, ignore_changes_and_additions=True))
        return sorted_keys(_merge_map(deletions, delta, schema, _COMBINE))

    return _guard(run)


# ---------------------------------------------------------------------------
# kubectl's last-applied annotation


def last_applied_configuration(obj: dict) -> dict | None:
    """The configuration stored in the object's last-applied annotation, if any."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    text = annotations.get(LAST_APPLIED_ANNOTATION) if isinstance(annotations, dict) else None
    if not text or not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise PatchError(f"the {LAST_APPLIED_ANNOTATION} annotation is not valid JSON") from None
    return value if isinstance(value, dict) else None


_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _go_json(value: Any) -> str:
    """JSON text as Go's encoding/json writes it (sorted keys, HTML-safe escapes), so an
    annotation we write is byte-identical to the one kubectl writes for the same file."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in _GO_ESCAPES.items():
        text = text.replace(char, escaped)
    return text


def with_last_applied_annotation(obj: dict) -> dict:
    """A copy of `obj` annotated the way kubectl apply does before sending or diffing it:
    the annotation holds the object itself (without that annotation) as compact JSON
    with sorted keys and a trailing newline, and `metadata.annotations` is always present."""
    result = deep_copy(obj)
    metadata = result.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        raise PatchError("metadata must be a JSON object")
    annotations = metadata.get("annotations")
    annotations = dict(annotations) if isinstance(annotations, dict) else {}
    annotations.pop(LAST_APPLIED_ANNOTATION, None)
    metadata["annotations"] = annotations
    text = _go_json(result) + "\n"
    metadata["annotations"] = dict(annotations, **{LAST_APPLIED_ANNOTATION: text})
    return result
