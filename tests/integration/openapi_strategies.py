"""Hypothesis strategies that build request bodies from an OpenAPI v3 schema, mostly
of the right shape (so requests reach validation, defaulting and storage) and now
and then of the wrong type, size or alphabet at any level (so the decoders and
validators meet what a broken or hostile client sends)."""
from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

REF_PREFIX = "#/components/schemas/"

# Values that break assumptions: wrong types, nulls, huge and odd strings, deep nesting.
NASTY_VALUES: list[Any] = [
    None, True, False, 0, -1, 2**63, -(2**63) - 1, 1e308, -0.0, 0.5, "", " ", "null", "0",
    "x" * 70_000, "\u0000", "\ud7ff\ue000\U0010ffff", "日本語", "a/b", "..", "%2F", "<script>",
    "${jndi:x}", "\n\r\t", "A_UPPER", "-leading", "trailing-", "a" * 254, [], {}, [None], {"": None},
    [[[[[]]]]], {"a": {"b": {"c": {"d": [1, "x", None]}}}}, ["x"] * 500, {str(i): i for i in range(300)},
]
NASTY_SCALARS = st.sampled_from(NASTY_VALUES)
NASTY = st.one_of(NASTY_SCALARS, st.text(max_size=40), st.integers(),
                  st.floats(allow_nan=False, allow_infinity=False))
# DNS-1123-ish names, with a few that break the rules, so some objects get created.
NAMES = st.one_of(
    st.from_regex(r"\Afz-[a-z0-9]{1,8}\Z"),
    st.sampled_from(["fuzz-target", "", "UPPER", "a" * 300, "a..b", "-x", "x/y", "日本"]),
)
TIMESTAMPS = st.sampled_from(["2024-01-02T03:04:05Z", "not-a-time", "2024-13-45T99:99:99Z", ""])


def mostly(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any],
           weight: int = 3) -> st.SearchStrategy[Any]:
    """`common` `weight` times as often as `rare`: most requests should get past routing
    and name checks to reach the decoders and validators behind them."""
    return st.integers(0, weight).flatmap(lambda i: rare if i == 0 else common)


def resolve(node: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """Follow `$ref` and single-element `allOf` (how Kubernetes' v3 documents nest types)."""
    for _ in range(20):
        if "$ref" in node:
            node = schemas.get(node["$ref"][len(REF_PREFIX):], {})
        elif isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
            node = node["allOf"][0]
        else:
            return node
    return node


def from_schema(node: dict[str, Any], schemas: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of the type one schema node declares (contents random, so often invalid)."""
    return _well_typed(resolve(node, schemas), schemas, depth)


def _well_typed(node: dict[str, Any], schemas: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    if node.get("x-kubernetes-int-or-string") or node.get("format") == "int-or-string":
        return st.one_of(st.integers(-5, 70_000), st.text(max_size=12), st.sampled_from(["80%", "http"]))
    kind = node.get("type")
    if "enum" in node:
        return st.sampled_from(list(node["enum"]))
    if kind == "string":
        if node.get("format") == "date-time":
            return TIMESTAMPS
        if node.get("format") == "byte":
            return st.sampled_from(["aGVsbG8=", "not base64!", ""])
        return st.one_of(st.text(max_size=20), st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?\Z"))
    if kind == "integer":
        return st.one_of(st.integers(-3, 100), st.integers())
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        if depth > 4:
            return st.just([])
        return st.lists(from_schema(node.get("items", {}), schemas, depth + 1), max_size=2)
    props = node.get("properties")
    if props:
        if depth > 4:
            return st.just({})
        required = [k for k in node.get("required", []) if k in props]
        optional = {k: from_schema(v, schemas, depth + 1) for k, v in props.items() if k not in required}
        return st.fixed_dictionaries({k: from_schema(props[k], schemas, depth + 1) for k in required},
                                     optional=optional)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        values = from_schema(extra, schemas, depth + 1) if depth <= 4 else st.text(max_size=8)
        return st.dictionaries(st.text(max_size=16), values, max_size=3)
    # Free-form (preserve-unknown-fields, RawExtension, the Patch body): any JSON.
    return st.recursive(NASTY_SCALARS | st.text(max_size=10),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                   max_size=3),
                        max_leaves=8)


def object_bodies(definition: str, schemas: dict[str, Any], api_version: str, kind: str,
                  name: str) -> st.SearchStrategy[Any]:
    """A whole object of one kind with the right apiVersion, kind and `name` (so it passes
    the early checks and reaches validation and storage), the rest from the schema; then
    in most examples one or two places, at any depth, get a wrong value or go missing."""
    base = _well_typed(resolve({"$ref": REF_PREFIX + definition}, schemas), schemas, 0)
    metadata = st.fixed_dictionaries({"name": st.just(name)}, optional={
        "labels": st.dictionaries(st.from_regex(r"\A[a-z]{1,8}\Z"), st.from_regex(r"\A[a-z0-9]{0,8}\Z"),
                                  max_size=2),
        "annotations": st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=2),
        "finalizers": st.lists(st.just("example.com/f"), max_size=1)})
    header = st.fixed_dictionaries({"apiVersion": st.just(api_version), "kind": st.just(kind),
                                    "metadata": metadata})
    whole = st.builds(lambda body, head: {**body, **head} if isinstance(body, dict) else body, base, header)
    return st.tuples(whole, st.randoms(use_true_random=False)).map(lambda pair: mutate(*pair))


def mutate(body: Any, rnd: random.Random) -> Any:
    """`body` as it is (a third of the time), or with one or two values replaced by a nasty
    one, dropped, or joined by an unknown field."""
    # Copies: a nasty value shared between examples (or put twice into one) would be changed by
    # a later mutation, even inserted into itself, and the same draw would not give the same body.
    body = copy.deepcopy(body)
    for _ in range(rnd.choice((0, 1, 1, 2))):
        places = list(_places(body))
        container, key = rnd.choice(places)
        action = rnd.random()
        if action < 0.7:
            container[key] = copy.deepcopy(rnd.choice(NASTY_VALUES))
        elif action < 0.85 and isinstance(container, dict):
            del container[key]
        elif isinstance(container, dict):
            container[rnd.choice(["unknownField", "", "x" * 300, "spec", "status"])] = \
                copy.deepcopy(rnd.choice(NASTY_VALUES))
    return body


def _places(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key or index) in a JSON value, outermost first."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        yield node, key
        yield from _places(value)


def json_patches(schemas: dict[str, Any]) -> st.SearchStrategy[Any]:
    """RFC 6902 documents, valid and not."""
    op = st.fixed_dictionaries(
        {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bogus"]),
         "path": st.sampled_from(["/metadata/labels/a", "/spec", "/metadata/name", "/status", "", "/", "~",
                                  "/spec/containers/-", "/spec/containers/99/image", "/metadata/labels/a~1b",
                                  "/metadata/annotations/~2", "/x/y/z"])},
        optional={"value": NASTY, "from": st.sampled_from(["/metadata", "/spec", "", "/nope"])})
    return st.one_of(st.lists(op, max_size=4), NASTY)
