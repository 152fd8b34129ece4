"""The nftables mode's rendering: service ports + endpoints → the `nft -f` transaction text."""
from __future__ import annotations

from agent.proxy import nft_rules, rules
from agent.proxy.model import Endpoint, ServicePort

WEB = ServicePort("default", "web", "http", "tcp", "10.96.0.10", 80, 30080, 0)
DB = ServicePort("default", "db", "", "tcp", "10.96.0.11", 5432)
E1, E2, E3 = Endpoint("10.244.1.2", 8080), Endpoint("10.244.1.3", 8080), Endpoint("10.244.1.4", 8080)
T = f"{nft_rules.FAMILY} {nft_rules.TABLE}"


def eps(sp: ServicePort, *endpoints: Endpoint) -> dict:
    return {rules.endpoint_key(sp): list(endpoints)}


def render(ports, endpoints, only=None, renderer=None):
    return (renderer or nft_rules.Renderer(rules.Config())).render(ports, endpoints, only)


def test_a_service_is_one_map_element_and_its_own_chains():
    rs = render([WEB], eps(WEB, E1, E2, E3))
    svc, ext = nft_rules.svc_chain(WEB), nft_rules.ext_chain(WEB)
    assert rs.maps[nft_rules.SERVICE_IPS] == {"10.96.0.10 . tcp . 80": f"goto {svc}"}
    assert rs.maps[nft_rules.SERVICE_NODEPORTS] == {"tcp . 30080": f"goto {ext}"}
    assert rs.chains[ext] == (f"jump {nft_rules.MARK_MASQ}", f"goto {svc}")
    chains = [nft_rules.ep_chain(WEB, e) for e in (E1, E2, E3)]
    # Each endpoint 1/3: the first taken 1 in 3, the second 1 in 2 of the rest, the last the rest.
    assert rs.chains[svc][1:] == (f"numgen random mod 3 == 0 goto {chains[0]}",
                                  f"numgen random mod 2 == 0 goto {chains[1]}", f"goto {chains[2]}")
    assert rs.chains[chains[0]] == (f"ip saddr 10.244.1.2 jump {nft_rules.MARK_MASQ}",
                                    'meta l4proto tcp dnat to 10.244.1.2:8080 comment "default/web:http -> 10.244.1.2:8080"')


def test_without_endpoints_no_element_and_the_node_port_is_rejected():
    rs = render([WEB], eps(WEB))
    assert rs.maps[nft_rules.SERVICE_IPS] == {} and rs.maps[nft_rules.SERVICE_NODEPORTS] == {}
    assert rs.maps[nft_rules.NO_ENDPOINT_NODEPORTS] == {"tcp . 30080": ""}
    assert not any(c.startswith((nft_rules.SVC_PREFIX, nft_rules.EP_PREFIX)) for c in rs.chains)


def test_endpoints_only_render_equals_a_full_render():
    r = nft_rules.Renderer(rules.Config())
    render([WEB, DB], {**eps(WEB, E1, E2), **eps(DB, E1)}, renderer=r)
    changed = {**eps(WEB, E1, E3), **eps(DB, E1)}
    assert render([WEB, DB], changed, {("default", "web")}, renderer=r) == render([WEB, DB], changed)
    emptied = {**eps(WEB), **eps(DB, E1)}
    assert render([WEB, DB], emptied, {("default", "web")}, renderer=r) == render([WEB, DB], emptied)


def test_a_change_writes_only_its_chains_and_elements():
    r = nft_rules.Renderer(rules.Config())
    first = render([WEB, DB], {**eps(WEB, E1, E2), **eps(DB, E1)}, renderer=r)
    second = render([WEB, DB], {**eps(WEB, E1, E3), **eps(DB, E1)}, {("default", "web")}, renderer=r)
    text = nft_rules.transaction(second, first)
    assert r.delta is not None and nft_rules.transaction(second, first, touched=r.delta) == text
    svc, gone, new = nft_rules.svc_chain(WEB), nft_rules.ep_chain(WEB, E2), nft_rules.ep_chain(WEB, E3)
    assert text.splitlines()[:2] == [f"add chain {T} {new}", f"flush chain {T} {svc}"]
    assert text.splitlines()[-2:] == [f"flush chain {T} {gone}", f"delete chain {T} {gone}"]
    assert "element" not in text and nft_rules.svc_chain(DB) not in text and "flush map" not in text
    assert nft_rules.transaction(second, second) == ""

    # The service losing its endpoints: its element goes, its node port is rejected.
    third = render([WEB, DB], {**eps(WEB), **eps(DB, E1)}, {("default", "web")}, renderer=r)
    text = nft_rules.transaction(third, second)
    assert nft_rules.transaction(third, second, touched=r.delta) == text
    assert f"delete element {T} {nft_rules.SERVICE_IPS} {{ 10.96.0.10 . tcp . 80 }}" in text
    assert f"add element {T} {nft_rules.NO_ENDPOINT_NODEPORTS} {{ tcp . 30080 }}" in text
    assert f"delete chain {T} {svc}" in text


def test_full_transactions_replace_or_drop_what_is_no_longer_rendered():
    sticky = ServicePort("default", "sticky", "", "tcp", "10.96.0.12", 80, 0, 600)
    rs = render([WEB, sticky], {**eps(WEB, E1), **eps(sticky, E1)})
    aff = nft_rules.affinity_set(sticky, E1)
    assert rs.affinity == {aff: 600}
    fresh = nft_rules.transaction(rs, None, replace=True).splitlines()
    assert fresh[:3] == [f"add table {T}", f"delete table {T}", f"add table {T}"]
    assert f"add set {T} {aff} {{ type ipv4_addr; flags dynamic,timeout; timeout 600s; }}" in fresh
    # A resync: the table kept (and the affinity sets with their clients), stale things deleted last.
    text = nft_rules.transaction(rs, None, {"chains": {*rs.chains, "ep-OLD"}, "sets": {aff, "aff-OLD"}})
    assert "delete table" not in text and f"delete set {T} {aff}" not in text
    assert text.splitlines()[-3:] == [f"flush chain {T} ep-OLD", f"delete chain {T} ep-OLD", f"delete set {T} aff-OLD"]
