"""Writing with kubectl: apply (client- and server-side), create, replace, edit, patch, label, annotate."""
from __future__ import annotations

import json

import pytest
import yaml

pytestmark = pytest.mark.e2e


def _get(kubectl, ns: str, what: str) -> dict:
    return json.loads(kubectl("get", what, "-n", ns, "-o", "json").stdout)


def test_client_side_apply_created_configured_unchanged(kubectl, kns, write, pod_yaml):
    path = write("pod.yaml", pod_yaml("web", labels={"app": "web"}))
    v = kubectl.validate_flags
    assert kubectl("apply", "-n", kns, *v, "-f", path).stdout.strip() == "pod/web created"
    assert kubectl("apply", "-n", kns, *v, "-f", path).stdout.strip() == "pod/web unchanged"
    doc = yaml.safe_load(pod_yaml("web", labels={"app": "web", "tier": "front"}))
    doc["spec"]["containers"][0]["image"] = "busybox:2"  # the one container field a pod may change
    path = write("pod.yaml", yaml.safe_dump(doc))
    assert kubectl("apply", "-n", kns, *v, "-f", path).stdout.strip() == "pod/web configured"
    pod = _get(kubectl, kns, "pod/web")
    assert pod["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert [(c["name"], c["image"]) for c in pod["spec"]["containers"]] == [("main", "busybox:2")]
    # The strategic merge patch kept the server-defaulted fields of the merged container.
    assert pod["spec"]["containers"][0]["terminationMessagePath"] == "/dev/termination-log"
    assert "kubectl.kubernetes.io/last-applied-configuration" in pod["metadata"]["annotations"]
    # Removing a label from the file removes it from the object (three-way merge).
    doc["metadata"]["labels"] = {"app": "web"}
    path = write("pod.yaml", yaml.safe_dump(doc))
    assert kubectl("apply", "-n", kns, *v, "-f", path).stdout.strip() == "pod/web configured"
    assert _get(kubectl, kns, "pod/web")["metadata"]["labels"] == {"app": "web"}
    assert kubectl("delete", "-n", kns, "-f", path).stdout.strip() == 'pod "web" deleted'
    assert "NotFound" in kubectl("get", "pod", "web", "-n", kns, check=False).stderr


def test_server_side_apply_creates_and_merges_with_managers(kubectl, kns, write, pod_yaml):
    first = write("cm1.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, labels: {a: '1'}}\n"
                              "data: {k1: v1}\n")
    second = write("cm2.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {k2: v2}\n")
    v = kubectl.validate_flags
    out = kubectl("apply", "--server-side", "-n", kns, *v, "-f", first).stdout.strip()
    assert out == "configmap/cfg serverside-applied"
    kubectl("apply", "--server-side", "--field-manager=other", "-n", kns, *v, "-f", second)
    cm = json.loads(kubectl("get", "cm", "cfg", "-n", kns, "-o", "json", "--show-managed-fields").stdout)
    assert cm["data"] == {"k1": "v1", "k2": "v2"}  # merged, not replaced
    managers = {m["manager"]: m for m in cm["metadata"]["managedFields"]}
    assert managers["kubectl"]["operation"] == "Apply"
    assert managers["kubectl"]["fieldsV1"]["f:data"] == {"f:k1": {}}
    assert managers["other"]["fieldsV1"]["f:data"] == {"f:k2": {}}
    # Re-applying the first manager's file without k1's label keeps what others own.
    kubectl("apply", "--server-side", "-n", kns, *v, "-f", write(
        "cm1.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {k1: new}\n"))
    cm = _get(kubectl, kns, "cm/cfg")
    assert cm["data"] == {"k1": "new", "k2": "v2"}
    assert "labels" not in cm["metadata"] or "a" not in cm["metadata"]["labels"]


def test_create_replace_label_annotate(kubectl, kns, write, pod_yaml):
    path = write("pod.yaml", pod_yaml("p1"))
    v = kubectl.validate_flags
    assert kubectl("create", "-n", kns, *v, "-f", path).stdout.strip() == "pod/p1 created"
    err = kubectl("create", "-n", kns, *v, "-f", path, check=False)
    assert err.returncode == 1
    assert 'Error from server (AlreadyExists): error when creating "' in err.stderr
    assert 'pods "p1" already exists' in err.stderr
    assert kubectl("label", "pod", "p1", "tier=db", "-n", kns).stdout.strip() == "pod/p1 labeled"
    annotated = kubectl("annotate", "pod", "p1", "note=hello", "-n", kns).stdout.strip()
    assert annotated == ("pod/p1 annotate" if kubectl.version == "1.27" else "pod/p1 annotated")  # 1.27's wording
    out = kubectl("get", "pods", "-n", kns, "--show-labels").stdout.splitlines()
    assert out[1].split()[-1] == "app=p1,tier=db"
    current = kubectl("get", "pod", "p1", "-n", kns, "-o", "yaml").stdout
    changed = current.replace("tier: db", "tier: cache")
    assert kubectl("replace", "-n", kns, *v, "-f", write("cur.yaml", changed)).stdout.strip() == "pod/p1 replaced"
    # The file still carries the old resourceVersion: a second replace is a conflict.
    err = kubectl("replace", "-n", kns, *v, "-f", write("cur.yaml", changed), check=False)
    assert "Error from server (Conflict)" in err.stderr
    assert ('Operation cannot be fulfilled on pods "p1": the object has been modified; please apply your '
            'changes to the latest version and try again') in err.stderr
    pod = _get(kubectl, kns, "pod/p1")
    assert pod["metadata"]["labels"]["tier"] == "cache"
    assert pod["metadata"]["annotations"]["note"] == "hello"


def test_edit_with_an_editor(kubectl, kns, write, pod_yaml):
    kubectl("create", "-n", kns, *kubectl.validate_flags, "-f", write("pod.yaml", pod_yaml("ed")))
    out = kubectl("edit", "pod", "ed", "-n", kns, *kubectl.validate_flags, env={"EDITOR": "sed -i s/app:\\ ed/app:\\ edited/"})
    assert out.stdout.strip() == "pod/ed edited"
    assert _get(kubectl, kns, "pod/ed")["metadata"]["labels"]["app"] == "edited"


@pytest.mark.parametrize("kind,patch,expect", [
    ("strategic", '{"spec":{"containers":[{"name":"main","image":"busybox:2"}]}}', "busybox:2"),
    ("merge", '{"metadata":{"labels":{"m":"1"}}}', "busybox"),
    ("json", '[{"op":"replace","path":"/spec/containers/0/image","value":"busybox:3"}]', "busybox:3"),
])
def test_patch_types(kubectl, kns, write, pod_yaml, kind, patch, expect):
    kubectl("create", "-n", kns, *kubectl.validate_flags, "-f", write("pod.yaml", pod_yaml("pt")))
    out = kubectl("patch", "pod", "pt", "-n", kns, "--type", kind, "-p", patch).stdout.strip()
    assert out == "pod/pt patched"
    pod = _get(kubectl, kns, "pod/pt")
    assert [c["image"] for c in pod["spec"]["containers"]] == [expect]  # merged by name, not appended
    if kind == "merge":
        assert pod["metadata"]["labels"] == {"app": "pt", "m": "1"}
