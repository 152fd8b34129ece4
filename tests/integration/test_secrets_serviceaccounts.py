"""Secrets encrypted at rest, ServiceAccounts, their tokens and pod admission, against a
real etcd, a real apiserver (with --encryption-provider-config and service-account keys)
and a real controller manager (serviceaccounts controller, root CA publisher)."""
from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.request

import pytest
import yaml

from controlplane.apiserver import encryption, tokens
from kubeling import errors, pki
from kubeling.client import Client
from kubeling.resources import lookup
from tests.conftest import REPO, start_apiserver, stop_process, wait_for

SECRETS, SAS, PODS = lookup("secrets"), lookup("serviceaccounts"), lookup("pods")
NAMESPACES, CONFIGMAPS = lookup("namespaces"), lookup("configmaps")


@pytest.fixture(scope="module")
def cluster(isolated_etcd, tmp_path_factory):
    """An apiserver with encryption and service-account tokens, and a controller manager."""
    base = tmp_path_factory.mktemp("sa-apiserver")
    enc = base / "encryption.yaml"
    encryption.write_config(enc)
    sa_key = base / "sa.key"
    tokens.generate_key(sa_key)
    proc, api = start_apiserver(isolated_etcd, base, tls=True, extra_args=(
        "--encryption-provider-config", str(enc), "--service-account-signing-key-file", str(sa_key),
        "--service-account-key-file", str(sa_key), "--service-account-issuer", "https://kubeling.test"))
    log = base / "cm.log"
    with open(log, "wb") as out:
        cm = subprocess.Popen([sys.executable, "-m", "controlplane.controllers", "--kubeconfig", str(api.kubeconfig),
                               "--root-ca-file", str(api.ca_cert)], stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    api.encryption_config = enc  # type: ignore[attr-defined]
    api.sa_key = sa_key  # type: ignore[attr-defined]
    yield api
    stop_process(cm)
    stop_process(proc)
    assert "Traceback" not in log.read_text(), log.read_text()[-4000:]
    assert "Traceback" not in api.log.read_text(), api.log.read_text()[-4000:]


@pytest.fixture
async def admin(cluster):
    c = Client.from_kubeconfig(str(cluster.kubeconfig))
    yield c
    await c.close()


@pytest.fixture
async def ns(admin, unique_name):
    await admin.create(NAMESPACES, {"metadata": {"name": unique_name}})
    yield unique_name
    try:
        await admin.delete(NAMESPACES, unique_name)
    except errors.ApiError:
        pass


async def _wait(check, timeout=20, what="condition"):
    import asyncio
    import time
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            got = await check()
            if got:
                return got
        except errors.ApiError as exc:
            last = exc
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} ({last})")


def _etcd_value(cluster, key: str) -> bytes:
    kv = cluster.etcd.get_json(key)
    assert kv is not None, f"{key} not in etcd"
    return base64.b64decode(kv["value"])


async def test_secret_encrypted_at_rest_and_plain_through_api(cluster, admin, ns):
    created = await admin.create(SECRETS, {"metadata": {"name": "db"}, "stringData": {"password": "hunter2-plain"},
                                           "data": {"user": base64.b64encode(b"admin-user").decode()}}, ns)
    assert "stringData" not in created and created["type"] == "Opaque"
    assert base64.b64decode(created["data"]["password"]) == b"hunter2-plain"
    raw = _etcd_value(cluster, f"/registry/secrets/{ns}/db")
    assert raw.startswith(b"k8s:enc:aescbc:v1:key1:")
    for plain in (b"hunter2-plain", b"admin-user", base64.b64encode(b"hunter2-plain"), b'"Secret"', b"db"):
        assert plain not in raw[len(b"k8s:enc:aescbc:v1:key1:"):]
    got = await admin.get(SECRETS, "db", ns)
    assert base64.b64decode(got["data"]["password"]) == b"hunter2-plain"
    listed = await admin.list(SECRETS, ns)
    assert [s["metadata"]["name"] for s in listed["items"]] == ["db"]
    # ConfigMaps are not in the config: stored as they are.
    await admin.create(CONFIGMAPS, {"metadata": {"name": "plain"}, "data": {"k": "visible-value"}}, ns)
    assert b"visible-value" in _etcd_value(cluster, f"/registry/configmaps/{ns}/plain")
    table = await admin.request("GET", f"/api/v1/namespaces/{ns}/secrets",
                                accept="application/json;as=Table;v=v1;g=meta.k8s.io")
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Type", "Data", "Age"]
    assert table["rows"][0]["cells"][:3] == ["db", "Opaque", 2]


