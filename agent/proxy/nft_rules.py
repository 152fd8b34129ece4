"""The proxy's nftables ruleset, rendered from service ports and endpoints (pure; no I/O).

The shape is kube-proxy's nftables mode, in a table of our own (`ip kubeling-proxy`), so
nothing else's rules are ever read or written:

nat-prerouting, nat-output (base, dstnat -100)  → services
services       one verdict-map look-up of (daddr . protocol . dport) in `service-ips`; then, for a
               local destination, (protocol . dport) in `service-nodeports`
svc-<h>        mark traffic from outside the cluster CIDR; ClientIP affinity (a dynamic set per
               endpoint, `aff-<h>`); random spread (`numgen random mod k == 0`, one rule per endpoint) → ep-<h>
ext-<h>        a node port's way in: mark for masquerade, then svc-<h>
ep-<h>         mark hairpin traffic (source = the endpoint); DNAT to the endpoint
nat-postrouting (base, srcnat 100) → masquerading: masquerade marked packets
filter-input/forward/output (base) → reject-services: node ports without endpoints (set
               `no-endpoint-nodeports`), then every address of the service CIDR not DNATed by
               now (a Service without endpoints, an unallocated address): TCP with a reset, the
               rest with ICMP port unreachable, so nothing for the service CIDR leaves the machine

A sync is one `nft -f` transaction. Most changes are then a few map elements and a few small
chains: a new Service adds its chains and one element, it never rewrites a chain shared by
every Service (iptables' KUBELING-SERVICES), which is why this mode scales with the change.
"""
from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agent.proxy import rules
from agent.proxy.model import Endpoint, ServicePort, usable

FAMILY = "ip"
TABLE = "kubeling-proxy"
SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
SERVICES = "services"
MARK_MASQ = "mark-for-masquerade"
MASQUERADING = "masquerading"
REJECT_SERVICES = "reject-services"
SVC_PREFIX, EXT_PREFIX, EP_PREFIX, AFF_PREFIX = "svc-", "ext-", "ep-", "aff-"

# Base chains: (name, declaration); their rules are static (Renderer._static_chains).
BASE_CHAINS: tuple[tuple[str, str], ...] = (
    ("nat-prerouting", "type nat hook prerouting priority -100; policy accept;"),
    ("nat-output", "type nat hook output priority -100; policy accept;"),
    ("nat-postrouting", "type nat hook postrouting priority 100; policy accept;"),
    # Numbers, not dstnat/srcnat/filter: nft 1.0.6 takes the names in some hooks only. Before the
    # usual filter chains (priority 0), as kube-proxy's: the rejects answer first.
    ("filter-input", "type filter hook input priority -5; policy accept;"),
    ("filter-forward", "type filter hook forward priority -5; policy accept;"),
    ("filter-output", "type filter hook output priority -5; policy accept;"),
)
MAPS: dict[str, str] = {
    SERVICE_IPS: "type ipv4_addr . inet_proto . inet_service : verdict;",
    SERVICE_NODEPORTS: "type inet_proto . inet_service : verdict;",
}
SETS: dict[str, str] = {NO_ENDPOINT_NODEPORTS: "type inet_proto . inet_service;"}

_ORDER = operator.attrgetter("namespace", "name", "port_name", "protocol", "port")


def svc_chain(sp: ServicePort) -> str:
    return SVC_PREFIX + rules._hash(sp.key, sp.protocol)


def ext_chain(sp: ServicePort) -> str:
    return EXT_PREFIX + rules._hash(sp.key, sp.protocol)


def ep_chain(sp: ServicePort, ep: Endpoint) -> str:
    return EP_PREFIX + rules._hash(sp.key, sp.protocol, ep.address)


def affinity_set(sp: ServicePort, ep: Endpoint) -> str:
    return AFF_PREFIX + rules._hash(sp.key, sp.protocol, ep.address)


def _comment(text: str) -> str:
    return f'comment "{text}"'


@dataclass
class NftRuleset:
    """chains: regular and base chains → rule bodies; maps/sets: name → {key: verdict} or
    {key: ""}; affinity: the dynamic sets (name → timeout seconds)."""
    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    maps: dict[str, dict[str, str]] = field(default_factory=dict)
    affinity: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Pieces:
    """What one service port contributes, cached while its inputs stay the same."""
    service_ips: tuple[tuple[str, str], ...]
    nodeports: tuple[tuple[str, str], ...]
    no_endpoint_nodeports: tuple[str, ...]
    chains: tuple[tuple[str, tuple[str, ...]], ...]
    affinity: tuple[tuple[str, int], ...]


