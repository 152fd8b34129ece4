"""The real kubectl prints our Tables exactly as render_table does.

A throwaway HTTP server on a free port answers discovery and serves Tables
built by to_table; kubectl's stdout is then compared byte for byte.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kubeling.printers import render_table, to_table
from kubeling.resources import RESOURCES, lookup
from kubeling.timefmt import format_time

KUBECTL = next((p for p in ("/usr/lib/google-cloud-sdk/bin/kubectl.1.33", "/usr/bin/kubectl")
                if Path(p).exists()), None) or shutil.which("kubectl")


def _objects(now: datetime) -> dict[str, list[dict]]:
    def m(name, ns="default", age=timedelta(minutes=5), **extra):
        d = {"name": name, "uid": f"u-{name}", "resourceVersion": "5",
             "creationTimestamp": format_time(now - age)}
        if ns:
            d["namespace"] = ns
        d.update(extra)
        return d

    running = {"running": {"startedAt": format_time(now - timedelta(minutes=4))}}
    return {
        "pods": [
            {"metadata": m("web-7d9f", labels={"app": "web"}),
             "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]},
             "status": {"phase": "Running", "podIPs": [{"ip": "10.244.0.5"}],
                        "containerStatuses": [{"name": "c", "ready": True, "restartCount": 5,
                                               "state": running, "lastState": {"terminated": {
                                                   "exitCode": 1, "finishedAt": format_time(
                                                       now - timedelta(minutes=2))}}}]}},
            {"metadata": m("x", ns="kube-system", age=timedelta(days=3)),
             "spec": {"containers": [{"name": "c", "image": "busybox"}]},
             "status": {"phase": "Pending"}},
        ],
        "services": [
            {"metadata": m("kubernetes"), "spec": {
                "type": "ClusterIP", "clusterIPs": ["10.96.0.1"],
                "ports": [{"port": 443, "protocol": "TCP"}]}},
            {"metadata": m("web-public"), "spec": {
                "type": "LoadBalancer", "clusterIPs": ["10.96.12.7"], "selector": {"app": "web"},
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}},
        ],
        "nodes": [
            {"metadata": m("node-1", ns=None, age=timedelta(days=40),
                           labels={"node-role.kubernetes.io/control-plane": ""}),
             "spec": {"unschedulable": True},
             "status": {"conditions": [{"type": "Ready", "status": "True"}],
                        "addresses": [{"type": "InternalIP", "address": "192.168.56.10"}],
                        "nodeInfo": {"kubeletVersion": "v1.30.0", "osImage": "Debian 12",
                                     "kernelVersion": "6.1.0",
                                     "containerRuntimeVersion": "docker://20.10.24"}}},
        ],
        "events": [
            {"metadata": m("web-7d9f.1"), "type": "Warning", "reason": "BackOff",
             "involvedObject": {"kind": "Pod", "name": "web-7d9f", "namespace": "default"},
             "message": "Back-off restarting failed container",
             "source": {"component": "kubelet", "host": "node-1"}, "count": 12,
             "firstTimestamp": format_time(now - timedelta(minutes=9)),
             "lastTimestamp": format_time(now - timedelta(seconds=30))},
        ],
        "configmaps": [{"metadata": m("settings"), "data": {"a": "1"}}],
    }


class _Stub(BaseHTTPRequestHandler):
    objects: dict[str, list[dict]] = {}

    def log_message(self, *args):  # keep test output clean
        pass

    def _json(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - http.server's naming
        path = self.path.split("?")[0]
        if path == "/api":
            return self._json({"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            return self._json({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        if path == "/api/v1":
            return self._json({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": r.plural, "singularName": r.singular_name, "kind": r.kind,
                 "namespaced": r.namespaced, "shortNames": list(r.short_names),
                 "verbs": list(r.verbs)} for r in RESOURCES if r.group == ""]})
        parts = path.strip("/").split("/")
        plural = parts[-1]
        if plural not in self.objects:
            self.send_response(404)
            self.end_headers()
            return
        items = self.objects[plural]
        if len(parts) >= 5 and parts[2] == "namespaces":
            items = [o for o in items if o["metadata"].get("namespace") == parts[3]]
        self._json(to_table(lookup(plural), items, list_meta={"resourceVersion": "99"}))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _Stub.objects = _objects(datetime.now(timezone.utc))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    home = tmp_path_factory.mktemp("kubectl-home")
    yield f"http://127.0.0.1:{httpd.server_address[1]}", home
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)
    assert not thread.is_alive()


def kubectl(server, *args: str) -> str:
    url, home = server
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", ""), "KUBECONFIG": "/dev/null"}
    done = subprocess.run([KUBECTL, "--server", url, "--cache-dir", str(home / "cache"), *args],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("plural,args,options", [
    ("pods", [], {}),
    ("pods", ["-o", "wide"], {"wide": True}),
    ("pods", ["-A"], {"with_namespace": True}),
    ("pods", ["-A", "-o", "wide", "--show-labels"],
     {"with_namespace": True, "wide": True, "show_labels": True}),
    ("pods", ["--no-headers"], {"no_headers": True}),
    ("services", ["-o", "wide"], {"wide": True}),
    ("nodes", ["-o", "wide"], {"wide": True}),
    ("events", [], {}),
    ("events", ["-o", "wide"], {"wide": True}),
    ("configmaps", ["--show-labels"], {"show_labels": True}),
])
def test_kubectl_prints_what_render_table_prints(server, plural, args, options):
    out = kubectl(server, "get", plural, *args)
    items = _Stub.objects[plural]
    if "-A" not in args and lookup(plural).namespaced:
        items = [o for o in items if o["metadata"].get("namespace") == "default"]
    # Both sides compute ages at nearly the same moment; a second boundary is
    # crossed rarely, and then the ages differ by one step, so retry once.
    expected = render_table(to_table(lookup(plural), items), **options)
    if out != expected:
        out = kubectl(server, "get", plural, *args)
        expected = render_table(to_table(lookup(plural), items), **options)
    assert out == expected


def test_kubectl_multi_kind_listing_shares_one_writer(server):
    from kubeling.printers import TableWriter

    out = kubectl(server, "get", "services,configmaps")

    def expected() -> str:
        writer = TableWriter()
        tables = [(p, to_table(lookup(p), _Stub.objects[p])) for p in ("services", "configmaps")]
        # kubectl separates kinds with an empty line; that is the CLI's part.
        return "\n".join(writer.write(t, with_kind=lookup(p).singular_name) for p, t in tables)

    want = expected()
    if out != want:  # an age crossed a second boundary between the two reads
        out, want = kubectl(server, "get", "services,configmaps"), expected()
    assert out == want
    assert "configmap/settings" in out
