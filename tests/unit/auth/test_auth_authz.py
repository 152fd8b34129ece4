"""Authorization decisions (the Node authorizer, then RBAC with the bootstrap
policy) on request attributes alone."""
from __future__ import annotations

import pytest

from controlplane.apiserver import bootstrap_policy
from controlplane.apiserver.authn import AUTHENTICATED, BOOTSTRAPPERS, MASTERS, NODES, UserInfo
from controlplane.apiserver.authz import Attributes, Authorizer, forbidden, verb_for
from controlplane.apiserver.rbac import RBACAuthorizer, StaticPolicy


def bootstrap_authorizer() -> Authorizer:
    """The chain over exactly the default policy the apiserver ensures at start."""
    policy = StaticPolicy()
    for role in bootstrap_policy.default_cluster_roles():
        policy.add("clusterroles", role)
    for binding in bootstrap_policy.CLUSTER_ROLE_BINDINGS:
        policy.add("clusterrolebindings", binding)
    return Authorizer(RBACAuthorizer(policy))


AUTHZ = bootstrap_authorizer()
authorize = AUTHZ.authorize

NODE_A = UserInfo("system:node:a", "", (NODES, AUTHENTICATED))
ADMIN = UserInfo("admin", "", (MASTERS, AUTHENTICATED))
BOOT = UserInfo("system:bootstrap:abcdef", "", (BOOTSTRAPPERS, AUTHENTICATED))
SCHED = UserInfo("system:kube-scheduler", "", (AUTHENTICATED,))
PROXY = UserInfo("system:kube-proxy", "", (AUTHENTICATED,))
CM = UserInfo("system:kube-controller-manager", "", (AUTHENTICATED,))
NOBODY = UserInfo("alice", "", (AUTHENTICATED,))
COORD, CERTS, DISC = "coordination.k8s.io", "certificates.k8s.io", "discovery.k8s.io"


def allowed(user: UserInfo, verb: str, resource: str, group: str = "", sub: str = "", ns: str = "",
            name: str = "") -> bool:
    return authorize(user, Attributes(verb, group, resource, sub, ns, name)).allowed


@pytest.mark.parametrize("method,has_name,watch,verb", [
    ("GET", True, False, "get"), ("GET", False, False, "list"), ("GET", False, True, "watch"),
    ("POST", False, False, "create"), ("PUT", True, False, "update"), ("PATCH", True, False, "patch"),
    ("DELETE", True, False, "delete"), ("DELETE", False, False, "deletecollection")])
def test_verbs_follow_kubernetes_request_info(method, has_name, watch, verb):
    assert verb_for(method, has_name, watch) == verb


def test_masters_may_do_anything():
    assert allowed(ADMIN, "delete", "nodes", name="x")
    assert allowed(ADMIN, "update", "certificatesigningrequests", CERTS, "approval", name="x")


def test_node_writes_only_its_own_node_and_status():
    assert allowed(NODE_A, "patch", "nodes", sub="status", name="a")
    assert allowed(NODE_A, "patch", "nodes", name="a")
    assert allowed(NODE_A, "create", "nodes")  # the body's name is NodeRestriction's
    assert not allowed(NODE_A, "patch", "nodes", sub="status", name="b")
    assert not allowed(NODE_A, "update", "nodes", name="b")
    assert not allowed(NODE_A, "delete", "nodes", name="a")
    assert not allowed(NODE_A, "deletecollection", "nodes")


def test_node_lease_only_its_own_in_kube_node_lease():
    assert allowed(NODE_A, "patch", "leases", COORD, ns="kube-node-lease", name="a")
    assert allowed(NODE_A, "get", "leases", COORD, ns="kube-node-lease", name="a")
    assert allowed(NODE_A, "create", "leases", COORD, ns="kube-node-lease")
    assert not allowed(NODE_A, "patch", "leases", COORD, ns="kube-node-lease", name="b")
    assert not allowed(NODE_A, "get", "leases", COORD, ns="kube-node-lease", name="b")
    assert not allowed(NODE_A, "list", "leases", COORD, ns="kube-node-lease")
    assert not allowed(NODE_A, "update", "leases", COORD, ns="kube-system", name="a")


def test_node_reads_what_agent_and_proxy_read_and_no_more():
    for res in ("pods", "services", "endpoints", "nodes", "namespaces", "configmaps"):
        assert allowed(NODE_A, "list", res) and allowed(NODE_A, "watch", res)
    assert allowed(NODE_A, "watch", "endpointslices", DISC)
    assert not allowed(NODE_A, "list", "events")
    assert not allowed(NODE_A, "create", "secrets", ns="d")


def test_node_pods_status_and_delete_pass_to_admission_other_pod_writes_do_not():
    assert allowed(NODE_A, "patch", "pods", sub="status", ns="default", name="p")
    assert allowed(NODE_A, "delete", "pods", ns="default", name="p")
    assert not allowed(NODE_A, "create", "pods", ns="default")
    assert not allowed(NODE_A, "patch", "pods", ns="default", name="p")
    assert not allowed(NODE_A, "update", "pods", ns="default", name="p")
    assert not allowed(NODE_A, "create", "pods", sub="binding", ns="default", name="p")
    assert not allowed(NODE_A, "deletecollection", "pods", ns="default")


