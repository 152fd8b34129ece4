"""Joining with credentials of its own, and what a node's credentials may do.

Real etcd, a real apiserver serving TLS with a cluster CA (client certificates
and tokens), and the controller-manager running the CSR approver+signer under
its own certificate (system:kube-controller-manager), plus the scheduler under
system:kube-scheduler. A node joins with a bootstrap token (`bootstrap.
request_node_credentials`), gets `system:node:<name>` and then may change its own
Node, Lease and its pods' status, and nothing of another node's: every refusal is
a 403 Status and leaves etcd as it was.
"""
from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import sys

import pytest

from kubeling import errors, kubeconfig, pki
from kubeling.bootstrap import JoinError, request_node_credentials_async
from kubeling.client import Client
from kubeling.resources import lookup
from tests.conftest import REPO, free_port, start_apiserver, start_etcd, stop_process

from controlplane.apiserver.authn import bootstrap_token_line

NODES, LEASES, PODS = lookup("nodes"), lookup("leases"), lookup("pods")
CSRS, EVENTS, NAMESPACES = lookup("csr"), lookup("events"), lookup("namespaces")
BOOT_TOKEN = "k7x2qa.0123456789abcdef"
SUFFIX = str(os.getpid() % 100000)
A, B = f"ident-a-{SUFFIX}", f"ident-b-{SUFFIX}"


def _component_kubeconfig(api, base, user: str, orgs=()) -> str:
    d = base / "pki"
    cert, key = d / f"{user}.crt", d / f"{user}.key"
    pki.issue_cert(api.ca_cert, api.ca_key, cert, key, user, orgs)
    path = base / f"{user.replace(':', '-')}.kubeconfig"
    kubeconfig.write(str(path), api.url, ca_pem=api.ca_pem, cert_pem=cert.read_bytes(),
                     key_pem=key.read_bytes(), user=user)
    return str(path)


@pytest.fixture(scope="module")
def cluster(etcd, tmp_path_factory):
    base = tmp_path_factory.mktemp("identity")
    api_proc, api = start_apiserver(etcd, base, token="identity-admin", tls=True,
                                    extra_tokens=bootstrap_token_line(BOOT_TOKEN))
    procs = [api_proc]
    logs = []
    try:
        for module, user, extra in (
                ("controlplane.controllers", "system:kube-controller-manager",
                 ["--cluster-signing-cert-file", str(api.ca_cert), "--cluster-signing-key-file", str(api.ca_key)]),
                ("controlplane.scheduler", "system:kube-scheduler", ["--lease-name", f"identity-{SUFFIX}"])):
            log = base / f"{module}.log"
            logs.append(log)
            with open(log, "wb") as out:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", module, "--kubeconfig", _component_kubeconfig(api, base, user), *extra],
                    stdout=out, stderr=subprocess.STDOUT, cwd=REPO))
        yield api
    finally:
        for p in reversed(procs):
            stop_process(p)
    for log in logs + [api.log]:
        text = log.read_text()
        assert "Traceback" not in text, text[-4000:]
        # The components' own credentials suffice for everything they do.
        assert "forbidden: User" not in text and "Unauthorized" not in text, text[-4000:]


@pytest.fixture(scope="module")
async def nodes(cluster):
    """Node credentials for A and B (each joined with the bootstrap token), and an admin client."""
    admin = Client(cluster.url, cluster.token, ca_pem=cluster.ca_pem)
    creds = {}
    for name in (A, B):
        creds[name] = await request_node_credentials_async(cluster.url, BOOT_TOKEN, cluster.ca_pem, name, timeout=30)
    clients = {n: Client(cluster.url, ca_pem=cluster.ca_pem, cert_pem=c, key_pem=k) for n, (c, k) in creds.items()}
    await admin.create(NAMESPACES, {"metadata": {"name": f"ident-{SUFFIX}"}})
    for name, c in clients.items():  # each node registers itself, as an agent does
        await c.create(NODES, {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}})
        await c.create(LEASES, {"metadata": {"name": name, "namespace": "kube-node-lease"},
                                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40}})
    yield admin, clients, creds
    for n in (A, B):
        for res, ns in ((NODES, None), (LEASES, "kube-node-lease")):
            try:
                await admin.delete(res, n, ns)
            except errors.ApiError:
                pass
    try:
        await admin.delete(NAMESPACES, f"ident-{SUFFIX}")
    except errors.ApiError:
        pass
    for c in clients.values():
        await c.close()
    await admin.close()


