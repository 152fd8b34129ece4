"""Pure logic of the Deployment controller and the delete path's garbage-collection
finalizers: template hashes, maxSurge/maxUnavailable fenceposts, revisions,
propagation policies."""
from __future__ import annotations

import pytest

from controlplane.apiserver.registry import gc_finalizers
from controlplane.controllers.deployment import (HASH_LABEL, _without_hash, resolve, surge_and_unavailable,
                                                 template_hash)
from controlplane.controllers.replicaset import Expectations, selector_of
from kubeling import errors
from kubeling.resources import lookup


def _template(image: str) -> dict:
    return {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": image}]}}


def test_template_hash_is_stable_safe_and_ignores_the_hash_label():
    a, b = template_hash(_template("x:1")), template_hash(_template("x:2"))
    assert a == template_hash(_template("x:1")) and a != b
    assert len(a) == 10 and not set(a) & set("aeiou013")
    labelled = _template("x:1")
    labelled["metadata"]["labels"][HASH_LABEL] = a
    assert _without_hash(labelled) == _template("x:1")
    assert template_hash(_template("x:1"), 1) != a  # a collision count gives another name


@pytest.mark.parametrize("value,total,up,want", [(1, 10, True, 1), ("25%", 10, True, 3), ("25%", 10, False, 2),
                                                 ("0%", 3, True, 0), ("100%", 3, False, 3)])
def test_resolve_int_or_percent(value, total, up, want):
    assert resolve(value, total, up) == want


def test_fenceposts_round_surge_up_unavailable_down_and_never_both_zero():
    def d(surge, unavailable, replicas=4, typ="RollingUpdate"):
        return {"spec": {"replicas": replicas, "strategy": {
            "type": typ, "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}}}
    assert surge_and_unavailable(d("25%", "25%", 3)) == (1, 0)
    assert surge_and_unavailable(d("10%", "10%", 3)) == (1, 0)
    assert surge_and_unavailable(d(0, "10%", 3)) == (0, 1)  # both 0 after rounding: one may be unavailable
    assert surge_and_unavailable(d(2, 1)) == (2, 1)
    assert surge_and_unavailable(d(2, 1, typ="Recreate")) == (0, 0)


def test_replicationcontroller_selector_is_a_map_and_empty_selects_nothing():
    rc, rs = lookup("replicationcontrollers"), lookup("replicasets")
    assert selector_of(rc, {"spec": {"selector": {"a": "b"}}})({"a": "b", "c": "d"})
    assert not selector_of(rc, {"spec": {}})({"a": "b"})
    assert not selector_of(rs, {"spec": {"selector": {}}})({"a": "b"})
    assert selector_of(rs, {"spec": {"selector": {"matchExpressions": [
        {"key": "a", "operator": "In", "values": ["b"]}]}}})({"a": "b"})


def test_expectations_hold_a_sync_until_observed():
    e, key = Expectations(), ("ns", "rs")
    assert e.satisfied(key)
    e.expect(key, adds=2)
    e.creation_observed(key)
    assert not e.satisfied(key)
    e.creation_observed(key)
    assert e.satisfied(key)
    e.expect(key, dels={"p1"})
    assert not e.satisfied(key)
    e.deletion_observed(key, "p1")
    assert e.satisfied(key)


@pytest.mark.parametrize("options,plural,group,want", [
    ({}, "replicasets", "apps", ["x"]),
    ({}, "replicationcontrollers", "", ["x", "orphan"]),
    ({"propagationPolicy": "Foreground"}, "replicasets", "apps", ["x", "foregroundDeletion"]),
    ({"propagationPolicy": "Orphan"}, "pods", "", ["x", "orphan"]),
    ({"propagationPolicy": "Background"}, "replicationcontrollers", "", ["x"]),
    ({"orphanDependents": True}, "deployments", "apps", ["x", "orphan"]),
    ({"orphanDependents": False}, "replicationcontrollers", "", ["x"]),
])
def test_gc_finalizers_follow_delete_options(options, plural, group, want):
    res = next(r for r in (lookup(plural),) if r.group == group)
    assert gc_finalizers(res, {"finalizers": ["x"]}, options) == want


def test_gc_finalizers_replace_the_other_policy_and_refuse_bad_options():
    rs = lookup("replicasets")
    assert gc_finalizers(rs, {"finalizers": ["orphan"]}, {"propagationPolicy": "Foreground"}) == ["foregroundDeletion"]
    with pytest.raises(errors.ApiError) as exc:
        gc_finalizers(rs, {}, {"propagationPolicy": "Sideways"})
    assert exc.value.code == 422
    with pytest.raises(errors.ApiError):
        gc_finalizers(rs, {}, {"propagationPolicy": "Orphan", "orphanDependents": True})


def test_scale_down_removes_unscheduled_then_not_ready_then_newest():
    from controlplane.controllers.replicaset import deletion_order

    def pod(name, node="n", ready=True, created="2026-01-01T00:00:00Z"):
        conds = [{"type": "Ready", "status": "True" if ready else "False"}]
        return {"metadata": {"name": name, "creationTimestamp": created},
                "spec": {"nodeName": node}, "status": {"phase": "Running", "conditions": conds}}
    pods = [pod("old-ready"), pod("new-ready", created="2026-01-02T00:00:00Z"), pod("unready", ready=False),
            pod("unscheduled", node=None)]
    assert [p["metadata"]["name"] for p in deletion_order(pods)] == ["unscheduled", "unready", "new-ready",
                                                                     "old-ready"]