def test_node_events_and_csrs():
    assert allowed(NODE_A, "create", "events", ns="default")
    assert allowed(NODE_A, "patch", "events", ns="default", name="e")
    assert allowed(NODE_A, "create", "certificatesigningrequests", CERTS)
    assert not allowed(NODE_A, "update", "certificatesigningrequests", CERTS, "approval", name="x")


def test_a_node_name_needs_the_nodes_group():
    impostor = UserInfo("system:node:a", "", (AUTHENTICATED,))
    assert not allowed(impostor, "patch", "nodes", sub="status", name="a")


def test_bootstrappers_only_create_and_read_csrs():
    for verb in ("create", "get", "list", "watch"):
        assert allowed(BOOT, verb, "certificatesigningrequests", CERTS, name="" if verb in ("create", "list", "watch") else "x")
    assert not allowed(BOOT, "update", "certificatesigningrequests", CERTS, "approval", name="x")
    assert not allowed(BOOT, "update", "certificatesigningrequests", CERTS, "status", name="x")
    assert not allowed(BOOT, "list", "pods")
    assert not allowed(BOOT, "get", "nodes", name="a")


def test_components_get_what_their_code_calls():
    assert allowed(SCHED, "watch", "pods") and allowed(SCHED, "list", "nodes")
    assert allowed(SCHED, "create", "pods", sub="binding", ns="d", name="p")
    assert allowed(SCHED, "patch", "pods", sub="status", ns="d", name="p")
    assert allowed(SCHED, "update", "leases", COORD, ns="kube-system", name="kube-scheduler")
    assert not allowed(SCHED, "patch", "nodes", name="a")
    assert allowed(PROXY, "watch", "endpointslices", DISC) and allowed(PROXY, "list", "services")
    assert not allowed(PROXY, "create", "pods", ns="d")
    assert allowed(CM, "update", "certificatesigningrequests", CERTS, "approval", name="x")
    assert allowed(CM, "update", "certificatesigningrequests", CERTS, "status", name="x")
    assert allowed(CM, "patch", "nodes", name="a")
    assert allowed(CM, "delete", "pods", ns="d", name="p")
    assert allowed(CM, "update", "namespaces", sub="finalize", name="n")
    # The workload controllers create what they own, and nothing of the RBAC policy.
    assert allowed(CM, "create", "pods", ns="d") and allowed(CM, "create", "replicasets", "apps", ns="d")
    assert allowed(CM, "create", "jobs", "batch", ns="d")
    assert not allowed(CM, "create", "deployments", "apps", ns="d")
    assert not allowed(CM, "create", "clusterrolebindings", "rbac.authorization.k8s.io")
    assert not allowed(NOBODY, "list", "pods")


def test_discovery_for_anyone_authenticated():
    assert authorize(NOBODY, Attributes("get", path="/apis/apps/v1")).allowed
    assert authorize(BOOT, Attributes("get", path="/openapi/v3")).allowed
    assert authorize(NOBODY, Attributes("get", path="/version")).allowed
    assert not authorize(NOBODY, Attributes("post", path="/api")).allowed
    assert not authorize(NOBODY, Attributes("get", path="/metrics")).allowed
    assert not authorize(UserInfo("anon", "", ()), Attributes("get", path="/apis")).allowed


def test_anyone_authenticated_may_ask_what_it_may_do():
    assert allowed(NOBODY, "create", "selfsubjectaccessreviews", "authorization.k8s.io")
    assert allowed(NOBODY, "create", "selfsubjectrulesreviews", "authorization.k8s.io")
    assert not allowed(NOBODY, "create", "subjectaccessreviews", "authorization.k8s.io")


def test_forbidden_is_worded_like_kubernetes():
    a = Attributes("patch", "", "nodes", "", "", "b")
    err = forbidden(NODE_A, a, authorize(NODE_A, a))
    assert err.code == 403 and err.reason == "Forbidden"
    assert err.message.startswith('nodes "b" is forbidden: User "system:node:a" cannot patch resource "nodes" '
                                  'in API group "" at the cluster scope')
    lease = Attributes("get", COORD, "leases", "", "kube-node-lease", "b")
    msg = forbidden(NODE_A, lease, authorize(NODE_A, lease)).message
    assert msg.startswith('leases.coordination.k8s.io "b" is forbidden: User "system:node:a" cannot get '
                          'resource "leases" in API group "coordination.k8s.io" in the namespace "kube-node-lease"')
    pods = Attributes("list", "", "pods", "", "default", "")
    assert forbidden(BOOT, pods, authorize(BOOT, pods)).message == (
        'pods is forbidden: User "system:bootstrap:abcdef" cannot list resource "pods" in API group "" '
        'in the namespace "default"')
