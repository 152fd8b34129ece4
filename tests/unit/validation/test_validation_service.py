"""Every service validation rule with its exact field path."""
from __future__ import annotations

import pytest

from .helpers import check, fields, mutated, service
from .test_validation_pod import delete, seq, set_

P0 = "spec.ports[0]"

CASES = [
    ("name-dns1035", set_("metadata.name", "1web"), "metadata.name", "FieldValueInvalid"),
    ("name-dot", set_("metadata.name", "web.x"), "metadata.name", "FieldValueInvalid"),
    ("type", set_("spec.type", "Magic"), "spec.type", "FieldValueNotSupported"),
    ("ports-required", set_("spec.ports", []), "spec.ports", "FieldValueRequired"),
    ("port-zero", set_("spec.ports.0.port", 0), f"{P0}.port", "FieldValueInvalid"),
    ("port-high", set_("spec.ports.0.port", 65536), f"{P0}.port", "FieldValueInvalid"),
    ("port-missing", delete("spec.ports.0.port"), f"{P0}.port", "FieldValueRequired"),
    ("port-type", set_("spec.ports.0.port", "80"), f"{P0}.port", "FieldValueTypeInvalid"),
    ("port-name-required", delete("spec.ports.1.name"), "spec.ports[1].name", "FieldValueRequired"),
    ("port-name-dup", set_("spec.ports.1.name", "http"), "spec.ports[1].name", "FieldValueDuplicate"),
    ("port-name-invalid", set_("spec.ports.0.name", "HTTP"), f"{P0}.name", "FieldValueInvalid"),
    ("port-dup", set_("spec.ports.1.port", 80), "spec.ports[1]", "FieldValueDuplicate"),
    ("protocol", set_("spec.ports.0.protocol", "tcp"), f"{P0}.protocol", "FieldValueNotSupported"),
    ("target-port-range", set_("spec.ports.1.targetPort", 70000), "spec.ports[1].targetPort",
     "FieldValueInvalid"),
    ("target-port-name", set_("spec.ports.0.targetPort", "bad_name"), f"{P0}.targetPort", "FieldValueInvalid"),
    ("target-port-type", set_("spec.ports.0.targetPort", [80]), f"{P0}.targetPort", "FieldValueTypeInvalid"),
    ("node-port-clusterip", set_("spec.ports.0.nodePort", 30080), f"{P0}.nodePort", "FieldValueForbidden"),
    ("node-port-range", seq(set_("spec.type", "NodePort"), set_("spec.ports.0.nodePort", 8080)),
     f"{P0}.nodePort", "FieldValueInvalid"),
    ("node-port-dup", seq(set_("spec.type", "NodePort"), set_("spec.ports.0.nodePort", 30080),
                          set_("spec.ports.1.nodePort", 30080)), "spec.ports[1].nodePort", "FieldValueDuplicate"),
    ("cluster-ip-invalid", set_("spec.clusterIP", "10.96.0.300"), "spec.clusterIP", "FieldValueInvalid"),
    ("cluster-ip-ipv6", set_("spec.clusterIP", "fd00::1"), "spec.clusterIP", "FieldValueInvalid"),
    ("cluster-ips-mismatch", seq(set_("spec.clusterIP", "10.96.0.5"), set_("spec.clusterIPs", ["10.96.0.6"])),
     "spec.clusterIPs", "FieldValueInvalid"),
    ("cluster-ips-invalid", set_("spec.clusterIPs", ["x"]), "spec.clusterIPs[0]", "FieldValueInvalid"),
    ("headless-nodeport", seq(set_("spec.type", "NodePort"), set_("spec.clusterIP", "None")),
     "spec.clusterIP", "FieldValueInvalid"),
    ("session-affinity", set_("spec.sessionAffinity", "Sticky"), "spec.sessionAffinity", "FieldValueNotSupported"),
    ("affinity-timeout", seq(set_("spec.sessionAffinity", "ClientIP"),
                             set_("spec.sessionAffinityConfig", {"clientIP": {"timeoutSeconds": 0}})),
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds", "FieldValueInvalid"),
    ("affinity-config-with-none", set_("spec.sessionAffinityConfig", {"clientIP": {"timeoutSeconds": 5}}),
     "spec.sessionAffinityConfig", "FieldValueForbidden"),
    ("selector-key", set_("spec.selector", {"a b": "x"}), "spec.selector", "FieldValueInvalid"),
    ("selector-value", set_("spec.selector", {"app": "-x"}), "spec.selector", "FieldValueInvalid"),
    ("selector-type", set_("spec.selector", ["app"]), "spec.selector", "FieldValueTypeInvalid"),
    ("internal-policy", set_("spec.internalTrafficPolicy", "Nearest"), "spec.internalTrafficPolicy",
     "FieldValueNotSupported"),
    ("external-policy-clusterip", set_("spec.externalTrafficPolicy", "Local"), "spec.externalTrafficPolicy",
     "FieldValueInvalid"),
    ("external-name-required", set_("spec", {"type": "ExternalName"}), "spec.externalName", "FieldValueRequired"),
    ("external-name-invalid", set_("spec", {"type": "ExternalName", "externalName": "a_b"}), "spec.externalName",
     "FieldValueInvalid"),
    ("external-name-with-ip", set_("spec", {"type": "ExternalName", "externalName": "a.b", "clusterIP": "10.96.0.1"}),
     "spec.clusterIPs", "FieldValueForbidden"),
    ("external-ip", set_("spec.externalIPs", ["nope"]), "spec.externalIPs[0]", "FieldValueInvalid"),
    ("ip-family", set_("spec.ipFamilies", ["IPv5"]), "spec.ipFamilies[0]", "FieldValueNotSupported"),
    ("spec-type", set_("spec", 3), "spec", "FieldValueTypeInvalid"),
    ("ports-item-type", set_("spec.ports.0", "80"), P0, "FieldValueTypeInvalid"),
]


def test_base_service_is_valid() -> None:
    assert check("services", service()) == []


@pytest.mark.parametrize("mutate,field,reason", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_service_rule(mutate, field: str, reason: str) -> None:
    errors = check("services", mutated(service, mutate))
    assert (field, reason) in fields(errors), [e.message() for e in errors]


@pytest.mark.parametrize("spec", [
    {"clusterIP": "None", "selector": {"app": "x"}},  # headless: no ports needed
    {"type": "ExternalName", "externalName": "db.example.com"},
    {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30000}, ][:1]},
    {"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 32767}]},
    {"clusterIP": "10.96.0.10", "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP",
                                                                            "name": "tcp"}][1:]},
    {"sessionAffinity": "ClientIP", "ports": [{"port": 80}]},
])
def test_valid_service_shapes(spec: dict) -> None:
    obj = {"metadata": {"name": "s", "namespace": "default"}, "spec": spec}
    assert check("services", obj) == []


def test_same_port_different_protocol_is_allowed() -> None:
    obj = {"metadata": {"name": "dns", "namespace": "default"},
           "spec": {"ports": [{"name": "udp", "port": 53, "protocol": "UDP"},
                              {"name": "tcp", "port": 53, "protocol": "TCP"}]}}
    assert check("services", obj) == []


def test_node_port_range_text() -> None:
    errors = check("services", mutated(service, seq(set_("spec.type", "NodePort"),
                                                    set_("spec.ports.0.nodePort", 8080))))
    assert [e.message() for e in errors] == [
        "spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. "
        "The range of valid ports is 30000-32767"]


def test_node_port_forbidden_text() -> None:
    errors = check("services", mutated(service, set_("spec.ports.0.nodePort", 30080)))
    assert [e.message() for e in errors] == [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
