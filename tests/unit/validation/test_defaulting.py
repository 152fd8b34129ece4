"""Kubernetes' defaults, filled in place."""
from __future__ import annotations

import pytest

from kubeling.defaulting import _apply_defaults, apply_defaults, image_pull_policy, pod_qos_class
from kubeling.resources import lookup

from .helpers import pod


def defaulted(plural: str, obj: dict) -> dict:
    apply_defaults(lookup(plural), obj)
    return obj


def test_pod_spec_defaults() -> None:
    spec = defaulted("pods", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "b"}]}})["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["securityContext"] == {}
    assert spec["enableServiceLinks"] is True
    assert spec["priority"] == 0
    assert spec["preemptionPolicy"] == "PreemptLowerPriority"
    ctr = spec["containers"][0]
    assert ctr["terminationMessagePath"] == "/dev/termination-log"
    assert ctr["terminationMessagePolicy"] == "File"
    assert ctr["imagePullPolicy"] == "Always"
    assert ctr["resources"] == {}


def test_user_values_are_kept() -> None:
    spec = defaulted("pods", {"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                                       "containers": [{"name": "c", "image": "b:1", "imagePullPolicy": "Never"}]}})["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["terminationGracePeriodSeconds"] == 0
    assert spec["containers"][0]["imagePullPolicy"] == "Never"


@pytest.mark.parametrize("image,policy", [
    ("busybox", "Always"), ("busybox:latest", "Always"), ("busybox:1.36", "IfNotPresent"),
    ("localhost:5000/busybox", "Always"), ("localhost:5000/busybox:1", "IfNotPresent"),
    ("busybox@sha256:abc", "IfNotPresent"),
])
def test_image_pull_policy(image: str, policy: str) -> None:
    assert image_pull_policy(image) == policy


def test_ports_probes_and_volumes() -> None:
    obj = defaulted("pods", {"spec": {
        "containers": [{"name": "c", "image": "b", "ports": [{"containerPort": 80}],
                        "livenessProbe": {"httpGet": {"port": 80}, "periodSeconds": 0},
                        "lifecycle": {"preStop": {"httpGet": {"port": 80}}},
                        "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}],
        "volumes": [{"name": "a"}, {"name": "b", "configMap": {"name": "x"}}]}})
    ctr = obj["spec"]["containers"][0]
    assert ctr["ports"][0]["protocol"] == "TCP"
    assert ctr["livenessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "periodSeconds": 10,
                                    "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3}
    assert ctr["lifecycle"]["preStop"]["httpGet"]["path"] == "/"
    assert ctr["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert obj["spec"]["volumes"][0]["emptyDir"] == {}
    assert obj["spec"]["volumes"][1]["configMap"]["defaultMode"] == 0o644


def test_host_network_host_ports() -> None:
    obj = defaulted("pods", {"spec": {"hostNetwork": True, "containers": [
        {"name": "c", "image": "b", "ports": [{"containerPort": 8080}]}]}})
    assert obj["spec"]["containers"][0]["ports"][0]["hostPort"] == 8080


def test_default_tolerations() -> None:
    obj = defaulted("pods", {"spec": {"containers": []}})
    assert obj["spec"]["tolerations"] == [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300}]
    own = {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}
    obj = defaulted("pods", {"spec": {"containers": [], "tolerations": [own]}})
    assert [t["key"] for t in obj["spec"]["tolerations"]] == ["node.kubernetes.io/not-ready",
                                                             "node.kubernetes.io/unreachable"]
    assert obj["spec"]["tolerations"][0]["tolerationSeconds"] == 5
    obj = defaulted("pods", {"spec": {"containers": [], "tolerations": [{"operator": "Exists"}]}})
    assert obj["spec"]["tolerations"] == [{"operator": "Exists"}]


def test_status_on_create() -> None:
    obj = defaulted("pods", pod())
    assert obj["status"] == {"phase": "Pending", "qosClass": "Burstable"}


def res(requests=None, limits=None) -> dict:
    r = {}
    if requests is not None:
        r["requests"] = requests
    if limits is not None:
        r["limits"] = limits
    return {"name": "c", "image": "b", "resources": r}


@pytest.mark.parametrize("containers,qos", [
    ([res()], "BestEffort"),
    ([res(requests={"cpu": "0"})], "BestEffort"),
    ([res(requests={"cpu": "100m"})], "Burstable"),
    ([res(limits={"cpu": "1", "memory": "1Gi"})], "Guaranteed"),  # requests default to limits
    ([res(requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": "1", "memory": "1Gi"})], "Guaranteed"),
    ([res(requests={"cpu": "500m", "memory": "1Gi"}, limits={"cpu": "1", "memory": "1Gi"})], "Burstable"),
    ([res(limits={"cpu": "1"})], "Burstable"),
    ([res(limits={"cpu": "1", "memory": "1Gi"}), res()], "Burstable"),
    ([res(limits={"cpu": "1000m", "memory": "1024Mi"}), res(limits={"cpu": "1", "memory": "1Gi"})], "Guaranteed"),
])
def test_qos_class(containers: list, qos: str) -> None:
    obj = defaulted("pods", {"spec": {"containers": containers}})
    assert obj["status"]["qosClass"] == qos
    assert pod_qos_class(obj) == qos


def test_service_defaults() -> None:
    svc = defaulted("services", {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}, {"port": 81, "targetPort": "web"}]}})
    spec = svc["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80},
                             {"port": 81, "targetPort": "web", "protocol": "TCP"}]
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["ipFamilies"] == ["IPv4"]
    assert "externalTrafficPolicy" not in spec
    assert "clusterIP" not in spec  # allocation is the apiserver's job


def test_nodeport_and_clientip_service_defaults() -> None:
    spec = defaulted("services", {"spec": {"type": "NodePort", "sessionAffinity": "ClientIP",
                                           "ports": [{"port": 80}]}})["spec"]
    assert spec["externalTrafficPolicy"] == "Cluster"
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_external_name_service_gets_no_ip_defaults() -> None:
    spec = defaulted("services", {"spec": {"type": "ExternalName", "externalName": "a.b"}})["spec"]
    assert "ipFamilies" not in spec and "internalTrafficPolicy" not in spec


def test_namespace_defaults() -> None:
    ns = defaulted("namespaces", {"metadata": {"name": "team"}})
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team"}
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["status"] == {"phase": "Active"}


def test_node_endpoints_and_slice_defaults() -> None:
    node = defaulted("nodes", {"status": {"capacity": {"cpu": "2"}}})
    assert node["status"]["allocatable"] == {"cpu": "2"}
    ep = defaulted("endpoints", {"subsets": [{"ports": [{"port": 80}]}]})
    assert ep["subsets"][0]["ports"][0]["protocol"] == "TCP"
    sl = defaulted("endpointslices", {"addressType": "IPv4", "ports": [{"port": 80}]})
    assert sl["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}]


@pytest.mark.parametrize("plural", ["pods", "services", "namespaces", "nodes", "endpoints", "endpointslices"])
@pytest.mark.parametrize("obj", [None, [], "x", 3, {"spec": "x"}, {"spec": {"containers": "x", "ports": 5}},
                                 {"metadata": [], "status": 1}, {"spec": {"containers": [1, None, {"ports": "x"}]}}])
def test_defaulting_skips_wrong_types(plural: str, obj) -> None:
    _apply_defaults(lookup(plural), obj)  # must not raise
