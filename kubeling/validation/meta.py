"""ObjectMeta validation (apimachinery's ValidateObjectMeta / ValidateObjectMetaUpdate)."""
from __future__ import annotations

import random
from typing import Any, Callable

from kubeling.errors import FieldError, forbidden, invalid_value, required, too_long, type_invalid
from kubeling.validation import formats
from kubeling.validation.fields import Checker, child

NameCheck = Callable[[str], list[str]]

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
FIELD_IMMUTABLE = "field is immutable"
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def generate_name(base: str) -> str:
    """A name from generateName as the apiserver's SimpleNameGenerator makes it."""
    return base[:58] + "".join(random.choice(_GENERATE_ALPHABET) for _ in range(5))


def _mask_trailing_dash(name: str) -> str:
    # generateName is a prefix: "web-" is fine because random characters follow.
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


def validate_labels(c: Checker, labels: Any, path: str) -> None:
    if labels is None:
        return
    if not isinstance(labels, dict):
        c.add(formats_type_error(path, labels))
        return
    for k, v in labels.items():
        c.messages(path, k, formats.qualified_name(k))
        if not isinstance(v, str):
            c.add(formats_type_error(f"{path}[{k}]", v, "string"))
            continue
        c.messages(path, v, formats.label_value(v))


def formats_type_error(path: str, value: Any, what: str = "object") -> FieldError:
    return type_invalid(path, value, f"must be of type {what}")


def _absent_or_empty(d: dict, name: str) -> bool:
    # A mistyped value was already reported; don't also call it missing.
    return d.get(name) in (None, "")


def validate_annotations(c: Checker, annotations: Any, path: str) -> None:
    if annotations is None:
        return
    if not isinstance(annotations, dict):
        c.add(formats_type_error(path, annotations))
        return
    total = 0
    for k, v in annotations.items():
        c.messages(path, k, formats.qualified_name(k.lower()))
        if not isinstance(v, str):
            c.add(formats_type_error(f"{path}[{k}]", v, "string"))
            continue
        total += len(k.encode()) + len(v.encode())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        c.add(too_long(path, "", TOTAL_ANNOTATION_SIZE_LIMIT))


def validate_object_meta(c: Checker, obj: dict, namespaced: bool, name_check: NameCheck,
                         path: str = "metadata") -> dict:
    """Check metadata; returns it (or {} when missing or mistyped) for the caller."""
    meta = c.obj(obj, "metadata", path)
    if meta is None:
        if "metadata" not in obj or obj.get("metadata") is None:
            c.add(required(child(path, "name"), "name or generateName is required"))
        return {}
    name = c.str(meta, "name", child(path, "name"))
    generate = c.str(meta, "generateName", child(path, "generateName"))
    if generate:
        c.messages(child(path, "generateName"), generate, name_check(_mask_trailing_dash(generate)))
    if name:
        c.messages(child(path, "name"), name, name_check(name))
    elif not generate and _absent_or_empty(meta, "name"):
        c.add(required(child(path, "name"), "name or generateName is required"))
    ns = c.str(meta, "namespace", child(path, "namespace"))
    if namespaced:
        if not ns:
            if _absent_or_empty(meta, "namespace"):
                c.add(required(child(path, "namespace"), ""))
        else:
            c.messages(child(path, "namespace"), ns, formats.dns1123_label(ns))
    elif ns:
        c.add(forbidden(child(path, "namespace"), "not allowed on this type"))
    validate_labels(c, meta.get("labels"), child(path, "labels"))
    validate_annotations(c, meta.get("annotations"), child(path, "annotations"))
    for i, f in enumerate(c.str_list(meta, "finalizers", child(path, "finalizers"))):
        c.messages(f"{path}.finalizers[{i}]", f, formats.qualified_name(f))
    c.items(meta, "ownerReferences", child(path, "ownerReferences"))
    for field in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp",
                  "selfLink"):
        c.str(meta, field, child(path, field))
    for field in ("generation", "deletionGracePeriodSeconds"):
        c.int(meta, field, child(path, field), bits=64)
    c.list(meta, "managedFields", child(path, "managedFields"))
    return meta


def validate_object_meta_update(c: Checker, new: dict, old: dict, path: str = "metadata") -> None:
    new_meta = new.get("metadata") if isinstance(new.get("metadata"), dict) else {}
    old_meta = old.get("metadata") if isinstance(old.get("metadata"), dict) else {}
    for field in ("name", "namespace", "uid", "creationTimestamp"):
        if new_meta.get(field) != old_meta.get(field):
            c.add(invalid_value(child(path, field), new_meta.get(field), FIELD_IMMUTABLE))
    old_deletion = old_meta.get("deletionTimestamp")
    if old_deletion is not None and new_meta.get("deletionTimestamp") != old_deletion:
        c.add(invalid_value(child(path, "deletionTimestamp"), new_meta.get("deletionTimestamp"),
                            "field is immutable; may only be changed via deletion"))