async def test_key_rotation_reads_old_values(cluster, admin, ns, isolated_etcd, tmp_path):
    await admin.create(SECRETS, {"metadata": {"name": "old"}, "stringData": {"k": "before-rotation"}}, ns)
    old_doc = yaml.safe_load(cluster.encryption_config.read_text())
    old_key = old_doc["resources"][0]["providers"][0]["aescbc"]["keys"][0]
    rotated = tmp_path / "rotated.yaml"
    rotated.write_text(yaml.safe_dump({
        "apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
        "resources": [{"resources": ["secrets"], "providers": [
            {"aescbc": {"keys": [{"name": "key2", "secret": base64.b64encode(b"k" * 32).decode()}, old_key]}},
            {"identity": {}}]}]}))
    proc, api2 = start_apiserver(isolated_etcd, tmp_path, extra_args=("--encryption-provider-config", str(rotated)))
    try:
        c = Client(api2.url, api2.token)
        try:
            got = await c.get(SECRETS, "old", ns)
            assert base64.b64decode(got["data"]["k"]) == b"before-rotation"
            await c.update(SECRETS, got)  # a rewrite moves it to the new key
            assert _etcd_value(cluster, f"/registry/secrets/{ns}/old").startswith(b"k8s:enc:aescbc:v1:key2:")
        finally:
            await c.close()
    finally:
        stop_process(proc)
    # The first apiserver does not know key2: its read fails with a Status, not a crash.
    with pytest.raises(errors.ApiError) as exc:
        await admin.get(SECRETS, "old", ns)
    assert exc.value.code == 500


@pytest.mark.parametrize("typ,data,fields", [
    ("kubernetes.io/tls", {"tls.crt": "Yw=="}, ["data[tls.key]"]),
    ("kubernetes.io/basic-auth", {}, ["data[password]", "data[username]"]),
    ("kubernetes.io/service-account-token", {}, ["metadata.annotations[kubernetes.io/service-account.name]"]),
])
async def test_secret_type_validation_422(admin, ns, typ, data, fields):
    with pytest.raises(errors.ApiError) as exc:
        await admin.create(SECRETS, {"metadata": {"name": "bad"}, "type": typ, "data": data}, ns)
    assert exc.value.code == 422
    assert sorted(c["field"] for c in exc.value.status()["details"]["causes"]) == fields


async def test_immutable_secret(admin, ns):
    s = await admin.create(SECRETS, {"metadata": {"name": "frozen"}, "immutable": True,
                                     "stringData": {"a": "1"}}, ns)
    s["data"]["a"] = base64.b64encode(b"2").decode()
    with pytest.raises(errors.ApiError) as exc:
        await admin.update(SECRETS, s)
    assert exc.value.code == 422 and exc.value.status()["details"]["causes"][0]["field"] == "data"


async def test_default_serviceaccount_and_root_ca_in_every_namespace(cluster, admin, ns):
    sa = await _wait(lambda: admin.get(SAS, "default", ns), what="the default ServiceAccount")
    cm = await _wait(lambda: admin.get(CONFIGMAPS, "kube-root-ca.crt", ns), what="kube-root-ca.crt")
    assert cm["data"]["ca.crt"] == cluster.ca_cert.read_text()
    await admin.delete(SAS, "default", ns)

    async def recreated():
        got = await admin.get(SAS, "default", ns)
        return got["metadata"]["uid"] != sa["metadata"]["uid"]
    await _wait(recreated, what="default to come back")
    for existing in ("default", "kube-system"):
        await _wait(lambda: admin.get(SAS, "default", existing), what=f"default SA in {existing}")


