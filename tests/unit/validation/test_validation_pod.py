"""Every pod validation rule, each asserting the exact field path and reason."""
from __future__ import annotations

import pytest

from .helpers import check, fields, mutated, pod

C0 = "spec.containers[0]"


def set_(path: str, value):
    """A mutation that sets a dotted path (list indexes as numbers)."""
    def apply(obj: dict) -> None:
        parts = path.split(".")
        cur = obj
        for p in parts[:-1]:
            cur = cur[int(p)] if p.isdigit() else cur[p]
        last = parts[-1]
        if last.isdigit():
            cur[int(last)] = value
        else:
            cur[last] = value
    return apply


def delete(path: str):
    def apply(obj: dict) -> None:
        parts = path.split(".")
        cur = obj
        for p in parts[:-1]:
            cur = cur[int(p)] if p.isdigit() else cur[p]
        del cur[parts[-1]]
    return apply


def seq(*fns):
    def apply(obj: dict) -> None:
        for f in fns:
            f(obj)
    return apply


CASES = [
    # metadata
    ("name-invalid", set_("metadata.name", "Web_1"), "metadata.name", "FieldValueInvalid"),
    ("name-too-long", set_("metadata.name", "a" * 254), "metadata.name", "FieldValueInvalid"),
    ("name-missing", delete("metadata.name"), "metadata.name", "FieldValueRequired"),
    ("generate-name-invalid", seq(delete("metadata.name"), set_("metadata.generateName", "Bad_")),
     "metadata.generateName", "FieldValueInvalid"),
    ("namespace-missing", delete("metadata.namespace"), "metadata.namespace", "FieldValueRequired"),
    ("namespace-invalid", set_("metadata.namespace", "a.b"), "metadata.namespace", "FieldValueInvalid"),
    ("label-key", set_("metadata.labels", {"-bad": "x"}), "metadata.labels", "FieldValueInvalid"),
    ("label-key-prefix", set_("metadata.labels", {"Ex.com/x": "x"}), "metadata.labels", "FieldValueInvalid"),
    ("label-value", set_("metadata.labels", {"a": "x y"}), "metadata.labels", "FieldValueInvalid"),
    ("label-value-long", set_("metadata.labels", {"a": "x" * 64}), "metadata.labels", "FieldValueInvalid"),
    ("label-value-type", set_("metadata.labels", {"a": 1}), "metadata.labels[a]", "FieldValueTypeInvalid"),
    ("annotation-key", set_("metadata.annotations", {"a/b/c": "x"}), "metadata.annotations", "FieldValueInvalid"),
    ("annotations-too-big", set_("metadata.annotations", {"a": "x" * 300000}), "metadata.annotations",
     "FieldValueTooLong"),
    # containers
    ("containers-missing", set_("spec.containers", []), "spec.containers", "FieldValueRequired"),
    ("container-name-missing", delete("spec.containers.0.name"), f"{C0}.name", "FieldValueRequired"),
    ("container-name-invalid", set_("spec.containers.0.name", "App"), f"{C0}.name", "FieldValueInvalid"),
    ("container-name-dup-init", set_("spec.containers.0.name", "init"), f"{C0}.name", "FieldValueDuplicate"),
    ("image-missing", delete("spec.containers.0.image"), f"{C0}.image", "FieldValueRequired"),
    ("image-empty", set_("spec.containers.0.image", ""), f"{C0}.image", "FieldValueRequired"),
    ("image-whitespace", set_("spec.containers.0.image", " busybox"), f"{C0}.image", "FieldValueInvalid"),
    ("init-image-missing", delete("spec.initContainers.0.image"), "spec.initContainers[0].image",
     "FieldValueRequired"),
    ("pull-policy", set_("spec.containers.0.imagePullPolicy", "Sometimes"), f"{C0}.imagePullPolicy",
     "FieldValueNotSupported"),
    ("command-type", set_("spec.containers.0.command", "httpd"), f"{C0}.command", "FieldValueTypeInvalid"),
    ("command-item-type", set_("spec.containers.0.command", ["a", 1]), f"{C0}.command[1]",
     "FieldValueTypeInvalid"),
    # ports
    ("container-port-zero", set_("spec.containers.0.ports.0.containerPort", 0),
     f"{C0}.ports[0].containerPort", "FieldValueRequired"),
    ("container-port-high", set_("spec.containers.0.ports.0.containerPort", 65536),
     f"{C0}.ports[0].containerPort", "FieldValueInvalid"),
    ("container-port-type", set_("spec.containers.0.ports.0.containerPort", "80"),
     f"{C0}.ports[0].containerPort", "FieldValueTypeInvalid"),
    ("host-port-high", set_("spec.containers.0.ports.0.hostPort", 70000), f"{C0}.ports[0].hostPort",
     "FieldValueInvalid"),
    ("host-port-negative", set_("spec.containers.0.ports.0.hostPort", -1), f"{C0}.ports[0].hostPort",
     "FieldValueInvalid"),
    ("port-name-long", set_("spec.containers.0.ports.0.name", "a" * 16), f"{C0}.ports[0].name",
     "FieldValueInvalid"),
    ("port-name-no-letter", set_("spec.containers.0.ports.0.name", "123"), f"{C0}.ports[0].name",
     "FieldValueInvalid"),
    ("port-name-double-hyphen", set_("spec.containers.0.ports.0.name", "a--b"), f"{C0}.ports[0].name",
     "FieldValueInvalid"),
    ("port-name-dup", lambda o: o["spec"]["containers"][0]["ports"].append({"name": "http", "containerPort": 81}),
     f"{C0}.ports[1].name", "FieldValueDuplicate"),
    ("protocol", set_("spec.containers.0.ports.0.protocol", "ICMP"), f"{C0}.ports[0].protocol",
     "FieldValueNotSupported"),
    ("host-port-dup", lambda o: o["spec"]["containers"][0]["ports"].extend(
        [{"containerPort": 81, "hostPort": 8080}, {"containerPort": 82, "hostPort": 8080}]),
     f"{C0}.ports[2].hostPort", "FieldValueDuplicate"),
    ("host-network-port-mismatch", seq(set_("spec.hostNetwork", True),
                                       set_("spec.containers.0.ports.0.hostPort", 81)),
     f"{C0}.ports[0].hostPort", "FieldValueInvalid"),
    ("host-network-type", set_("spec.hostNetwork", "yes"), "spec.hostNetwork", "FieldValueTypeInvalid"),
    # pod-level enums and numbers
    ("restart-policy", set_("spec.restartPolicy", "Sometimes"), "spec.restartPolicy", "FieldValueNotSupported"),
    ("dns-policy", set_("spec.dnsPolicy", "Google"), "spec.dnsPolicy", "FieldValueNotSupported"),
    ("dns-none-needs-config", set_("spec.dnsPolicy", "None"), "spec.dnsConfig", "FieldValueRequired"),
    ("grace-negative", set_("spec.terminationGracePeriodSeconds", -1), "spec.terminationGracePeriodSeconds",
     "FieldValueInvalid"),
    ("grace-type", set_("spec.terminationGracePeriodSeconds", "30"), "spec.terminationGracePeriodSeconds",
     "FieldValueTypeInvalid"),
    ("deadline-zero", set_("spec.activeDeadlineSeconds", 0), "spec.activeDeadlineSeconds", "FieldValueInvalid"),
    ("node-name", set_("spec.nodeName", "Node_1"), "spec.nodeName", "FieldValueInvalid"),
    ("hostname", set_("spec.hostname", "a.b"), "spec.hostname", "FieldValueInvalid"),
    ("preemption", set_("spec.preemptionPolicy", "Always"), "spec.preemptionPolicy", "FieldValueNotSupported"),
    # resources
    ("quantity-bad", set_("spec.containers.0.resources.limits.cpu", "1 core"),
     f"{C0}.resources.limits[cpu]", "FieldValueInvalid"),
    ("quantity-type", set_("spec.containers.0.resources.limits.cpu", [1]),
     f"{C0}.resources.limits[cpu]", "FieldValueInvalid"),
    ("quantity-negative", set_("spec.containers.0.resources.requests.memory", "-1Mi"),
     f"{C0}.resources.requests[memory]", "FieldValueInvalid"),
    ("request-over-limit", set_("spec.containers.0.resources.requests.cpu", "2"),
     f"{C0}.resources.requests[cpu]", "FieldValueInvalid"),
    ("resource-name", set_("spec.containers.0.resources.limits.gpu", "1"),
     f"{C0}.resources.limits[gpu]", "FieldValueInvalid"),
    ("resources-type", set_("spec.containers.0.resources", "lots"), f"{C0}.resources", "FieldValueTypeInvalid"),
    # env
    ("env-name-missing", set_("spec.containers.0.env.0", {"value": "x"}), f"{C0}.env[0].name",
     "FieldValueRequired"),
    ("env-name-invalid", set_("spec.containers.0.env.0.name", "1ABC"), f"{C0}.env[0].name",
     "FieldValueInvalid"),
    ("env-value-type", set_("spec.containers.0.env.0.value", 5), f"{C0}.env[0].value", "FieldValueTypeInvalid"),
    ("env-valuefrom-with-value", set_("spec.containers.0.env.0.valueFrom",
                                      {"fieldRef": {"fieldPath": "metadata.name"}}),
     f"{C0}.env[0].valueFrom", "FieldValueInvalid"),
    ("env-valuefrom-empty", set_("spec.containers.0.env.0", {"name": "A", "valueFrom": {}}),
     f"{C0}.env[0].valueFrom", "FieldValueInvalid"),
    ("env-fieldpath", set_("spec.containers.0.env.0", {"name": "A", "valueFrom": {
        "fieldRef": {"fieldPath": "spec.bogus"}}}), f"{C0}.env[0].valueFrom.fieldRef.fieldPath",
     "FieldValueNotSupported"),
    # volumes and mounts
    ("volume-name-missing", set_("spec.volumes.0", {"emptyDir": {}}), "spec.volumes[0].name",
     "FieldValueRequired"),
    ("volume-name-invalid", set_("spec.volumes.0.name", "Data"), "spec.volumes[0].name", "FieldValueInvalid"),
    ("volume-name-dup", lambda o: o["spec"]["volumes"].append({"name": "data", "emptyDir": {}}),
     "spec.volumes[1].name", "FieldValueDuplicate"),
    ("volume-two-sources", set_("spec.volumes.0.hostPath", {"path": "/tmp"}), "spec.volumes[0].emptyDir",
     "FieldValueForbidden"),
    ("volume-unsupported", set_("spec.volumes.0", {"name": "data", "nfs": {"server": "x", "path": "/"}}),
     "spec.volumes[0].nfs", "FieldValueForbidden"),
    ("volume-hostpath-path", set_("spec.volumes.0", {"name": "data", "hostPath": {}}),
     "spec.volumes[0].hostPath.path", "FieldValueRequired"),
    ("volume-configmap-name", set_("spec.volumes.0", {"name": "data", "configMap": {}}),
     "spec.volumes[0].configMap.name", "FieldValueRequired"),
    ("volume-mode", set_("spec.volumes.0", {"name": "data", "configMap": {"name": "c", "defaultMode": 1000}}),
     "spec.volumes[0].configMap.defaultMode", "FieldValueInvalid"),
    ("mount-unknown-volume", set_("spec.containers.0.volumeMounts.0.name", "nope"),
     f"{C0}.volumeMounts[0].name", "FieldValueNotFound"),
    ("mount-path-missing", delete("spec.containers.0.volumeMounts.0.mountPath"),
     f"{C0}.volumeMounts[0].mountPath", "FieldValueRequired"),
    ("mount-path-dup", lambda o: o["spec"]["containers"][0]["volumeMounts"].append(
        {"name": "data", "mountPath": "/data"}), f"{C0}.volumeMounts[1].mountPath", "FieldValueInvalid"),
    # probes
    ("probe-no-handler", set_("spec.containers.0.livenessProbe", {"periodSeconds": 5}),
     f"{C0}.livenessProbe", "FieldValueRequired"),
    ("probe-two-handlers", set_("spec.containers.0.livenessProbe.exec", {"command": ["true"]}),
     f"{C0}.livenessProbe.tcpSocket", "FieldValueForbidden"),
    ("probe-negative", set_("spec.containers.0.readinessProbe.initialDelaySeconds", -1),
     f"{C0}.readinessProbe.initialDelaySeconds", "FieldValueInvalid"),
    ("liveness-success-threshold", set_("spec.containers.0.livenessProbe.successThreshold", 2),
     f"{C0}.livenessProbe.successThreshold", "FieldValueInvalid"),
    ("probe-port-range", set_("spec.containers.0.livenessProbe.tcpSocket.port", 0),
     f"{C0}.livenessProbe.tcpSocket.port", "FieldValueInvalid"),
    ("probe-port-name", set_("spec.containers.0.readinessProbe.httpGet.port", "HTTP"),
     f"{C0}.readinessProbe.httpGet.port", "FieldValueInvalid"),
    ("probe-port-missing", set_("spec.containers.0.livenessProbe.tcpSocket", {}),
     f"{C0}.livenessProbe.tcpSocket.port", "FieldValueRequired"),
    ("probe-scheme", set_("spec.containers.0.readinessProbe.httpGet.scheme", "FTP"),
     f"{C0}.readinessProbe.httpGet.scheme", "FieldValueNotSupported"),
    ("probe-exec-command", set_("spec.containers.0.livenessProbe", {"exec": {}}),
     f"{C0}.livenessProbe.exec.command", "FieldValueRequired"),
    ("init-probe", set_("spec.initContainers.0.livenessProbe", {"exec": {"command": ["true"]}}),
     "spec.initContainers[0].livenessProbe", "FieldValueForbidden"),
    ("prestop-no-handler", set_("spec.containers.0.lifecycle", {"preStop": {}}),
     f"{C0}.lifecycle.preStop", "FieldValueRequired"),
    # nodeSelector and tolerations
    ("node-selector", set_("spec.nodeSelector", {"disk": "ssd fast"}), "spec.nodeSelector", "FieldValueInvalid"),
    ("toleration-operator", set_("spec.tolerations", [{"key": "a", "operator": "In"}]),
     "spec.tolerations[0].operator", "FieldValueNotSupported"),
    ("toleration-effect", set_("spec.tolerations", [{"key": "a", "effect": "Evict"}]),
     "spec.tolerations[0].effect", "FieldValueNotSupported"),
    ("toleration-empty-key", set_("spec.tolerations", [{"operator": "Equal", "value": "x"}]),
     "spec.tolerations[0].operator", "FieldValueInvalid"),
    ("toleration-exists-value", set_("spec.tolerations", [{"key": "a", "operator": "Exists", "value": "x"}]),
     "spec.tolerations[0].operator", "FieldValueInvalid"),
    ("toleration-seconds-effect", set_("spec.tolerations", [{"key": "a", "operator": "Exists",
                                                             "effect": "NoSchedule", "tolerationSeconds": 5}]),
     "spec.tolerations[0].effect", "FieldValueInvalid"),
    ("toleration-key", set_("spec.tolerations", [{"key": "a b", "operator": "Exists"}]),
     "spec.tolerations[0].key", "FieldValueInvalid"),
    # wrong types in structure
    ("spec-type", set_("spec", "nope"), "spec", "FieldValueTypeInvalid"),
    ("containers-type", set_("spec.containers", {"name": "x"}), "spec.containers", "FieldValueTypeInvalid"),
    ("container-item-type", set_("spec.containers.0", 7), f"{C0}", "FieldValueTypeInvalid"),
    ("metadata-type", set_("metadata", []), "metadata", "FieldValueTypeInvalid"),
]


