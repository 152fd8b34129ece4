"""Strategic merge patch applied server side: merge keys, strategies and directives,
with cases modelled on Kubernetes' documentation ("Update API objects in place using
kubectl patch") and apimachinery's strategicpatch tests."""

import copy

import pytest

from kubeling.patch import PatchError, apply_strategic_merge_patch as smp


def pod(**spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


def test_containers_merge_by_name_like_the_docs_example():
    original = pod(containers=[{"name": "patch-demo-ctr", "image": "nginx"}])
    patch = {"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}}
    result = smp(original, patch, "Pod")
    assert result["spec"]["containers"] == [
        {"name": "patch-demo-ctr-2", "image": "redis"},
        {"name": "patch-demo-ctr", "image": "nginx"},
    ]


def test_patched_container_keeps_its_other_fields():
    original = pod(containers=[{"name": "c", "image": "old", "imagePullPolicy": "Always"}])
    result = smp(original, {"spec": {"containers": [{"name": "c", "image": "new"}]}}, "Pod")
    assert result["spec"]["containers"] == [{"name": "c", "image": "new", "imagePullPolicy": "Always"}]


def test_tolerations_have_no_strategy_and_are_replaced_like_the_docs_say():
    original = pod(tolerations=[{"effect": "NoSchedule", "key": "dedicated", "value": "test-team"}])
    patch = {"spec": {"tolerations": [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]}}
    assert smp(original, patch, "Pod")["spec"]["tolerations"] == [
        {"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]


def test_nested_merge_keys_ports_env_volume_mounts():
    original = pod(containers=[{
        "name": "c",
        "ports": [{"containerPort": 80, "name": "http"}],
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        "volumeMounts": [{"name": "v", "mountPath": "/a"}],
    }])
    patch = {"spec": {"containers": [{
        "name": "c",
        "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}],
        "env": [{"name": "B", "value": "3"}],
        "volumeMounts": [{"name": "w", "mountPath": "/a", "readOnly": True}],
    }]}}
    c = smp(original, patch, "Pod")["spec"]["containers"][0]
    assert c["ports"] == [{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 443}]
    assert c["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]
    assert c["volumeMounts"] == [{"name": "w", "mountPath": "/a", "readOnly": True}]


def test_service_ports_merge_by_port():
    svc = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}
    result = smp(svc, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}, "Service")
    assert result["spec"]["ports"] == [{"port": 80, "targetPort": 9090}, {"port": 443}]


def test_status_conditions_merge_by_type():
    original = {"status": {"conditions": [{"type": "Ready", "status": "False"},
                                          {"type": "PodScheduled", "status": "True"}]}}
    patch = {"status": {"conditions": [{"type": "Ready", "status": "True"}], "podIP": "10.0.0.5"}}
    result = smp(original, patch, "Pod")
    assert result["status"] == {"conditions": [{"type": "Ready", "status": "True"},
                                               {"type": "PodScheduled", "status": "True"}],
                                "podIP": "10.0.0.5"}


def test_node_addresses_merge_by_type():
    node = {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}
    patch = {"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}}
    assert [a["type"] for a in smp(node, patch, "Node")["status"]["addresses"]] == ["Hostname", "InternalIP"]


def test_null_deletes_a_key_and_unmatched_null_is_ignored():
    original = {"metadata": {"labels": {"a": "1", "b": "2"}}}
    result = smp(original, {"metadata": {"labels": {"a": None, "zz": None}}}, "ConfigMap")
    assert result == {"metadata": {"labels": {"b": "2"}}}


def test_lists_without_merge_key_are_replaced():
    cm = {"spec": {}, "subsets": [{"addresses": [{"ip": "1.1.1.1"}]}]}
    result = smp(cm, {"subsets": [{"addresses": [{"ip": "2.2.2.2"}]}]}, "Endpoints")
    assert result["subsets"] == [{"addresses": [{"ip": "2.2.2.2"}]}]


def test_primitive_list_with_merge_strategy_is_a_union():
    original = {"metadata": {"finalizers": ["a", "b"]}}
    result = smp(original, {"metadata": {"finalizers": ["c", "a"]}}, "Pod")
    assert result["metadata"]["finalizers"] == ["c", "a", "b"]


def test_primitive_list_without_strategy_is_replaced():
    original = pod(containers=[{"name": "c", "args": ["a", "b"]}])
    result = smp(original, {"spec": {"containers": [{"name": "c", "args": ["x"]}]}}, "Pod")
    assert result["spec"]["containers"][0]["args"] == ["x"]


def test_delete_from_primitive_list():
    original = {"metadata": {"finalizers": ["a", "b", "c"]}}
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]}}
    assert smp(original, patch, "Pod")["metadata"]["finalizers"] == ["a", "c"]


def test_delete_from_absent_primitive_list_is_a_no_op():
    assert smp({"metadata": {}}, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}, "Pod") == {
        "metadata": {}}


def test_patch_delete_element_in_list():
    original = pod(containers=[{"name": "a"}, {"name": "b"}])
    patch = {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}
    assert smp(original, patch, "Pod")["spec"]["containers"] == [{"name": "b"}]


def test_patch_replace_list():
    original = pod(containers=[{"name": "a", "image": "x"}, {"name": "b"}])
    patch = {"spec": {"containers": [{"name": "c", "image": "y"}, {"$patch": "replace"}]}}
    assert smp(original, patch, "Pod")["spec"]["containers"] == [{"name": "c", "image": "y"}]


def test_patch_replace_map():
    original = {"metadata": {"labels": {"a": "1", "b": "2"}}}
    patch = {"metadata": {"labels": {"$patch": "replace", "c": "3"}}}
    assert smp(original, patch, "Pod")["metadata"]["labels"] == {"c": "3"}


