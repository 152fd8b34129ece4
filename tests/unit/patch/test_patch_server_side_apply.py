"""Server-side apply: merge (never replace), managedFields as Kubernetes records them,
and removal of fields a manager stops applying."""

import copy

import pytest

from kubeling.patch import PatchError, apply_patch, record_update

T1, T2 = "2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z"


def applied_pod(image="nginx", labels=None, containers=None):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "labels": labels or {"app": "web"}},
            "spec": {"containers": containers or [{"name": "c", "image": image, "ports": [{"containerPort": 80}]}]}}


def entry(obj, manager, operation="Apply"):
    found = [e for e in obj["metadata"]["managedFields"] if e["manager"] == manager and e["operation"] == operation]
    assert len(found) == 1
    return found[0]


def test_create_records_an_apply_entry_shaped_like_kubernetes():
    result = apply_patch(None, applied_pod(), "Pod", "kubectl", T1)
    assert result["spec"]["containers"][0]["image"] == "nginx"
    assert result["metadata"]["managedFields"] == [{
        "manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": T1, "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:containers": {'k:{"name":"c"}': {
                ".": {}, "f:name": {}, "f:image": {},
                "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
            }}},
        },
    }]


def test_apply_merges_into_live_object_and_keeps_server_fields():
    live = apply_patch(None, applied_pod(), "Pod", "kubectl", T1)
    live["metadata"].update(uid="u1", resourceVersion="5")
    live["spec"]["containers"][0]["terminationMessagePath"] = "/dev/termination-log"
    live["spec"]["nodeName"] = "n1"
    live["status"] = {"phase": "Running"}
    before = copy.deepcopy(live)
    result = apply_patch(live, applied_pod(image="nginx:2"), "Pod", "kubectl", T2)
    assert live == before
    assert result["spec"]["containers"][0] == {"name": "c", "image": "nginx:2", "ports": [{"containerPort": 80}],
                                               "terminationMessagePath": "/dev/termination-log"}
    assert result["spec"]["nodeName"] == "n1" and result["status"] == {"phase": "Running"}
    assert result["metadata"]["uid"] == "u1"
    assert entry(result, "kubectl")["time"] == T2
    assert len(result["metadata"]["managedFields"]) == 1


def test_annotation_only_apply_by_another_manager_does_not_replace():
    live = apply_patch(None, applied_pod(), "Pod", "kubectl", T1)
    follow_up = {"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": "p", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}}}
    result = apply_patch(live, follow_up, "Pod", "kubectl-last-applied", T2)
    assert result["spec"] == live["spec"]
    assert result["metadata"]["labels"] == {"app": "web"}
    assert entry(result, "kubectl-last-applied")["fieldsV1"] == {
        "f:metadata": {"f:annotations": {"f:kubectl.kubernetes.io/last-applied-configuration": {}}}}
    assert entry(result, "kubectl")["fieldsV1"] == entry(live, "kubectl")["fieldsV1"]


def test_fields_no_longer_applied_are_removed():
    live = apply_patch(None, applied_pod(labels={"app": "web", "tier": "fe"}, containers=[
        {"name": "a", "image": "x", "args": ["1"]}, {"name": "b", "image": "y"}]), "Pod", "kubectl", T1)
    result = apply_patch(live, applied_pod(labels={"app": "web"}, containers=[{"name": "a", "image": "x"}]),
                         "Pod", "kubectl", T2)
    assert result["metadata"]["labels"] == {"app": "web"}
    assert result["spec"]["containers"] == [{"name": "a", "image": "x"}]
    assert 'k:{"name":"b"}' not in entry(result, "kubectl")["fieldsV1"]["f:spec"]["f:containers"]


def test_field_owned_by_another_manager_survives_removal():
    live = apply_patch(None, applied_pod(labels={"app": "web", "shared": "1"}), "Pod", "kubectl", T1)
    live = apply_patch(live, {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"shared": "1"}}},
                       "Pod", "other", T1)
    result = apply_patch(live, applied_pod(labels={"app": "web"}), "Pod", "kubectl", T2)
    assert result["metadata"]["labels"] == {"app": "web", "shared": "1"}


def test_changing_a_value_takes_ownership_from_other_manager():
    live = apply_patch(None, applied_pod(image="a"), "Pod", "alice", T1)
    result = apply_patch(live, {"apiVersion": "v1", "kind": "Pod", "spec": {
        "containers": [{"name": "c", "image": "b"}]}}, "Pod", "bob", T2)
    assert result["spec"]["containers"][0]["image"] == "b"
    alice = entry(result, "alice")["fieldsV1"]["f:spec"]["f:containers"]['k:{"name":"c"}']
    assert "f:image" not in alice and "f:name" in alice
    bob = entry(result, "bob")["fieldsV1"]["f:spec"]["f:containers"]['k:{"name":"c"}']
    assert "f:image" in bob


def test_finalizers_are_a_set_and_service_ports_keyed_by_port_and_protocol():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "finalizers": ["x/y"]},
           "spec": {"ports": [{"port": 80, "protocol": "UDP"}]}}
    fields = apply_patch(None, svc, "Service", "m", T1)["metadata"]["managedFields"][0]["fieldsV1"]
    assert fields["f:metadata"] == {"f:finalizers": {'v:"x/y"': {}}}
    assert fields["f:spec"]["f:ports"] == {'k:{"port":80,"protocol":"UDP"}': {".": {}, "f:port": {}, "f:protocol": {}}}


def test_applied_lists_merge_by_key_with_live_lists():
    live = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "side", "image": "s"}]}}
    result = apply_patch(live, applied_pod(), "Pod", "kubectl", T1)
    assert sorted(c["name"] for c in result["spec"]["containers"]) == ["c", "side"]


@pytest.mark.parametrize("applied,message", [
    ({"metadata": {"managedFields": [{}]}}, "managedFields must be nil"),
    ({"spec": {"$patch": "replace"}}, "not allowed"),
    (["x"], "JSON object"),
    ({"metadata": "x"}, "metadata"),
])
def test_invalid_apply_configurations(applied, message):
    with pytest.raises(PatchError, match=message):
        apply_patch(None, applied, "Pod", "m", T1)


def test_record_update_credits_changed_fields():
    old = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "1"}},
           "spec": {"nodeName": ""}}
    new = copy.deepcopy(old)
    new["metadata"]["labels"]["b"] = "2"
    new["status"] = {"phase": "Running"}
    result = record_update(old, new, "Pod", "kubelet", T1, subresource="status")
    e = entry(result, "kubelet", "Update")
    assert e["subresource"] == "status"
    assert e["fieldsV1"] == {"f:metadata": {"f:labels": {"f:b": {}}}, "f:status": {"f:phase": {}}}
    assert record_update(result, result, "Pod", "x", T2)["metadata"]["managedFields"] == [e]


def test_item_shared_with_another_manager_loses_only_unowned_fields():
    live = apply_patch(None, applied_pod(containers=[{"name": "a", "image": "x", "args": ["1"]}]),
                       "Pod", "alice", T1)
    live = apply_patch(live, {"apiVersion": "v1", "kind": "Pod", "spec": {
        "containers": [{"name": "a", "image": "x"}]}}, "Pod", "bob", T1)
    result = apply_patch(live, applied_pod(containers=[{"name": "z", "image": "q"}]), "Pod", "alice", T2)
    assert {c["name"]: c for c in result["spec"]["containers"]} == {
        "a": {"name": "a", "image": "x"}, "z": {"name": "z", "image": "q"}}
