"""A pod's resolv.conf from dnsPolicy and dnsConfig, as kubelet writes it."""
from __future__ import annotations

from agent.dns_config import ClusterDNS, effective_policy, resolv_conf

HOST = "# host\nnameserver 192.168.1.1\nnameserver 192.168.1.2\nsearch corp.example\noptions edns0 timeout:2\n"
CLUSTER = ClusterDNS(["10.96.0.10"], "cluster.local", HOST)


def pod(ns="team", **spec):
    return {"metadata": {"name": "p", "namespace": ns}, "spec": spec}


def test_cluster_first_is_the_default_and_points_at_the_cluster_dns():
    assert resolv_conf(pod(), CLUSTER) == (
        "nameserver 10.96.0.10\n"
        "search team.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
        "options ndots:5\n")


def test_host_network_pods_get_the_host_file_unless_cluster_first_with_host_net():
    assert effective_policy(pod(hostNetwork=True), CLUSTER) == "Default"
    assert resolv_conf(pod(hostNetwork=True), CLUSTER) == (
        "nameserver 192.168.1.1\nnameserver 192.168.1.2\nsearch corp.example\noptions edns0 timeout:2\n")
    text = resolv_conf(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), CLUSTER)
    assert text.startswith("nameserver 10.96.0.10\nsearch team.svc.cluster.local ")


def test_default_policy_and_no_cluster_dns_configured_use_the_host_file():
    assert resolv_conf(pod(dnsPolicy="Default"), CLUSTER).startswith("nameserver 192.168.1.1\n")
    assert resolv_conf(pod(), ClusterDNS([], "cluster.local", HOST)).startswith("nameserver 192.168.1.1\n")


def test_none_takes_dns_config_alone_and_dns_config_merges_into_the_others():
    cfg = {"nameservers": ["1.1.1.1"], "searches": ["a.example", "a.example."],
           "options": [{"name": "ndots", "value": "2"}, {"name": "single-request"}]}
    assert resolv_conf(pod(dnsPolicy="None", dnsConfig=cfg), CLUSTER) == (
        "nameserver 1.1.1.1\nsearch a.example\noptions ndots:2 single-request\n")
    assert resolv_conf(pod(dnsConfig=cfg), CLUSTER) == (
        "nameserver 10.96.0.10\nnameserver 1.1.1.1\n"
        "search team.svc.cluster.local svc.cluster.local cluster.local corp.example a.example\n"
        "options ndots:2 single-request\n")


def test_limits_three_nameservers_and_the_search_list():
    cfg = {"nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3"], "searches": [f"s{i}.example" for i in range(40)]}
    text = resolv_conf(pod(dnsConfig=cfg), CLUSTER)
    assert [ln for ln in text.splitlines() if ln.startswith("nameserver")] == [
        "nameserver 10.96.0.10", "nameserver 1.1.1.1", "nameserver 2.2.2.2"]
    assert len(text.splitlines()[3].split()) - 1 == 32
