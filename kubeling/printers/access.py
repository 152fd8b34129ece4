"""Safe reads from objects that may be missing fields or hold wrong types.

Printers run on whatever is stored; a table must never fail because one
object is odd, so every read here degrades to an empty value.
"""
from __future__ import annotations

from typing import Any


def get(obj: Any, *path: str | int) -> Any:
    """obj[p0][p1]...; None as soon as a step is missing or of the wrong type."""
    cur = obj
    for step in path:
        if isinstance(step, int):
            if not isinstance(cur, list) or not -len(cur) <= step < len(cur):
                return None
            cur = cur[step]
        else:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(step)
    return cur


def text(obj: Any, *path: str | int) -> str:
    """A string field; '' when missing or not a string (Go's zero value)."""
    value = get(obj, *path)
    return value if isinstance(value, str) else ""


def integer(obj: Any, *path: str | int) -> int:
    value = get(obj, *path)
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return 0


def boolean(obj: Any, *path: str | int) -> bool:
    return get(obj, *path) is True


def items(obj: Any, *path: str | int) -> list[Any]:
    """A list field, keeping only dict entries (list items are structs here)."""
    value = get(obj, *path)
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict)]


def strings(obj: Any, *path: str | int) -> list[str]:
    value = get(obj, *path)
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, str)]


def mapping(obj: Any, *path: str | int) -> dict[str, Any]:
    value = get(obj, *path)
    return value if isinstance(value, dict) else {}


def format_labels(labels: Any) -> str:
    """labels.FormatLabels: sorted k=v pairs joined by ',', or <none>."""
    if not isinstance(labels, dict) or not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k] if isinstance(labels[k], str) else ''}"
                    for k in sorted(labels, key=str))
