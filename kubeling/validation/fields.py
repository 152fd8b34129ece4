"""Typed reads of a JSON-decoded object that turn wrong types into field errors.

Go's decoder rejects a string where an int belongs; we get arbitrary JSON, so every
read goes through here and a mistyped field becomes FieldValueTypeInvalid instead of
an exception. `null` reads as absent, as it does in Go.
"""
from __future__ import annotations

from typing import Any, Callable

from kubeling.errors import FieldError, invalid_value, type_invalid

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def key(path: str, k: str) -> str:
    return f"{path}[{k}]"


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class Checker:
    """Collects errors while reading fields of one object."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def add(self, err: FieldError) -> None:
        self.errors.append(err)

    def extend(self, errs: list[FieldError]) -> None:
        self.errors.extend(errs)

    def messages(self, path: str, value: Any, msgs: list[str]) -> bool:
        """Report format messages as Invalid errors; True when there were none."""
        for m in msgs:
            self.add(invalid_value(path, value, m))
        return not msgs

    def _typed(self, parent: Any, name: str, path: str, ok: Callable[[Any], bool],
               what: str) -> Any:
        if not isinstance(parent, dict):
            return None
        v = parent.get(name)
        if v is None:
            return None
        if not ok(v):
            self.add(type_invalid(path, v, f"must be of type {what}"))
            return None
        return v

    def obj(self, parent: Any, name: str, path: str) -> dict | None:
        return self._typed(parent, name, path, lambda v: isinstance(v, dict), "object")

    def list(self, parent: Any, name: str, path: str) -> list | None:
        return self._typed(parent, name, path, lambda v: isinstance(v, list), "array")

    def str(self, parent: Any, name: str, path: str) -> str | None:
        return self._typed(parent, name, path, lambda v: isinstance(v, str), "string")

    def bool(self, parent: Any, name: str, path: str) -> bool | None:
        return self._typed(parent, name, path, lambda v: isinstance(v, bool), "boolean")

    def int(self, parent: Any, name: str, path: str, bits: int = 32) -> int | None:
        limit = INT32_MAX if bits == 32 else INT64_MAX
        v = self._typed(parent, name, path, is_int, "integer")
        if v is not None and not -limit - 1 <= v <= limit:
            self.add(invalid_value(path, v, f"must fit in a {bits}-bit integer"))
            return None
        return v

    def int_or_str(self, parent: Any, name: str, path: str) -> int | str | None:
        return self._typed(parent, name, path,
                           lambda v: isinstance(v, str) or (is_int(v) and abs(v) <= INT32_MAX),
                           "integer or string")

    def as_dict(self, v: Any, path: str) -> dict | None:
        """An element that must be an object (a list item)."""
        if isinstance(v, dict):
            return v
        self.add(type_invalid(path, v, "must be of type object"))
        return None

    def as_str(self, v: Any, path: str) -> str | None:
        if isinstance(v, str):
            return v
        self.add(type_invalid(path, v, "must be of type string"))
        return None

    def items(self, parent: Any, name: str, path: str) -> list[tuple[int, str, dict]]:
        """The object elements of a list field, with their paths; others reported."""
        out = []
        for i, v in enumerate(self.list(parent, name, path) or []):
            p = index(path, i)
            d = self.as_dict(v, p)
            if d is not None:
                out.append((i, p, d))
        return out

    def str_list(self, parent: Any, name: str, path: str) -> list[str]:
        out = []
        for i, v in enumerate(self.list(parent, name, path) or []):
            s = self.as_str(v, index(path, i))
            if s is not None:
                out.append(s)
        return out

    def str_map(self, parent: Any, name: str, path: str) -> dict[str, str]:
        """A map[string]string; a non-string value is reported at path[key]."""
        out = {}
        for k, v in (self.obj(parent, name, path) or {}).items():
            s = self.as_str(v, key(path, k))
            if s is not None:
                out[k] = s
        return out
