"""The proxy's rule rendering: services + endpoints → the exact iptables-restore text."""
from __future__ import annotations

import re

from agent.proxy import rules
from agent.proxy.model import Endpoint, ServicePort

WEB = ServicePort("default", "web", "http", "tcp", "10.96.0.10", 80, 30080, 0)
E1, E2 = Endpoint("10.244.1.2", 8080), Endpoint("10.244.1.3", 8080)
SVC = "KUBELING-SVC-2P7KPLBA3HXUH77"
SEP1, SEP2 = "KUBELING-SEP-LAUABQHGNIBBBGO", "KUBELING-SEP-TGQDAIJCGHQV6AW"

FILTER_TAIL = [
    '-A KUBELING-SERVICES -m comment --comment "unallocated service IP" -d 10.96.0.0/12 -p tcp -j REJECT --reject-with tcp-reset',
    '-A KUBELING-SERVICES -m comment --comment "unallocated service IP" -d 10.96.0.0/12 -j REJECT --reject-with icmp-port-unreachable',
    '-A KUBELING-FORWARD -m comment --comment "kubeling forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
    '-A KUBELING-FORWARD -m comment --comment "kubeling pod network" -s 10.244.0.0/16 -j ACCEPT',
    '-A KUBELING-FORWARD -m comment --comment "kubeling pod network" -d 10.244.0.0/16 -j ACCEPT',
]
NAT_FIXED = [
    '-A KUBELING-MARK-MASQ -j MARK --or-mark 0x4000',
    '-A KUBELING-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A KUBELING-POSTROUTING -j MARK --xor-mark 0x4000',
    '-A KUBELING-POSTROUTING -m comment --comment "kubeling service traffic requiring SNAT" -j MASQUERADE --random-fully',
]
NODEPORTS_JUMP = ('-A KUBELING-SERVICES -m comment --comment "kubeling service nodeports; must be the last rule" '
                  '! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j KUBELING-NODEPORTS')


def eps(sp: ServicePort, *endpoints: Endpoint) -> dict:
    return {rules.endpoint_key(sp): list(endpoints)}


def test_nodeport_service_with_two_endpoints_exact_text():
    text = rules.restore_text(rules.render([WEB], eps(WEB, E1, E2)))
    expected = "\n".join([
        "*filter", ":KUBELING-SERVICES - [0:0]", ":KUBELING-FORWARD - [0:0]", *FILTER_TAIL, "COMMIT",
        "*nat", ":KUBELING-SERVICES - [0:0]", ":KUBELING-NODEPORTS - [0:0]", ":KUBELING-MARK-MASQ - [0:0]",
        ":KUBELING-POSTROUTING - [0:0]", f":{SVC} - [0:0]", f":{SEP1} - [0:0]", f":{SEP2} - [0:0]",
        f'-A KUBELING-SERVICES -m comment --comment "default/web:http cluster IP" -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j {SVC}',
        NODEPORTS_JUMP,
        '-A KUBELING-NODEPORTS -m comment --comment "default/web:http" -p tcp -m tcp --dport 30080 -j KUBELING-MARK-MASQ',
        f'-A KUBELING-NODEPORTS -m comment --comment "default/web:http" -p tcp -m tcp --dport 30080 -j {SVC}',
        *NAT_FIXED,
        f'-A {SVC} -m comment --comment "default/web:http cluster IP" ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBELING-MARK-MASQ',
        f'-A {SVC} -m comment --comment "default/web:http -> 10.244.1.2:8080" -m statistic --mode random --probability 0.5000000000 -j {SEP1}',
        f'-A {SVC} -m comment --comment "default/web:http -> 10.244.1.3:8080" -j {SEP2}',
        f'-A {SEP1} -m comment --comment "default/web:http" -s 10.244.1.2/32 -j KUBELING-MARK-MASQ',
        f'-A {SEP1} -m comment --comment "default/web:http" -p tcp -m tcp -j DNAT --to-destination 10.244.1.2:8080',
        f'-A {SEP2} -m comment --comment "default/web:http" -s 10.244.1.3/32 -j KUBELING-MARK-MASQ',
        f'-A {SEP2} -m comment --comment "default/web:http" -p tcp -m tcp -j DNAT --to-destination 10.244.1.3:8080',
        "COMMIT", ""])
    assert text == expected


