"""What a user may do: kube-apiserver's authorizer chain.

`Authorizer.authorize(user, attrs)` decides on request attributes alone (verb,
resource, subresource, namespace, name, or a non-resource path), in Kubernetes'
order:
- system:masters may do everything (kube-apiserver's privileged-group authorizer);
- the Node authorizer: a node (`system:node:<name>` in system:nodes) gets what
  Kubernetes' Node authorizer and the system:node rules give a kubelet: read what
  an agent and a proxy read, write its own Node and Node status and its own Lease,
  pods' status and pods' final delete (NodeRestriction then checks the pod is
  bound to it), events, and CSRs for its next certificate;
- RBAC (rbac.RBACAuthorizer): Roles, ClusterRoles and their bindings, with the
  components' rights in the bootstrap policy (bootstrap_policy.py);
- whatever none allowed is forbidden, with the reasons they gave.
Writes that depend on the stored object (the pod a node updates) are checked
afterwards by node_restriction; what an RBAC write may grant by rbac_escalation.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kubeling import errors

from .authn import AUTHENTICATED, MASTERS, UserInfo
from .rbac import RBACAuthorizer
from .rbac_rules import Request as Attributes
from .rbac_rules import rule_allows

READ = ("get", "list", "watch")
CHANGE = ("create", "update", "patch", "delete")
NODE_LEASE_NAMESPACE = "kube-node-lease"
CERTS = "certificates.k8s.io"
COORD = "coordination.k8s.io"
DISCOVERY = "discovery.k8s.io"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


ALLOW = Decision(True)


def verb_for(method: str, has_name: bool, watch: bool) -> str:
    """Kubernetes' request verb for an HTTP method on a resource path."""
    if method in ("GET", "HEAD"):
        return "get" if has_name else ("watch" if watch else "list")
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if has_name else "deletecollection"
    return method.lower()


