"""RBAC against a real apiserver (TLS, client certificates of the tests' CA) and etcd.

The bootstrap policy is there at start; a user with no bindings is refused with
Kubernetes' words; a RoleBinding to `view` opens one namespace for reading only;
escalation is refused; reviews (`kubectl auth can-i`'s) answer for the caller; the
controller-manager, under its own identity and only its bootstrap role, keeps the
aggregated roles current.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from kubeling import errors, kubeconfig, pki
from kubeling.client import Client
from kubeling.resources import lookup
from tests.conftest import REPO, start_apiserver, stop_process

G = "rbac.authorization.k8s.io"
ROLES, CLUSTER_ROLES = lookup(f"roles.{G}"), lookup(f"clusterroles.{G}")
BINDINGS, CLUSTER_BINDINGS = lookup(f"rolebindings.{G}"), lookup(f"clusterrolebindings.{G}")
PODS, NAMESPACES, CONFIGMAPS = lookup("pods"), lookup("namespaces"), lookup("configmaps")
SUFFIX = str(os.getpid() % 100000)
NS_A, NS_B = f"rbac-a-{SUFFIX}", f"rbac-b-{SUFFIX}"


def _cert(api, base, user: str, orgs=()) -> tuple[bytes, bytes]:
    d = base / "pki"
    cert, key = d / f"{user.replace(':', '-')}.crt", d / f"{user.replace(':', '-')}.key"
    pki.issue_cert(api.ca_cert, api.ca_key, cert, key, user, orgs)
    return cert.read_bytes(), key.read_bytes()


@pytest.fixture(scope="module")
def cluster(etcd, tmp_path_factory):
    base = tmp_path_factory.mktemp("rbac")
    api_proc, api = start_apiserver(etcd, base, token="rbac-admin", tls=True)
    cert, key = _cert(api, base, "system:kube-controller-manager")
    cm_config = base / "cm.kubeconfig"
    kubeconfig.write(str(cm_config), api.url, ca_pem=api.ca_pem, cert_pem=cert, key_pem=key,
                     user="system:kube-controller-manager")
    cm_log = base / "controller-manager.log"
    with open(cm_log, "wb") as out:
        cm = subprocess.Popen([sys.executable, "-m", "controlplane.controllers", "--kubeconfig", str(cm_config)],
                              stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    api.base = base
    try:
        yield api
    finally:
        stop_process(cm)
        stop_process(api_proc)
    for log in (cm_log, api.log):
        text = log.read_text()
        assert "Traceback" not in text, text[-4000:]
        # The controller-manager's bootstrap role covers everything it does.
        assert "forbidden" not in text.lower(), text[-4000:]


@pytest.fixture(scope="module")
async def users(cluster):
    admin = Client(cluster.url, cluster.token, ca_pem=cluster.ca_pem)
    clients = {}
    for name in ("alice", "bob"):
        cert, key = _cert(cluster, cluster.base, name, ("dev",))
        clients[name] = Client(cluster.url, ca_pem=cluster.ca_pem, cert_pem=cert, key_pem=key)
    for ns in (NS_A, NS_B):
        await admin.create(NAMESPACES, {"metadata": {"name": ns}})
    yield admin, clients["alice"], clients["bob"]
    for ns in (NS_A, NS_B):
        await admin.delete(NAMESPACES, ns)
    for c in (admin, *clients.values()):
        await c.close()


async def _eventually(check, timeout: float = 10, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = await check()
            if result:
                return result
        except errors.ApiError as exc:
            last = exc
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last})")


async def _forbidden(call) -> errors.ApiError:
    with pytest.raises(errors.ApiError) as info:
        await call
    assert info.value.code == 403 and info.value.reason == "Forbidden", info.value.message
    return info.value


def _binding(name, ns, role_kind, role, subjects):
    return {"metadata": {"name": name, "namespace": ns}, "roleRef": {"apiGroup": G, "kind": role_kind, "name": role},
            "subjects": [{"apiGroup": G, "kind": k, "name": n} for k, n in subjects]}


async def test_bootstrap_policy_is_there_and_aggregated(users):
    admin, _, _ = users
    names = {r["metadata"]["name"] for r in (await admin.list(CLUSTER_ROLES))["items"]}
    assert {"cluster-admin", "admin", "edit", "view", "system:kube-scheduler", "system:kube-controller-manager",
            "system:node-proxier", "system:node-bootstrapper", "system:discovery", "system:basic-user"} <= names
    view = await admin.get(CLUSTER_ROLES, "view")
    assert view["aggregationRule"]["clusterRoleSelectors"] == [
        {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]
    assert any("pods" in r.get("resources", []) for r in view["rules"])
    crb = await admin.get(CLUSTER_BINDINGS, "cluster-admin")
    assert crb["subjects"] == [{"apiGroup": G, "kind": "Group", "name": "system:masters"}]


async def test_a_user_with_no_bindings_is_refused_in_kubernetes_words(users):
    _, alice, _ = users
    exc = await _forbidden(alice.list(PODS, NS_A))
    assert exc.message == (f'pods is forbidden: User "alice" cannot list resource "pods" in API group "" '
                           f'in the namespace "{NS_A}"')
    exc = await _forbidden(alice.get(CLUSTER_ROLES, "view"))
    assert exc.message == ('clusterroles.rbac.authorization.k8s.io "view" is forbidden: User "alice" cannot get '
                           'resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope')
    # Discovery is everyone's (system:discovery).
    assert (await alice.request("GET", "/apis"))["kind"] == "APIGroupList"


async def test_view_in_one_namespace_reads_there_only(users):
    admin, alice, _ = users
    await admin.create(BINDINGS, _binding("alice-view", NS_A, "ClusterRole", "view", [("User", "alice")]))
    await admin.create(CONFIGMAPS, {"metadata": {"name": "c", "namespace": NS_A}, "data": {"k": "v"}})
    listed = await _eventually(lambda: alice.list(PODS, NS_A), what="alice to list pods in a")
    assert listed["kind"] == "PodList"
    assert (await alice.get(CONFIGMAPS, "c", NS_A))["data"] == {"k": "v"}
    await _forbidden(alice.list(PODS, NS_B))
    await _forbidden(alice.list(PODS))  # all namespaces is cluster scope
    exc = await _forbidden(alice.create(PODS, {"metadata": {"name": "p", "namespace": NS_A},
                                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
    assert 'cannot create resource "pods"' in exc.message
    await _forbidden(alice.list(lookup("secrets"), NS_A))  # view does not read secrets
    # Take it back: the watch-fed view of the policy follows.
    await admin.delete(BINDINGS, "alice-view", NS_A)
    await _eventually(lambda: _refused(alice.list(PODS, NS_A)), what="the binding's removal to count")


async def _refused(call) -> bool:
    try:
        await call
    except errors.ApiError as exc:
        return exc.code == 403
    return False


async def test_escalation_is_refused_and_bind_within_ones_rights_works(users):
    admin, alice, bob = users
    await admin.create(BINDINGS, _binding("alice-admin", NS_B, "ClusterRole", "admin", [("User", "alice")]))
    await _eventually(lambda: alice.list(BINDINGS, NS_B), what="alice to be admin of b")
    # A Role with rules alice holds in b: fine.
    await alice.create(ROLES, {"metadata": {"name": "pod-reader", "namespace": NS_B},
                               "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]})
    # Rules she does not hold: refused, naming what is missing.
    exc = await _forbidden(alice.create(ROLES, {"metadata": {"name": "node-reader", "namespace": NS_B}, "rules": [
        {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get"]}]}))
    assert exc.message == (f'roles.rbac.authorization.k8s.io "node-reader" is forbidden: user "alice" '
                           f'(groups=["dev" "system:authenticated"]) is attempting to grant RBAC permissions not '
                           f'currently held:\n{{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}}')
    # Binding cluster-admin (which she does not hold) is refused; binding view (which she does) is not.
    exc = await _forbidden(alice.create(BINDINGS, _binding("bob-root", NS_B, "ClusterRole", "cluster-admin",
                                                           [("User", "bob")])))
    assert "is attempting to grant RBAC permissions not currently held" in exc.message
    await alice.create(BINDINGS, _binding("bob-view", NS_B, "ClusterRole", "view", [("User", "bob")]))
    await _eventually(lambda: bob.list(PODS, NS_B), what="bob to read b")
    # Nor may she change a role to more than she holds.
    role = await alice.get(ROLES, "pod-reader", NS_B)
    role["rules"][0]["verbs"] = ["*"]
    role["rules"][0]["resources"] = ["*"]
    await _forbidden(alice.update(ROLES, role))
    # The `bind` verb lets one bind a role without holding it.
    await admin.create(ROLES, {"metadata": {"name": "binder", "namespace": NS_B}, "rules": [
        {"apiGroups": [G], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": ["cluster-admin"]}]})
    await admin.create(BINDINGS, _binding("alice-binder", NS_B, "Role", "binder", [("User", "alice")]))

    async def bind() -> bool:
        await alice.create(BINDINGS, _binding("bob-root", NS_B, "ClusterRole", "cluster-admin", [("User", "bob")]))
        return True
    await _eventually(bind, what="alice to bind cluster-admin with the bind verb")
    # Invalid bindings are 422 with field paths.
    with pytest.raises(errors.ApiError) as info:
        await admin.create(BINDINGS, {"metadata": {"name": "bad", "namespace": NS_B},
                                      "roleRef": {"apiGroup": G, "kind": "Pod", "name": "x"}})
    assert info.value.code == 422
    assert [c["field"] for c in info.value.details["causes"]] == ["roleRef.kind"]


async def _review(client: Client, plural: str, spec: dict) -> dict:
    kind = {"selfsubjectaccessreviews": "SelfSubjectAccessReview", "subjectaccessreviews": "SubjectAccessReview",
            "selfsubjectrulesreviews": "SelfSubjectRulesReview"}[plural]
    return await client.request("POST", f"/apis/authorization.k8s.io/v1/{plural}",
                                {"apiVersion": "authorization.k8s.io/v1", "kind": kind, "spec": spec})


async def test_access_reviews(users):
    admin, alice, _ = users
    await admin.create(BINDINGS, _binding("alice-edit", NS_A, "ClusterRole", "edit", [("User", "alice")]))
    ssar = await _eventually(lambda: _allowed(alice, {"namespace": NS_A, "verb": "create", "resource": "pods"}),
                             what="alice's edit to count")
    assert ssar["kind"] == "SelfSubjectAccessReview" and ssar["status"]["allowed"] is True
    assert ssar["status"]["reason"] == f'RBAC: allowed by RoleBinding "alice-edit/{NS_A}" of ClusterRole "edit" ' \
                                       f'to User "alice"'
    no = await _review(alice, "selfsubjectaccessreviews",
                       {"resourceAttributes": {"namespace": NS_A, "verb": "create", "resource": "roles", "group": G}})
    assert no["status"]["allowed"] is False
    rules = await _review(alice, "selfsubjectrulesreviews", {"namespace": NS_A})
    assert any("pods" in r["resources"] and "create" in r["verbs"] for r in rules["status"]["resourceRules"])
    assert any("/apis/*" in r["nonResourceURLs"] for r in rules["status"]["nonResourceRules"])
    # SubjectAccessReview: for those allowed to ask (here the admin), about anyone.
    await _forbidden(_review(alice, "subjectaccessreviews", {"user": "bob", "resourceAttributes": {"verb": "get"}}))
    sar = await _review(admin, "subjectaccessreviews", {"user": "alice", "groups": ["dev"], "resourceAttributes": {
        "namespace": NS_A, "verb": "delete", "resource": "pods", "name": "p"}})
    assert sar["status"]["allowed"] is True
    sar = await _review(admin, "subjectaccessreviews", {"user": "system:kube-scheduler", "resourceAttributes": {
        "namespace": "x", "verb": "create", "resource": "pods", "subresource": "binding", "name": "p"}})
    assert sar["status"]["allowed"] is True
    with pytest.raises(errors.ApiError) as info:
        await _review(admin, "subjectaccessreviews", {"resourceAttributes": {"verb": "get"}})
    assert info.value.code == 422 and info.value.details["causes"][0]["field"] == "spec.user"


async def _allowed(client: Client, attrs: dict) -> dict | None:
    answer = await _review(client, "selfsubjectaccessreviews", {"resourceAttributes": attrs})
    return answer if answer["status"]["allowed"] else None


def _etcd_ranges(etcd) -> float:
    """etcd's count of range (read) requests served so far."""
    with urllib.request.urlopen(etcd.url + "/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("etcd_debugging_mvcc_range_total "):
                return float(line.split()[1])
    raise AssertionError("etcd has no etcd_debugging_mvcc_range_total metric")


async def test_deciding_costs_no_etcd_read(users, cluster):
    """The authorizer decides from its watch-fed view: 100 GETs by an RBAC-authorized
    user cost about 100 etcd reads (the GETs themselves), not two or more each."""
    admin, alice, _ = users
    await admin.create(BINDINGS, _binding("alice-reads", NS_A, "ClusterRole", "view", [("User", "alice")]))
    await admin.create(CONFIGMAPS, {"metadata": {"name": "hot", "namespace": NS_A}, "data": {"k": "v"}})
    await _eventually(lambda: alice.get(CONFIGMAPS, "hot", NS_A), what="alice to read configmaps in a")
    before = _etcd_ranges(cluster.etcd)
    started = time.perf_counter()
    for _ in range(100):
        await alice.get(CONFIGMAPS, "hot", NS_A)
    elapsed = time.perf_counter() - started
    reads = _etcd_ranges(cluster.etcd) - before
    assert 100 <= reads < 130, reads
    print(f"100 RBAC-authorized GETs: {elapsed * 10:.2f} ms each, {reads:.0f} etcd reads")
    await admin.delete(BINDINGS, "alice-reads", NS_A)


async def test_impersonation_needs_the_impersonate_verb(users, cluster):
    admin, alice, _ = users
    path = f"/api/v1/namespaces/{NS_B}/secrets"
    async with admin.session.get(cluster.url + path, headers={"Impersonate-User": "carol"}) as resp:
        body = await resp.json()
        assert resp.status == 403, body
        assert body["message"].startswith('secrets is forbidden: User "carol" cannot list resource "secrets"')
    async with alice.session.get(cluster.url + path, headers={"Impersonate-User": "bob"}) as resp:
        body = await resp.json()
        assert resp.status == 403
        assert body["message"] == ('users "bob" is forbidden: User "alice" cannot impersonate resource "users" '
                                   'in API group "" at the cluster scope')


async def test_the_aggregation_controller_keeps_view_current(users):
    admin, _, _ = users
    name = f"widgets-viewer-{SUFFIX}"
    rule = {"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}
    await admin.create(CLUSTER_ROLES, {"metadata": {"name": name, "labels": {
        "rbac.authorization.k8s.io/aggregate-to-view": "true"}}, "rules": [rule]})
    try:
        async def gathered(role: str) -> bool:
            return rule in (await admin.get(CLUSTER_ROLES, role))["rules"]
        # view gathers it, then edit and admin through view's and edit's labels.
        for role in ("view", "edit", "admin"):
            await _eventually(lambda: gathered(role), 20, f"{role} to gather the new rule")
    finally:
        await admin.delete(CLUSTER_ROLES, name)
    await _eventually(lambda: _not(gathered("view")), 20, "view to drop the deleted role's rule")


async def _not(awaitable) -> bool:
    return not await awaitable