def test_no_ready_endpoints_rejects_in_filter_and_writes_no_nat_chain():
    sp = ServicePort("ns", "empty", "", "udp", "10.96.0.20", 53, 30053)
    rs = rules.render([sp], eps(sp, Endpoint("10.244.1.9", 53, ready=False)))
    assert rs["filter"]["KUBELING-SERVICES"] == [
        '-A KUBELING-SERVICES -m comment --comment "ns/empty has no endpoints" -d 10.96.0.20/32 -p udp -m udp '
        '--dport 53 -j REJECT --reject-with icmp-port-unreachable',
        '-A KUBELING-SERVICES -m comment --comment "ns/empty has no endpoints" -m addrtype --dst-type LOCAL '
        '-p udp -m udp --dport 30053 -j REJECT --reject-with icmp-port-unreachable',
        *FILTER_TAIL[:2],
    ]
    assert rs["nat"]["KUBELING-SERVICES"] == [NODEPORTS_JUMP]
    assert rs["nat"]["KUBELING-NODEPORTS"] == []
    assert not [c for c in rs["nat"] if c.startswith(("KUBELING-SVC-", "KUBELING-SEP-"))]


def test_probabilities_are_one_over_n_minus_i():
    eps4 = [Endpoint(f"10.244.2.{i}", 80) for i in range(1, 5)]
    sp = ServicePort("ns", "four", "", "tcp", "10.96.0.4", 80)
    rs = rules.render([sp], eps(sp, *eps4))
    chain = rs["nat"][rules.svc_chain(sp)]
    probs = [re.search(r"--probability (\S+)", r) for r in chain[1:]]
    assert [p.group(1) if p else None for p in probs] == ["0.2500000000", "0.3333333333", "0.5000000000", None]
    targets = [r.split("-j ")[-1] for r in chain[1:]]
    assert targets == [rules.sep_chain(sp, e) for e in eps4]


def test_client_ip_affinity_uses_recent():
    sp = ServicePort("ns", "sticky", "", "tcp", "10.96.0.5", 80, affinity_seconds=600)
    rs = rules.render([sp], eps(sp, E1, E2))
    svc, s1, s2 = rules.svc_chain(sp), rules.sep_chain(sp, E1), rules.sep_chain(sp, E2)
    chain = rs["nat"][svc]
    assert chain[1] == (f'-A {svc} -m comment --comment "ns/sticky -> 10.244.1.2:8080" -m recent --name {s1} '
                        f'--rcheck --seconds 600 --reap -j {s1}')
    assert chain[2].endswith(f"--name {s2} --rcheck --seconds 600 --reap -j {s2}")
    assert rs["nat"][s1][1] == (f'-A {s1} -m comment --comment "ns/sticky" -m recent --name {s1} --set '
                                f'-p tcp -m tcp -j DNAT --to-destination 10.244.1.2:8080')


def test_terminating_endpoints_only_when_none_ready():
    sp = ServicePort("ns", "t", "", "tcp", "10.96.0.6", 80)
    term = Endpoint("10.244.1.7", 80, ready=False, serving=True, terminating=True)
    on = rules.Config(use_terminating=True)
    only_term = rules.render([sp], eps(sp, term), on)
    assert rules.sep_chain(sp, term) in only_term["nat"]
    both = rules.render([sp], eps(sp, term, E1), on)
    assert rules.sep_chain(sp, term) not in both["nat"] and rules.sep_chain(sp, E1) in both["nat"]
    off = rules.render([sp], eps(sp, term), rules.Config(use_terminating=False))
    assert rules.svc_chain(sp) not in off["nat"]
    assert off["filter"]["KUBELING-SERVICES"][0] == (
        '-A KUBELING-SERVICES -m comment --comment "ns/t has no endpoints" -d 10.96.0.6/32 -p tcp -m tcp '
        '--dport 80 -j REJECT --reject-with tcp-reset')


