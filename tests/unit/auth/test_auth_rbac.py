"""RBAC rule matching, bindings, aggregation, escalation coverage and validation."""
from __future__ import annotations

import pytest

from controlplane.apiserver import bootstrap_policy
from controlplane.apiserver.rbac import RBACAuthorizer, StaticPolicy
from controlplane.apiserver.rbac_rules import Request, compact, rule_allows, uncovered
from kubeling.resources import lookup
from kubeling.validation import validate

G = "rbac.authorization.k8s.io"


def r(verbs, groups=("",), resources=("pods",), names=()):
    rule = {"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)}
    if names:
        rule["resourceNames"] = list(names)
    return rule


@pytest.mark.parametrize("rule,req,ok", [
    (r(["get"]), Request("get", "", "pods", "", "a", "p"), True),
    (r(["get"]), Request("list", "", "pods", "", "a"), False),
    (r(["*"]), Request("deletecollection", "", "pods", "", "a"), True),
    (r(["get"], ["apps"]), Request("get", "", "pods", "", "a", "p"), False),
    (r(["get"], ["*"], ["deployments"]), Request("get", "apps", "deployments", "", "a", "d"), True),
    # A subresource needs its own entry, or "*/sub", or "*".
    (r(["patch"]), Request("patch", "", "pods", "status", "a", "p"), False),
    (r(["patch"], resources=["pods/status"]), Request("patch", "", "pods", "status", "a", "p"), True),
    (r(["patch"], resources=["pods/status"]), Request("patch", "", "pods", "", "a", "p"), False),
    (r(["patch"], resources=["*/status"]), Request("patch", "", "nodes", "status", "", "n"), True),
    (r(["patch"], resources=["*/status"]), Request("patch", "", "nodes", "", "", "n"), False),
    (r(["patch"], ["*"], ["*"]), Request("patch", "", "pods", "status", "a", "p"), True),
    # resourceNames narrow to named objects; a list has no name.
    (r(["get"], names=["p"]), Request("get", "", "pods", "", "a", "p"), True),
    (r(["get"], names=["p"]), Request("get", "", "pods", "", "a", "q"), False),
    (r(["list"], names=["p"]), Request("list", "", "pods", "", "a"), False),
    # Non-resource URLs: exact, or a prefix ending in *; resource rules never match them.
    ({"verbs": ["get"], "nonResourceURLs": ["/healthz"]}, Request("get", path="/healthz"), True),
    ({"verbs": ["get"], "nonResourceURLs": ["/healthz"]}, Request("get", path="/healthz/etcd"), False),
    ({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}, Request("get", path="/apis/apps/v1"), True),
    ({"verbs": ["get"], "nonResourceURLs": ["*"]}, Request("get", path="/anything"), True),
    ({"verbs": ["get"], "nonResourceURLs": ["/api"]}, Request("post", path="/api"), False),
    (r(["*"], ["*"], ["*"]), Request("get", path="/healthz"), False),
])
def test_rule_matching(rule, req, ok):
    assert rule_allows(rule, req) is ok


def _policy(*objs):
    p = StaticPolicy()
    for plural, obj in objs:
        p.add(plural, obj)
    return RBACAuthorizer(p)


def _meta(name, ns=""):
    return {"name": name, **({"namespace": ns} if ns else {})}


def test_bindings_by_user_group_and_serviceaccount_in_their_namespace():
    rbac = _policy(
        ("roles", {"metadata": _meta("reader", "a"), "rules": [r(["get", "list"])]}),
        ("clusterroles", {"metadata": _meta("cm-reader"), "rules": [r(["get"], resources=["configmaps"])]}),
        ("rolebindings", {"metadata": _meta("rb", "a"), "roleRef": {"kind": "Role", "name": "reader"},
                          "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                                       {"kind": "ServiceAccount", "name": "bot"}]}),
        ("rolebindings", {"metadata": _meta("cm", "b"), "roleRef": {"kind": "ClusterRole", "name": "cm-reader"},
                          "subjects": [{"kind": "User", "name": "alice"}]}),
    )
    assert rbac.allows("alice", (), Request("list", "", "pods", "", "a"))[0]
    assert not rbac.allows("alice", (), Request("list", "", "pods", "", "b"))[0]
    assert not rbac.allows("alice", (), Request("list", "", "pods", ""))[0]  # cluster-wide
    assert rbac.allows("bob", ("devs",), Request("get", "", "pods", "", "a", "x"))[0]
    assert rbac.allows("system:serviceaccount:a:bot", (), Request("get", "", "pods", "", "a", "x"))[0]
    assert not rbac.allows("system:serviceaccount:b:bot", (), Request("get", "", "pods", "", "a", "x"))[0]
    # A ClusterRole bound by a RoleBinding grants only in the binding's namespace.
    assert rbac.allows("alice", (), Request("get", "", "configmaps", "", "b", "c"))[0]
    assert not rbac.allows("alice", (), Request("get", "", "configmaps", "", "a", "c"))[0]
    ok, reason = rbac.allows("alice", (), Request("list", "", "pods", "", "a"))
    assert reason == 'RBAC: allowed by RoleBinding "rb/a" of Role "reader" to User "alice"'


def test_a_binding_to_a_missing_role_is_named_in_the_reason():
    rbac = _policy(("clusterrolebindings", {"metadata": _meta("x"), "roleRef": {"kind": "ClusterRole", "name": "gone"},
                                            "subjects": [{"kind": "User", "name": "alice"}]}))
    assert rbac.allows("alice", (), Request("get", "", "pods", "", "a", "p")) == (
        False, 'RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found')


def test_aggregated_roles_gather_by_label_view_into_edit_into_admin():
    roles = {r["metadata"]["name"]: r for r in bootstrap_policy.default_cluster_roles()}
    view, edit, admin = roles["view"]["rules"], roles["edit"]["rules"], roles["admin"]["rules"]
    assert view and not uncovered(edit, view) and not uncovered(admin, edit)
    assert uncovered(view, edit) and uncovered(edit, admin)
    read_pods = Request("list", "", "pods", "", "a")
    assert any(rule_allows(x, read_pods) for x in view)
    assert not any(rule_allows(x, Request("create", "", "pods", "", "a")) for x in view)
    assert not any(rule_allows(x, Request("get", "", "secrets", "", "a", "s")) for x in view)
    assert any(rule_allows(x, Request("create", G, "rolebindings", "", "a")) for x in admin)
    extra = {"metadata": {"name": "extra", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
             "rules": [r(["get"], ["example.com"], ["widgets"])]}
    # In the order of the roles' names, as the controller gathers them.
    assert bootstrap_policy.aggregate([*roles.values(), extra], roles["view"])[0] == extra["rules"][0]


def test_escalation_coverage():
    owner = [r(["get", "list"]), r(["*"], ["apps"], ["deployments"]), r(["patch"], resources=["pods/*"]),
             r(["get"], resources=["secrets"], names=["s1"])]
    assert uncovered(owner, [r(["get"])]) == []
    assert uncovered(owner, [r(["create", "update"], ["apps"], ["deployments"])]) == []
    assert uncovered(owner, [r(["patch"], resources=["pods/status"])]) == []
    assert uncovered(owner, [r(["get"], resources=["secrets"], names=["s1"])]) == []
    assert uncovered(owner, [r(["get"], resources=["secrets"])]) == [r(["get"], resources=["secrets"])]
    assert uncovered(owner, [r(["create", "get"])]) == [r(["create"])]
    assert compact(r(["create"])) == '{APIGroups:[""], Resources:["pods"], Verbs:["create"]}'
    assert uncovered([r(["*"], ["*"], ["*"])], [{"verbs": ["get"], "nonResourceURLs": ["/x"]}])


def _causes(plural, obj, old=None):
    return [(e.field, e.reason) for e in validate(lookup(f"{plural}.{G}"), obj, old)]


def test_validation_with_field_paths():
    assert _causes("roles", {"metadata": {"name": "r", "namespace": "a"}, "rules": [
        {"verbs": [], "apiGroups": [""], "resources": ["pods"]},
        {"verbs": ["get"], "nonResourceURLs": ["/x"]},
        {"verbs": ["get"], "resources": ["pods"]}]}) == [
        ("rules[0].verbs", "FieldValueRequired"), ("rules[1].nonResourceURLs", "FieldValueInvalid"),
        ("rules[2].apiGroups", "FieldValueRequired")]
    assert _causes("clusterroles", {"metadata": {"name": "system:x"}, "rules": [
        {"verbs": ["get"], "nonResourceURLs": ["/x"]}], "aggregationRule": {"clusterRoleSelectors": []}}) == [
        ("aggregationRule.clusterRoleSelectors", "FieldValueRequired")]
    good = {"metadata": {"name": "b", "namespace": "a"}, "roleRef": {"apiGroup": G, "kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "name": "u", "apiGroup": G}]}
    assert _causes("rolebindings", good) == []
    bad = {"metadata": {"name": "b"}, "roleRef": {"apiGroup": G, "kind": "Role", "name": ""},
           "subjects": [{"kind": "Robot", "name": "x"}, {"kind": "ServiceAccount", "name": "sa"}]}
    assert _causes("clusterrolebindings", bad) == [
        ("roleRef.kind", "FieldValueNotSupported"), ("roleRef.name", "FieldValueRequired"),
        ("subjects[0].kind", "FieldValueNotSupported"), ("subjects[1].namespace", "FieldValueRequired")]
    changed = {**good, "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": "view"}}
    assert ("roleRef", "FieldValueInvalid") in _causes("rolebindings", changed, good)
