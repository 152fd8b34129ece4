"""Randomised robustness: defaulting and validation never raise on any JSON.

Valid objects are mutated at random paths (values replaced by random JSON of any type,
keys dropped, lists emptied or filled with junk), then defaulted and validated, as a
create and as an update against the original. The inner functions are called, without
the safety net the public ones have, so a bug surfaces as an exception here.
"""
from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from kubeling.defaulting import _apply_defaults
from kubeling.errors import FieldError
from kubeling.resources import lookup
from kubeling.validation import INTERNAL_REASON, _validate

from .helpers import POD, SERVICE
from .test_validation_other_kinds import BASES

SEEDS = range(6)
ROUNDS = 400

SPECIAL_STRINGS = ["", "None", "0", "-1", "latest", "TCP", "Exists", "NoExecute", "ClientIP", "NodePort",
                   "ExternalName", "http", "1Gi", "500m", "1e400", "10.96.0.1", "::1", "a" * 300, "..", "a/b/c",
                   "-", "\u00e9", "kubernetes", "IPv4", "ClusterIP", "Always", "\x00"]
SPECIAL_NUMBERS = [0, -1, 1, 65535, 65536, 2**31, 2**63, -2**63 - 1, 10**30, 1.5, 1e308, -0.0, True, False]


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice(SPECIAL_NUMBERS)
    if kind == 2:
        return rng.choice(SPECIAL_STRINGS)
    if kind == 3:
        return rng.randint(-5, 70000)
    if kind == 4:
        return rng.choice([True, False, "x", 3.25])
    if kind == 5:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["name", "image", "port", "ports", "containers", "spec", "key", "value", "effect", "cpu",
            "httpGet", "exec", "protocol", "targetPort", "clusterIP", "limits", "requests", "ip", "x"]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += paths(v, prefix + (i,))
    return out


def mutate(rng: random.Random, obj: Any) -> Any:
    for _ in range(rng.randint(1, 4)):
        candidates = paths(obj)
        path = rng.choice(candidates)
        if not path:
            if rng.random() < 0.05:
                return random_json(rng)
            continue
        parent = obj
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        action = rng.randrange(4)
        if action == 0 and isinstance(parent, dict):
            del parent[last]
        elif action == 1 and isinstance(parent[last], list):
            parent[last] = [random_json(rng) for _ in range(rng.randrange(3))]
        elif action == 2 and isinstance(parent[last], dict):
            parent[last][rng.choice(["name", "port", "spec", "x", "protocol", "ip"])] = random_json(rng)
        else:
            parent[last] = random_json(rng)
    return obj


def assert_well_formed(errors: Any) -> None:
    assert isinstance(errors, list)
    for e in errors:
        assert isinstance(e, FieldError)
        assert e.reason != INTERNAL_REASON, e
        assert isinstance(e.field, str) and isinstance(e.detail, str)
        json.dumps(e.cause())  # the apiserver serialises causes


def run(plural: str, base: dict, seed: int) -> None:
    resource = lookup(plural)
    assert resource is not None
    rng = random.Random(f"{plural}-{seed}")
    original = copy.deepcopy(base)
    _apply_defaults(resource, original)
    for _ in range(ROUNDS):
        obj = mutate(rng, copy.deepcopy(base))
        snapshot = json.dumps(obj, sort_keys=True, default=str)
        try:
            _apply_defaults(resource, obj)
            assert_well_formed(_validate(resource, obj))
            assert_well_formed(_validate(resource, obj, original))
            assert_well_formed(_validate(resource, copy.deepcopy(original), obj if isinstance(obj, dict) else None))
        except Exception as exc:  # show the input that broke it
            raise AssertionError(f"{plural} input {snapshot[:2000]}") from exc


@pytest.mark.parametrize("seed", SEEDS)
def test_random_pods(seed: int) -> None:
    run("pods", POD, seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_services(seed: int) -> None:
    run("services", SERVICE, seed)


@pytest.mark.parametrize("plural", sorted(BASES))
def test_random_other_kinds(plural: str) -> None:
    for seed in range(2):
        run(plural, BASES[plural], seed)


@pytest.mark.parametrize("plural", sorted(BASES) + ["pods", "services"])
def test_pure_random_documents(plural: str) -> None:
    resource = lookup(plural)
    rng = random.Random(plural)
    for _ in range(300):
        obj = random_json(rng)
        _apply_defaults(resource, obj)
        assert_well_formed(_validate(resource, obj))
        assert_well_formed(_validate(resource, obj, random_json(rng)))


def test_valid_objects_stay_valid_under_the_generator_baseline() -> None:
    # The generator's bases must be valid, or the mutations test nothing interesting.
    for plural, base in [("pods", POD), ("services", SERVICE)] + sorted(BASES.items()):
        obj = copy.deepcopy(base)
        _apply_defaults(lookup(plural), obj)
        assert _validate(lookup(plural), obj) == [], plural