def test_partial_restore_writes_only_changed_chains_and_deletes_stale():
    r = rules.Renderer(rules.Config())
    other = ServicePort("default", "other", "", "tcp", "10.96.0.11", 81)
    first = r.render([WEB, other], {**eps(WEB, E1, E2), **eps(other, E1)})
    second = r.render([WEB, other], {**eps(WEB, E1), **eps(other, E1)})
    stale = {t: set(first[t]) - set(second[t]) for t in rules.TABLES}
    assert stale == {"filter": set(), "nat": {SEP2}}
    text = rules.restore_text(second, first, stale)
    assert text == "\n".join([
        "*nat", f":{SVC} - [0:0]", f":{SEP2} - [0:0]",
        f'-A {SVC} -m comment --comment "default/web:http cluster IP" ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBELING-MARK-MASQ',
        f'-A {SVC} -m comment --comment "default/web:http -> 10.244.1.2:8080" -j {SEP1}',
        f"-X {SEP2}", "COMMIT", ""])
    assert rules.restore_text(second, second, {}) == ""


def test_stale_chains_that_are_not_ours_are_never_deleted():
    rs = rules.render([], {})
    text = rules.restore_text(rs, None, {"nat": {"KUBELING-CNI-M-abc", "DOCKER", "KUBELING-SEP-OLD"},
                                         "filter": {"FORWARD"}})
    assert "-X KUBELING-SEP-OLD" in text
    assert "CNI" not in text and "DOCKER" not in text and "-X FORWARD" not in text


def test_chain_names_fit_iptables_limit_and_ownership():
    sp = ServicePort("a" * 63, "b" * 63, "c" * 15, "sctp", "10.96.0.7", 1)
    assert len(rules.svc_chain(sp)) <= 28 and len(rules.sep_chain(sp, E1)) <= 28
    assert rules.is_ours("nat", rules.svc_chain(sp)) and rules.is_ours("filter", "KUBELING-FORWARD")
    assert not rules.is_ours("nat", "KUBELING-CNI-M-1234") and not rules.is_ours("filter", "KUBELING-SVC-X")


def test_renderer_cache_gives_same_result_as_fresh_render():
    r = rules.Renderer(rules.Config())
    r.render([WEB], eps(WEB, E1))
    again = r.render([WEB], eps(WEB, E1, E2))
    assert again == rules.render([WEB], eps(WEB, E1, E2))


def test_endpoints_only_render_equals_a_full_render():
    r = rules.Renderer(rules.Config())
    other = ServicePort("default", "other", "", "tcp", "10.96.0.11", 81)
    r.render([WEB, other], {**eps(WEB, E1, E2), **eps(other, E1)})
    E3 = Endpoint("10.244.1.4", 8080)
    changed = {**eps(WEB, E1, E3), **eps(other, E1)}
    fast = r.render([WEB, other], changed, only={("default", "web")})
    assert fast == rules.render([WEB, other], changed)
    assert rules.sep_chain(WEB, E2) not in fast["nat"] and rules.sep_chain(WEB, E3) in fast["nat"]
    # Losing every endpoint touches the shared chains: the fast path falls back to a full render.
    emptied = {**eps(WEB), **eps(other, E1)}
    assert r.render([WEB, other], emptied, only={("default", "web")}) == rules.render([WEB, other], emptied)


