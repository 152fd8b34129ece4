"""RFC 6902 JSON patch (`application/json-patch+json`) with RFC 6901 pointers."""

from __future__ import annotations

from typing import Any

from .errors import PatchError
from .jsonvalue import deep_copy, json_equal


def parse_pointer(pointer: Any) -> list[str]:
    """Split a JSON pointer into unescaped reference tokens ("" is the whole document)."""
    if not isinstance(pointer, str):
        raise PatchError(f"JSON pointer must be a string, not {pointer!r}")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"JSON pointer {pointer!r} must start with '/'")
    tokens = []
    for raw in pointer[1:].split("/"):
        # "~01" must decode to "~1", so "~1" is replaced before "~0".
        if "~" in raw.replace("~0", "").replace("~1", ""):
            raise PatchError(f"JSON pointer {pointer!r} has an invalid '~' escape")
        tokens.append(raw.replace("~1", "/").replace("~0", "~"))
    return tokens


def _index(token: str, length: int, pointer: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return length
    if not token.isascii() or not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchError(f"path {pointer!r}: {token!r} is not a valid array index")
    index = int(token)
    limit = length if allow_end else length - 1
    if index > limit:
        raise PatchError(f"path {pointer!r}: index {index} is out of range")
    return index


def _parent(doc: Any, tokens: list[str], pointer: str) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"path {pointer!r} does not exist")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(token, len(node), pointer, allow_end=False)]
        else:
            raise PatchError(f"path {pointer!r} does not exist")
    if not isinstance(node, (dict, list)):
        raise PatchError(f"path {pointer!r}: parent is not an object or array")
    return node


def _get(doc: Any, pointer: str) -> Any:
    tokens = parse_pointer(pointer)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path {pointer!r} does not exist")
        return parent[last]
    return parent[_index(last, len(parent), pointer, allow_end=False)]


def _add(doc: Any, pointer: str, value: Any) -> Any:
    tokens = parse_pointer(pointer)
    if not tokens:
        return value
    parent = _parent(doc, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    else:
        parent.insert(_index(last, len(parent), pointer, allow_end=True), value)
    return doc


def _remove(doc: Any, pointer: str) -> tuple[Any, Any]:
    tokens = parse_pointer(pointer)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path {pointer!r} does not exist")
        return doc, parent.pop(last)
    return doc, parent.pop(_index(last, len(parent), pointer, allow_end=False))


def _field(op: dict, name: str) -> Any:
    if name not in op:
        raise PatchError(f"operation {op.get('op')!r} is missing {name!r}")
    return op[name]


def _apply_one(doc: Any, op: Any, number: int) -> Any:
    if not isinstance(op, dict):
        raise PatchError(f"operation {number} is not an object")
    kind = op.get("op")
    path = _field(op, "path")
    if kind == "add":
        return _add(doc, path, deep_copy(_field(op, "value")))
    if kind == "remove":
        return _remove(doc, path)[0]
    if kind == "replace":
        value = deep_copy(_field(op, "value"))
        _get(doc, path)
        tokens = parse_pointer(path)
        if not tokens:
            return value
        parent = _parent(doc, tokens, path)
        if isinstance(parent, dict):
            parent[tokens[-1]] = value
        else:
            parent[_index(tokens[-1], len(parent), path, allow_end=False)] = value
        return doc
    if kind == "move":
        source = _field(op, "from")
        src, dst = parse_pointer(source), parse_pointer(path)
        if src == dst:
            _get(doc, source)
            return doc
        if dst[: len(src)] == src:
            raise PatchError(f"cannot move {source!r} into its own child {path!r}")
        doc, value = _remove(doc, source)
        return _add(doc, path, value)
    if kind == "copy":
        value = deep_copy(_get(doc, _field(op, "from")))
        return _add(doc, path, value)
    if kind == "test":
        if not json_equal(_get(doc, path), _field(op, "value")):
            raise PatchError(f"test operation failed: value at {path!r} differs")
        return doc
    raise PatchError(f"operation {number} has unknown op {kind!r}")


def apply_json_patch(original: Any, ops: Any) -> Any:
    """Apply a list of RFC 6902 operations to a copy of `original`, all or nothing."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    try:
        doc = deep_copy(original)
        for number, op in enumerate(ops):
            doc = _apply_one(doc, op, number)
        return doc
    except RecursionError:
        raise PatchError("JSON patch document is nested too deeply") from None
