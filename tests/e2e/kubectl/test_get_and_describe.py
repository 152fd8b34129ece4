"""Reading with kubectl: tables, output formats, selectors, watch, describe, delete, errors."""
from __future__ import annotations

import json
import queue
import re
import threading
import time

import pytest

pytestmark = pytest.mark.e2e

SERVICE = """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: a}
  ports: [{port: 80, targetPort: 8080}]
"""


def _node(name: str) -> str:
    return f"""apiVersion: v1
kind: Node
metadata: {{name: {name}, labels: {{node-role.kubernetes.io/worker: ""}}}}
status:
  conditions:
  - {{type: Ready, status: "True", reason: KubeletReady, message: kubelet is posting ready status,
     lastHeartbeatTime: "2026-01-01T00:00:00Z", lastTransitionTime: "2026-01-01T00:00:00Z"}}
  addresses: [{{type: InternalIP, address: 10.99.0.7}}]
  nodeInfo: {{kubeletVersion: v1.33.0-kubeling, kernelVersion: "6.1", osImage: Debian GNU/Linux 12,
             containerRuntimeVersion: "docker://20.10", architecture: amd64, operatingSystem: linux,
             bootID: "", machineID: "", systemUUID: "", kubeProxyVersion: ""}}
"""


def _line(text: str, *cells: str) -> bool:
    """A line holding these cells separated by any run of spaces (column widths vary by version)."""
    pattern = r"^\s*" + r"\s+".join(c if c.startswith("\\") else re.escape(c) for c in cells) + r"\s*$"
    return re.search(pattern, text, re.M) is not None