class _Kernel:
    """Applies restore batches as the kernel does, and refuses what it would refuse: a jump to
    a chain that does not exist, or deleting a chain still jumped to."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, list[str]]] = {t: {} for t in rules.TABLES}

    def restore(self, text: str) -> None:
        staged = {t: {c: list(r) for c, r in chains.items()} for t, chains in self.tables.items()}
        table: dict[str, list[str]] = {}
        for line in text.splitlines():
            if line.startswith("*"):
                table = staged[line[1:]]
            elif line.startswith(":"):
                table[line[1:].split()[0]] = []
            elif line.startswith("-A "):
                table[line.split()[1]].append(line)
            elif line.startswith("-X "):
                del table[line.split()[1]]
        for chains in staged.values():
            for body in chains.values():
                for rule in body:
                    target = rule.rsplit("-j ", 1)[-1].split()[0]
                    assert not target.startswith(rules.PREFIX) or target in chains, rule
        self.tables = staged


def _many(n: int, gen: int = 0) -> tuple[list[ServicePort], dict]:
    ports = [ServicePort("ns", f"s{i}", "http", "tcp", f"10.96.{i >> 8}.{i & 255}", 80) for i in range(n)]
    endpoints = {rules.endpoint_key(sp): [Endpoint(f"10.244.{i >> 8}.{i & 255}", 8080 + gen),
                                          Endpoint(f"10.245.{i >> 8}.{i & 255}", 8080)]
                 for i, sp in enumerate(ports)}
    return ports, endpoints


def test_a_big_write_is_split_into_batches_each_valid_and_ending_where_one_batch_would():
    ports, endpoints = _many(40)
    first = rules.render(ports, endpoints)
    batches = rules.restore_batches(first, batch_chains=25)
    assert len(batches) == 6  # 122 chains (2 fixed + 120 per-service) in 25s, then the dispatch chains
    kernel = _Kernel()
    for text in batches:
        kernel.restore(text)
    assert "KUBELING-SERVICES" not in "".join(batches[:-1])  # jumped to only once all exist
    assert kernel.tables == {t: {c: list(b) for c, b in chains.items()} for t, chains in first.items()}

    # A partial write of many changed chains, dropping half the services: split as well, and the
    # stale chains go in the last batch, once nothing jumps to them.
    ports2, endpoints2 = _many(20, gen=1)
    second = rules.render(ports2, endpoints2)
    stale = {t: set(first[t]) - set(second[t]) for t in rules.TABLES}
    batches = rules.restore_batches(second, first, stale, batch_chains=25)
    assert len(batches) > 1 and all("-X " not in b for b in batches[:-1])
    for text in batches:
        kernel.restore(text)
    assert kernel.tables == {t: {c: list(b) for c, b in chains.items()} for t, chains in second.items()}
    # Few chains: one batch, as restore_text gives.
    assert rules.restore_batches(second, first, stale) == [rules.restore_text(second, first, stale)]


def test_a_partial_render_names_the_chains_it_wrote_and_dropped():
    E3 = Endpoint("10.244.9.9", 8080)
    r = rules.Renderer(rules.Config())
    ports, endpoints = _many(3)
    first = r.render(ports, endpoints)
    assert r.delta is None
    kernel = _Kernel()
    kernel.restore(rules.restore_text(first))
    sp = ports[1]
    changed = {**endpoints, rules.endpoint_key(sp): [endpoints[rules.endpoint_key(sp)][0], E3]}
    second = r.render(ports, changed, only={(sp.namespace, sp.name)})
    written, dropped = r.delta
    old_sep = rules.sep_chain(sp, endpoints[rules.endpoint_key(sp)][1])
    assert written == {rules.svc_chain(sp), rules.sep_chain(sp, E3)} and dropped == {old_sep}
    kernel.restore(rules.restore_text({"nat": {c: second["nat"][c] for c in written}}, None, {"nat": dropped}))
    assert kernel.tables == {t: {c: list(b) for c, b in chains.items()} for t, chains in second.items()}
