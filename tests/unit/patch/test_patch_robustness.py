"""Random JSON, wrong types and directive soup: the patch functions raise PatchError or
return, never anything else, and never modify their inputs."""

import copy
import json
import random

import pytest

from kubeling.patch import (PatchError, apply_json_patch, apply_merge_patch, apply_patch,
                            apply_strategic_merge_patch, create_three_way_merge_patch,
                            create_two_way_merge_patch, record_update)

KEYS = ["spec", "metadata", "containers", "name", "image", "ports", "containerPort", "env", "labels",
        "finalizers", "volumes", "conditions", "type", "status", "$patch", "$retainKeys",
        "$setElementOrder/containers", "$deleteFromPrimitiveList/finalizers", "$setElementOrder",
        "$deleteFromPrimitiveList/containers", "$setElementOrder/finalizers", "op", "path", "value", "from"]
SCALARS = [None, True, False, 0, 1, -1, 1.5, "", "a", "replace", "delete", "merge", "/spec", "/-", "~", 80]


def random_json(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth > 4 or roll < 0.35:
        return rng.choice(SCALARS)
    if roll < 0.7:
        return {rng.choice(KEYS): random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]


def random_doc(rng: random.Random):
    """Mostly object-shaped so the strategic code paths are reached, sometimes anything."""
    if rng.random() < 0.15:
        return random_json(rng)
    containers = []
    for _ in range(rng.randint(0, 3)):
        extra = random_json(rng, 3)
        containers.append({"name": rng.choice(["a", "b", rng.choice(SCALARS)]),
                           **(extra if isinstance(extra, dict) else {})})
    return {"metadata": {"labels": random_json(rng, 3), "finalizers": random_json(rng, 3)},
            "spec": {"containers": containers if rng.random() < 0.7 else random_json(rng, 2),
                     rng.choice(KEYS): random_json(rng, 2)}}


CALLS = [
    lambda rng, a, b, c: apply_merge_patch(a, b),
    lambda rng, a, b, c: apply_json_patch(a, b if rng.random() < 0.3 else [
        {"op": rng.choice(["add", "remove", "replace", "move", "copy", "test", "x"]),
         "path": rng.choice(["", "/spec", "/spec/containers/0", "/spec/containers/-", "/a~1b", "x", 3]),
         "from": rng.choice(["/spec", "/metadata/labels", "/nope"]), "value": c}]),
    lambda rng, a, b, c: apply_strategic_merge_patch(a, b, rng.choice(["Pod", "Service", "Node", "Widget"])),
    lambda rng, a, b, c: create_three_way_merge_patch(a if rng.random() < 0.8 else None, b, c, "Pod"),
    lambda rng, a, b, c: create_two_way_merge_patch(a, b, "Pod"),
    lambda rng, a, b, c: apply_patch(a if rng.random() < 0.8 else None, b, "Pod", rng.choice(["m", "n", ""]), "t"),
    lambda rng, a, b, c: record_update(a, b, "Pod", "m", "t"),
]


@pytest.mark.parametrize("seed", range(40))
def test_random_inputs_raise_only_patch_error_and_are_not_modified(seed):
    rng = random.Random(seed)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(150):
        a, b, c = random_doc(rng), random_doc(rng), random_doc(rng)
        snapshot = copy.deepcopy((a, b, c))
        call = rng.choice(CALLS)
        try:
            result = call(rng, a, b, c)
        except PatchError as exc:
            assert str(exc)
            outcomes["error"] += 1
        else:
            json.dumps(result)  # results are plain JSON
            outcomes["ok"] += 1
        assert (a, b, c) == snapshot
    # The generator must exercise both paths, or this test proves nothing.
    assert outcomes["ok"] > 0 and outcomes["error"] > 0


def test_result_does_not_alias_inputs():
    original = {"spec": {"containers": [{"name": "a", "env": [{"name": "X"}]}]}, "data": {"k": [1]}}
    patch = {"spec": {"containers": [{"name": "b", "env": [{"name": "Y"}]}]}, "other": {"l": [2]}}
    for result in (apply_strategic_merge_patch(original, patch, "Pod"), apply_merge_patch(original, patch)):
        for c in result["spec"]["containers"]:
            c["env"].append("mutated")
        result["data"]["k"].append("mutated")
        result["other"]["l"].append("mutated")
    assert original == {"spec": {"containers": [{"name": "a", "env": [{"name": "X"}]}]}, "data": {"k": [1]}}
    assert patch == {"spec": {"containers": [{"name": "b", "env": [{"name": "Y"}]}]}, "other": {"l": [2]}}


def test_deeply_nested_input_is_a_patch_error_not_a_crash():
    deep = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    for fn in (lambda: apply_strategic_merge_patch({}, deep, "Pod"), lambda: apply_merge_patch({}, deep),
               lambda: apply_json_patch(deep, []), lambda: apply_patch(None, deep, "Pod", "m", "t")):
        with pytest.raises(PatchError):
            fn()