async def test_pod_admission(admin, ns):
    await _wait(lambda: admin.get(SAS, "default", ns), what="the default ServiceAccount")
    pod = await admin.create(PODS, {"metadata": {"name": "web"},
                                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, ns)
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "default"
    vol = next(v for v in spec["volumes"] if v["name"].startswith("kube-api-access-"))
    assert vol["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 3607
    assert {"name": vol["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"} \
        in spec["containers"][0]["volumeMounts"]
    with pytest.raises(errors.ApiError) as exc:
        await admin.create(PODS, {"metadata": {"name": "lost"}, "spec": {
            "serviceAccountName": "ghost", "containers": [{"name": "c", "image": "busybox"}]}}, ns)
    assert exc.value.code == 403
    assert exc.value.message == (f'pods "lost" is forbidden: error looking up service account {ns}/ghost: '
                                 'serviceaccount "ghost" not found')
    await admin.create(SAS, {"metadata": {"name": "quiet"}, "automountServiceAccountToken": False}, ns)
    quiet = await admin.create(PODS, {"metadata": {"name": "quiet"}, "spec": {
        "serviceAccountName": "quiet", "containers": [{"name": "c", "image": "busybox"}]}}, ns)
    assert not quiet["spec"].get("volumes")


def _get_status(cluster, path: str, token: str) -> int:
    import ssl
    ctx = ssl.create_default_context(cafile=str(cluster.ca_cert))
    req = urllib.request.Request(cluster.url + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


async def test_token_request_authenticates_until_pod_deleted(cluster, admin, ns):
    await admin.create(SAS, {"metadata": {"name": "robot"}}, ns)
    pod = await admin.create(PODS, {"metadata": {"name": "holder"}, "spec": {
        "serviceAccountName": "robot", "automountServiceAccountToken": False,
        "containers": [{"name": "c", "image": "busybox"}]}}, ns)
    answer = await admin.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/robot/token", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3607, "boundObjectRef": {
            "kind": "Pod", "apiVersion": "v1", "name": "holder", "uid": pod["metadata"]["uid"]}}})
    token = answer["status"]["token"]
    assert answer["kind"] == "TokenRequest" and answer["status"]["expirationTimestamp"]
    assert _get_status(cluster, "/api", token) == 200
    c = Client(cluster.url, token, ca_pem=cluster.ca_pem)
    try:
        with pytest.raises(errors.ApiError) as exc:
            await c.list(SECRETS, ns)
        assert exc.value.code == 403
        assert f'User "system:serviceaccount:{ns}:robot"' in exc.value.message
    finally:
        await c.close()
    await admin.delete(PODS, "holder", ns, grace_period=0)
    await _wait(lambda: _async(_get_status(cluster, "/api", token) == 401), what="the token to stop working")
    with pytest.raises(errors.ApiError) as exc:
        await admin.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/robot/token",
                            {"spec": {"expirationSeconds": 60}})
    assert exc.value.code == 422


async def _async(value):
    return value


async def test_node_reads_only_its_pods_secrets_and_tokens(cluster, admin, ns, tmp_path):
    await _wait(lambda: admin.get(SAS, "default", ns), what="the default ServiceAccount")
    for name in ("mine", "other"):
        await admin.create(SECRETS, {"metadata": {"name": name}, "stringData": {"k": name}}, ns)
    pods = {}
    for pod_name, node, secret in (("on-n1", "n1", "mine"), ("on-n2", "n2", "other")):
        pods[pod_name] = await admin.create(PODS, {"metadata": {"name": pod_name}, "spec": {
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "s", "secret": {"secretName": secret}}]}}, ns)
        await admin.create_binding(ns, pod_name, node)
    cert, key = pki.issue_cert_pem(cluster.ca_cert.read_bytes(), cluster.ca_key.read_bytes(),
                                   "system:node:n1", ["system:nodes"])
    node = Client(cluster.url, None, ca_pem=cluster.ca_pem, cert_pem=cert, key_pem=key)
    try:
        got = await node.get(SECRETS, "mine", ns)
        assert base64.b64decode(got["data"]["k"]) == b"mine"
        with pytest.raises(errors.ApiError) as exc:
            await node.get(SECRETS, "other", ns)
        assert exc.value.code == 403 and "no relationship found between node 'n1'" in exc.value.message
        with pytest.raises(errors.ApiError) as exc:
            await node.list(SECRETS, ns)
        assert exc.value.code == 403

        def body(pod):
            return {"spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod["metadata"]["name"],
                                                "uid": pod["metadata"]["uid"]}}}
        answer = await node.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/default/token",
                                    body(pods["on-n1"]))
        assert answer["status"]["token"]
        with pytest.raises(errors.ApiError) as exc:
            await node.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/default/token", body(pods["on-n2"]))
        assert exc.value.code == 403 and "scheduled on a different node" in exc.value.message
    finally:
        await node.close()