async def _refused(call, what: str, message: str = "") -> errors.ApiError:
    with pytest.raises(errors.ApiError) as info:
        await call
    assert info.value.code == 403 and info.value.reason == "Forbidden", (what, info.value.code, info.value.message)
    assert message in info.value.message, info.value.message
    return info.value


def _etcd_rev(api, key: str):
    kv = api.etcd.get_json(key)
    return kv and kv["mod_revision"]


async def test_join_gets_a_certificate_of_its_own_signed_by_the_ca(cluster, nodes):
    admin, clients, creds = nodes
    cert, key = creds[A]
    assert pki.subject_of(pki.load_cert(cert)) == (f"system:node:{A}", ["system:nodes"])
    assert pki.verify_signed_by(cert, cluster.ca_pem)
    assert b"PRIVATE KEY" in key
    listed = await admin.list(CSRS)
    mine = [c for c in listed["items"] if base64.b64decode(c["status"].get("certificate", "")) == cert]
    assert len(mine) == 1
    spec = mine[0]["spec"]
    # The requester is who sent it (the apiserver says so), not what the body claimed.
    assert spec["username"] == "system:bootstrap:k7x2qa" and "system:bootstrappers" in spec["groups"]
    assert [c["type"] for c in mine[0]["status"]["conditions"]] == ["Approved"]


async def test_a_node_keeps_its_own_node_lease_and_pod_status(cluster, nodes):
    admin, clients, _ = nodes
    a, b = clients[A], clients[B]
    for name, c in ((A, a), (B, b)):
        await c.patch(NODES, name, {"status": {"conditions": [{"type": "Ready", "status": "True"}],
                                               "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                                               "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}},
                      subresource="status")
        await c.patch(LEASES, name, {"spec": {"leaseDurationSeconds": 41}}, "kube-node-lease")
    # The scheduler (its own credentials) binds a pod; its node updates the pod's status.
    ns = f"ident-{SUFFIX}"
    await admin.create(PODS, {"metadata": {"name": "on-a"}, "spec": {
        "nodeSelector": {"kubernetes.io/hostname": A}, "containers": [{"name": "c", "image": "busybox"}]}}, ns)
    pod = None
    for _ in range(200):
        pod = await admin.get(PODS, "on-a", ns)
        if pod["spec"].get("nodeName"):
            break
        await asyncio.sleep(0.1)
    assert pod["spec"].get("nodeName") == A, pod
    await a.patch(PODS, "on-a", {"status": {"phase": "Running"}}, ns, subresource="status")
    await a.create(EVENTS, {"metadata": {"name": f"on-a.{SUFFIX}", "namespace": ns},
                            "involvedObject": {"kind": "Pod", "name": "on-a", "namespace": ns},
                            "reason": "Started", "message": "m", "type": "Normal"}, ns)
    assert (await admin.get(PODS, "on-a", ns))["status"]["phase"] == "Running"
    await a.delete(PODS, "on-a", ns, grace_period=0)


