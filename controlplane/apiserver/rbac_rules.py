"""RBAC rule arithmetic, as Kubernetes' rbac/v1 helpers and rbac/validation do it.

- `rule_allows(rule, attrs)`: does one PolicyRule allow one request (verbs,
  apiGroups, resources with subresources and `*/sub`, resourceNames,
  nonResourceURLs with a trailing `*`)?
- `covers(owner_rules, rule)`: the parts of `rule` no owner rule grants (the
  escalation check: you may only grant what you hold).
- `applies_to(subject, user, binding_namespace)`: does a binding's subject name the user?
Rules and subjects are the plain JSON dicts stored in etcd.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

Rule = dict[str, Any]
RBAC_GROUP = "rbac.authorization.k8s.io"
SA_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class Request:
    """The attributes a rule is matched against (Kubernetes' authorizer.Attributes)."""
    verb: str
    group: str = ""
    resource: str = ""  # "" for a non-resource request
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)

    @property
    def full_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def _strings(rule: Rule, field: str) -> list[str]:
    value = rule.get(field)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def verb_matches(rule: Rule, verb: str) -> bool:
    verbs = _strings(rule, "verbs")
    return "*" in verbs or verb in verbs


def group_matches(rule: Rule, group: str) -> bool:
    groups = _strings(rule, "apiGroups")
    return "*" in groups or group in groups


def resource_matches(rule: Rule, resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for r in _strings(rule, "resources"):
        if r == "*" or r == combined:
            return True
        # "*/status" grants the status subresource of every resource.
        if subresource and r == "*/" + subresource:
            return True
    return False


def name_matches(rule: Rule, name: str) -> bool:
    names = _strings(rule, "resourceNames")
    return not names or name in names


def url_matches(pattern: str, path: str) -> bool:
    if pattern == "*" or pattern == path:
        return True
    return pattern.endswith("*") and path.startswith(pattern[:-1])


def rule_allows(rule: Rule, a: Request) -> bool:
    if not verb_matches(rule, a.verb):
        return False
    if a.is_resource:
        return (group_matches(rule, a.group) and resource_matches(rule, a.resource, a.subresource)
                and name_matches(rule, a.name))
    return any(url_matches(p, a.path) for p in _strings(rule, "nonResourceURLs"))


def applies_to(subject: Any, user_name: str, groups: Iterable[str], binding_namespace: str) -> bool:
    """Kubernetes' appliesToUser: a User by name, a Group by membership, a
    ServiceAccount by its user name (its namespace defaults to the binding's)."""
    if not isinstance(subject, dict):
        return False
    kind, name = subject.get("kind"), subject.get("name")
    if not isinstance(name, str):
        return False
    if kind == "User":
        return user_name == name
    if kind == "Group":
        return name in groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        return bool(ns) and user_name == f"{SA_PREFIX}{ns}:{name}"
    return False


# ---- coverage (rbac/validation: Covers, BreakdownRule) ----------------------

def _resource_covered(owner: list[str], resource: str) -> bool:
    if "*" in owner or resource in owner:
        return True
    main, slash, sub = resource.partition("/")
    # "pods/*" covers "pods/status"; "*/status" covers "pods/status".
    return bool(slash) and (f"{main}/*" in owner or f"*/{sub}" in owner)


def _atom_covered(owner: Rule, verb: str, group: str | None, resource: str | None,
                  name: str | None, url: str | None) -> bool:
    if not verb_matches(owner, verb):
        return False
    if url is not None:
        return any(url_matches(p, url) or p == url for p in _strings(owner, "nonResourceURLs"))
    if not group_matches(owner, group or ""):
        return False
    if not _resource_covered(_strings(owner, "resources"), resource or ""):
        return False
    names = _strings(owner, "resourceNames")
    return not names or (name is not None and name in names)


def breakdown(rule: Rule) -> list[tuple[str, str | None, str | None, str | None, str | None]]:
    """One (verb, group, resource, name, url) atom per combination a rule grants."""
    atoms = []
    verbs = _strings(rule, "verbs")
    names: list[str | None] = list(_strings(rule, "resourceNames")) or [None]
    for group in _strings(rule, "apiGroups"):
        for resource in _strings(rule, "resources"):
            for verb in verbs:
                for name in names:
                    atoms.append((verb, group, resource, name, None))
    for url in _strings(rule, "nonResourceURLs"):
        for verb in verbs:
            atoms.append((verb, None, None, None, url))
    return atoms


def _atom_rule(atom: tuple[str, str | None, str | None, str | None, str | None]) -> Rule:
    verb, group, resource, name, url = atom
    if url is not None:
        return {"verbs": [verb], "nonResourceURLs": [url]}
    rule: Rule = {"verbs": [verb], "apiGroups": [group], "resources": [resource]}
    if name is not None:
        rule["resourceNames"] = [name]
    return rule


def uncovered(owner_rules: list[Rule], rules: Iterable[Rule]) -> list[Rule]:
    """The parts of `rules` that no rule of `owner_rules` grants ([] when all are held)."""
    missing = []
    for rule in rules:
        if not isinstance(rule, dict):
            continue
        for atom in breakdown(rule):
            if not any(_atom_covered(o, *atom) for o in owner_rules):
                missing.append(_atom_rule(atom))
    return missing


def compact(rule: Rule) -> str:
    """A rule as Kubernetes' CompactString prints it in escalation errors."""
    parts = []
    for field, label in (("apiGroups", "APIGroups"), ("resources", "Resources"),
                         ("resourceNames", "ResourceNames"), ("nonResourceURLs", "NonResourceURLs"),
                         ("verbs", "Verbs")):
        values = _strings(rule, field)
        if values:
            parts.append(f"{label}:[" + " ".join(f'"{v}"' for v in values) + "]")
    return "{" + ", ".join(parts) + "}"
