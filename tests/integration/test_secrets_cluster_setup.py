"""`kubeling up` and `kubeling init` set up encryption at rest and ServiceAccount tokens:
the files they write (0600), the flags the apiserver and controller manager get, and the
effect (a Secret in etcd is ciphertext, `default` ServiceAccounts, kube-root-ca.crt)."""
from __future__ import annotations

import base64
import os
import ssl
import subprocess
import sys
import urllib.request

import yaml

from kubeling import systemd
from tests.conftest import REPO, free_port, stop_process, wait_for
from tests.integration.test_init_join import kubeling as kubeling_on
from tests.integration.test_up_down import run


def _etcd(port: int, *args: str) -> bytes:
    return subprocess.run(["etcdctl", "--endpoints", f"http://127.0.0.1:{port}", *args], check=True,
                          capture_output=True, env={**os.environ, "ETCDCTL_API": "3"}).stdout


def test_up_encrypts_secrets_and_publishes_service_accounts(tmp_path):
    etcd_port = free_port()
    env = {**os.environ, "KUBELING_RUN_DIR": str(tmp_path / "run"), "KUBELING_LOG_DIR": str(tmp_path / "log"),
           "KUBELING_DATA_DIR": str(tmp_path / "data"), "KUBELING_CONFIG_DIR": str(tmp_path / "etc"),
           "KUBELING_ETCD_PORT": str(etcd_port), "KUBELING_APISERVER_PORT": str(free_port()),
           "KUBELING_NODE": "false"}
    try:
        run(env, "up")
        enc = tmp_path / "etc" / "encryption-config.yaml"
        assert oct(enc.stat().st_mode & 0o777) == "0o600"
        assert oct((tmp_path / "etc" / "pki" / "sa.key").stat().st_mode & 0o777) == "0o600"
        doc = yaml.safe_load(enc.read_text())
        key = doc["resources"][0]["providers"][0]["aescbc"]["keys"][0]
        assert doc["kind"] == "EncryptionConfiguration" and len(base64.b64decode(key["secret"])) == 32
        env_kc = {**env, "KUBECONFIG": str(tmp_path / "etc" / "admin.kubeconfig")}
        # `up` waited for the default ServiceAccount: a pod right away is admitted and gets its token volume.
        run(env_kc, "apply", "-f", "-", stdin=(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: pw}\nstringData: {password: up-plaintext}\n---\n"
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
            "spec:\n  containers:\n  - {name: c, image: busybox:latest}\n"))
        raw = _etcd(etcd_port, "get", "/registry/secrets/default/pw", "--print-value-only")
        assert raw.startswith(b"k8s:enc:aescbc:v1:key1:") and b"up-plaintext" not in raw
        pod = yaml.safe_load(run(env_kc, "get", "pod", "p", "-o", "yaml").stdout)
        assert pod["spec"]["serviceAccountName"] == "default"
        assert any(v["name"].startswith("kube-api-access-") for v in pod["spec"]["volumes"])
        kubectl = ["/usr/lib/google-cloud-sdk/bin/kubectl.1.33", "--kubeconfig", str(tmp_path / "etc" / "admin.kubeconfig"),
                   "--cache-dir", str(tmp_path / "kcache")]
        out = subprocess.run([*kubectl, "get", "secret", "pw", "-o", "jsonpath={.data.password}"],
                             capture_output=True, text=True, env={**os.environ, "HOME": str(tmp_path)}, timeout=60)
        assert base64.b64decode(out.stdout) == b"up-plaintext", out.stderr

        def published() -> str:
            got = subprocess.run([*kubectl, "get", "configmap", "kube-root-ca.crt", "-o", "jsonpath={.data.ca\\.crt}"],
                                 capture_output=True, text=True, env={**os.environ, "HOME": str(tmp_path)}, timeout=60)
            return got.stdout
        assert wait_for(published, 20, "kube-root-ca.crt").strip() == \
            (tmp_path / "etc" / "pki" / "apiserver.crt").read_text().strip()
    finally:
        run(env, "down", "--purge", check=False)


def test_init_writes_keys_and_flags_and_its_apiserver_encrypts(etcd, tmp_path):
    root = tmp_path / "cp"
    port = free_port()
    kubeling_on(root, "init", "--advertise-address", "192.0.2.30", "--node-name", f"enc-{os.getpid()}",
                "--apiserver-bind-port", str(port), "--no-start")
    etc = root / "etc/kubeling"
    for name in ("encryption-config.yaml", "pki/sa.key"):
        assert oct((etc / name).stat().st_mode & 0o777) == "0o600", name
    api = systemd.parse_defaults((root / "etc/default/kubeling-apiserver").read_text(), "apiserver")
    cm = systemd.parse_defaults((root / "etc/default/kubeling-controller-manager").read_text(), "controller-manager")
    assert api[api.index("--encryption-provider-config") + 1] == str(etc / "encryption-config.yaml")
    assert api[api.index("--service-account-signing-key-file") + 1] == str(etc / "pki/sa.key")
    assert api[api.index("--service-account-key-file") + 1] == str(etc / "pki/sa.pub")
    assert cm[cm.index("--root-ca-file") + 1] == str(etc / "pki/ca.crt")
    api[api.index("--etcd") + 1] = etcd.url
    api[api.index("--bind") + 1] = "127.0.0.1"
    log = tmp_path / "apiserver.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "controlplane.apiserver", *api], stdout=f,
                                stderr=subprocess.STDOUT, cwd=REPO)
    try:
        ctx = ssl.create_default_context(cafile=str(etc / "pki/ca.crt"))
        from kubeling import kubeconfig
        conn = kubeconfig.load(str(etc / "admin.kubeconfig"))
        ctx.load_cert_chain(*_pem_files(tmp_path, conn.cert_pem, conn.key_pem))

        def ready() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", timeout=1, context=ctx) as r:
                return r.status == 200
        wait_for(ready, 30, "init's apiserver")
        name = f"init-secret-{os.getpid()}"
        req = urllib.request.Request(
            f"https://127.0.0.1:{port}/api/v1/namespaces/default/secrets", method="POST",
            data=f'{{"metadata":{{"name":"{name}"}},"stringData":{{"k":"init-plaintext"}}}}'.encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
            assert r.status == 201
        raw = _etcd(etcd.port, "get", f"/registry/secrets/default/{name}", "--print-value-only")
        assert raw.startswith(b"k8s:enc:aescbc:v1:key1:") and b"init-plaintext" not in raw
    finally:
        stop_process(proc)
    assert "Traceback" not in log.read_text()


def _pem_files(tmp_path, cert: bytes, key: bytes) -> tuple[str, str]:
    c, k = tmp_path / "admin.crt", tmp_path / "admin.key"
    c.write_bytes(cert)
    k.write_bytes(key)
    os.chmod(k, 0o600)
    return str(c), str(k)
