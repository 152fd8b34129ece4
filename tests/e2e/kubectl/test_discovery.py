"""Discovery and OpenAPI as kubectl reads them."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e


def test_version_and_api_resources(kubectl):
    out = kubectl("version", "-o", "json").stdout
    assert json.loads(out)["serverVersion"]["gitVersion"] == "v1.33.0-kubeling"
    lines = kubectl("api-resources").stdout.splitlines()
    assert lines[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["pods"] == ["pods", "po", "v1", "true", "Pod"]
    assert rows["services"] == ["services", "svc", "v1", "true", "Service"]
    assert rows["nodes"] == ["nodes", "no", "v1", "false", "Node"]
    assert rows["namespaces"] == ["namespaces", "ns", "v1", "false", "Namespace"]
    for name, short in (("endpoints", "ep"), ("events", "ev"), ("configmaps", "cm")):
        assert rows[name][1] == short
    assert rows["leases"] == ["leases", "coordination.k8s.io/v1", "true", "Lease"]
    assert rows["endpointslices"] == ["endpointslices", "discovery.k8s.io/v1", "true", "EndpointSlice"]


def test_aggregated_discovery_accept_gets_plain_json(kubectl):
    """kubectl asks for aggregated discovery first; a plain JSON answer makes it use legacy discovery."""
    out = kubectl("get", "--raw", "/api").stdout
    assert json.loads(out)["versions"] == ["v1"]
    groups = json.loads(kubectl("get", "--raw", "/apis").stdout)
    assert groups["kind"] == "APIGroupList"
    assert {g["name"] for g in groups["groups"]} >= {"coordination.k8s.io", "discovery.k8s.io", "certificates.k8s.io",
                                                     "apps"}
    resources = json.loads(kubectl("get", "--raw", "/api/v1").stdout)["resources"]
    names = {r["name"] for r in resources}
    assert {"pods/status", "pods/log", "pods/binding", "services/status", "replicationcontrollers/scale"} <= names
    apps = json.loads(kubectl("get", "--raw", "/apis/apps/v1").stdout)["resources"]
    scale = next(r for r in apps if r["name"] == "deployments/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    # -v=8 shows the Accept header kubectl sent and the Content-Type it got back.
    trace = kubectl("get", "pods", "-A", "-v=8").stderr
    assert "as=APIGroupDiscoveryList" in trace


def test_openapi_v3_index_and_documents(kubectl):
    index = json.loads(kubectl("get", "--raw", "/openapi/v3").stdout)["paths"]
    assert set(index) >= {"api/v1", "apis/coordination.k8s.io/v1", "apis/discovery.k8s.io/v1",
                          "apis/certificates.k8s.io/v1", "apis/apps/v1"}
    doc = json.loads(kubectl("get", "--raw", index["api/v1"]["serverRelativeURL"]).stdout)
    patch = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert any(p["name"] == "fieldValidation" and p["in"] == "query" for p in patch["parameters"])
    containers = doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"


def test_explain_pod(kubectl133):
    out = kubectl133("explain", "pod").stdout
    assert "KIND:       Pod" in out and "VERSION:    v1" in out
    assert "Pod is a collection of containers" in out
    for field in ("apiVersion\t<string>", "metadata\t<ObjectMeta>", "spec\t<PodSpec>", "status\t<PodStatus>"):
        assert field in out
    out = kubectl133("explain", "pod.spec.containers.ports").stdout
    assert "FIELD: ports <[]ContainerPort>" in out
    assert "containerPort\t<integer> -required-" in out
    out = kubectl133("explain", "svc.spec.ports.targetPort").stdout
    assert "FIELD: targetPort" in out and "Number or name of the port" in out
