"""kubectl's generator commands (create namespace|configmap|secret|service|deployment|job|cronjob|
role|rolebinding|serviceaccount, run, expose): kubectl 1.33 (client-go's typed clients) sends
these bodies as `application/vnd.kubernetes.protobuf`, kubectl 1.27 as JSON. Each object is
checked where it landed, in etcd (or through the API for Secrets, which are encrypted at rest)."""
from __future__ import annotations

import base64
import json
import subprocess

import pytest

from kubeling.protobuf.gen import api_core_v1_pb2, apimachinery_pkg_runtime_pb2

pytestmark = pytest.mark.e2e

PROTOBUF = "application/vnd.kubernetes.protobuf"


def stored(etcd, key: str) -> dict:
    kv = etcd.get_json(key)
    assert kv is not None, f"{key} is not in etcd"
    return json.loads(base64.b64decode(kv["value"]))


def api_get(kubectl, *args: str) -> dict:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def test_create_namespace(kubectl, tls_apiserver, etcd, unique_name, tmp_path):
    assert kubectl("create", "namespace", unique_name).stdout.strip() == f"namespace/{unique_name} created"
    try:
        ns = stored(etcd, f"/registry/namespaces/{unique_name}")
        assert ns["kind"] == "Namespace" and ns["metadata"]["name"] == unique_name
        assert ns["status"]["phase"] == "Active"
        assert ns["metadata"]["uid"] and ns["metadata"]["creationTimestamp"]
    finally:
        # no namespace controller runs here: finalize by hand (with kubectl 1.33) as kns does
        (tmp_path / "cleanup").mkdir()
        k = type(kubectl)("1.33", tls_apiserver, tmp_path / "cleanup")
        k("delete", "namespace", unique_name, "--wait=false")
        k("replace", "--raw", f"/api/v1/namespaces/{unique_name}/finalize", "-f", "-",
                stdin=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": unique_name},
                                  "spec": {"finalizers": []}}))


def test_create_configmap_from_literals(kubectl, kns, etcd):
    done = kubectl("create", "configmap", "settings", "-n", kns, "--from-literal=mode=fast",
                   "--from-literal=empty=", "--from-literal=multi=a b c", "-v=8")
    assert done.stdout.strip() == "configmap/settings created"
    # kubectl logs its request headers at -v=8: 1.33's generators send protobuf, 1.27's JSON
    sent = PROTOBUF if kubectl.version == "1.33" else "application/json"
    assert f"Content-Type: {sent}" in done.stderr
    cm = stored(etcd, f"/registry/configmaps/{kns}/settings")
    assert cm["data"] == {"mode": "fast", "empty": "", "multi": "a b c"}
    assert "binaryData" not in cm and "immutable" not in cm


def test_create_secret_generic_from_literals(kubectl, kns):
    out = kubectl("create", "secret", "generic", "creds", "-n", kns, "--from-literal=user=admin",
                  "--from-literal=password=s3cr3t!").stdout
    assert out.strip() == "secret/creds created"
    secret = api_get(kubectl, "secret", "creds", "-n", kns)
    assert secret["type"] == "Opaque"
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {
        "user": "admin", "password": "s3cr3t!"}
    kubectl("delete", "secret", "creds", "-n", kns)


def test_create_service_clusterip(kubectl, kns, etcd):
    out = kubectl("create", "service", "clusterip", "web", "-n", kns, "--tcp=80:8080").stdout
    assert out.strip() == "service/web created"
    svc = stored(etcd, f"/registry/services/{kns}/web")
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["selector"] == {"app": "web"}
    assert [(p["name"], p["port"], p["targetPort"], p["protocol"]) for p in svc["spec"]["ports"]] == [
        ("80-8080", 80, 8080, "TCP")]
    assert svc["spec"]["clusterIP"]  # allocated by the apiserver


def test_create_deployment_then_expose(kubectl, kns, etcd):
    out = kubectl("create", "deployment", "web", "-n", kns, "--image=busybox", "--replicas=0",
                  "--port=80").stdout
    assert out.strip() == "deployment.apps/web created"
    deploy = stored(etcd, f"/registry/deployments/{kns}/web")
    assert deploy["spec"]["replicas"] == 0  # a pointer's zero survives protobuf
    assert deploy["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    pod_spec = deploy["spec"]["template"]["spec"]
    assert deploy["spec"]["template"]["metadata"]["labels"] == {"app": "web"}
    assert [(c["name"], c["image"], c["ports"]) for c in pod_spec["containers"]] == [
        ("busybox", "busybox", [{"containerPort": 80, "protocol": "TCP"}])]
    assert deploy["spec"]["strategy"]["type"] == "RollingUpdate"  # defaulted as for JSON bodies

    out = kubectl("expose", "deployment", "web", "-n", kns, "--port=8000", "--target-port=80").stdout
    assert out.strip() == "service/web exposed"
    svc = api_get(kubectl, "service", "web", "-n", kns)
    assert svc["spec"]["selector"] == {"app": "web"}
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(8000, 80)]
    kubectl("delete", "deployment", "web", "-n", kns)


