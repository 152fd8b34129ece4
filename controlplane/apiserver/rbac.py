"""The RBAC authorizer, evaluated from an in-memory view of the policy.

Like kube-apiserver's RBAC authorizer reading from informers: `PolicyCache`
lists Roles, ClusterRoles, RoleBindings and ClusterRoleBindings from etcd once
and follows them with a watch, so deciding a request costs no etcd round trip.
`RBACAuthorizer.authorize` visits the ClusterRoleBindings, then the RoleBindings
of the request's namespace; the first rule of a bound role that allows the
request allows it. A binding to a role that does not exist is reported in the
reason of a refusal ("RBAC: clusterrole... not found"), as Kubernetes does.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from kubeling.resources import BY_PLURAL

from .cache import ResourceCache, Source
from .rbac_rules import RBAC_GROUP, Request, Rule, applies_to, rule_allows

KINDS = ("clusterroles", "roles", "clusterrolebindings", "rolebindings")


class PolicyCache:
    """The four RBAC caches, started and stopped together."""

    def __init__(self, source: Source) -> None:
        def cache(plural: str) -> ResourceCache:
            return ResourceCache(source, BY_PLURAL[(RBAC_GROUP, plural)])
        self.clusterroles = cache("clusterroles")
        self.roles = cache("roles")
        self.clusterrolebindings = cache("clusterrolebindings")
        self.rolebindings = cache("rolebindings")

    @property
    def caches(self) -> tuple[ResourceCache, ...]:
        return (self.clusterroles, self.roles, self.clusterrolebindings, self.rolebindings)

    async def start(self) -> None:
        await asyncio.gather(*(c.start() for c in self.caches))

    async def stop(self) -> None:
        for c in self.caches:
            await c.stop()


@dataclass
class StaticPolicy:
    """A PolicyCache look-alike over fixed objects (unit tests, reviews of a proposed policy)."""
    clusterroles: "StaticCache" = field(default_factory=lambda: StaticCache())
    roles: "StaticCache" = field(default_factory=lambda: StaticCache())
    clusterrolebindings: "StaticCache" = field(default_factory=lambda: StaticCache())
    rolebindings: "StaticCache" = field(default_factory=lambda: StaticCache())

    def add(self, plural: str, obj: dict[str, Any]) -> None:
        getattr(self, plural).put(obj)


class StaticCache:
    def __init__(self) -> None:
        self.by_ns: dict[str, dict[str, dict[str, Any]]] = {}

    def put(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.by_ns.setdefault(meta.get("namespace") or "", {})[meta["name"]] = obj

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.by_ns.get(namespace, {}).get(name)

    def in_namespace(self, namespace: str) -> Iterable[dict[str, Any]]:
        return list(self.by_ns.get(namespace, {}).values())


def _rules_of(role: dict[str, Any] | None) -> list[Rule]:
    rules = (role or {}).get("rules")
    return [r for r in rules if isinstance(r, dict)] if isinstance(rules, list) else []


class RBACAuthorizer:
    def __init__(self, policy: PolicyCache | StaticPolicy) -> None:
        self.policy = policy

    def _bound_roles(self, user: str, groups: tuple[str, ...], namespace: str
                     ) -> Iterator[tuple[list[Rule] | None, str]]:
        """(rules, how) per role bound to the user, where `how` names the binding, the
        role and the subject (Kubernetes' "allowed by" reason); or (None, error) for a
        binding to a missing role."""
        p = self.policy
        for binding in p.clusterrolebindings.in_namespace(""):
            subject = self._subject(binding, user, groups, "")
            if subject is None:
                continue
            ref = binding.get("roleRef") or {}
            role = p.clusterroles.get("", ref.get("name") or "")
            if role is None:
                yield None, f'clusterrole.{RBAC_GROUP} "{ref.get("name")}" not found'
            else:
                yield _rules_of(role), (f'ClusterRoleBinding "{binding["metadata"].get("name")}" of ClusterRole '
                                        f'"{ref.get("name")}" to {subject}')
        if not namespace:
            return
        for binding in p.rolebindings.in_namespace(namespace):
            subject = self._subject(binding, user, groups, namespace)
            if subject is None:
                continue
            ref = binding.get("roleRef") or {}
            name = ref.get("name") or ""
            if ref.get("kind") == "ClusterRole":
                role, what, kind = p.clusterroles.get("", name), "clusterrole", "ClusterRole"
            else:
                role, what, kind = p.roles.get(namespace, name), "role", "Role"
            if role is None:
                yield None, f'{what}.{RBAC_GROUP} "{name}" not found'
            else:
                yield _rules_of(role), (f'RoleBinding "{binding["metadata"].get("name")}/{namespace}" of {kind} '
                                        f'"{name}" to {subject}')

    @staticmethod
    def _subject(binding: dict[str, Any], user: str, groups: tuple[str, ...], namespace: str) -> str | None:
        """The first of the binding's subjects that is this user, as `Kind "name"`; None if none is."""
        subjects = binding.get("subjects")
        for s in subjects if isinstance(subjects, list) else ():
            if applies_to(s, user, groups, namespace):
                return f'{s.get("kind")} "{s.get("name")}"'
        return None

    def allows(self, user: str, groups: tuple[str, ...], a: Request) -> tuple[bool, str]:
        """(allowed, reason): the binding that allowed it, or the bindings to missing roles."""
        problems = []
        for rules, how in self._bound_roles(user, groups, a.namespace if a.is_resource else ""):
            if rules is None:
                problems.append(how)
            elif any(rule_allows(r, a) for r in rules):
                return True, f"RBAC: allowed by {how}"
        return False, ("RBAC: " + ", ".join(problems)) if problems else ""

    def rules_for(self, user: str, groups: tuple[str, ...], namespace: str) -> tuple[list[Rule], list[str]]:
        """Every rule the user holds in `namespace` ("" for cluster-wide only), and the resolution errors."""
        rules: list[Rule] = []
        problems: list[str] = []
        for found, how in self._bound_roles(user, groups, namespace):
            if found is None:
                problems.append(how)
            else:
                rules.extend(found)
        return rules, problems