class Renderer:
    """Renders whole rulesets, remembering each service port's pieces, so a sync after one
    change renders only that service."""

    def __init__(self, cfg: rules.Config) -> None:
        self.cfg = cfg
        self._cache: dict[ServicePort, tuple[object, _Pieces]] = {}
        self._last: NftRuleset | None = None
        self._ports_of: dict[tuple[str, str], list[ServicePort]] = {}
        # After a render of `only` some services: the chains it may have changed (for
        # transaction(touched=), instead of comparing 30k chains); None after a whole render.
        self.delta: set[str] | None = None

    def render(self, ports: Iterable[ServicePort], endpoints: Mapping[rules.EndpointKey, list[Endpoint]],
               only: Iterable[tuple[str, str]] | None = None) -> NftRuleset:
        """`only`: a promise that since the previous render nothing changed but the endpoints
        of these (namespace, name) services; then only their pieces are redone."""
        if only is not None and self._last is not None:
            self.delta = set()
            self._last = self._endpoints_only(only, endpoints, self.delta)
        else:
            self.delta = None
            self._last = self._render_all(ports, endpoints)
        return self._last

    def _endpoints_only(self, only: Iterable[tuple[str, str]], endpoints: Mapping[rules.EndpointKey, list[Endpoint]],
                        touched: set[str]) -> NftRuleset:
        assert self._last is not None
        last = self._last
        # Maps are copied only when this change touches them: transaction() skips a map that
        # is the same object as the last one's, instead of comparing its 10k elements.
        out = NftRuleset(dict(last.chains), dict(last.maps), dict(last.affinity))
        for svc in only:
            for sp in self._ports_of.get(svc, ()):
                raw = endpoints.get(rules.endpoint_key(sp)) or ()
                old_raw, old = self._cache[sp]
                if old_raw is raw or old_raw == raw:
                    continue
                new = self._render_port(sp, tuple(usable(raw, self.cfg.use_terminating)))
                self._cache[sp] = (raw, new)
                for name, before, after in ((SERVICE_IPS, old.service_ips, new.service_ips),
                                            (SERVICE_NODEPORTS, old.nodeports, new.nodeports),
                                            (NO_ENDPOINT_NODEPORTS, *(tuple((k, "") for k in p.no_endpoint_nodeports)
                                                                      for p in (old, new)))):
                    if before == after:
                        continue
                    if out.maps[name] is last.maps[name]:
                        out.maps[name] = dict(last.maps[name])
                    for k, _ in before:
                        out.maps[name].pop(k, None)
                    out.maps[name].update(after)
                for c, _ in old.chains:
                    out.chains.pop(c, None)
                    touched.add(c)
                out.chains.update(new.chains)
                touched.update(c for c, _ in new.chains)
                for a, _ in old.affinity:
                    out.affinity.pop(a, None)
                out.affinity.update(new.affinity)
        return out

    def _render_all(self, ports: Iterable[ServicePort],
                    endpoints: Mapping[rules.EndpointKey, list[Endpoint]]) -> NftRuleset:
        out = NftRuleset(self._static_chains(), {SERVICE_IPS: {}, SERVICE_NODEPORTS: {}, NO_ENDPOINT_NODEPORTS: {}})
        cache = self._cache
        ordered = sorted(ports, key=_ORDER)
        for sp in ordered:
            raw = endpoints.get(rules.endpoint_key(sp)) or ()
            hit = cache.get(sp)
            if hit is not None and (hit[0] is raw or hit[0] == raw):
                pieces = hit[1]
            else:
                pieces = self._render_port(sp, tuple(usable(raw, self.cfg.use_terminating)))
                cache[sp] = (raw, pieces)
            _add(out, pieces)
        self._ports_of = rules.keep_live(cache, ordered)
        return out

    def _static_chains(self) -> dict[str, tuple[str, ...]]:
        cfg = self.cfg
        mark = cfg.masq_mark
        reject = (f"jump {REJECT_SERVICES}",)
        return {
            "nat-prerouting": (f"jump {SERVICES}",),
            "nat-output": (f"jump {SERVICES}",),
            "nat-postrouting": (f"jump {MASQUERADING}",),
            "filter-input": reject,
            "filter-forward": reject,
            "filter-output": reject,
            SERVICES: (
                f"ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}",
                f"ip daddr != 127.0.0.0/8 fib daddr type local meta l4proto . th dport vmap @{SERVICE_NODEPORTS}",
            ),
            MARK_MASQ: (f"meta mark set meta mark | {mark}",),
            MASQUERADING: (
                f"meta mark & {mark} == 0 return",
                # Clear the bit so a packet re-entering the stack is not masqueraded twice.
                f"meta mark set meta mark ^ {mark}",
                f"masquerade fully-random {_comment('kubeling service traffic requiring SNAT')}",
            ),
            REJECT_SERVICES: (
                f"fib daddr type local meta l4proto . th dport @{NO_ENDPOINT_NODEPORTS} meta l4proto tcp "
                f"reject with tcp reset {_comment('node port without endpoints')}",
                f"fib daddr type local meta l4proto . th dport @{NO_ENDPOINT_NODEPORTS} reject "
                f"{_comment('node port without endpoints')}",
                # After DNAT: whatever still heads for the service CIDR has no endpoint. TCP gets a
                # reset, which (unlike ICMP errors to other hosts) the kernel does not rate-limit.
                f"ip daddr {cfg.service_cidr} meta l4proto tcp reject with tcp reset "
                f"{_comment('service IP without endpoints')}",
                f"ip daddr {cfg.service_cidr} reject {_comment('service IP without endpoints')}",
            ),
        }

    def _render_port(self, sp: ServicePort, eps: tuple[Endpoint, ...]) -> _Pieces:
        proto = sp.protocol
        if not eps:
            return _Pieces((), (), (f"{proto} . {sp.node_port}",) if sp.node_port else (), (), ())
        svc = svc_chain(sp)
        ip_key = f"{sp.cluster_ip} . {proto} . {sp.port}"
        chains: list[tuple[str, tuple[str, ...]]] = []
        nodeports: tuple[tuple[str, str], ...] = ()
        if sp.node_port:
            ext = ext_chain(sp)
            nodeports = ((f"{proto} . {sp.node_port}", f"goto {ext}"),)
            chains.append((ext, (f"jump {MARK_MASQ}", f"goto {svc}")))
        eps_chains = [ep_chain(sp, ep) for ep in eps]
        svc_rules = [f"ip saddr != {self.cfg.cluster_cidr} jump {MARK_MASQ} {_comment(sp.key + ' cluster IP')}"]
        affinity: list[tuple[str, int]] = []
        if sp.affinity_seconds:
            for ep, chain in zip(eps, eps_chains):
                aff = affinity_set(sp, ep)
                affinity.append((aff, sp.affinity_seconds))
                svc_rules.append(f"ip saddr @{aff} goto {chain}")
        # The spread as iptables' statistic rules: endpoint i is taken with probability
        # 1/(n-i) of what is left, so each gets 1/n. Not kube-proxy's `numgen random mod n vmap
        # {...}`: each such rule holds an anonymous map, and nft 1.0.6 loads a table with
        # thousands of them in time quadratic in their number (4,000 services: 2.2 s vs 0.2 s).
        n = len(eps)
        for i, chain in enumerate(eps_chains[:-1]):
            svc_rules.append(f"numgen random mod {n - i} == 0 goto {chain}")
        svc_rules.append(f"goto {eps_chains[-1]}")
        chains.append((svc, tuple(svc_rules)))
        for ep, chain in zip(eps, eps_chains):
            body = [f"ip saddr {ep.ip} jump {MARK_MASQ}"]
            if sp.affinity_seconds:
                body.append(f"update @{affinity_set(sp, ep)} {{ ip saddr }}")
            body.append(f"meta l4proto {proto} dnat to {ep.address} {_comment(sp.key + ' -> ' + ep.address)}")
            chains.append((chain, tuple(body)))
        return _Pieces(((ip_key, f"goto {svc}"),), nodeports, (), tuple(chains), tuple(affinity))


