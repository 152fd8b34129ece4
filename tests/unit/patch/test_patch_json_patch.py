"""RFC 6902 JSON patch, cases from the RFC's appendix A."""

import pytest

from kubeling.patch import PatchError, apply_json_patch


@pytest.mark.parametrize("doc,ops,expected", [
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"foo": "bar", "baz": "qux"}),
    ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}], {"foo": ["bar", "qux", "baz"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}], {"baz": "boo", "foo": "bar"}),
    ({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ({"foo": ["all", "grass", "cows", "eat"]}, [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
     {"foo": ["all", "cows", "eat", "grass"]}),
    ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}], {"foo": ["bar", ["abc", "def"]]}),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    ({"a/b": 1, "m~n": 2}, [{"op": "replace", "path": "/a~1b", "value": 3}, {"op": "remove", "path": "/m~0n"}],
     {"a/b": 3}),
    ({"a": {"b": [1]}}, [{"op": "copy", "from": "/a/b", "path": "/c"}], {"a": {"b": [1]}, "c": [1]}),
    ({"a": 1}, [{"op": "replace", "path": "", "value": [1]}], [1]),
    ({"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
])
def test_rfc6902_examples(doc, ops, expected):
    assert apply_json_patch(doc, ops) == expected


@pytest.mark.parametrize("doc,ops,message", [
    ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}], "does not exist"),
    ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}], "test operation failed"),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}], "test operation failed"),
    ({"foo": "bar"}, [{"op": "remove", "path": "/nope"}], "does not exist"),
    ({"foo": "bar"}, [{"op": "replace", "path": "/nope", "value": 1}], "does not exist"),
    ({"foo": [1]}, [{"op": "add", "path": "/foo/2", "value": 1}], "out of range"),
    ({"foo": [1]}, [{"op": "add", "path": "/foo/01", "value": 1}], "not a valid array index"),
    ({"foo": [1]}, [{"op": "remove", "path": "/foo/-"}], "not a valid array index"),
    ({"foo": {"a": 1}}, [{"op": "move", "from": "/foo", "path": "/foo/a/b"}], "own child"),
    ({"foo": 1}, [{"op": "add", "path": "foo", "value": 1}], "must start with '/'"),
    ({"foo": 1}, [{"op": "add", "path": "/~2", "value": 1}], "invalid '~' escape"),
    ({"foo": 1}, [{"op": "frob", "path": "/foo"}], "unknown op"),
    ({"foo": 1}, [{"op": "add", "path": "/bar"}], "missing 'value'"),
    ({"foo": 1}, {"op": "add"}, "must be a list"),
    ({"foo": 1}, ["add"], "not an object"),
    ({"a": True}, [{"op": "test", "path": "/a", "value": 1}], "test operation failed"),
])
def test_invalid_operations_raise_patch_error(doc, ops, message):
    with pytest.raises(PatchError, match=message):
        apply_json_patch(doc, ops)


def test_failed_patch_leaves_document_untouched():
    doc = {"metadata": {"labels": {"a": "1"}}}
    ops = [{"op": "remove", "path": "/metadata/labels/a"}, {"op": "test", "path": "/x", "value": 1}]
    with pytest.raises(PatchError):
        apply_json_patch(doc, ops)
    assert doc == {"metadata": {"labels": {"a": "1"}}}


def test_numbers_compare_by_value_in_test_op():
    assert apply_json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}]) == {"a": 1}
