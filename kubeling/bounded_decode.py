"""Decoding JSON and YAML that a client or a user's file sends, with limits: bodies
nested deeper than any real object, YAML alias bombs ("billion laughs") and strings
that are not Unicode are refused (or repaired) here, with one line that says why,
before anything walks, stores or re-encodes them.

Kubernetes' Go decoders allow 10,000 levels on a growable stack; Python's recursion
limit is 1,000 frames and every recursive walker after us (validation, merge
patches, json.dumps) spends one to three of them per level, so the bound is lower."""
from __future__ import annotations

import json
import re
from typing import Any

import yaml

MAX_DEPTH = 200
# A YAML document may use aliases (anchors are a normal YAML feature), but the tree
# they expand into may be at most this many times larger than the document's own
# nodes, plus a fixed allowance: a billion-laughs document expands 10^9-fold.
MAX_ALIAS_EXPANSION = 10
ALIAS_ALLOWANCE = 10_000



class _JsonishLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader, but every value is one JSON can carry (as sigs.k8s.io/yaml turns
    YAML into JSON first): timestamps and !!binary stay strings, a !!set is an object."""


_JsonishLoader.add_constructor("tag:yaml.org,2002:timestamp", _JsonishLoader.construct_yaml_str)
_JsonishLoader.add_constructor("tag:yaml.org,2002:binary", _JsonishLoader.construct_yaml_str)
_JsonishLoader.add_constructor("tag:yaml.org,2002:set", _JsonishLoader.construct_yaml_map)
_SURROGATES = re.compile("[\ud800-\udfff]")


class DecodeError(ValueError):
    """The input cannot be decoded within the limits; str() is one line."""


def loads_json(raw: bytes | str) -> Any:
    """json.loads, refusing nesting deeper than MAX_DEPTH; lone UTF-16 surrogates
    (`"\\ud800"`, valid JSON escapes but not Unicode) become U+FFFD, as Go's decoder
    makes them, so that the value can be encoded as UTF-8 again."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise DecodeError(f"the document is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise DecodeError(str(exc).splitlines()[0] if str(exc) else "invalid JSON") from None
    check_depth(value)
    # Only an escape can produce a surrogate; skip the walk for the common body.
    if (b"\\u" if isinstance(raw, bytes) else "\\u") in raw:
        value = _replace_surrogates(value)
    return value


def check_depth(value: Any) -> None:
    """Raise DecodeError when `value` nests lists and objects deeper than MAX_DEPTH."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > MAX_DEPTH:
            raise DecodeError(f"the document is nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATES.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    return value


def loads_yaml(raw: bytes | str) -> Any:
    """One YAML document (safe types only), with the nesting, alias and surrogate limits."""
    docs = loads_yaml_all(raw)
    if len(docs) > 1:
        raise DecodeError("expected a single YAML document, found more")
    return docs[0] if docs else None


def loads_yaml_all(raw: bytes | str) -> list[Any]:
    """Every document of a YAML stream (safe types only), within the limits."""
    loader = _JsonishLoader(raw)
    try:
        out = []
        while loader.check_node():
            node = loader.get_node()
            _check_node_graph(node)
            out.append(_replace_surrogates(loader.construct_document(node)))
        return out
    except RecursionError:
        raise DecodeError(f"the document is nested deeper than {MAX_DEPTH} levels") from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
        if "increasing flow level" in first or "increasing indent" in first:  # libyaml's own depth bound
            first = f"the document is nested deeper than {MAX_DEPTH} levels"
        raise DecodeError(first) from None
    finally:
        loader.dispose()


def _check_node_graph(root: yaml.Node) -> None:
    """Refuse before construction a node graph that is cyclic (`&a [*a]`), too deep, or
    whose aliases expand it far beyond its size. An alias is the same Node object met
    again, so sizes are computed once per distinct node (iteratively: no recursion)."""
    expanded: dict[int, int] = {}  # id(node) -> node count once every alias is expanded
    depth_below: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        kids = _children(node)
        if children_done:
            on_path.discard(key)
            expanded[key] = 1 + sum(expanded[id(k)] for k in kids)
            depth_below[key] = 1 + max((depth_below[id(k)] for k in kids), default=0)
            if depth_below[key] > MAX_DEPTH:
                raise DecodeError(f"the document is nested deeper than {MAX_DEPTH} levels")
            if expanded[key] > ALIAS_ALLOWANCE + MAX_ALIAS_EXPANSION * len(expanded):
                raise DecodeError("the YAML document contains excessive aliasing")
            continue
        if key in expanded:
            continue
        if key in on_path:
            raise DecodeError("the YAML document refers to itself (a cyclic alias)")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in kids if id(k) not in expanded)
        if len(on_path) > MAX_DEPTH + 1:
            raise DecodeError(f"the document is nested deeper than {MAX_DEPTH} levels")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