def _rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def test_get_formats_and_selectors(kubectl, kns, write, pod_yaml):
    v = kubectl.validate_flags
    kubectl("create", "-n", kns, *v, "-f", write("a.yaml", pod_yaml("a1", labels={"app": "a"})))
    kubectl("create", "-n", kns, *v, "-f", write("b.yaml", pod_yaml("b1", labels={"app": "b"})))
    kubectl("create", "-n", kns, *v, "-f", write("svc.yaml", SERVICE))
    rows = _rows(kubectl("get", "pods", "-n", kns).stdout)
    assert rows[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [r[:4] for r in rows[1:]] == [["a1", "0/1", "Pending", "0"], ["b1", "0/1", "Pending", "0"]]
    wide = _rows(kubectl("get", "pods", "-n", kns, "-o", "wide").stdout)
    assert wide[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE",
                       "READINESS", "GATES"]
    assert wide[1][5:7] == ["<none>", "<none>"]
    assert kubectl("get", "pods", "-n", kns, "-l", "app=b", "-o", "name").stdout.split() == ["pod/b1"]
    assert kubectl("get", "pods", "-n", kns, "--field-selector", "metadata.name=a1",
                   "-o", "name").stdout.split() == ["pod/a1"]
    out = kubectl("get", "pods", "-n", kns, "-o", "jsonpath={.items[*].metadata.name}").stdout
    assert out == "a1 b1"
    assert json.loads(kubectl("get", "pod", "a1", "-n", kns, "-o", "json").stdout)["kind"] == "Pod"
    assert "kind: Pod\n" in kubectl("get", "pod", "a1", "-n", kns, "-o", "yaml").stdout
    all_ns = _rows(kubectl("get", "pods", "-A", "-l", "app=a").stdout)
    assert all_ns[0][:2] == ["NAMESPACE", "NAME"]
    assert [kns, "a1"] in [r[:2] for r in all_ns[1:]]
    svc = _rows(kubectl("get", "svc", "-n", kns).stdout)
    assert svc[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert svc[1][0:2] == ["web", "ClusterIP"] and svc[1][3:5] == ["<none>", "80/TCP"]
    both = kubectl("get", "pods,svc", "-n", kns).stdout
    assert "pod/a1" in both and "service/web" in both  # multi-kind tables name rows kind/name


def test_describe_with_events_and_nodes(kubectl, kns, write, pod_yaml, unique_name):
    v = kubectl.validate_flags
    kubectl("create", "-n", kns, *v, "-f", write("pod.yaml", pod_yaml("d1")))
    kubectl("create", "-n", kns, *v, "-f", write("svc.yaml", SERVICE))
    uid = kubectl("get", "pod", "d1", "-n", kns, "-o", "jsonpath={.metadata.uid}").stdout
    event = f"""apiVersion: v1
kind: Event
metadata: {{name: d1.1}}
involvedObject: {{apiVersion: v1, kind: Pod, name: d1, namespace: {kns}, uid: {uid}}}
reason: Scheduled
message: Successfully assigned {kns}/d1 to node-x
type: Normal
source: {{component: default-scheduler}}
firstTimestamp: "2026-01-01T00:00:00Z"
lastTimestamp: "2026-01-01T00:00:00Z"
count: 1
"""
    kubectl("create", "-n", kns, *v, "-f", write("ev.yaml", event))
    out = kubectl("describe", "pod", "d1", "-n", kns).stdout
    assert _line(out, "Name:", "d1") and _line(out, "Status:", "Pending")
    assert re.search(r"^Events:\n\s+Type\s+Reason\s+Age\s+From\s+Message$", out, re.M)
    assert _line(out, "Normal", "Scheduled", r"\S+", "default-scheduler", f"Successfully assigned {kns}/d1 to node-x")
    out = kubectl("describe", "svc", "web", "-n", kns).stdout
    assert _line(out, "Selector:", "app=a") and _line(out, "TargetPort:", "8080/TCP")
    events = _rows(kubectl("get", "events", "-n", kns).stdout)
    assert events[0][:4] == ["LAST", "SEEN", "TYPE", "REASON"]
    node = f"{unique_name}-node"
    kubectl("create", *v, "-f", write("node.yaml", _node(node)))
    try:
        rows = _rows(kubectl("get", "node", node).stdout)
        assert rows[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
        assert rows[1][:3] == [node, "Ready", "worker"] and rows[1][4] == "v1.33.0-kubeling"
        out = kubectl("describe", "node", node).stdout
        assert _line(out, "Roles:", "worker") and _line(out, "InternalIP:", "10.99.0.7")
        assert _line(out, "Kubelet Version:", "v1.33.0-kubeling")
    finally:
        assert kubectl("delete", "node", node).stdout.strip() == f'node "{node}" deleted'
    assert "NotFound" in kubectl("get", "node", node, check=False).stderr


def test_watch_prints_rows_and_delete_waits(kubectl, kns, write, pod_yaml):
    v = kubectl.validate_flags
    kubectl("create", "-n", kns, *v, "-f", write("w0.yaml", pod_yaml("w0")))
    watcher = kubectl.popen("get", "pods", "-n", kns, "-w")
    # A reader thread, so that waiting for a row is bounded and needs no guessed sleep.
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in watcher.stdout], daemon=True).start()
    got: list[str] = []

    def until(done, what: str) -> None:
        deadline = time.monotonic() + 30
        while not done([line.split()[:1] for line in got]):
            left = deadline - time.monotonic()
            assert left > 0, f"kubectl get -w printed no {what} within 30 s: {got}"
            try:
                got.append(lines.get(timeout=left))
            except queue.Empty:
                pass
    try:
        # w0's row ends the initial list; the watch then goes on from the list's resourceVersion.
        until(lambda firsts: ["w0"] in firsts, "row of the initial list")
        kubectl("create", "-n", kns, *v, "-f", write("w1.yaml", pod_yaml("w1")))
        kubectl("label", "pod", "w0", "seen=yes", "-n", kns)
        # Unscheduled pods have no grace period: delete returns once the watch saw them go.
        assert kubectl("delete", "pod", "w1", "-n", kns).stdout.strip() == 'pod "w1" deleted'
        assert kubectl("delete", "-n", kns, "-f", write("w0.yaml", pod_yaml("w0"))).stdout.strip() \
            == 'pod "w0" deleted'
        until(lambda firsts: firsts.count(["w0"]) >= 3 and ["w1"] in firsts, "rows of the changes")
    finally:
        watcher.terminate()
        watcher.wait(10)
    rows = _rows("".join(got))
    assert rows[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    names = [r[0] for r in rows[1:]]
    assert names[0] == "w0" and "w1" in names
    assert names.count("w0") >= 3  # listed, labeled, deleted
    assert all(r[1:3] == ["0/1", "Pending"] for r in rows[1:])
    assert kubectl("get", "pods", "-n", kns, "-o", "name").stdout == ""


def test_errors_in_kubectl_words(kubectl, kns, write):
    err = kubectl("get", "pod", "nope", "-n", kns, check=False)
    assert err.returncode == 1 and err.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'
    bad = "apiVersion: v1\nkind: Pod\nmetadata: {name: inv}\nspec:\n  containers: [{name: c}]\n"
    err = kubectl("create", "-n", kns, *kubectl.validate_flags, "-f", write("inv.yaml", bad), check=False)
    assert err.returncode == 1
    assert err.stderr.strip() == 'The Pod "inv" is invalid: spec.containers[0].image: Required value'
    err = kubectl("delete", "svc", "nope", "-n", kns, check=False)
    assert err.stderr.strip() == 'Error from server (NotFound): services "nope" not found'
