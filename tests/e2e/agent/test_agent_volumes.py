"""Secrets, ConfigMaps and ServiceAccount tokens reach a pod on a real node: secret and
configMap volumes (updated in place when the objects change), envFrom/valueFrom, and the
projected kube-api-access volume whose token authenticates against the apiserver.

The agent runs with its node's own identity (`system:node:<name>`), so it reads only the
Secrets of its pods and asks TokenRequest for tokens bound to them (Node authorizer +
NodeRestriction); nothing it does may be refused."""
from __future__ import annotations

import base64
import os
import secrets
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

from agent.volumes import mounts_under
from agent_nodes import (TestNode, condition, pod_manifest, refusals, start_controller_manager, tear_down,
                         wait_pod, wait_until)
from controlplane.apiserver import encryption, tokens
from kubeling import errors, kubeconfig, pki
from kubeling.client import Client
from kubeling.resources import lookup
from tests.conftest import free_port, start_apiserver

pytestmark = pytest.mark.e2e
PODS = lookup("pods")
NAMESPACES, SECRETS, CONFIGMAPS, SAS = lookup("namespaces"), lookup("secrets"), lookup("configmaps"), \
    lookup("serviceaccounts")
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@pytest.fixture
async def cluster(isolated_etcd, tmp_path, node_runtime):
    """An HTTPS apiserver with encryption and service-account keys, a controller manager
    (default ServiceAccounts, kube-root-ca.crt) and one node whose agent is system:node:<name>."""
    if os.geteuid() != 0:
        pytest.fail("agent e2e tests need root")
    port = free_port()
    node = TestNode(port, "", f"10.244.{secrets.randbelow(250) + 1}.0/24", scheme="https", runtime=node_runtime)
    enc, sa_key = tmp_path / "encryption.yaml", tmp_path / "sa.key"
    encryption.write_config(enc)
    tokens.generate_key(sa_key)
    api_proc, api = start_apiserver(isolated_etcd, tmp_path, token="vol-admin", bind="0.0.0.0", tls=True,
                                    tls_hosts=(node.root_ip,), port=port, extra_args=(
                                        "--encryption-provider-config", str(enc),
                                        "--service-account-signing-key-file", str(sa_key)))
    node.ca_pem = api.ca_pem
    node.client_ca = api.kubelet_ca
    cm_proc, cm_log = start_controller_manager(api, tmp_path, "--root-ca-file", str(api.ca_cert))
    admin = Client(api.url, api.token, ca_pem=api.ca_pem)
    problems: list[str] = []
    try:
        node.create()
        cert, key = pki.issue_cert_pem(api.ca_pem, api.ca_key.read_bytes(), f"system:node:{node.name}",
                                       ["system:nodes"])
        kubeconfig.write(str(node.kubeconfig), node.server, ca_pem=api.ca_pem, cert_pem=cert, key_pem=key,
                         user=f"system:node:{node.name}")
        node.start_agent()
        yield node, admin, api
        problems += refusals({"agent": node.log_text(), "controller-manager": cm_log.read_text()},
                             ("forbidden", "Unauthorized", "Traceback"))
    finally:
        print(f"---- agent log of {node.name} ----\n{node.log_text()[-6000:]}")
        node.stop_agent()
        # A test that failed before its pod went leaves the pod's tmpfs volumes: release them.
        for m in mounts_under(node.agent_root):
            subprocess.run(["umount", m], check=False)
        problems += await tear_down(node, admin, cm_proc, api_proc)
    assert not problems, problems


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _api_status(api, token: str, path: str) -> int:
    ctx = ssl.create_default_context(cadata=api.ca_pem.decode())
    req = urllib.request.Request(api.url + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


async def test_secret_configmap_volumes_env_and_token(cluster, unique_name):
    node, admin, api = cluster
    ns = unique_name
    await admin.create(NAMESPACES, {"metadata": {"name": ns}})
    await wait_until(lambda: admin.get(SAS, "default", ns), 30, "the default ServiceAccount")
    await wait_until(lambda: admin.get(CONFIGMAPS, "kube-root-ca.crt", ns), 30, "kube-root-ca.crt")
    await admin.create(SECRETS, {"metadata": {"name": "creds"}, "data": {"password": _b64("s3cret-1")}}, ns)
    await admin.create(CONFIGMAPS, {"metadata": {"name": "settings"}, "data": {"greeting": "hello"}}, ns)
    pod = pod_manifest("app", node.name, [{
        "name": "app", "command": ["sleep", "3600"],
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}, {"secretRef": {"name": "creds"}}],
        "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                {"name": "MISSING", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}}],
        "volumeMounts": [{"name": "sec", "mountPath": "/etc/sec", "readOnly": True},
                         {"name": "cfg", "mountPath": "/etc/cfg"}]}],
        volumes=[{"name": "sec", "secret": {"secretName": "creds", "defaultMode": 0o400}},
                 {"name": "cfg", "configMap": {"name": "settings"}}])
    await admin.create(PODS, pod, ns)
    await wait_pod(admin, ns, "app", lambda p: condition(p, "Ready") == "True", 90, "pod Ready")

    def cat(path: str) -> str:
        return node.pod_exec(ns, "app", "app", "cat", path, check=True).stdout

    assert cat("/etc/sec/password") == "s3cret-1"
    assert cat("/etc/cfg/greeting") == "hello"
    mode = node.pod_exec(ns, "app", "app", "stat", "-L", "-c", "%a", "/etc/sec/password", check=True).stdout.strip()
    assert mode == "400"
    env = dict(line.split("=", 1) for line in node.pod_exec(ns, "app", "app", "env", check=True).stdout.splitlines()
               if "=" in line)
    assert env["CFG_greeting"] == "hello" and env["password"] == "s3cret-1" and env["PW"] == "s3cret-1"
    assert "MISSING" not in env

    # Updates reach the files in place (same container), within a bounded wait.
    secret = await admin.get(SECRETS, "creds", ns)
    secret["data"]["password"] = _b64("s3cret-2")
    await admin.update(SECRETS, secret)
    await admin.patch(CONFIGMAPS, "settings", {"data": {"greeting": "bonjour"}}, ns)
    await wait_until(lambda: cat("/etc/sec/password") == "s3cret-2", 40, "the secret file to change")
    await wait_until(lambda: cat("/etc/cfg/greeting") == "bonjour", 40, "the configmap file to change")

    # The projected ServiceAccount volume: token, CA, namespace; the token authenticates.
    token = cat(f"{SA_DIR}/token")
    assert cat(f"{SA_DIR}/ca.crt") == api.ca_pem.decode()
    assert cat(f"{SA_DIR}/namespace") == ns
    assert _api_status(api, token, "/api") == 200
    assert _api_status(api, token, f"/api/v1/namespaces/{ns}/secrets") == 403  # authenticated, not authorized
    # Secret material is on tmpfs (memory), as kubelet keeps it, not on the node's disk.
    mounts = [line.split() for line in open("/proc/mounts").read().splitlines()]
    pod_dir = str(node.agent_root / "pods")
    tmpfs = {m[1].rsplit("/", 2)[-2] for m in mounts if m[1].startswith(pod_dir) and m[2] == "tmpfs"}
    assert tmpfs == {"kubernetes.io~secret", "kubernetes.io~projected"}, tmpfs
    await admin.delete(PODS, "app", ns)
    await wait_until(lambda: _gone(admin, ns, "app"), 60, "the pod to go")
    await wait_until(lambda: not any(line.split()[1].startswith(pod_dir)
                                     for line in open("/proc/mounts").read().splitlines()),
                     30, "the pod's tmpfs mounts to go")
    # Bound to the pod: once it is gone, so is the token's validity.
    assert _api_status(api, token, "/api") == 401


async def _gone(admin, ns: str, name: str) -> bool:
    try:
        await admin.get(PODS, name, ns)
    except errors.ApiError as exc:
        return exc.code == 404
    return False
