"""RBAC's escalation prevention: a user grants only what it holds.

Kubernetes checks this in the RBAC registries (pkg/registry/rbac/*/policybased):
- a Role or ClusterRole may be written by a user holding every rule it grants
  (in its namespace), or allowed the `escalate` verb on it; an aggregationRule
  (which may gather anything) needs every right there is;
- a RoleBinding or ClusterRoleBinding may be written by a user holding every
  rule of the role it references, or allowed the `bind` verb on that role.
system:masters is exempt. Writes that change only metadata (labels, finalizers,
owner references) are not checked, as Kubernetes' IsOnlyMutatingGCFields.
Runs as validating admission (Registry.validate_admission) after validation.
"""
from __future__ import annotations

from typing import Any

from kubeling import errors
from kubeling.resources import Resource

from . import authn
from .authz import Attributes, Authorizer
from .rbac import RBACAuthorizer
from .rbac_rules import RBAC_GROUP, Rule, compact, uncovered

FULL_AUTHORITY: list[Rule] = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                              {"verbs": ["*"], "nonResourceURLs": ["*"]}]


def _forbidden(res: Resource, name: str, message: str) -> errors.ApiError:
    return errors.ApiError(403, "Forbidden", f'{res.plural}.{res.group} "{name}" is forbidden: {message}',
                           {"name": name, "group": res.group, "kind": res.plural})


def _go_quoted(values: tuple[str, ...] | list[str]) -> str:
    return "[" + " ".join(f'"{v}"' for v in values) + "]"


def _only_metadata_changed(obj: dict[str, Any], old: dict[str, Any] | None) -> bool:
    if old is None:
        return False
    return {k: v for k, v in obj.items() if k != "metadata"} == {k: v for k, v in old.items() if k != "metadata"}


class EscalationCheck:
    def __init__(self, authorizer: Authorizer, rbac: RBACAuthorizer) -> None:
        self.authorizer = authorizer
        self.rbac = rbac

    async def __call__(self, res: Resource, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if res.group != RBAC_GROUP:
            return
        user = authn.CURRENT_USER.get()
        # No user: the apiserver itself (the bootstrap policy).
        if user is None or authn.MASTERS in user.groups or _only_metadata_changed(obj, old):
            return
        meta = obj.get("metadata") or {}
        ns, name = meta.get("namespace") or "", meta.get("name") or ""
        if res.plural in ("roles", "clusterroles"):
            if self.authorizer.authorize(user, Attributes("escalate", RBAC_GROUP, res.plural, "", ns, name)).allowed:
                return
            self._confirm(user, res, name, ns, [r for r in obj.get("rules") or [] if isinstance(r, dict)])
            if res.plural == "clusterroles" and obj.get("aggregationRule"):
                rules, _ = self.rbac.rules_for(user.name, user.groups, "")
                if uncovered(rules, FULL_AUTHORITY):
                    raise _forbidden(res, name, "must have cluster-admin privileges to use the aggregationRule")
            return
        ref = obj.get("roleRef") or {}
        ref_name = ref.get("name") or ""
        ref_plural = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
        ref_ns = ns if ref_plural == "roles" else ""
        # Checked in the binding's namespace: one may be allowed to bind a ClusterRole in one namespace only.
        if self.authorizer.authorize(user, Attributes("bind", RBAC_GROUP, ref_plural, "", ns, ref_name)).allowed:
            return
        policy = self.rbac.policy
        role = (policy.clusterroles if ref_plural == "clusterroles" else policy.roles).get(ref_ns, ref_name)
        if role is None:
            raise _forbidden(res, name, f'{ref_plural[:-1]}.{RBAC_GROUP} "{ref_name}" not found')
        self._confirm(user, res, name, ns, [r for r in role.get("rules") or [] if isinstance(r, dict)])

    def _confirm(self, user: authn.UserInfo, res: Resource, name: str, ns: str, rules: list[Rule]) -> None:
        """Kubernetes' ConfirmNoEscalation: 403 naming the rules the user does not hold."""
        held, problems = self.rbac.rules_for(user.name, user.groups, ns)
        missing = uncovered(held, rules)
        if not missing:
            return
        message = (f'user "{user.name}" (groups={_go_quoted(user.groups)}) is attempting to grant RBAC '
                   f"permissions not currently held:\n" + "\n".join(compact(r) for r in missing))
        if problems:
            message += "; resolution errors: [" + ", ".join(problems) + "]"
        raise _forbidden(res, name, message)
