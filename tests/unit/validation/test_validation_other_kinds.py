"""Namespaces, nodes, configmaps, events, endpoints, endpointslices, leases."""
from __future__ import annotations

import copy

import pytest

from .helpers import check, fields
from .test_validation_pod import set_

NS = {"metadata": {"name": "team-a"}}
NODE = {"metadata": {"name": "node-1.local"},
        "spec": {"podCIDR": "10.244.1.0/24", "taints": [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]},
        "status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                   "addresses": [{"type": "InternalIP", "address": "192.168.1.5"}]}}
CM = {"metadata": {"name": "conf", "namespace": "default"}, "data": {"app.conf": "x=1"},
      "binaryData": {"blob": "AAEC"}}
EVENT = {"metadata": {"name": "web.1", "namespace": "default"},
         "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
         "reason": "Scheduled", "message": "ok", "type": "Normal", "count": 1}
EP = {"metadata": {"name": "web", "namespace": "default"},
      "subsets": [{"addresses": [{"ip": "10.244.0.5", "nodeName": "node-1"}],
                   "notReadyAddresses": [{"ip": "10.244.0.6"}],
                   "ports": [{"name": "http", "port": 80}, {"name": "alt", "port": 81}]}]}
SLICE = {"metadata": {"name": "web-abc", "namespace": "default"}, "addressType": "IPv4",
         "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": True}}],
         "ports": [{"name": "http", "port": 80}]}
LEASE = {"metadata": {"name": "node-1", "namespace": "kube-node-lease"},
         "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40,
                  "renewTime": "2024-01-01T00:00:00.000000Z"}}

BASES = {"namespaces": NS, "nodes": NODE, "configmaps": CM, "events": EVENT, "endpoints": EP,
         "endpointslices": SLICE, "leases": LEASE}

CASES = [
    ("namespaces", "name-label", set_("metadata.name", "a.b"), "metadata.name", "FieldValueInvalid"),
    ("namespaces", "namespace-forbidden", set_("metadata.namespace", "x"), "metadata.namespace",
     "FieldValueForbidden"),
    ("namespaces", "finalizer", set_("spec", {"finalizers": ["bad finalizer"]}), "spec.finalizers[0]",
     "FieldValueInvalid"),
    ("namespaces", "phase", set_("status", {"phase": "Gone"}), "status.phase", "FieldValueNotSupported"),
    ("nodes", "name", set_("metadata.name", "Node_1"), "metadata.name", "FieldValueInvalid"),
    ("nodes", "pod-cidr", set_("spec.podCIDR", "10.244.1.0"), "spec.podCIDR", "FieldValueInvalid"),
    ("nodes", "taint-effect", set_("spec.taints.0.effect", "Evict"), "spec.taints[0].effect",
     "FieldValueNotSupported"),
    ("nodes", "taint-key", set_("spec.taints.0.key", ""), "spec.taints[0].key", "FieldValueRequired"),
    ("nodes", "capacity", set_("status.capacity.cpu", "two"), "status.capacity[cpu]", "FieldValueInvalid"),
    ("nodes", "address-type", set_("status.addresses.0.type", "Public"), "status.addresses[0].type",
     "FieldValueNotSupported"),
    ("configmaps", "key", set_("data", {"a b": "x"}), "data[a b]", "FieldValueInvalid"),
    ("configmaps", "key-dotdot", set_("data", {"..x": "x"}), "data[..x]", "FieldValueInvalid"),
    ("configmaps", "value-type", set_("data", {"a": 1}), "data[a]", "FieldValueTypeInvalid"),
    ("configmaps", "dup-binary", set_("binaryData", {"app.conf": "AAEC"}), "binaryData", "FieldValueInvalid"),
    ("configmaps", "binary-base64", set_("binaryData", {"b": "!!"}), "binaryData[b]", "FieldValueInvalid"),
    ("configmaps", "too-big", set_("data", {"a": "x" * (1024 * 1024 + 1)}), "", "FieldValueTooLong"),
    ("events", "namespace-mismatch", set_("involvedObject.namespace", "other"), "involvedObject.namespace",
     "FieldValueInvalid"),
    ("events", "type", set_("type", "Bad"), "type", "FieldValueNotSupported"),
    ("events", "count-type", set_("count", "1"), "count", "FieldValueTypeInvalid"),
    ("endpoints", "ip", set_("subsets.0.addresses.0.ip", "10.244.0"), "subsets[0].addresses[0].ip",
     "FieldValueInvalid"),
    ("endpoints", "loopback", set_("subsets.0.addresses.0.ip", "127.0.0.1"), "subsets[0].addresses[0].ip",
     "FieldValueInvalid"),
    ("endpoints", "port-range", set_("subsets.0.ports.0.port", 0), "subsets[0].ports[0].port",
     "FieldValueInvalid"),
    ("endpoints", "port-name-required", set_("subsets.0.ports.1.name", ""), "subsets[0].ports[1].name",
     "FieldValueRequired"),
    ("endpoints", "protocol", set_("subsets.0.ports.0.protocol", "X"), "subsets[0].ports[0].protocol",
     "FieldValueNotSupported"),
    ("endpointslices", "address-type-required", set_("addressType", ""), "addressType", "FieldValueRequired"),
    ("endpointslices", "address-type", set_("addressType", "IPv5"), "addressType", "FieldValueNotSupported"),
    ("endpointslices", "address", set_("endpoints.0.addresses", ["fd00::1"]), "endpoints[0].addresses[0]",
     "FieldValueInvalid"),
    ("endpointslices", "addresses-required", set_("endpoints.0.addresses", []), "endpoints[0].addresses",
     "FieldValueRequired"),
    ("endpointslices", "condition-type", set_("endpoints.0.conditions.ready", "yes"),
     "endpoints[0].conditions.ready", "FieldValueTypeInvalid"),
    ("endpointslices", "port-name-dup", set_("ports", [{"name": "a", "port": 1}, {"name": "a", "port": 2}]),
     "ports[1].name", "FieldValueDuplicate"),
    ("endpointslices", "port-range", set_("ports.0.port", 99999), "ports[0].port", "FieldValueInvalid"),
    ("leases", "duration", set_("spec.leaseDurationSeconds", 0), "spec.leaseDurationSeconds", "FieldValueInvalid"),
    ("leases", "transitions", set_("spec.leaseTransitions", -1), "spec.leaseTransitions", "FieldValueInvalid"),
    ("leases", "renew-time", set_("spec.renewTime", "yesterday"), "spec.renewTime", "FieldValueInvalid"),
]