async def test_a_node_cannot_touch_another_node(cluster, nodes):
    admin, clients, _ = nodes
    a = clients[A]
    ns = f"ident-{SUFFIX}"
    await admin.create(PODS, {"metadata": {"name": "on-b"}, "spec": {
        "nodeName": B, "containers": [{"name": "c", "image": "busybox"}]}}, ns)
    keys = [f"/registry/nodes/{B}", f"/registry/leases/kube-node-lease/{B}", f"/registry/pods/{ns}/on-b"]
    before = [_etcd_rev(cluster, k) for k in keys]
    assert all(before)
    await _refused(a.patch(NODES, B, {"status": {"conditions": []}}, subresource="status"), "b's status",
                         f'nodes "{B}" is forbidden: User "system:node:{A}" cannot patch resource "nodes/status" '
                         f'in API group "" at the cluster scope')
    await _refused(a.patch(NODES, B, {"metadata": {"labels": {"x": "y"}}}), "b's node")
    await _refused(a.patch(LEASES, B, {"spec": {"holderIdentity": A}}, "kube-node-lease"), "b's lease")
    await _refused(a.get(LEASES, B, "kube-node-lease"), "reading b's lease")
    await _refused(a.create(LEASES, {"metadata": {"name": B, "namespace": "kube-node-lease"}, "spec": {}}),
                   "creating a lease for b", "can only access node lease with the same name")
    await _refused(a.create(NODES, {"metadata": {"name": f"ident-c-{SUFFIX}"}}), "creating another node",
                   f'is not allowed to modify node "ident-c-{SUFFIX}"')
    await _refused(a.patch(PODS, "on-b", {"status": {"phase": "Failed"}}, ns, subresource="status"),
                   "b's pod status", f'node "{A}" can only update pod status for pods with spec.nodeName set to itself')
    await _refused(a.delete(PODS, "on-b", ns, grace_period=0), "deleting b's pod", "can only delete pods")
    await _refused(a.patch(PODS, "on-b", {"metadata": {"labels": {"x": "y"}}}, ns), "patching a pod's spec")
    await _refused(a.create(PODS, {"metadata": {"name": "sneaky"}, "spec": {
        "nodeName": A, "containers": [{"name": "c", "image": "busybox"}]}}, ns), "creating a pod",
        f'pods is forbidden: User "system:node:{A}" cannot create resource "pods" in API group "" '
        f'in the namespace "{ns}"')
    await _refused(a.list(LEASES, "kube-node-lease"), "listing leases")
    await _refused(a.delete(NAMESPACES, ns), "deleting a namespace")
    await _refused(a.request("PUT", f"/apis/certificates.k8s.io/v1/certificatesigningrequests/x/approval",
                             {"metadata": {"name": "x"}}), "approving a CSR")
    assert [_etcd_rev(cluster, k) for k in keys] == before
    assert cluster.etcd.get_json(f"/registry/nodes/ident-c-{SUFFIX}") is None
    assert cluster.etcd.get_json(f"/registry/pods/{ns}/sneaky") is None
    # What a node reads, it reads.
    assert (await a.get(NODES, B))["metadata"]["name"] == B
    await a.list(PODS)


async def test_controller_manager_works_on_its_own_credentials(cluster, nodes):
    """The namespace controller (as system:kube-controller-manager) empties and finalizes
    a deleted namespace; the module's teardown checks its log for refusals."""
    admin = nodes[0]
    ns = f"ident-gone-{SUFFIX}"
    await admin.create(NAMESPACES, {"metadata": {"name": ns}})
    await admin.create(lookup("configmaps"), {"metadata": {"name": "cm"}, "data": {"a": "b"}}, ns)
    await admin.create(lookup("services"), {"metadata": {"name": "svc"}, "spec": {
        "selector": {"app": "x"}, "ports": [{"port": 80}]}}, ns)
    for _ in range(100):  # the endpoints controller writes the service's Endpoints
        try:
            await admin.get(lookup("endpoints"), "svc", ns)
            break
        except errors.ApiError:
            await asyncio.sleep(0.1)
    await admin.get(lookup("endpoints"), "svc", ns)
    await admin.delete(NAMESPACES, ns)
    for _ in range(200):
        try:
            await admin.get(NAMESPACES, ns)
        except errors.ApiError as exc:
            assert exc.code == 404
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"namespace {ns} was not removed by the namespace controller")


