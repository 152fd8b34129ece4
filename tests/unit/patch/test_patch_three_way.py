"""kubectl client-side apply: the three-way strategic merge patch it sends.

Each case plays kubectl's flow: the file is annotated with its own last-applied
configuration, the live object carries the previous annotation plus server defaults,
and the patch must change exactly what the file changed."""

import copy
import json

import pytest

from kubeling.patch import (LAST_APPLIED_ANNOTATION, PatchError, apply_strategic_merge_patch,
                            create_three_way_merge_patch, create_two_way_merge_patch,
                            last_applied_configuration, with_last_applied_annotation)


def pod_file(containers, **extra):
    spec = {"containers": containers}
    spec.update(extra.pop("spec", {}))
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec}
    obj["metadata"].update(extra.pop("metadata", {}))
    return obj


def live_from(file_obj, *, server_labels=None):
    """What the server holds after creating `file_obj` with kubectl apply, plus defaults."""
    live = with_last_applied_annotation(file_obj)
    live["metadata"].update(uid="1234", resourceVersion="7", creationTimestamp="2024-01-01T00:00:00Z")
    if server_labels:
        live["metadata"].setdefault("labels", {}).update(server_labels)
    for c in live["spec"]["containers"]:
        c.setdefault("imagePullPolicy", "Always")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("resources", {})
    live["spec"].update(restartPolicy="Always", terminationGracePeriodSeconds=30, dnsPolicy="ClusterFirst")
    live["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    return live


def apply_patch_for(old_file, new_file, live=None):
    live = live if live is not None else live_from(old_file)
    modified = with_last_applied_annotation(new_file)
    patch = create_three_way_merge_patch(last_applied_configuration(live), modified, live, "Pod")
    return patch, live, modified


def annotation_of(obj):
    return obj["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]


def test_last_applied_annotation_is_what_kubectl_writes():
    obj = pod_file([{"name": "c", "image": "busybox"}])
    annotated = with_last_applied_annotation(obj)
    assert annotation_of(annotated) == (
        '{"apiVersion":"v1","kind":"Pod","metadata":{"annotations":{},"name":"p","namespace":"default"},'
        '"spec":{"containers":[{"image":"busybox","name":"c"}]}}\n')
    assert "annotations" not in obj["metadata"]
    assert last_applied_configuration(annotated) == {**obj, "metadata": {**obj["metadata"], "annotations": {}}}


def test_same_file_again_is_unchanged():
    f = pod_file([{"name": "c", "image": "busybox"}])
    patch, _, _ = apply_patch_for(f, f)
    assert patch == {}


def test_image_change_gives_the_patch_kubectl_sends():
    old = pod_file([{"name": "c", "image": "old"}])
    new = pod_file([{"name": "c", "image": "new"}])
    patch, live, modified = apply_patch_for(old, new)
    assert patch == {
        "metadata": {"annotations": {LAST_APPLIED_ANNOTATION: annotation_of(modified)}},
        "spec": {"$setElementOrder/containers": [{"name": "c"}], "containers": [{"image": "new", "name": "c"}]},
    }
    # Go's encoding/json sorts keys; so do we, so the wire bytes match kubectl's.
    assert list(patch["spec"]) == ["$setElementOrder/containers", "containers"]
    result = apply_strategic_merge_patch(live, patch, "Pod")
    assert result["spec"]["containers"] == [{"name": "c", "image": "new", "imagePullPolicy": "Always",
                                            "terminationMessagePath": "/dev/termination-log", "resources": {}}]
    assert result["status"] == live["status"]


def test_label_removed_from_file_is_deleted_but_server_labels_stay():
    old = pod_file([{"name": "c", "image": "i"}], metadata={"labels": {"app": "x", "tier": "web"}})
    new = pod_file([{"name": "c", "image": "i"}], metadata={"labels": {"app": "x"}})
    live = live_from(old, server_labels={"added-by-someone": "yes"})
    patch, live, modified = apply_patch_for(old, new, live)
    assert patch["metadata"]["labels"] == {"tier": None}
    assert "spec" not in patch
    result = apply_strategic_merge_patch(live, patch, "Pod")
    assert result["metadata"]["labels"] == {"app": "x", "added-by-someone": "yes"}


def test_container_removed_from_file_gets_a_delete_directive():
    old = pod_file([{"name": "a", "image": "i"}, {"name": "b", "image": "i"}])
    new = pod_file([{"name": "a", "image": "i"}])
    patch, live, _ = apply_patch_for(old, new)
    assert patch["spec"] == {"$setElementOrder/containers": [{"name": "a"}],
                             "containers": [{"$patch": "delete", "name": "b"}]}
    assert [c["name"] for c in apply_strategic_merge_patch(live, patch, "Pod")["spec"]["containers"]] == ["a"]


def test_env_var_removed_and_one_changed():
    old = pod_file([{"name": "c", "image": "i", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}])
    new = pod_file([{"name": "c", "image": "i", "env": [{"name": "B", "value": "3"}]}])
    patch, live, _ = apply_patch_for(old, new)
    assert patch["spec"] == {
        "$setElementOrder/containers": [{"name": "c"}],
        "containers": [{"$setElementOrder/env": [{"name": "B"}],
                        "env": [{"name": "B", "value": "3"}, {"$patch": "delete", "name": "A"}],
                        "name": "c"}],
    }
    result = apply_strategic_merge_patch(live, patch, "Pod")
    assert result["spec"]["containers"][0]["env"] == [{"name": "B", "value": "3"}]


def test_container_order_change_sends_only_the_order():
    old = pod_file([{"name": "a", "image": "i"}, {"name": "b", "image": "i"}])
    new = pod_file([{"name": "b", "image": "i"}, {"name": "a", "image": "i"}])
    patch, live, _ = apply_patch_for(old, new)
    assert patch["spec"] == {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}
    assert [c["name"] for c in apply_strategic_merge_patch(live, patch, "Pod")["spec"]["containers"]] == ["b", "a"]


def test_finalizer_removed_uses_delete_from_primitive_list():
    old = pod_file([{"name": "c", "image": "i"}], metadata={"finalizers": ["x/a", "x/b"]})
    new = pod_file([{"name": "c", "image": "i"}], metadata={"finalizers": ["x/b", "x/c"]})
    patch, live, _ = apply_patch_for(old, new)
    meta = {k: v for k, v in patch["metadata"].items() if k != "annotations"}
    assert meta == {"$deleteFromPrimitiveList/finalizers": ["x/a"],
                    "$setElementOrder/finalizers": ["x/b", "x/c"],
                    "finalizers": ["x/c"]}
    assert apply_strategic_merge_patch(live, patch, "Pod")["metadata"]["finalizers"] == ["x/b", "x/c"]


def test_volume_source_change_sends_retain_keys():
    old = pod_file([{"name": "c", "image": "i"}], spec={"volumes": [{"name": "v", "hostPath": {"path": "/d"}}]})
    new = pod_file([{"name": "c", "image": "i"}], spec={"volumes": [{"name": "v", "emptyDir": {}}]})
    patch, live, _ = apply_patch_for(old, new)
    assert patch["spec"] == {"$setElementOrder/volumes": [{"name": "v"}],
                             "volumes": [{"$retainKeys": ["emptyDir", "name"], "emptyDir": {},
                                          "hostPath": None, "name": "v"}]}
    assert apply_strategic_merge_patch(live, patch, "Pod")["spec"]["volumes"] == [{"name": "v", "emptyDir": {}}]


def test_without_last_applied_nothing_is_deleted():
    f = pod_file([{"name": "c", "image": "i"}])
    live = live_from(f)
    del live["metadata"]["annotations"]
    live["metadata"]["labels"] = {"from-create": "1"}
    patch = create_three_way_merge_patch(None, with_last_applied_annotation(f), live, "Pod")
    assert set(patch) == {"metadata"}
    assert set(patch["metadata"]["annotations"]) == {LAST_APPLIED_ANNOTATION}


def test_service_port_change_merges_by_port():
    def svc(target):
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                "spec": {"selector": {"app": "x"}, "ports": [{"port": 80, "targetPort": target}]}}
    live = with_last_applied_annotation(svc(8080))
    live["spec"].update(clusterIP="10.96.0.10", type="ClusterIP")
    live["spec"]["ports"][0]["protocol"] = "TCP"
    modified = with_last_applied_annotation(svc(9090))
    patch = create_three_way_merge_patch(last_applied_configuration(live), modified, live, "Service")
    assert patch["spec"] == {"$setElementOrder/ports": [{"port": 80}], "ports": [{"port": 80, "targetPort": 9090}]}
    result = apply_strategic_merge_patch(live, patch, "Service")
    assert result["spec"]["ports"] == [{"port": 80, "targetPort": 9090, "protocol": "TCP"}]
    assert result["spec"]["clusterIP"] == "10.96.0.10"


@pytest.mark.parametrize("old_c,new_c", [
    ([{"name": "a", "image": "1"}], [{"name": "a", "image": "2", "args": ["x"]}]),
    ([{"name": "a", "image": "1", "args": ["x", "y"]}], [{"name": "a", "image": "1", "args": ["y"]}]),
    ([{"name": "a", "image": "1"}, {"name": "b", "image": "1"}], [{"name": "c", "image": "1"}]),
    ([{"name": "a", "image": "1", "ports": [{"containerPort": 80}]}],
     [{"name": "a", "image": "1", "ports": [{"containerPort": 81}, {"containerPort": 80, "name": "h"}]}]),
])
def test_applying_the_patch_yields_the_file(old_c, new_c):
    old, new = pod_file(old_c), pod_file(new_c)
    patch, live, modified = apply_patch_for(old, new)
    before = copy.deepcopy(live)
    result = apply_strategic_merge_patch(live, patch, "Pod")
    assert live == before
    # Every field in the file is as the file says; server defaults survive.
    for want, got in zip(new_c, result["spec"]["containers"]):
        assert {k: got[k] for k in want} == want
        if any(c["name"] == want["name"] for c in old_c):
            assert got["terminationMessagePath"] == "/dev/termination-log"
    assert [c["name"] for c in result["spec"]["containers"]] == [c["name"] for c in new_c]
    assert last_applied_configuration(result) == last_applied_configuration(modified)
    # And applying the same file once more is "unchanged".
    again = create_three_way_merge_patch(last_applied_configuration(result), modified, result, "Pod")
    assert again == {}


def test_two_way_patch_for_kubectl_edit():
    before = pod_file([{"name": "c", "image": "1"}], metadata={"labels": {"a": "1"}})
    after = pod_file([{"name": "c", "image": "2"}], metadata={"labels": {"b": "2"}})
    patch = create_two_way_merge_patch(before, after, "Pod")
    assert patch == {"metadata": {"labels": {"a": None, "b": "2"}},
                     "spec": {"$setElementOrder/containers": [{"name": "c"}],
                              "containers": [{"image": "2", "name": "c"}]}}
    assert apply_strategic_merge_patch(before, patch, "Pod") == after


def test_three_way_errors_are_patch_errors():
    with pytest.raises(PatchError):
        create_three_way_merge_patch({"spec": {"containers": [{"image": "x"}]}},
                                     {"spec": {"containers": [{"image": "y"}]}},
                                     {"spec": {"containers": [{"image": "x"}]}}, "Pod")
    with pytest.raises(PatchError, match="not valid JSON"):
        last_applied_configuration({"metadata": {"annotations": {LAST_APPLIED_ANNOTATION: "{nope"}}})


def test_patch_is_json_serialisable():
    patch, _, _ = apply_patch_for(pod_file([{"name": "c", "image": "1"}]), pod_file([{"name": "c", "image": "2"}]))
    assert json.loads(json.dumps(patch)) == patch