def test_patch_delete_map():
    original = pod(containers=[{"name": "a"}], securityContext={"runAsUser": 1})
    patch = {"spec": {"securityContext": {"$patch": "delete"}}}
    assert smp(original, patch, "Pod")["spec"] == {"containers": [{"name": "a"}], "securityContext": {}}


def test_patch_merge_is_the_default_behaviour():
    original = {"metadata": {"labels": {"a": "1"}}}
    patch = {"metadata": {"labels": {"$patch": "merge", "b": "2"}}}
    assert smp(original, patch, "Pod")["metadata"]["labels"] == {"a": "1", "b": "2"}


def test_unknown_patch_directive_is_an_error():
    with pytest.raises(PatchError, match="unknown patch type"):
        smp({"metadata": {}}, {"metadata": {"$patch": "explode"}}, "Pod")


def test_set_element_order_reorders_merged_list():
    original = pod(containers=[{"name": "a"}, {"name": "b"}, {"name": "c"}])
    patch = {"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}],
                      "containers": [{"name": "a", "image": "new"}]}}
    result = smp(original, patch, "Pod")["spec"]["containers"]
    assert result == [{"name": "c"}, {"name": "a", "image": "new"}, {"name": "b"}]


def test_set_element_order_keeps_server_only_items_in_place():
    # "b" exists only on the server: it stays after "a" where the live order put it.
    original = pod(containers=[{"name": "a"}, {"name": "b"}, {"name": "c"}])
    patch = {"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "c"}],
                      "containers": [{"name": "c", "image": "i"}]}}
    result = [c["name"] for c in smp(original, patch, "Pod")["spec"]["containers"]]
    assert result == ["a", "b", "c"]


def test_set_element_order_for_primitive_list():
    original = {"metadata": {"finalizers": ["a", "b", "c"]}}
    patch = {"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"]}}
    assert smp(original, patch, "Pod")["metadata"]["finalizers"] == ["c", "b", "a"]


def test_set_element_order_mismatching_patch_list_is_refused():
    original = pod(containers=[{"name": "a"}, {"name": "b"}])
    patch = {"spec": {"$setElementOrder/containers": [{"name": "a"}],
                      "containers": [{"name": "b", "image": "x"}]}}
    with pytest.raises(PatchError, match="doesn't match"):
        smp(original, patch, "Pod")


def test_retain_keys_clears_fields_not_listed_for_volumes():
    original = pod(volumes=[{"name": "v", "hostPath": {"path": "/data"}}])
    patch = {"spec": {"volumes": [{"name": "v", "$retainKeys": ["emptyDir", "name"], "emptyDir": {}}]}}
    assert smp(original, patch, "Pod")["spec"]["volumes"] == [{"name": "v", "emptyDir": {}}]


def test_retain_keys_must_list_every_patched_field():
    original = pod(volumes=[{"name": "v", "hostPath": {"path": "/data"}}])
    patch = {"spec": {"volumes": [{"name": "v", "$retainKeys": ["name"], "emptyDir": {}}]}}
    with pytest.raises(PatchError, match="retainKeys"):
        smp(original, patch, "Pod")


def test_owner_references_merge_by_uid():
    original = {"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}}
    patch = {"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}}
    assert [o["uid"] for o in smp(original, patch, "ConfigMap")["metadata"]["ownerReferences"]] == ["2", "1"]


def test_directives_inside_new_fields_are_resolved_not_stored():
    original = pod()
    patch = {"spec": {"containers": [{"name": "c", "env": [{"name": "X", "value": None}]}],
                      "securityContext": {"runAsUser": None, "fsGroup": 2}}}
    result = smp(original, patch, "Pod")["spec"]
    assert result == {"containers": [{"name": "c", "env": [{"name": "X"}]}], "securityContext": {"fsGroup": 2}}


def test_type_change_replaces_value():
    assert smp({"data": {"a": "1"}}, {"data": "x"}, "ConfigMap") == {"data": "x"}


@pytest.mark.parametrize("original,patch,message", [
    (pod(containers=[{"name": "a"}]), {"spec": {"containers": [{"image": "x"}]}}, "merge key"),
    (pod(containers=[{"name": "a"}]), {"spec": {"containers": ["x"]}}, "not identical"),
    (pod(containers=[{"name": "a"}]), {"spec": {"containers": [["x"]]}}, "lists of lists"),
    ({"metadata": {}}, {"metadata": {"$deleteFromPrimitiveList": ["x"]}}, "deleteFromPrimitiveList/<field>"),
    ({"metadata": {}}, {"metadata": {"$retainKeys": "name"}}, "retainKeys"),
])
def test_malformed_patches_raise_patch_error(original, patch, message):
    with pytest.raises(PatchError, match=message):
        smp(original, patch, "Pod")


def test_inputs_are_not_modified():
    original = pod(containers=[{"name": "a", "env": [{"name": "X", "value": "1"}]}, {"name": "b"}])
    patch = {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                      "containers": [{"name": "a", "env": [{"name": "X", "$patch": "delete"}]}]}}
    before_original, before_patch = copy.deepcopy(original), copy.deepcopy(patch)
    result = smp(original, patch, "Pod")
    assert result["spec"]["containers"] == [{"name": "b"}, {"name": "a", "env": []}]
    assert original == before_original and patch == before_patch


def test_unknown_kind_merges_objects_and_replaces_lists():
    original = {"spec": {"items": [{"name": "a"}], "m": {"x": 1}}}
    result = smp(original, {"spec": {"items": [{"name": "b"}], "m": {"y": 2}}}, "Widget")
    assert result == {"spec": {"items": [{"name": "b"}], "m": {"x": 1, "y": 2}}}
