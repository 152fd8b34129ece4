"""The `kubeling` CLI through a real apiserver: apply, get, delete, errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from tests.conftest import REPO


def kubeling(apiserver, *args: str, stdin: str | None = None, check: bool = True):
    env = {**os.environ, "KUBECONFIG": str(apiserver.kubeconfig)}
    proc = subprocess.run([sys.executable, "-m", "kubeling", *args], input=stdin, capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubeling {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def manifest(ns: str, image: str = "busybox:latest", extra_env: str = "") -> str:
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata:
          name: web
          namespace: {ns}
          labels: {{app: web}}
        spec:
          containers:
          - name: app
            image: {image}
            command: ["httpd", "-f", "-p", "8080"]
            env:
            - name: A
              value: "1"{extra_env}
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: web
          namespace: {ns}
        spec:
          selector: {{app: web}}
          ports:
          - port: 80
            targetPort: 8080
        """)


def test_apply_creates_then_unchanged_then_configured(apiserver, namespace, tmp_path):
    f = tmp_path / "app.yaml"
    f.write_text(manifest(namespace))
    out = kubeling(apiserver, "apply", "-f", str(f)).stdout
    assert out.splitlines() == ["pod/web created", "service/web created"]
    kv = apiserver.etcd.get_json(f"/registry/pods/{namespace}/web")
    assert kv is not None
    out = kubeling(apiserver, "apply", "-f", str(f)).stdout
    assert out.splitlines() == ["pod/web unchanged", "service/web unchanged"]
    f.write_text(manifest(namespace, image="busybox:2"))
    out = kubeling(apiserver, "apply", "-f", str(f)).stdout
    assert out.splitlines() == ["pod/web configured", "service/web unchanged"]
    got = json.loads(kubeling(apiserver, "get", "pod", "web", "-n", namespace, "-o", "json").stdout)
    assert got["spec"]["containers"][0]["image"] == "busybox:2"
    last = json.loads(got["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last["spec"]["containers"][0]["image"] == "busybox:2"


def test_apply_directory_and_stdin(apiserver, namespace, tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    (d / "a.yaml").write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a, namespace: {namespace}}}\n")
    (d / "b.json").write_text(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": "b", "namespace": namespace}}))
    (d / "notes.txt").write_text("ignored")
    out = kubeling(apiserver, "apply", "-f", str(d)).stdout
    assert sorted(out.splitlines()) == ["configmap/a created", "configmap/b created"]
    out = kubeling(apiserver, "apply", "-n", namespace, "-f", "-",
                   stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n").stdout
    assert out.strip() == "configmap/c created"


def test_get_prints_kubectl_like_tables(apiserver, namespace, tmp_path):
    f = tmp_path / "app.yaml"
    f.write_text(manifest(namespace))
    kubeling(apiserver, "apply", "-f", str(f))
    out = kubeling(apiserver, "get", "pods", "-n", namespace).stdout.splitlines()
    assert out[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert out[1].split()[:4] == ["web", "0/1", "Pending", "0"]
    wide = kubeling(apiserver, "get", "po", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    svc = kubeling(apiserver, "get", "svc", "-n", namespace).stdout.splitlines()
    assert svc[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    cells = svc[1].split()
    assert cells[0] == "web" and cells[1] == "ClusterIP" and cells[2].startswith("10.") and cells[4] == "80/TCP"
    allns = kubeling(apiserver, "get", "pods", "-A").stdout.splitlines()
    assert allns[0].split()[0] == "NAMESPACE"
    assert any(line.split()[:2] == [namespace, "web"] for line in allns[1:])
    labelled = kubeling(apiserver, "get", "pods", "-n", namespace, "-l", "app=other")
    assert labelled.stdout == "" and "No resources found" in labelled.stderr
    y = yaml.safe_load(kubeling(apiserver, "get", "svc", "web", "-n", namespace, "-o", "yaml").stdout)
    assert y["kind"] == "Service" and y["spec"]["ports"][0]["targetPort"] == 8080
    names = kubeling(apiserver, "get", "pods", "-n", namespace, "-o", "name").stdout.split()
    assert names == ["pod/web"]


def test_delete_by_file_and_by_name(apiserver, namespace, tmp_path):
    f = tmp_path / "app.yaml"
    f.write_text(manifest(namespace))
    kubeling(apiserver, "apply", "-f", str(f))
    out = kubeling(apiserver, "delete", "-f", str(f)).stdout
    assert out.splitlines() == ['pod "web" deleted', 'service "web" deleted']
    assert apiserver.etcd.get_json(f"/registry/pods/{namespace}/web") is None
    assert apiserver.etcd.get_json(f"/registry/services/{namespace}/web") is None
    kubeling(apiserver, "apply", "-f", str(f))
    out = kubeling(apiserver, "delete", "pod", "web", "-n", namespace).stdout
    assert out.strip() == 'pod "web" deleted'


def test_errors_are_one_line_and_non_zero(apiserver, namespace, tmp_path):
    p = kubeling(apiserver, "get", "pod", "missing", "-n", namespace, check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == 'Error from server (NotFound): pods "missing" not found'
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"apiVersion: v1\nkind: Pod\nmetadata: {{name: bad, namespace: {namespace}}}\n"
                   "spec:\n  containers:\n  - name: c\n")
    p = kubeling(apiserver, "apply", "-f", str(bad), check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == 'The Pod "bad" is invalid: spec.containers[0].image: Required value'
    assert apiserver.etcd.get_json(f"/registry/pods/{namespace}/bad") is None
    p = kubeling(apiserver, "get", "widgets", check=False)
    assert p.returncode == 1 and 'doesn\'t have a resource type "widgets"' in p.stderr
    p = kubeling(apiserver, "apply", "-f", str(tmp_path / "nope.yaml"), check=False)
    assert p.returncode == 1 and "does not exist" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    junk = tmp_path / "junk.yaml"
    junk.write_text("kind: [unclosed\n")
    p = kubeling(apiserver, "apply", "-f", str(junk), check=False)
    assert p.returncode == 1 and p.stderr.startswith("error: error parsing")
    p = kubeling(apiserver, "delete", "pod", "ghost", "-n", namespace, check=False)
    assert p.returncode == 1 and 'pods "ghost" not found' in p.stderr


def test_get_watch_prints_changes(apiserver, namespace):
    import queue
    import threading
    env = {**os.environ, "KUBECONFIG": str(apiserver.kubeconfig)}
    kubeling(apiserver, "apply", "-n", namespace, "-f", "-",
             stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: listed}\n")
    watcher = subprocess.Popen([sys.executable, "-m", "kubeling", "get", "cm", "-n", namespace, "-w"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    # A reader thread, so that every wait for a line is bounded (a bare readline() blocks forever).
    out: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [out.put(line) for line in watcher.stdout], daemon=True).start()
    lines: list[str] = []

    def until(name: str) -> None:
        import time
        deadline = time.monotonic() + 15
        while not any(line.split()[:1] == [name] for line in lines):
            left = deadline - time.monotonic()
            assert left > 0, f"no row {name!r} within 15 s: {lines}"
            try:
                lines.append(out.get(timeout=left))
            except queue.Empty:
                pass
    try:
        # The listed row is printed once the list is done; the watch goes on from the list's
        # resourceVersion, so what is created after it is seen however late the watch starts.
        until("listed")
        kubeling(apiserver, "apply", "-n", namespace, "-f", "-",
                 stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched}\n")
        until("watched")
        assert lines[0].split()[0] == "NAME"
    finally:
        watcher.terminate()
        watcher.wait(5)


@pytest.mark.parametrize("args", [("apply",), ("get",), ("delete", "pod")])
def test_usage_errors_exit_non_zero(apiserver, args):
    assert kubeling(apiserver, *args, check=False).returncode != 0
