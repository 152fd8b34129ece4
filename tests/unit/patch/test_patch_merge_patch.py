"""RFC 7386 JSON merge patch, with the RFC's appendix examples."""

import pytest

from kubeling.patch import apply_merge_patch

RFC_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize("original,patch,expected", RFC_EXAMPLES)
def test_rfc7386_examples(original, patch, expected):
    assert apply_merge_patch(original, patch) == expected


def test_pod_label_patch_keeps_other_fields_and_inputs():
    pod = {"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}}, "spec": {"containers": [{"name": "c"}]}}
    patch = {"metadata": {"labels": {"a": None, "c": "3"}}}
    result = apply_merge_patch(pod, patch)
    assert result == {"metadata": {"name": "p", "labels": {"b": "2", "c": "3"}},
                      "spec": {"containers": [{"name": "c"}]}}
    assert pod["metadata"]["labels"] == {"a": "1", "b": "2"}
    result["spec"]["containers"][0]["name"] = "changed"
    assert pod["spec"]["containers"][0]["name"] == "c"
