"""Helpers for JSON values held as Python objects (dict, list, str, int/float, bool, None).

Python's `True == 1` and unhashable containers make the builtin `==`/`in` wrong for
JSON, so comparisons go through here.
"""

from __future__ import annotations

import json
from typing import Any


def json_kind(value: Any) -> str:
    """The JSON type of a value: object, array, string, number, boolean or null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def json_equal(a: Any, b: Any) -> bool:
    """Deep equality with JSON semantics (true != 1, 1 == 1.0)."""
    ka, kb = json_kind(a), json_kind(b)
    if ka != kb:
        return False
    if ka == "object":
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if ka == "array":
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return a == b


def canonical(value: Any) -> str:
    """A stable text form of a value, usable as a dict key for set-like comparisons."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def go_string(value: Any) -> str:
    """Roughly Go's fmt `%v` of a decoded JSON scalar: Kubernetes sorts scalars by it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if value is None:
        return "<nil>"
    return str(value)


def deep_copy(value: Any) -> Any:
    """Copy of a JSON value; containers are new, scalars shared (they are immutable)."""
    if isinstance(value, dict):
        return {k: deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deep_copy(v) for v in value]
    return value


def sorted_keys(value: Any) -> Any:
    """Copy with every object's keys in sorted order, as Go's encoding/json emits them."""
    if isinstance(value, dict):
        return {k: sorted_keys(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [sorted_keys(v) for v in value]
    return value
