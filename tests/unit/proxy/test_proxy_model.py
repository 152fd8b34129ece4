"""Services and EndpointSlices as the proxy reads them."""
from __future__ import annotations

from agent.proxy.conntrack import stale_deletions
from agent.proxy.model import Endpoint, ServicePort, service_ports, slice_endpoints, slice_service, usable


def svc(**spec) -> dict:
    return {"metadata": {"namespace": "ns", "name": "s"}, "spec": spec}


def test_service_ports_cluster_ip_nodeport_affinity():
    ports = service_ports(svc(type="NodePort", clusterIP="10.96.0.9", sessionAffinity="ClientIP",
                              ports=[{"name": "http", "port": 80, "nodePort": 30001},
                                     {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30002}]))
    assert ports == [ServicePort("ns", "s", "http", "tcp", "10.96.0.9", 80, 30001, 10800),
                     ServicePort("ns", "s", "dns", "udp", "10.96.0.9", 53, 30002, 10800)]
    timed = service_ports(svc(clusterIP="10.96.0.9", sessionAffinity="ClientIP",
                              sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
                              ports=[{"port": 80, "nodePort": 30001}]))
    assert timed[0].affinity_seconds == 60 and timed[0].node_port == 0  # ClusterIP type: no node port


def test_headless_and_external_name_are_not_proxied():
    assert service_ports(svc(clusterIP="None", ports=[{"port": 80}])) == []
    assert service_ports(svc(type="ExternalName", externalName="x.example", ports=[{"port": 80}])) == []


def test_slice_endpoints_conditions_and_dedup():
    sl = {"metadata": {"namespace": "ns", "name": "s-1", "labels": {"kubernetes.io/service-name": "s"}},
          "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
          "endpoints": [{"addresses": ["10.244.1.2"], "conditions": {"ready": True}},
                        {"addresses": ["10.244.1.3"], "conditions": {"ready": False, "serving": True,
                                                                      "terminating": True}},
                        {"addresses": ["10.244.1.4"]}]}
    dup = {**sl, "metadata": {**sl["metadata"], "name": "s-2"},
           "endpoints": [{"addresses": ["10.244.1.3"], "conditions": {"ready": True}}]}
    assert slice_service(sl) == ("ns", "s")
    got = slice_endpoints([sl, dup])[("http", "tcp")]
    assert got == [Endpoint("10.244.1.2", 8080), Endpoint("10.244.1.3", 8080), Endpoint("10.244.1.4", 8080)]
    assert slice_endpoints([{**sl, "addressType": "IPv6"}]) == {}


def test_usable_prefers_ready_then_serving_terminating():
    ready, term = Endpoint("a", 1), Endpoint("b", 1, ready=False, serving=True, terminating=True)
    not_serving = Endpoint("c", 1, ready=False, serving=False, terminating=True)
    assert usable([ready, term], use_terminating=True) == [ready]
    assert usable([term, not_serving], use_terminating=True) == [term]
    assert usable([term], use_terminating=False) == []


def test_udp_conntrack_deletions():
    sp = ServicePort("ns", "dns", "", "udp", "10.96.0.10", 53, 30053)
    a, b = Endpoint("10.244.1.2", 53), Endpoint("10.244.1.3", 53)
    assert stale_deletions({sp: (a, b)}, {sp: (a,)}) == [
        ["-D", "-p", "udp", "--orig-dst", "10.96.0.10", "--reply-src", "10.244.1.3"],
        ["-D", "-p", "udp", "--orig-port-dst", "30053", "--reply-src", "10.244.1.3"]]
    assert stale_deletions({sp: ()}, {sp: (a,)})[0] == [
        "-D", "-p", "udp", "--orig-dst", "10.96.0.10", "--orig-port-dst", "53"]
    assert stale_deletions({}, {sp: (a,)})[0][4] == "10.96.0.10"
    assert stale_deletions({sp: (a,)}, {sp: (a,)}) == []
    tcp = ServicePort("ns", "web", "", "tcp", "10.96.0.11", 80)
    assert stale_deletions({tcp: (a,)}, {tcp: ()}) == []


def test_terminating_fallback_has_one_default_everywhere():
    # The command line, rules.Config and usable() agree (they once defaulted to opposites).
    from agent.proxy import rules
    from agent.proxy.__main__ import parse_args
    from agent.proxy.model import USE_TERMINATING_DEFAULT
    term = Endpoint("b", 1, ready=False, serving=True, terminating=True)
    assert parse_args([]).terminating_fallback is USE_TERMINATING_DEFAULT
    assert rules.Config().use_terminating is USE_TERMINATING_DEFAULT
    assert usable([term]) == usable([term], use_terminating=USE_TERMINATING_DEFAULT)
    assert parse_args(["--terminating-fallback"]).terminating_fallback is True
    assert parse_args(["--no-terminating-fallback"]).terminating_fallback is False
