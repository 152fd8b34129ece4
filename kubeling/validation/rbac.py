"""RBAC validation (pkg/apis/rbac/validation): Roles, ClusterRoles and their bindings."""
from __future__ import annotations

from typing import Any

from kubeling.errors import FieldError, invalid_value, not_supported, required
from kubeling.validation import formats
from kubeling.validation.fields import Checker, child, index
from kubeling.validation.meta import validate_object_meta, validate_object_meta_update

GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ["ServiceAccount", "User", "Group"]


def rbac_name(name: str) -> list[str]:
    """ValidateRBACName: any path segment name (roles are named `system:foo`)."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{bad}'" for bad in ("/", "%") if bad in name]


def _rule(c: Checker, rule: dict, path: str, namespaced: bool) -> None:
    verbs = c.str_list(rule, "verbs", child(path, "verbs"))
    groups = c.str_list(rule, "apiGroups", child(path, "apiGroups"))
    resources = c.str_list(rule, "resources", child(path, "resources"))
    names = c.str_list(rule, "resourceNames", child(path, "resourceNames"))
    urls = c.str_list(rule, "nonResourceURLs", child(path, "nonResourceURLs"))
    if not verbs:
        c.add(required(child(path, "verbs"), "verbs must contain at least one value"))
    if urls:
        if namespaced:
            c.add(invalid_value(child(path, "nonResourceURLs"), urls,
                                "namespaced rules cannot apply to non-resource URLs"))
        if groups or resources or names:
            c.add(invalid_value(child(path, "nonResourceURLs"), urls,
                                "rules cannot apply to both regular resources and non-resource URLs"))
        return
    if not groups:
        c.add(required(child(path, "apiGroups"), "resource rules must supply at least one api group"))
    if not resources:
        c.add(required(child(path, "resources"), "resource rules must supply at least one resource"))


def _rules(c: Checker, obj: dict, namespaced: bool) -> None:
    for i, _, rule in c.items(obj, "rules", "rules"):
        _rule(c, rule, index("rules", i), namespaced)


def validate_role(obj: dict, old: dict | None) -> list[FieldError]:
    c = Checker()
    validate_object_meta(c, obj, True, rbac_name)
    _rules(c, obj, True)
    if isinstance(old, dict):
        validate_object_meta_update(c, obj, old)
    return c.errors


def validate_cluster_role(obj: dict, old: dict | None) -> list[FieldError]:
    c = Checker()
    validate_object_meta(c, obj, False, rbac_name)
    _rules(c, obj, False)
    agg = c.obj(obj, "aggregationRule", "aggregationRule")
    if agg is not None:
        selectors = c.items(agg, "clusterRoleSelectors", "aggregationRule.clusterRoleSelectors")
        if not selectors:
            c.add(required("aggregationRule.clusterRoleSelectors",
                           "at least one clusterRoleSelector required if aggregationRule is non-nil"))
        for i, _, sel in selectors:
            _label_selector(c, sel, index("aggregationRule.clusterRoleSelectors", i))
    if isinstance(old, dict):
        validate_object_meta_update(c, obj, old)
    return c.errors


def _label_selector(c: Checker, sel: dict, path: str) -> None:
    from kubeling.selectors import label_selector_from_dict  # selectors imports validation
    try:
        label_selector_from_dict(sel)
    except ValueError as exc:
        c.add(invalid_value(path, sel, str(exc)))


def _subject(c: Checker, s: dict, path: str, namespaced: bool) -> None:
    name = c.str(s, "name", child(path, "name")) or ""
    kind = c.str(s, "kind", child(path, "kind")) or ""
    group = c.str(s, "apiGroup", child(path, "apiGroup")) or ""
    ns = c.str(s, "namespace", child(path, "namespace")) or ""
    if not name:
        c.add(required(child(path, "name"), ""))
    if kind == "ServiceAccount":
        if name:
            c.messages(child(path, "name"), name, formats.dns1123_subdomain(name))
        if group:
            c.add(not_supported(child(path, "apiGroup"), group, [""]))
        if not namespaced and not ns:
            c.add(required(child(path, "namespace"), ""))
    elif kind in ("User", "Group"):
        if group != GROUP:
            c.add(not_supported(child(path, "apiGroup"), group, [GROUP]))
    else:
        c.add(not_supported(child(path, "kind"), kind, SUBJECT_KINDS))


def _binding(obj: dict, old: dict | None, namespaced: bool) -> list[FieldError]:
    c = Checker()
    validate_object_meta(c, obj, namespaced, rbac_name)
    ref: Any = c.obj(obj, "roleRef", "roleRef") or {}
    group = c.str(ref, "apiGroup", "roleRef.apiGroup") or ""
    kind = c.str(ref, "kind", "roleRef.kind") or ""
    name = c.str(ref, "name", "roleRef.name") or ""
    if group != GROUP:
        c.add(not_supported("roleRef.apiGroup", group, [GROUP]))
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if kind not in kinds:
        c.add(not_supported("roleRef.kind", kind, kinds))
    if not name:
        c.add(required("roleRef.name", ""))
    else:
        c.messages("roleRef.name", name, rbac_name(name))
    for i, _, s in c.items(obj, "subjects", "subjects"):
        _subject(c, s, index("subjects", i), namespaced)
    if isinstance(old, dict):
        validate_object_meta_update(c, obj, old)
        if obj.get("roleRef") != old.get("roleRef"):
            c.add(invalid_value("roleRef", obj.get("roleRef"), "cannot change roleRef"))
    return c.errors


def validate_role_binding(obj: dict, old: dict | None) -> list[FieldError]:
    return _binding(obj, old, True)


def validate_cluster_role_binding(obj: dict, old: dict | None) -> list[FieldError]:
    return _binding(obj, old, False)