@pytest.mark.parametrize("plural", sorted(BASES))
def test_base_objects_are_valid(plural: str) -> None:
    assert check(plural, copy.deepcopy(BASES[plural])) == []


@pytest.mark.parametrize("plural,mutate,field,reason", [(c[0],) + c[2:] for c in CASES],
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_rule(plural: str, mutate, field: str, reason: str) -> None:
    obj = copy.deepcopy(BASES[plural])
    mutate(obj)
    errors = check(plural, obj)
    assert (field, reason) in fields(errors), [e.message() for e in errors]


def test_node_pod_cidr_cannot_change_once_set() -> None:
    old = copy.deepcopy(NODE)
    new = copy.deepcopy(NODE)
    new["spec"]["podCIDR"] = "10.244.2.0/24"
    assert fields(check("nodes", new, old)) == [("spec.podCIDR", "FieldValueForbidden")]
    unset = copy.deepcopy(NODE)
    del unset["spec"]["podCIDR"]
    assert check("nodes", copy.deepcopy(NODE), unset) == []


def test_endpointslice_address_type_is_immutable() -> None:
    new = copy.deepcopy(SLICE)
    new["addressType"] = "FQDN"
    new["endpoints"][0]["addresses"] = ["web.example.com"]
    assert fields(check("endpointslices", new, copy.deepcopy(SLICE))) == [("addressType", "FieldValueInvalid")]


def test_immutable_configmap() -> None:
    old = copy.deepcopy(CM)
    old["immutable"] = True
    new = copy.deepcopy(old)
    new["data"] = {"app.conf": "x=2"}
    assert fields(check("configmaps", new, old)) == [("data", "FieldValueForbidden")]


def test_cluster_scoped_event_in_default_namespace() -> None:
    ev = copy.deepcopy(EVENT)
    ev["involvedObject"] = {"kind": "Node", "name": "node-1"}
    assert check("events", ev) == []