def _add(rs: NftRuleset, p: _Pieces) -> None:
    rs.maps[SERVICE_IPS].update(p.service_ips)
    rs.maps[SERVICE_NODEPORTS].update(p.nodeports)
    rs.maps[NO_ENDPOINT_NODEPORTS].update((k, "") for k in p.no_endpoint_nodeports)
    rs.chains.update(p.chains)
    rs.affinity.update(p.affinity)


def is_base(chain: str) -> bool:
    return any(chain == name for name, _ in BASE_CHAINS)


def _element(name: str, key: str, value: str) -> str:
    return f"{key} : {value}" if name in MAPS else key


def transaction(new: NftRuleset, old: NftRuleset | None = None,
                existing: Mapping[str, Iterable[str]] | None = None, replace: bool = False,
                touched: Iterable[str] | None = None) -> str:
    """One `nft -f` transaction.

    Without `old` (a full sync): the table, every chain, map and set is declared (`add` is a
    no-op for what exists), every chain and map flushed and written again, and what `existing`
    names ({"chains": ..., "sets": ...}) that is no longer rendered is deleted, after
    everything that could refer to it is rewritten. Affinity sets are kept, so a full resync
    does not forget which client goes where. `replace`: the table (whatever it holds, e.g. a
    previous run's) is deleted first, in the same transaction, so nothing need be read from
    the kernel (`nft list` of a table of 10k services takes seconds).
    With `old` (the ruleset last applied): only chains, elements and sets that differ; with
    `touched` too, only those chains can differ (Renderer.delta)."""
    t = f"{FAMILY} {TABLE}"
    out: list[str] = []
    if old is None:
        out.append(f"add table {t}")
        if replace:
            out += [f"delete table {t}", f"add table {t}"]
        out += [f"add chain {t} {name} {{ {decl} }}" for name, decl in BASE_CHAINS]
        out += [f"add map {t} {name} {{ {decl} }}" for name, decl in MAPS.items()]
        out += [f"add set {t} {name} {{ {decl} }}" for name, decl in SETS.items()]
        out += [_affinity_decl(t, s, secs) for s, secs in new.affinity.items()]
        out += [f"add chain {t} {c}" for c in new.chains if not is_base(c)]
        out += [f"flush chain {t} {c}" for c in new.chains]
        out += [f"flush {'map' if m in MAPS else 'set'} {t} {m}" for m in (*MAPS, *SETS)]
        for c, body in new.chains.items():
            out += [f"add rule {t} {c} {r}" for r in body]
        for m, elems in new.maps.items():
            if elems:
                out.append(f"add element {t} {m} {{ {', '.join(_element(m, k, v) for k, v in elems.items())} }}")
        have = existing or {}
        stale_chains = sorted(c for c in have.get("chains", ()) if c not in new.chains and not is_base(c))
        stale_sets = sorted(s for s in have.get("sets", ())
                            if s.startswith(AFF_PREFIX) and s not in new.affinity)
    else:
        names = list(new.chains) if touched is None else sorted(c for c in touched if c in new.chains)
        added = [c for c in names if c not in old.chains]
        changed = [c for c in names
                   if c in old.chains and old.chains[c] is not new.chains[c] and old.chains[c] != new.chains[c]]
        out += [_affinity_decl(t, s, secs) for s, secs in new.affinity.items() if s not in old.affinity]
        out += [f"add chain {t} {c}" for c in added]
        out += [f"flush chain {t} {c}" for c in changed]
        for c in added + changed:
            out += [f"add rule {t} {c} {r}" for r in new.chains[c]]
        for m, elems in new.maps.items():
            before = old.maps.get(m, {})
            if elems is before:
                continue
            gone = [k for k, v in before.items() if elems.get(k) != v]
            put = [k for k, v in elems.items() if before.get(k) != v]
            if gone:
                out.append(f"delete element {t} {m} {{ {', '.join(gone)} }}")
            if put:
                out.append(f"add element {t} {m} {{ {', '.join(_element(m, k, elems[k]) for k in put)} }}")
        stale_chains = sorted(c for c in (old.chains if touched is None else touched)
                              if c in old.chains and c not in new.chains)
        stale_sets = sorted(s for s in old.affinity if s not in new.affinity)
    # Flushed first, deleted after: a stale chain may be the target of another stale chain's rule.
    out += [f"flush chain {t} {c}" for c in stale_chains]
    out += [f"delete chain {t} {c}" for c in stale_chains]
    out += [f"delete set {t} {s}" for s in stale_sets]
    return "\n".join(out) + "\n" if out else ""


def _affinity_decl(t: str, name: str, seconds: int) -> str:
    return f"add set {t} {name} {{ type ipv4_addr; flags dynamic,timeout; timeout {seconds}s; }}"
