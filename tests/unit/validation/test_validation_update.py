"""Update rules: immutable metadata, the pod spec's few mutable fields, service clusterIP."""
from __future__ import annotations

import copy

from kubeling.defaulting import _apply_defaults
from kubeling.resources import lookup
from kubeling.validation.pod import UPDATABLE_SPEC_MSG

from .helpers import check, fields, pod, service


def stored(plural: str, obj: dict) -> dict:
    _apply_defaults(lookup(plural), obj)
    obj["metadata"]["uid"] = "1234"
    return obj


def test_unchanged_pod_update_is_valid() -> None:
    old = stored("pods", pod())
    assert check("pods", copy.deepcopy(old), old) == []


def test_image_change_is_allowed() -> None:
    old = stored("pods", pod())
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "busybox:1.37"
    new["spec"]["initContainers"][0]["image"] = "busybox:1.37"
    assert check("pods", new, old) == []


def test_other_spec_change_is_forbidden_with_kubernetes_text() -> None:
    old = stored("pods", pod())
    new = copy.deepcopy(old)
    new["spec"]["restartPolicy"] = "Never"
    errors = check("pods", new, old)
    assert fields(errors) == [("spec", "FieldValueForbidden")]
    assert errors[0].detail.startswith("Forbidden: " + UPDATABLE_SPEC_MSG)
    assert "spec.restartPolicy" in errors[0].detail


def test_container_port_change_is_forbidden() -> None:
    old = stored("pods", pod())
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["ports"][0]["containerPort"] = 81
    assert fields(check("pods", new, old)) == [("spec", "FieldValueForbidden")]


def test_updated_image_may_not_be_empty() -> None:
    old = stored("pods", pod())
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = ""
    assert ("spec.containers[0].image", "FieldValueRequired") in fields(check("pods", new, old))


def test_active_deadline_may_be_set_and_lowered_not_raised_or_removed() -> None:
    old = stored("pods", pod())
    new = copy.deepcopy(old)
    new["spec"]["activeDeadlineSeconds"] = 100
    assert check("pods", new, old) == []
    newer = copy.deepcopy(new)
    newer["spec"]["activeDeadlineSeconds"] = 50
    assert check("pods", newer, new) == []
    raised = copy.deepcopy(new)
    raised["spec"]["activeDeadlineSeconds"] = 200
    assert fields(check("pods", raised, new)) == [("spec.activeDeadlineSeconds", "FieldValueInvalid")]
    removed = copy.deepcopy(new)
    del removed["spec"]["activeDeadlineSeconds"]
    assert fields(check("pods", removed, new)) == [("spec.activeDeadlineSeconds", "FieldValueInvalid")]


def test_tolerations_may_be_added_not_removed() -> None:
    old = stored("pods", pod())
    new = copy.deepcopy(old)
    new["spec"]["tolerations"].append({"key": "a", "operator": "Exists"})
    assert check("pods", new, old) == []
    removed = copy.deepcopy(new)
    removed["spec"]["tolerations"].pop()
    assert fields(check("pods", removed, new)) == [("spec.tolerations", "FieldValueForbidden")]


def test_grace_period_only_from_negative_to_one() -> None:
    old = stored("pods", pod())
    new = copy.deepcopy(old)
    new["spec"]["terminationGracePeriodSeconds"] = 10
    assert fields(check("pods", new, old)) == [("spec", "FieldValueForbidden")]
    old["spec"]["terminationGracePeriodSeconds"] = -1
    new["spec"]["terminationGracePeriodSeconds"] = 1
    assert check("pods", new, old, defaults=False) == []


def test_metadata_name_namespace_uid_are_immutable() -> None:
    old = stored("pods", pod())
    for field, value in (("name", "other"), ("namespace", "other"), ("uid", "999")):
        new = copy.deepcopy(old)
        new["metadata"][field] = value
        errors = check("pods", new, old)
        assert (f"metadata.{field}", "FieldValueInvalid") in fields(errors)
        assert any(e.detail.endswith(": field is immutable") for e in errors)


def test_labels_may_change() -> None:
    old = stored("pods", pod())
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"app": "other"}
    assert check("pods", new, old) == []


def test_status_update_checks_pod_ip() -> None:
    old = stored("pods", pod())
    new = copy.deepcopy(old)
    new["status"]["podIP"] = "10.244.0.300"
    assert fields(check("pods", new, old)) == [("status.podIP", "FieldValueInvalid")]
    new["status"]["podIP"] = "10.244.0.3"
    new["status"]["podIPs"] = [{"ip": "10.244.0.3"}]
    assert check("pods", new, old) == []


def test_service_cluster_ip_is_immutable() -> None:
    old = stored("services", service())
    old["spec"]["clusterIP"] = "10.96.0.10"
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "10.96.0.11"
    errors = check("services", new, old)
    assert fields(errors) == [("spec.clusterIP", "FieldValueInvalid")]
    assert errors[0].message() == 'spec.clusterIP: Invalid value: "10.96.0.11": field is immutable'
    same = copy.deepcopy(old)
    same["spec"]["ports"][0]["port"] = 81
    assert check("services", same, old) == []


def test_service_cluster_ip_may_change_to_external_name() -> None:
    old = stored("services", service())
    old["spec"]["clusterIP"] = "10.96.0.10"
    new = copy.deepcopy(old)
    new["spec"] = {"type": "ExternalName", "externalName": "example.com"}
    assert check("services", new, old) == []
