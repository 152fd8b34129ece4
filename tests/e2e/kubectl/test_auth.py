"""`kubectl auth can-i`, `create role/rolebinding/clusterrole`, RBAC tables and
refusals, with real kubectl 1.33 and 1.27, as an admin and as a user ("alice",
a client certificate of the cluster CA) whose rights come from RBAC alone."""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubeling import kubeconfig, pki
from tests.conftest import start_apiserver, stop_process

from conftest import KUBECTL_DIR, VERSIONS, Kubectl  # this folder's conftest (imported by name at collection)

SUFFIX = str(os.getpid() % 100000)


@dataclass
class Server:
    """What Kubectl needs: a kubeconfig (one per user here)."""
    kubeconfig: Path


@pytest.fixture(scope="module")
def rbac_cluster(etcd, tmp_path_factory) -> Iterator[tuple[Server, Server]]:
    base = tmp_path_factory.mktemp("kubectl-auth")
    proc, api = start_apiserver(etcd, base, token="auth-admin", tls=True)
    cert, key = base / "pki" / "alice.crt", base / "pki" / "alice.key"
    pki.issue_cert(api.ca_cert, api.ca_key, cert, key, "alice", ["dev"])
    alice = base / "alice.kubeconfig"
    kubeconfig.write(str(alice), api.url, ca_pem=api.ca_pem, cert_pem=cert.read_bytes(), key_pem=key.read_bytes(),
                     user="alice")
    try:
        yield Server(api.kubeconfig), Server(alice)
    finally:
        stop_process(proc)
    assert "Traceback" not in api.log.read_text()


@pytest.fixture(params=VERSIONS)
def as_users(request, rbac_cluster, tmp_path) -> tuple[Kubectl, Kubectl]:
    if not (KUBECTL_DIR / f"kubectl.{request.param}").exists():
        pytest.fail(f"kubectl {request.param} is not installed")
    admin, alice = rbac_cluster
    homes = [tmp_path / "admin", tmp_path / "alice"]
    for h in homes:
        h.mkdir()
    return Kubectl(request.param, admin, homes[0]), Kubectl(request.param, alice, homes[1])  # type: ignore[arg-type]


def _wait_for(check, what: str, timeout: float = 10):
    from tests.conftest import wait_for
    return wait_for(check, timeout, what, interval=0.1)


def test_can_i_and_forbidden_follow_role_bindings(as_users):
    admin, alice = as_users
    ns = f"auth-{admin.version.replace('.', '')}-{SUFFIX}"
    admin("create", "namespace", ns)
    try:
        can = alice("auth", "can-i", "create", "pods", "-n", ns, check=False)
        assert (can.returncode, can.stdout.strip()) == (1, "no"), can.stdout + can.stderr
        got = alice("get", "pods", "-n", ns, check=False)
        assert got.returncode == 1
        assert got.stderr.strip() == (f'Error from server (Forbidden): pods is forbidden: User "alice" cannot list '
                                      f'resource "pods" in API group "" in the namespace "{ns}"')
        admin("create", "rolebinding", "alice-edit", "--clusterrole=edit", "--user=alice", "-n", ns)
        _wait_for(lambda: alice("auth", "can-i", "create", "pods", "-n", ns, check=False).stdout.strip() == "yes",
                  "alice's edit binding to count")
        assert alice("auth", "can-i", "create", "pods", "-n", "default", check=False).stdout.strip() == "no"
        assert alice("auth", "can-i", "create", "roles", "-n", ns, check=False).stdout.strip() == "no"
        assert alice("auth", "can-i", "get", "/apis", check=False).stdout.strip() == "yes"
        assert admin("auth", "can-i", "*", "*").stdout.strip() == "yes"
        # --list asks a SelfSubjectRulesReview.
        listed = alice("auth", "can-i", "--list", "-n", ns).stdout
        assert "pods " in listed and "create" in listed.split("pods ", 1)[1].splitlines()[0]
        # --as: the admin may impersonate; alice may not.
        assert admin("auth", "can-i", "create", "pods", "-n", ns, "--as", "alice").stdout.strip() == "yes"
        assert admin("auth", "can-i", "create", "pods", "-n", "default", "--as", "alice",
                     check=False).stdout.strip() == "no"
        refused = alice("get", "pods", "-n", ns, "--as", "bob", check=False)
        assert 'User "alice" cannot impersonate resource "users"' in refused.stderr
        # whoami asks a SelfSubjectReview (v1; kubectl 1.27 asks v1beta1, which is not served).
        if admin.version != "1.27":
            who = alice("auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}")
            assert who.stdout == 'alice ["dev","system:authenticated"]', who.stdout
        # Escalation: alice cannot grant herself more.
        out = alice("create", "role", "more", "--verb=get", "--resource=nodes", "-n", ns, check=False)
        assert "forbidden" in out.stderr
    finally:
        admin("delete", "namespace", ns, "--wait=false")


def test_rbac_tables(as_users):
    admin, _ = as_users
    v = admin.version.replace(".", "")
    role, binding = f"widget-reader-{v}-{SUFFIX}", f"widget-readers-{v}-{SUFFIX}"
    admin("create", "clusterrole", role, "--verb=get,list", "--resource=configmaps")
    admin("create", "clusterrolebinding", binding, f"--clusterrole={role}", "--user=alice", "--group=dev",
          "--serviceaccount=kube-system:bot")
    try:
        roles = admin("get", "clusterroles", role).stdout.splitlines()
        assert roles[0].split() == ["NAME", "CREATED", "AT"] and roles[1].split()[0] == role
        wide = admin("get", "clusterrolebinding", binding, "-o", "wide").stdout.splitlines()
        assert wide[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
        cells = wide[1].split()
        assert cells[0] == binding and cells[1] == f"ClusterRole/{role}"
        assert cells[3:] == ["alice", "dev", "kube-system/bot"]
        described = admin("describe", "clusterrole", role).stdout
        assert "configmaps" in described and "[get list]" in described
        bad = admin("create", "clusterrolebinding", f"bad-{v}-{SUFFIX}", "--clusterrole=view", "--group=",
                    check=False)
        assert bad.returncode != 0
    finally:
        admin("delete", "clusterrolebinding", binding)
        admin("delete", "clusterrole", role)