def _kubectl(cluster, tmp_path, *args: str, version: str = "1.33") -> subprocess.CompletedProcess:
    import os
    return subprocess.run([f"/usr/lib/google-cloud-sdk/bin/kubectl.{version}", "--kubeconfig", str(cluster.kubeconfig),
                           "--cache-dir", str(tmp_path / "kcache"), *args], capture_output=True, text=True,
                          env={**os.environ, "HOME": str(tmp_path)}, timeout=60)


@pytest.mark.parametrize("version", ["1.33", "1.27"])
async def test_kubectl_secrets_and_tokens(cluster, admin, ns, tmp_path, version):
    out = _kubectl(cluster, tmp_path, "-n", ns, "create", "secret", "generic", "kc", "--from-literal=user=bob",
                   "--from-literal=pass=pw", version=version)
    assert out.returncode == 0, out.stderr
    got = await admin.get(SECRETS, "kc", ns)
    assert base64.b64decode(got["data"]["user"]) == b"bob"
    out = _kubectl(cluster, tmp_path, "-n", ns, "create", "secret", "tls", "bad-tls", "--cert=/dev/null",
                   "--key=/dev/null", version=version)
    assert out.returncode != 0
    cert, key = pki.issue_cert_pem(cluster.ca_cert.read_bytes(), cluster.ca_key.read_bytes(), "web",
                                   hosts=["web.example"], client=False, server=True)
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    out = _kubectl(cluster, tmp_path, "-n", ns, "create", "secret", "tls", "web-tls", f"--cert={tmp_path / 'tls.crt'}",
                   f"--key={tmp_path / 'tls.key'}", version=version)
    assert out.returncode == 0, out.stderr
    out = _kubectl(cluster, tmp_path, "-n", ns, "create", "secret", "docker-registry", "regcred",
                   "--docker-server=registry.example", "--docker-username=u", "--docker-password=p", version=version)
    assert out.returncode == 0, out.stderr
    out = _kubectl(cluster, tmp_path, "-n", ns, "get", "secrets", version=version)
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split()[1:3] for line in out.stdout.splitlines()[1:]}
    assert out.stdout.splitlines()[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
    assert rows == {"kc": ["Opaque", "2"], "web-tls": ["kubernetes.io/tls", "2"],
                    "regcred": ["kubernetes.io/dockerconfigjson", "1"]}
    manifest = tmp_path / "s.yaml"
    for value in ("one", "two"):
        manifest.write_text(f"apiVersion: v1\nkind: Secret\nmetadata: {{name: applied}}\n"
                            f"type: kubernetes.io/basic-auth\nstringData: {{username: {value}}}\n")
        out = _kubectl(cluster, tmp_path, "-n", ns, "apply", "-f", str(manifest),
                       *(["--validate=false"] if version == "1.27" else []), version=version)
        assert out.returncode == 0, out.stderr
    got = await admin.get(SECRETS, "applied", ns)
    assert base64.b64decode(got["data"]["username"]) == b"two" and "stringData" not in got
    await _wait(lambda: admin.get(SAS, "default", ns), what="the default ServiceAccount")
    out = _kubectl(cluster, tmp_path, "-n", ns, "get", "serviceaccounts", version=version)
    assert out.returncode == 0 and out.stdout.splitlines()[0].split() == ["NAME", "SECRETS", "AGE"], out
    out = _kubectl(cluster, tmp_path, "-n", ns, "create", "token", "default", version=version)
    assert out.returncode == 0, out.stderr
    assert _get_status(cluster, "/api", out.stdout.strip()) == 200


async def test_watch_sees_decrypted_secrets(admin, ns):
    listed = await admin.list(SECRETS, ns)
    await admin.create(SECRETS, {"metadata": {"name": "watched"}, "stringData": {"k": "watch-plain"}}, ns)
    raw = await admin.request("GET", f"/api/v1/namespaces/{ns}/secrets", params={
        "watch": "true", "resourceVersion": listed["metadata"]["resourceVersion"], "timeoutSeconds": "1"})
    lines = raw if isinstance(raw, list) else [json.loads(line) for line in
                                               (raw if isinstance(raw, str) else json.dumps(raw)).splitlines() if line]
    events = [e for e in lines if e["object"]["metadata"]["name"] == "watched"]
    assert events and events[0]["type"] == "ADDED"
    assert base64.b64decode(events[0]["object"]["data"]["k"]) == b"watch-plain"
