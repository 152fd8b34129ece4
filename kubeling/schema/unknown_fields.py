"""Find (and drop) the fields of an object that its kind's schema does not know.

This is what the apiserver's decoder does: Kubernetes' Go structs silently drop an
unknown JSON field, and fieldValidation decides whether that is fine (Ignore),
worth a warning (Warn) or an error (Strict).
"""
from __future__ import annotations

from typing import Any

from . import definitions, kind_definition, resolve


def unknown_fields(kind: str, obj: Any, *, prune: bool = True) -> list[str]:
    """Paths of unknown fields in `obj` (`spec.containers[0].foo`), in document order.

    With `prune`, those fields are removed from `obj` in place. A kind without a
    schema has no unknown fields."""
    name = kind_definition(kind)
    if name is None or not isinstance(obj, dict):
        return []
    found: list[str] = []
    _walk(definitions()[name], obj, "", found, prune)
    return found


def _walk(schema: dict[str, Any], value: Any, path: str, found: list[str], prune: bool) -> None:
    schema = resolve(schema)
    if schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("x-kubernetes-int-or-string"):
        return
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _walk(schema["items"], item, f"{path}[{i}]", found, prune)
        return
    if not isinstance(value, dict):
        return  # type mismatches are validation's business, not the decoder's
    props = schema.get("properties")
    if props is not None:
        for key in list(value):
            sub = f"{path}.{key}" if path else key
            if key in props:
                _walk(props[key], value[key], sub, found, prune)
            else:
                found.append(sub)
                if prune:
                    del value[key]
    elif isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            _walk(schema["additionalProperties"], item, f"{path}[{key}]" if path else key, found, prune)