def _rule(verbs: tuple[str, ...], groups: tuple[str, ...], resources: tuple[str, ...]) -> dict:
    return {"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)}


EVENT_WRITES = _rule(("create", "update", "patch"), ("", "events.k8s.io"), ("events",))

# Node reads: what an agent (its pods, their configmaps, secrets and service accounts,
# every Node for routes) and a proxy (services, endpoints, endpointslices) read.
# Kubernetes narrows a node's reads of secrets and configmaps to its pods' through a
# graph of the objects; kubeling has no graph: NodeRestriction (node_restriction.py)
# lets a node get only the Secrets its own pods reference (no list or watch), while
# configmaps stay readable in full.
NODE_RULES = (
    _rule(READ, ("",), ("pods", "services", "endpoints", "nodes", "namespaces", "configmaps", "secrets",
                        "serviceaccounts", "persistentvolumeclaims", "persistentvolumes")),
    _rule(("create",), ("",), ("serviceaccounts/token",)),
    _rule(READ, (DISCOVERY,), ("endpointslices",)),
    _rule(("create", "get", "list", "watch"), (CERTS,), ("certificatesigningrequests",)),
    _rule(("create",), ("authentication.k8s.io",), ("tokenreviews",)),
    _rule(("create",), ("authorization.k8s.io",), ("subjectaccessreviews", "localsubjectaccessreviews")),
    EVENT_WRITES,
)


def _no_relationship(node: str) -> Decision:
    return Decision(False, f"no relationship found between node '{node}' and this object")


def authorize_node(node: str, a: Attributes) -> Decision:
    """Kubernetes' Node authorizer (without its graph: reads are not narrowed to the
    objects of the node's pods) plus the name checks of NodeRestriction that need no object."""
    if not a.is_resource:
        return Decision(False)
    if any(rule_allows(r, a) for r in NODE_RULES):
        return ALLOW
    if a.group == "" and a.resource == "nodes" and a.subresource in ("", "status"):
        if a.verb == "create" and not a.subresource:
            return ALLOW  # node_restriction checks the name in the body
        if a.verb in ("get", "update", "patch") and a.name == node:
            return ALLOW
        return Decision(False, f"node '{node}' can only modify its own Node object")
    if a.group == COORD and a.resource == "leases" and not a.subresource:
        if a.namespace != NODE_LEASE_NAMESPACE:
            return _no_relationship(node)
        if a.verb == "create":
            return ALLOW  # node_restriction checks the name in the body
        if a.verb in ("get", "update", "patch", "delete") and a.name == node:
            return ALLOW
        return Decision(False, "can only access node lease with the same name as the requesting node")
    if a.group == "" and a.resource == "pods":
        # NodeRestriction checks the pod is bound to this node.
        if a.subresource == "status" and a.verb in ("update", "patch"):
            return ALLOW
        if not a.subresource and a.verb == "delete":
            return ALLOW
    return _no_relationship(node) if a.name else Decision(False)


class Authorizer:
    """The chain: privileged group, Node, RBAC; `rbac` None means RBAC denies all
    (then only system:masters and nodes get anywhere)."""

    def __init__(self, rbac: RBACAuthorizer | None = None) -> None:
        self.rbac = rbac

    def authorize(self, user: UserInfo, a: Attributes) -> Decision:
        if MASTERS in user.groups:
            return ALLOW
        reasons = []
        node = user.node_name
        if node is not None:
            decision = authorize_node(node, a)
            if decision.allowed:
                return decision
            if decision.reason:
                reasons.append(decision.reason)
        if self.rbac is not None:
            allowed, reason = self.rbac.allows(user.name, user.groups, a)
            if allowed:
                return Decision(True, reason)
            if reason:
                reasons.append(reason)
        # Kubernetes' union authorizer joins its members' reasons with newlines.
        return Decision(False, "\n".join(reasons))


IMPERSONATE_USER, IMPERSONATE_GROUP = "Impersonate-User", "Impersonate-Group"
SA_PREFIX = "system:serviceaccount:"


def impersonate(authorizer: Authorizer, user: UserInfo, headers: Mapping[str, str]) -> UserInfo:
    """The user a request acts as (`kubectl --as/--as-group`): kube-apiserver's
    impersonation filter. Needs `impersonate` on users / groups / serviceaccounts;
    raises the 403 otherwise. Without the headers, `user` itself."""
    name = headers.get(IMPERSONATE_USER, "")
    groups = headers.getall(IMPERSONATE_GROUP, []) if hasattr(headers, "getall") else []
    if not name:
        if groups:
            raise errors.ApiError(500, "InternalError", "requested impersonation of groups without a user")
        return user
    checks = []
    if name.startswith(SA_PREFIX) and name.count(":") == 3:
        ns, sa = name[len(SA_PREFIX):].split(":", 1)
        checks.append(Attributes("impersonate", "", "serviceaccounts", "", ns, sa))
    else:
        checks.append(Attributes("impersonate", "", "users", "", "", name))
    checks += [Attributes("impersonate", "", "groups", "", "", g) for g in groups]
    for a in checks:
        decision = authorizer.authorize(user, a)
        if not decision.allowed:
            raise errors.ApiError(403, "Forbidden",
                                  f'{a.resource} "{a.name}" is forbidden: User "{user.name}" cannot impersonate '
                                  f'resource "{a.resource}" in API group "" '
                                  + (f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"),
                                  {"name": a.name, "kind": a.resource})
    new_groups = list(groups)
    if name.startswith(SA_PREFIX) and not groups:
        ns = name[len(SA_PREFIX):].split(":", 1)[0]
        new_groups = ["system:serviceaccounts", f"system:serviceaccounts:{ns}"]
    if AUTHENTICATED not in new_groups and name != "system:anonymous":
        new_groups.append(AUTHENTICATED)
    return UserInfo(name, "", tuple(dict.fromkeys(new_groups)))


def forbidden(user: UserInfo, a: Attributes, decision: Decision) -> errors.ApiError:
    """A 403 Status worded as kube-apiserver words it."""
    suffix = f": {decision.reason}" if decision.reason else ""
    if not a.resource:
        return errors.ApiError(403, "Forbidden", f'forbidden: User "{user.name}" cannot {a.verb} path '
                                                 f'"{a.path}"{suffix}', {})
    qualified = f"{a.resource}.{a.group}" if a.group else a.resource
    target = f'{qualified} "{a.name}"' if a.name else qualified
    scope = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    message = (f'{target} is forbidden: User "{user.name}" cannot {a.verb} resource "{a.full_resource}" '
               f'in API group "{a.group}" {scope}{suffix}')
    details = {"kind": a.resource, **({"name": a.name} if a.name else {}), **({"group": a.group} if a.group else {})}
    return errors.ApiError(403, "Forbidden", message, details)