async def test_bootstrap_token_can_only_ask_for_a_certificate(cluster, nodes):
    boot = Client(cluster.url, BOOT_TOKEN, ca_pem=cluster.ca_pem)
    try:
        await _refused(boot.list(PODS, "default"), "bootstrap listing pods",
                       'pods is forbidden: User "system:bootstrap:k7x2qa" cannot list resource "pods"')
        await _refused(boot.get(NODES, A), "bootstrap reading a node")
        # A request for anything but a node's client identity is denied, not signed.
        request = pki.make_csr(pki.new_key_pem(), "admin", ["system:masters"])
        csr = await boot.create(CSRS, {"metadata": {"generateName": "evil-"}, "spec": {
            "request": base64.b64encode(request).decode(), "usages": ["digital signature", "client auth"],
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet"}})

        async def denied():
            got = await boot.get(CSRS, csr["metadata"]["name"])
            return got if any(c["type"] == "Denied" for c in got["status"].get("conditions", [])) else None
        for _ in range(200):
            got = await denied()
            if got:
                break
            await asyncio.sleep(0.1)
        assert got and not got["status"].get("certificate")
        await _refused(boot.request("PUT", f"/apis/certificates.k8s.io/v1/certificatesigningrequests/"
                                           f"{csr['metadata']['name']}/approval", got), "bootstrapper approving")
    finally:
        await boot.close()


async def test_anonymous_is_401_health_is_public(cluster):
    anon = Client(cluster.url, ca_pem=cluster.ca_pem)
    try:
        with pytest.raises(errors.ApiError) as info:
            await anon.list(PODS, "default")
        assert info.value.code == 401 and info.value.reason == "Unauthorized"
        assert await anon.request("GET", "/readyz") == "ok"
    finally:
        await anon.close()


async def test_join_errors_are_one_line(cluster, tmp_path):
    with pytest.raises(JoinError) as info:
        await request_node_credentials_async(cluster.url, "zzzzzz.0123456789abcdef", cluster.ca_pem, "x", timeout=10)
    assert "401" in str(info.value) and "\n" not in str(info.value)
    pki.make_ca(tmp_path / "other.crt", tmp_path / "other.key")
    with pytest.raises(JoinError) as info:
        await request_node_credentials_async(cluster.url, BOOT_TOKEN, (tmp_path / "other.crt").read_bytes(), "x",
                                             timeout=10)
    assert "does not verify" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(JoinError) as info:
        await request_node_credentials_async(f"https://127.0.0.1:{free_port()}", BOOT_TOKEN, cluster.ca_pem, "x",
                                             timeout=10)
    assert "cannot reach" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(JoinError, match="not valid"):
        await request_node_credentials_async(cluster.url, BOOT_TOKEN, cluster.ca_pem, "Bad_Name", timeout=10)


def test_kubectl_gets_csrs_as_a_table(cluster, nodes):
    kc = cluster.kubeconfig
    out = subprocess.run(["kubectl", "--kubeconfig", str(kc), "get", "csr"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    header = out.stdout.splitlines()[0].split()
    assert header == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]
    assert "Approved,Issued" in out.stdout and "Denied" in out.stdout


async def test_a_certificate_from_another_ca_is_refused(cluster, tmp_path):
    pki.make_ca(tmp_path / "rogue.crt", tmp_path / "rogue.key")
    cert, key = pki.issue_cert_pem((tmp_path / "rogue.crt").read_bytes(), (tmp_path / "rogue.key").read_bytes(),
                                   "admin", ["system:masters"])
    rogue = Client(cluster.url, ca_pem=cluster.ca_pem, cert_pem=cert, key_pem=key)
    try:
        with pytest.raises(errors.ApiError) as info:
            await rogue.list(NODES)
        # The TLS handshake fails: no HTTP status at all, certainly not a 200.
        assert info.value.code in (401, 503), info.value.message
    finally:
        await rogue.close()


async def test_join_times_out_without_a_signer(tmp_path):
    # An etcd of its own: the module's controller-manager must not see this request.
    etcd_proc, etcd = start_etcd(tmp_path)
    try:
        proc, api = start_apiserver(etcd, tmp_path, token="no-signer-admin", tls=True,
                                    extra_tokens=bootstrap_token_line(BOOT_TOKEN))
    except BaseException:
        stop_process(etcd_proc)
        raise
    try:
        with pytest.raises(JoinError) as info:
            await request_node_credentials_async(api.url, BOOT_TOKEN, api.ca_pem, f"ident-t-{SUFFIX}", timeout=1.5)
        assert "within 1.5s" in str(info.value) and "--cluster-signing-cert-file" in str(info.value)
    finally:
        stop_process(proc)
        stop_process(etcd_proc)
        shutil.rmtree(etcd.data_dir, ignore_errors=True)
    assert "Traceback" not in api.log.read_text()