def test_base_pod_is_valid() -> None:
    assert check("pods", pod()) == []


@pytest.mark.parametrize("mutate,field,reason", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_pod_rule(mutate, field: str, reason: str) -> None:
    errors = check("pods", mutated(pod, mutate))
    assert (field, reason) in fields(errors), [e.message() for e in errors]


def test_name_message_is_kubernetes_text() -> None:
    errors = check("pods", mutated(pod, set_("metadata.name", "Web_1")))
    assert errors[0].message() == (
        'metadata.name: Invalid value: "Web_1": a lowercase RFC 1123 subdomain must consist of lower '
        "case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'example.com', regex used for validation is "
        r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")


def test_container_name_message_is_kubernetes_text() -> None:
    errors = check("pods", mutated(pod, set_("spec.containers.0.name", "App")))
    assert [e.message() for e in errors] == [
        'spec.containers[0].name: Invalid value: "App": a lowercase RFC 1123 label must consist of lower '
        "case alphanumeric characters or '-', and must start and end with an alphanumeric character "
        "(e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]


def test_required_and_not_supported_texts() -> None:
    errors = check("pods", mutated(pod, seq(delete("spec.containers.0.image"),
                                             set_("spec.restartPolicy", "Sometimes"))))
    assert [e.message() for e in errors] == [
        "spec.containers[0].image: Required value",
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"']


def test_request_over_limit_text() -> None:
    errors = check("pods", mutated(pod, set_("spec.containers.0.resources.requests.memory", "1Gi")))
    assert [e.message() for e in errors] == [
        'spec.containers[0].resources.requests[memory]: Invalid value: "1Gi": '
        "must be less than or equal to memory limit of 128Mi"]


def test_port_out_of_range_text() -> None:
    errors = check("pods", mutated(pod, set_("spec.containers.0.ports.0.containerPort", 65536)))
    assert [e.message() for e in errors] == [
        "spec.containers[0].ports[0].containerPort: Invalid value: 65536: must be between 1 and 65535, inclusive"]


def test_generate_name_allows_trailing_dash() -> None:
    assert check("pods", mutated(pod, seq(delete("metadata.name"),
                                          set_("metadata.generateName", "web-")))) == []


def test_sidecar_init_container_may_have_probes() -> None:
    obj = mutated(pod, seq(set_("spec.initContainers.0.restartPolicy", "Always"),
                           set_("spec.initContainers.0.readinessProbe", {"exec": {"command": ["true"]}})))
    assert check("pods", obj) == []


def test_errors_in_several_places_are_all_reported() -> None:
    obj = mutated(pod, seq(delete("spec.containers.0.image"), set_("spec.volumes.0.name", "X")))
    assert set(fields(check("pods", obj))) >= {(f"{C0}.image", "FieldValueRequired"),
                                               ("spec.volumes[0].name", "FieldValueInvalid")}
