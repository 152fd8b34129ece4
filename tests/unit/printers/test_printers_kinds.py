"""Rows for services, endpoints, endpointslices, nodes, events, namespaces,
configmaps and leases."""
from datetime import timedelta

import pytest

from helpers_printers import NOW, ago, cond, meta
from kubeling.printers import events, nodes, services, simple


def svc(svc_type: str = "ClusterIP", **spec: object) -> dict:
    base: dict = {"type": svc_type, "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                  "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
                  "selector": {"app": "web", "tier": "front"}}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta("web"), "spec": base,
            "status": {"loadBalancer": {}}}


def test_cluster_ip_service():
    assert services.service_row(svc(), NOW)["cells"] == [
        "web", "ClusterIP", "10.96.0.10", "<none>", "80/TCP", "5m", "app=web,tier=front"]


def test_headless_service_without_selector():
    s = svc(clusterIP="None", clusterIPs=["None"], ports=[])
    del s["spec"]["selector"]
    assert services.service_row(s, NOW)["cells"] == [
        "web", "ClusterIP", "None", "<none>", "<none>", "5m", "<none>"]


def test_node_port_service_with_external_ips():
    s = svc("NodePort", externalIPs=["192.0.2.1", "192.0.2.2"], ports=[
        {"port": 80, "nodePort": 30080, "protocol": "TCP"},
        {"port": 53, "nodePort": 30053, "protocol": "UDP"}])
    assert services.service_row(s, NOW)["cells"][1:5] == [
        "NodePort", "10.96.0.10", "192.0.2.1,192.0.2.2", "80:30080/TCP,53:30053/UDP"]


def test_load_balancer_pending_and_assigned():
    s = svc("LoadBalancer", ports=[{"port": 443, "nodePort": 31443, "protocol": "TCP"}])
    assert services.service_row(s, NOW)["cells"][3:5] == ["<pending>", "443:31443/TCP"]
    s["status"]["loadBalancer"]["ingress"] = [{"ip": "203.0.113.7"},
                                              {"hostname": "lb.example.com"},
                                              {"ip": "203.0.113.7"}]
    s["spec"]["externalIPs"] = ["192.0.2.9"]
    assert services.service_row(s, NOW)["cells"][3] == "203.0.113.7,lb.example.com,192.0.2.9"


def test_external_name_service():
    s = svc("ExternalName", externalName="db.example.com", ports=[])
    del s["spec"]["clusterIP"], s["spec"]["clusterIPs"]
    assert services.service_row(s, NOW)["cells"][1:5] == [
        "ExternalName", "<none>", "db.example.com", "<none>"]


def test_service_without_cluster_ips_list_uses_cluster_ip():
    s = svc()
    del s["spec"]["clusterIPs"]
    assert services.service_row(s, NOW)["cells"][2] == "10.96.0.10"


def endpoints(*subsets: dict) -> dict:
    return {"metadata": meta("web"), "subsets": list(subsets)}


def test_endpoints_listing_and_truncation():
    assert services.endpoints_row(endpoints(), NOW)["cells"] == ["web", "<none>", "5m"]
    one = {"addresses": [{"ip": "10.244.0.5"}, {"ip": "10.244.1.7"}],
           "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
    assert services.endpoints_row(endpoints(one), NOW)["cells"][1] == \
        "10.244.0.5:8080,10.244.1.7:8080"
    many = {"addresses": [{"ip": f"10.244.0.{i}"} for i in range(1, 6)],
            "ports": [{"port": 80}, {"port": 443}]}
    assert services.format_endpoints(endpoints(many)) == \
        "10.244.0.1:80,10.244.0.2:80,10.244.0.3:80 + 7 more..."


def test_endpoints_headless_without_ports_and_ipv6():
    assert services.format_endpoints(endpoints({"addresses": [{"ip": "10.0.0.1"}]})) == \
        "10.0.0.1"
    assert services.format_endpoints(endpoints(
        {"addresses": [{"ip": "fd00::5"}], "ports": [{"port": 80}]})) == "[fd00::5]:80"


def test_endpointslice_row():
    eps = {"metadata": meta("web-abc12"), "addressType": "IPv4",
           "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
           "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": True}},
                         {"addresses": ["10.244.1.7"]}]}
    assert services.endpointslice_row(eps, NOW)["cells"] == [
        "web-abc12", "IPv4", "8080", "10.244.0.5,10.244.1.7", "5m"]


def test_endpointslice_empty_and_truncated():
    eps = {"metadata": meta("web-x"), "addressType": "IPv4", "ports": [], "endpoints": []}
    assert services.endpointslice_row(eps, NOW)["cells"][2:4] == ["<unset>", "<unset>"]
    eps["ports"] = [{"port": 1}, {"name": "named"}, {}, {"port": 4}]
    eps["endpoints"] = [{"addresses": [f"10.0.0.{i}"]} for i in range(5)]
    assert services.endpointslice_row(eps, NOW)["cells"][2:4] == [
        "1,named,* + 1 more...", "10.0.0.0,10.0.0.1,10.0.0.2 + 2 more..."]