def test_create_job_and_cronjob(kubectl, kns, etcd):
    out = kubectl("create", "job", "once", "-n", kns, "--image=busybox", "--", "date").stdout
    assert out.strip() == "job.batch/once created"
    job = stored(etcd, f"/registry/jobs/{kns}/once")
    template = job["spec"]["template"]["spec"]
    assert template["restartPolicy"] == "Never"
    assert [(c["name"], c["image"], c["command"]) for c in template["containers"]] == [
        ("once", "busybox", ["date"])]
    out = kubectl("create", "cronjob", "tick", "-n", kns, "--image=busybox", "--schedule=*/5 * * * *",
                  "--", "date").stdout
    assert out.strip() == "cronjob.batch/tick created"
    cj = stored(etcd, f"/registry/cronjobs/{kns}/tick")
    assert cj["spec"]["schedule"] == "*/5 * * * *"
    assert cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    kubectl("delete", "job", "once", "-n", kns)
    kubectl("delete", "cronjob", "tick", "-n", kns)


def test_run_pod_then_expose(kubectl, kns, etcd):
    out = kubectl("run", "shell", "-n", kns, "--image=busybox", "--restart=Never", "--labels=app=shell",
                  "--port=8080", "--env=GREETING=hello", "--", "sleep", "3600").stdout
    assert out.strip() == "pod/shell created"
    pod = stored(etcd, f"/registry/pods/{kns}/shell")
    assert pod["metadata"]["labels"] == {"app": "shell"}
    assert pod["spec"]["restartPolicy"] == "Never"
    (container,) = pod["spec"]["containers"]
    assert (container["name"], container["image"], container["args"]) == ("shell", "busybox", ["sleep", "3600"])
    assert container["env"] == [{"name": "GREETING", "value": "hello"}]
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert container["imagePullPolicy"] == "Always"  # defaulted: the empty value did not reach the server
    out = kubectl("expose", "pod", "shell", "-n", kns, "--port=80", "--target-port=8080").stdout
    assert out.strip() == "service/shell exposed"
    assert api_get(kubectl, "service", "shell", "-n", kns)["spec"]["selector"] == {"app": "shell"}


def test_create_rbac_and_serviceaccount(kubectl, kns, etcd):
    assert kubectl("create", "serviceaccount", "robot", "-n", kns).stdout.strip() == \
        "serviceaccount/robot created"
    assert kubectl("create", "role", "reader", "-n", kns, "--verb=get,list", "--resource=pods,configmaps"
                   ).stdout.strip() == "role.rbac.authorization.k8s.io/reader created"
    assert kubectl("create", "rolebinding", "robot-reads", "-n", kns, "--role=reader",
                   f"--serviceaccount={kns}:robot").stdout.strip() == \
        "rolebinding.rbac.authorization.k8s.io/robot-reads created"
    role = api_get(kubectl, "role", "reader", "-n", kns)
    assert [(r["apiGroups"], sorted(r["resources"]), r["verbs"]) for r in role["rules"]] == [
        ([""], ["configmaps", "pods"], ["get", "list"])]
    binding = api_get(kubectl, "rolebinding", "robot-reads", "-n", kns)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "robot", "namespace": kns}]
    kubectl("delete", "rolebinding", "robot-reads", "-n", kns)
    kubectl("delete", "role", "reader", "-n", kns)
    kubectl("delete", "serviceaccount", "robot", "-n", kns)


def _curl(server, *args: str) -> tuple[int, dict[str, str], bytes]:
    """curl against the TLS apiserver; (status, headers, body)."""
    proc = subprocess.run(["curl", "-sk", "-D", "-", "-H", f"Authorization: Bearer {server.token}", *args],
                          capture_output=True, check=True)
    head, _, body = proc.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def _protobuf_configmap(name: str) -> bytes:
    cm = api_core_v1_pb2.ConfigMap()
    cm.metadata.name = name
    cm.data["k"] = "v"
    envelope = apimachinery_pkg_runtime_pb2.Unknown(typeMeta={"apiVersion": "v1", "kind": "ConfigMap"},
                                                     raw=cm.SerializeToString())
    return b"k8s\x00" + envelope.SerializeToString()


def test_protobuf_body_gets_a_json_answer(tls_apiserver, kns, tmp_path):
    """client-go asks `Accept: protobuf, json`: the answer is JSON, labelled so, never 406."""
    body = tmp_path / "cm.pb"
    body.write_bytes(_protobuf_configmap("from-proto"))
    status, headers, answer = _curl(
        tls_apiserver, "-X", "POST", "-H", f"Content-Type: {PROTOBUF}",
        "-H", f"Accept: {PROTOBUF}, application/json", "--data-binary", f"@{body}",
        f"{tls_apiserver.url}/api/v1/namespaces/{kns}/configmaps")
    assert status == 201, answer
    assert headers["content-type"].startswith("application/json")
    created = json.loads(answer)
    assert (created["kind"], created["metadata"]["name"], created["data"]) == \
        ("ConfigMap", "from-proto", {"k": "v"})


@pytest.mark.parametrize("payload", [b"not protobuf at all", b"k8s\x00\xff\xff\xff\xff",
                                     b"k8s\x00\x0a\x10\x0a\x02v1\x12\x0aNoSuchKind"])
def test_undecodable_protobuf_body_is_400(tls_apiserver, kns, tmp_path, payload):
    body = tmp_path / "bad.pb"
    body.write_bytes(payload)
    status, headers, answer = _curl(
        tls_apiserver, "-X", "POST", "-H", f"Content-Type: {PROTOBUF}", "--data-binary", f"@{body}",
        f"{tls_apiserver.url}/api/v1/namespaces/{kns}/configmaps")
    assert status == 400, answer
    doc = json.loads(answer)
    assert (doc["kind"], doc["status"], doc["reason"], doc["code"]) == ("Status", "Failure", "BadRequest", 400)
    assert doc["message"].startswith("error decoding the request body")
