"""The bounded JSON/YAML decoders: what they refuse (with one line) and what they keep."""
from __future__ import annotations

import time

import pytest

from kubeling.bounded_decode import MAX_DEPTH, DecodeError, loads_json, loads_yaml, loads_yaml_all
from tests.bad_documents import billion_laughs, deep_json, deep_yaml


@pytest.mark.parametrize("raw,reason", [
    (deep_json(10_000), "nested deeper"), (deep_json(MAX_DEPTH), "nested deeper"),
    (b"[" * 100_000 + b"]" * 100_000, "nested deeper"), (b"{", "Expecting"),
])
def test_json_refusals_are_one_line(raw, reason):
    with pytest.raises(DecodeError) as exc:
        loads_json(raw)
    assert reason in str(exc.value) and "\n" not in str(exc.value)


def test_json_at_the_limit_and_surrogates():
    assert loads_json(deep_json(MAX_DEPTH - 2))["kind"] == "ConfigMap"
    assert loads_json(b'{"a": "\\ud800x\\ud83d\\ude00"}') == {"a": "\ufffdx\U0001f600"}
    assert loads_json('["\\udfff"]') == ["\ufffd"]


@pytest.mark.parametrize("raw,reason", [
    (billion_laughs(), "excessive aliasing"), (b"&a [*a]", "cyclic alias"), (b"a: &a {b: *a}", "cyclic alias"),
    (deep_yaml(10_000), "nested deeper"), (deep_yaml(MAX_DEPTH), "nested deeper"),
    (b"a:\n" + b"".join(b"  " * i + b"- \n" for i in range(1, MAX_DEPTH + 5)), "nested deeper"),
    (b"a: [unclosed", "while parsing"), (b"!!python/object:os.system {}", "could not determine a constructor"),
])
def test_yaml_refusals_are_one_line_and_quick(raw, reason):
    started = time.monotonic()
    with pytest.raises(DecodeError) as exc:
        loads_yaml_all(raw)
    assert reason in str(exc.value) and "\n" not in str(exc.value)
    assert time.monotonic() - started < 2


def test_yaml_keeps_ordinary_aliases_and_json_types():
    doc = loads_yaml(b"base: &b {x: 1}\nd: {<<: *b, y: 2}\nt: 2024-01-02\ns: !!set {a}\nbin: !!binary aGk=\n")
    assert doc == {"base": {"x": 1}, "d": {"x": 1, "y": 2}, "t": "2024-01-02", "s": {"a": None}, "bin": "aGk="}
    assert loads_yaml_all(b"a: 1\n---\n---\nb: 2\n") == [{"a": 1}, None, {"b": 2}]
    with pytest.raises(DecodeError):
        loads_yaml(b"a: 1\n---\nb: 2\n")
