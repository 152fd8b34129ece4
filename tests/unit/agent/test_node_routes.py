"""Which host-gw routes a node wants, from the Node objects (no kernel involved)."""
from __future__ import annotations

from agent.cni_config import conflist
from agent.node_routes import desired_routes, route_key
from cni.bridge_config import load_bridge_config


def node(name: str, cidr: str | None = None, ip: str | None = None, cidrs: list[str] | None = None,
         rv: str = "1") -> dict:
    spec = {}
    if cidr:
        spec = {"podCIDR": cidr, "podCIDRs": cidrs or [cidr]}
    addrs = [{"type": "Hostname", "address": name}]
    if ip:
        addrs.insert(0, {"type": "InternalIP", "address": ip})
    return {"metadata": {"name": name, "resourceVersion": rv}, "spec": spec, "status": {"addresses": addrs}}


def test_a_route_per_other_node_with_cidr_and_ip():
    nodes = [node("a", "10.244.0.0/24", "192.168.56.10"), node("b", "10.244.1.0/24", "192.168.56.11"),
             node("c", "10.244.2.0/24", "192.168.56.12")]
    assert desired_routes(nodes, "a", ["10.244.0.0/24"], ["192.168.56.10"]) == {
        "10.244.1.0/24": "192.168.56.11", "10.244.2.0/24": "192.168.56.12"}


def test_nodes_without_cidr_or_ip_get_no_route():
    nodes = [node("b", None, "192.168.56.11"), node("c", "10.244.2.0/24", None),
             node("d", "10.244.3.0/24", "fd00::3")]
    assert desired_routes(nodes, "a", ["10.244.0.0/24"], ["192.168.56.10"]) == {}


def test_never_routes_our_own_cidr_or_via_our_own_ip():
    nodes = [node("b", "10.244.0.0/24", "192.168.56.11"),      # claims our CIDR
             node("c", "10.244.0.0/16", "192.168.56.12"),      # covers it
             node("d", "10.244.4.0/24", "192.168.56.10")]      # says it has our address
    assert desired_routes(nodes, "a", ["10.244.0.0/24"], ["192.168.56.10"]) == {}


def test_overlapping_claims_first_by_name_wins_and_ipv6_cidrs_are_skipped():
    nodes = [node("z", "10.244.5.0/24", "192.168.56.20"),
             node("m", "10.244.5.0/24", "192.168.56.13", cidrs=["10.244.5.0/24", "fd00:5::/64"])]
    assert desired_routes(nodes, "a", [], ["192.168.56.10"]) == {"10.244.5.0/24": "192.168.56.13"}


def test_only_cidr_and_ip_changes_matter():
    old = node("b", "10.244.1.0/24", "192.168.56.11", rv="1")
    heartbeat = node("b", "10.244.1.0/24", "192.168.56.11", rv="2")
    heartbeat["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    assert route_key(old) == route_key(heartbeat)
    assert route_key(old) != route_key(node("b", "10.244.1.0/24", "192.168.56.99"))
    assert route_key(old) != route_key(node("b", None, "192.168.56.11"))


def test_conflist_keeps_the_cluster_cidr_unmasqueraded():
    doc = conflist("10.244.3.0/24", bridge_type="kubeling-bridge", cluster_cidr="10.244.0.0/16")
    plugin = doc["plugins"][0]
    assert plugin["ipMasq"] is True and plugin["nonMasqueradeCIDRs"] == ["10.244.0.0/16"]
    cfg = load_bridge_config({**plugin, "name": doc["name"], "cniVersion": doc["cniVersion"]})
    assert cfg.non_masquerade_cidrs == ("10.244.0.0/16",)
    assert "nonMasqueradeCIDRs" not in conflist("10.244.3.0/24")["plugins"][0]


def test_bad_non_masquerade_cidrs_are_a_config_error():
    import pytest

    from cni.errors import CniError
    base = {"name": "n", "cniVersion": "1.0.0", "type": "kubeling-bridge"}
    for bad in ("10.244.0.0/16", ["10.244.0.0/33"], [7]):
        with pytest.raises(CniError):
            load_bridge_config({**base, "nonMasqueradeCIDRs": bad})