def node(name: str = "node-1", *, ready: str | None = "True", unschedulable: bool = False,
         labels: dict | None = None) -> dict:
    conditions = [cond("MemoryPressure", "False"), cond("DiskPressure", "False")]
    if ready is not None:
        conditions.append(cond("Ready", ready))
    n = {"metadata": meta(name, namespace=None, age=timedelta(days=12), labels=labels or {}),
         "spec": {"podCIDR": "10.244.0.0/24"},
         "status": {"conditions": conditions,
                    "addresses": [{"type": "Hostname", "address": name},
                                  {"type": "InternalIP", "address": "192.168.56.10"}],
                    "nodeInfo": {"kubeletVersion": "v1.30.0-kubeling",
                                 "osImage": "Debian GNU/Linux 12 (bookworm)",
                                 "kernelVersion": "6.1.0-18-amd64",
                                 "containerRuntimeVersion": "docker://20.10.24"}}}
    if unschedulable:
        n["spec"]["unschedulable"] = True
    return n


def test_ready_node_with_wide_columns():
    assert nodes.row(node(labels={"node-role.kubernetes.io/control-plane": ""}), NOW)["cells"] == [
        "node-1", "Ready", "control-plane", "12d", "v1.30.0-kubeling", "192.168.56.10", "<none>",
        "Debian GNU/Linux 12 (bookworm)", "6.1.0-18-amd64", "docker://20.10.24"]


@pytest.mark.parametrize("ready,unschedulable,expected", [
    ("True", False, "Ready"),
    ("False", False, "NotReady"),
    ("Unknown", False, "NotReady"),
    (None, False, "Unknown"),
    ("True", True, "Ready,SchedulingDisabled"),
    ("False", True, "NotReady,SchedulingDisabled"),
])
def test_node_status(ready, unschedulable, expected):
    assert nodes.row(node(ready=ready, unschedulable=unschedulable), NOW)["cells"][1] == expected


def test_node_roles():
    labels = {"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/": "x",
              "kubernetes.io/role": "infra", "app": "x"}
    assert nodes.row(node(labels=labels), NOW)["cells"][2] == "infra,worker"
    assert nodes.row(node(), NOW)["cells"][2] == "<none>"


def test_bare_node():
    assert nodes.row({"metadata": {"name": "n"}}, NOW)["cells"] == [
        "n", "Unknown", "<none>", "<unknown>", "", "<none>", "<none>", "<unknown>", "<unknown>",
        "<unknown>"]


def event(**fields: object) -> dict:
    e = {"metadata": meta("web.17c2a", age=timedelta(minutes=3)),
         "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web",
                            "uid": "u1", "apiVersion": "v1", "fieldPath": "spec.containers{c0}"},
         "reason": "Pulled", "message": "Container image \"busybox\" already present\n",
         "source": {"component": "kubelet", "host": "node-1"},
         "firstTimestamp": ago(minutes=3), "lastTimestamp": ago(seconds=20), "count": 4,
         "type": "Normal"}
    e.update(fields)
    return e


def test_event_row():
    assert events.row(event(), NOW)["cells"] == [
        "20s", "Normal", "Pulled", "pod/web", "spec.containers{c0}", "kubelet, node-1",
        "Container image \"busybox\" already present", "3m", 4, "web.17c2a"]


def test_event_from_events_api_fields():
    e = event(firstTimestamp=None, lastTimestamp=None, count=0, source={},
              eventTime="2025-03-01T11:59:00.000000Z", reportingComponent="default-scheduler",
              reportingInstance="default-scheduler-node-1")
    assert events.row(e, NOW)["cells"][:9] == [
        "60s", "Normal", "Pulled", "pod/web", "spec.containers{c0}",
        "default-scheduler, default-scheduler-node-1",
        "Container image \"busybox\" already present", "60s", 1]


def test_event_series_and_cluster_scoped_object():
    e = event(series={"count": 9, "lastObservedTime": ago(seconds=5)},
              involvedObject={"kind": "Node", "name": ""}, source={"component": "kubelet"})
    got = events.row(e, NOW)["cells"]
    assert got[0] == "5s" and got[8] == 9
    assert got[3] == "node"
    assert got[5] == "kubelet"


def test_namespace_configmap_lease():
    ns = {"metadata": meta("kube-system", namespace=None, age=timedelta(hours=50)),
          "status": {"phase": "Active"}}
    assert simple.namespace_row(ns, NOW)["cells"] == ["kube-system", "Active", "2d2h"]
    cm = {"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert simple.configmap_row(cm, NOW)["cells"] == ["cfg", 3, "5m"]
    assert simple.configmap_row({"metadata": meta("e")}, NOW)["cells"] == ["e", 0, "5m"]
    lease = {"metadata": meta("node-1", namespace="kube-node-lease"),
             "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}
    assert simple.lease_row(lease, NOW)["cells"] == ["node-1", "node-1", "5m"]
    assert simple.lease_row({"metadata": meta("free")}, NOW)["cells"] == ["free", "", "5m"]


@pytest.mark.parametrize("fn", [services.service_row, services.endpoints_row,
                                services.endpointslice_row, nodes.row, events.row,
                                simple.namespace_row, simple.configmap_row, simple.lease_row])
@pytest.mark.parametrize("broken", [{}, {"metadata": [], "spec": 1, "status": "x", "subsets": 3,
                                         "endpoints": {"a": 1}, "ports": "80", "data": [1],
                                         "involvedObject": None, "series": {"count": "x"}}])
def test_odd_objects_do_not_raise(fn, broken):
    assert isinstance(fn(broken, NOW)["cells"], list)
