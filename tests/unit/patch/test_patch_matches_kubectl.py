"""Golden check: the three-way patch we compute is byte-for-byte the one real kubectl
sends for `kubectl apply` (kubectl talks to a tiny in-process HTTP server that serves
discovery and the live pod and records the PATCH body)."""

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from kubeling.patch import create_three_way_merge_patch, last_applied_configuration, with_last_applied_annotation
from kubeling.patch.strategic_merge import _go_json

KUBECTLS = ["/usr/bin/kubectl", "/usr/lib/google-cloud-sdk/bin/kubectl.1.27"]  # on every machine here; missing = failure
RESOURCES = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": [
    {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "shortNames": ["po"],
     "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}]}


def pod(containers, spec=None, **meta):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default", **meta},
            "spec": {"containers": containers, **(spec or {})}}


CASES = {
    "image": (pod([{"name": "c", "image": "old"}]), pod([{"name": "c", "image": "new"}])),
    "drop-container": (pod([{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]),
                       pod([{"name": "a", "image": "i"}])),
    "env": (pod([{"name": "c", "image": "i", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]),
            pod([{"name": "c", "image": "i", "env": [{"name": "B", "value": "3"}]}])),
    "reorder": (pod([{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]),
                pod([{"name": "b", "image": "i"}, {"name": "a", "image": "i"}])),
    "finalizers-labels": (pod([{"name": "c", "image": "i"}], finalizers=["x/a", "x/b"], labels={"app": "x", "t": "y"}),
                          pod([{"name": "c", "image": "i"}], finalizers=["x/b", "x/c"], labels={"app": "x"})),
    "volume-retain-keys": (pod([{"name": "c", "image": "i"}], {"volumes": [{"name": "v", "hostPath": {"path": "/d"}}]}),
                           pod([{"name": "c", "image": "i"}], {"volumes": [{"name": "v", "emptyDir": {}}]})),
    "ports-args-html": (pod([{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}], annotations={"x": "a&<b>"}),
                        pod([{"name": "c", "image": "i", "ports": [{"containerPort": 81}, {"containerPort": 80, "name": "h"}],
                             "args": ["1", "2"]}], annotations={"x": "a&<b>"})),
}


def live_object(old):
    live = with_last_applied_annotation(old)
    live["metadata"].update(uid="u", resourceVersion="3")
    for c in live["spec"]["containers"]:
        c.update(terminationMessagePath="/dev/termination-log", resources={})
    live["status"] = {"phase": "Pending"}
    return live


def kubectl_patch(kubectl, live, new, tmp_path):
    captured = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            answers = {"/api": {"kind": "APIVersions", "versions": ["v1"]},
                       "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
                       "/api/v1": RESOURCES, "/api/v1/namespaces/default/pods/p": live}
            path = self.path.split("?")[0]
            if path in answers:
                self.reply(200, answers[path])
            else:
                self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                                 "reason": "NotFound", "message": "not found"})

        def do_PATCH(self):
            captured["content_type"] = self.headers["Content-Type"]
            captured["body"] = self.rfile.read(int(self.headers["Content-Length"])).decode()
            self.reply(200, live)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        (tmp_path / "kubeconfig").write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{server.server_address[1]}"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "default"}}],
            "users": [{"name": "u", "user": {}}]}))
        (tmp_path / "pod.yaml").write_text(yaml.safe_dump(new))
        run = subprocess.run([kubectl, "--kubeconfig", str(tmp_path / "kubeconfig"), "--cache-dir",
                              str(tmp_path / "cache"), "apply", "--validate=false", "-f", str(tmp_path / "pod.yaml")],
                             capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert run.returncode == 0, run.stderr
    return captured, run.stdout


@pytest.mark.parametrize("kubectl", KUBECTLS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_three_way_patch_is_byte_identical_to_kubectl(kubectl, case, tmp_path):
    old, new = CASES[case]
    live = live_object(old)
    ours = create_three_way_merge_patch(last_applied_configuration(live), with_last_applied_annotation(new), live, "Pod")
    captured, stdout = kubectl_patch(kubectl, live, new, tmp_path)
    assert stdout.strip() == "pod/p configured"
    assert captured["content_type"] == "application/strategic-merge-patch+json"
    assert captured["body"] == _go_json(ours)


def test_unchanged_file_sends_nothing_like_kubectl(tmp_path):
    old = pod([{"name": "c", "image": "i"}])
    live = live_object(old)
    assert create_three_way_merge_patch(last_applied_configuration(live), with_last_applied_annotation(old),
                                        live, "Pod") == {}
    captured, stdout = kubectl_patch(KUBECTLS[0], live, old, tmp_path)
    assert stdout.strip() == "pod/p unchanged" and "body" not in captured
