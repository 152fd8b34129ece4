"""What a user may do: kube-apiserver's authorization, for kubeling's few users.

`authorize(user, attrs)` decides on request attributes alone (verb, resource,
subresource, namespace, name), as Kubernetes authorizers do:
- system:masters may do everything;
- a node (`system:node:<name>` in system:nodes) gets what Kubernetes' Node
  authorizer and the system:node role give a kubelet: read what an agent and a
  proxy read, write its own Node and Node status and its own Lease, pods' status
  and pods' final delete (NodeRestriction then checks the pod is bound to it),
  events, and CSRs for its next certificate;
- system:bootstrappers may only create and read CertificateSigningRequests;
- the components (system:kube-scheduler, system:kube-controller-manager,
  system:kube-proxy) what their code calls, as their bootstrap roles give them.
Whatever is not allowed is forbidden. Writes that depend on the stored object
(the pod a node updates) are checked afterwards by node_restriction.
"""
from __future__ import annotations

from dataclasses import dataclass

from kubeling import errors

from .authn import AUTHENTICATED, BOOTSTRAPPERS, MASTERS, UserInfo

READ = ("get", "list", "watch")
CHANGE = ("create", "update", "patch", "delete")
NODE_LEASE_NAMESPACE = "kube-node-lease"
CERTS = "certificates.k8s.io"
COORD = "coordination.k8s.io"
DISCOVERY = "discovery.k8s.io"


@dataclass(frozen=True)
class Attributes:
    verb: str
    group: str = ""
    resource: str = ""  # plural; "" for a non-resource request
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""  # for non-resource requests

    @property
    def full_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


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


@dataclass(frozen=True)
class Rule:
    """An RBAC PolicyRule: verbs on resources ("pods", "pods/status", "*") of groups."""
    verbs: tuple[str, ...]
    groups: tuple[str, ...]
    resources: tuple[str, ...]

    def allows(self, a: Attributes) -> bool:
        return ((a.verb in self.verbs or "*" in self.verbs)
                and (a.group in self.groups or "*" in self.groups)
                and (a.full_resource in self.resources or "*" in self.resources
                     or (not a.subresource and "*/main" in self.resources)))


EVENT_WRITES = Rule(("create", "update", "patch"), ("", "events.k8s.io"), ("events",))

# What each component's code calls (controlplane/scheduler, controlplane/controllers,
# agent/proxy); the bootstrap ClusterRoles of Kubernetes grant a superset of this.
COMPONENT_RULES: dict[str, tuple[Rule, ...]] = {
    "system:kube-scheduler": (
        Rule(READ, ("",), ("pods", "nodes", "namespaces", "services")),
        Rule(("create",), ("",), ("pods/binding", "bindings")),
        Rule(("get", "update", "patch"), ("",), ("pods/status",)),
        Rule(("delete",), ("",), ("pods",)),  # preemption
        Rule(READ + ("create", "update", "patch"), (COORD,), ("leases",)),  # leader election
        EVENT_WRITES,
    ),
    "system:kube-controller-manager": (
        Rule(READ, ("*",), ("*",)),
        # The namespace controller empties a terminating namespace of everything.
        Rule(("delete", "deletecollection"), ("", COORD, DISCOVERY), ("*/main",)),
        Rule(("update", "patch"), ("",), ("namespaces/finalize", "namespaces/status")),
        Rule(CHANGE, ("",), ("endpoints",)),
        Rule(CHANGE, (DISCOVERY,), ("endpointslices",)),
        Rule(("update", "patch"), ("",), ("nodes", "nodes/status")),  # node IPAM writes podCIDR
        Rule(("update", "patch"), ("",), ("services/status", "pods/status")),
        Rule(CHANGE, (COORD,), ("leases",)),  # leader election
        Rule(("update", "patch"), (CERTS,), ("certificatesigningrequests/approval",
                                              "certificatesigningrequests/status")),
        EVENT_WRITES,
    ),
    "system:kube-proxy": (
        Rule(READ, ("",), ("services", "endpoints", "nodes")),
        Rule(READ, (DISCOVERY,), ("endpointslices",)),
        EVENT_WRITES,
    ),
}

BOOTSTRAPPER_RULES = (Rule(("create", "get", "list", "watch"), (CERTS,), ("certificatesigningrequests",)),)

# Node reads: what an agent (its pods, their configmaps, every Node for routes) and a
# proxy (services, endpoints, endpointslices) read.
NODE_READS = (
    Rule(READ, ("",), ("pods", "services", "endpoints", "nodes", "namespaces", "configmaps")),
    Rule(READ, (DISCOVERY,), ("endpointslices",)),
    Rule(("create", "get", "list", "watch"), (CERTS,), ("certificatesigningrequests",)),
    EVENT_WRITES,
)

# Non-resource paths any authenticated user may GET (system:discovery, system:public-info-viewer).
DISCOVERY_PREFIXES = ("/api", "/apis", "/openapi", "/version", "/healthz", "/livez", "/readyz")


def _no_relationship(node: str) -> Decision:
    return Decision(False, f"no relationship found between node '{node}' and this object")


def authorize_node(node: str, a: Attributes) -> Decision:
    """Kubernetes' Node authorizer (without its graph: reads are not narrowed to the
    objects of the node's pods) plus the name checks of NodeRestriction that need no object."""
    if any(r.allows(a) for r in NODE_READS):
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


def authorize(user: UserInfo, a: Attributes) -> Decision:
    if MASTERS in user.groups:
        return ALLOW
    if not a.resource:
        if a.verb == "get" and AUTHENTICATED in user.groups and any(
                a.path == p or a.path.startswith(p + "/") for p in DISCOVERY_PREFIXES):
            return ALLOW
        return Decision(False)
    node = user.node_name
    if node is not None:
        return authorize_node(node, a)
    rules: tuple[Rule, ...] = COMPONENT_RULES.get(user.name, ())
    if BOOTSTRAPPERS in user.groups:
        rules += BOOTSTRAPPER_RULES
    if any(r.allows(a) for r in rules):
        return ALLOW
    return Decision(False)


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
