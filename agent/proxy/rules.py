"""The proxy's iptables ruleset, rendered from service ports and endpoints (pure; no I/O).

The shape is kube-proxy's iptables mode, under our own chain names:

nat    KUBELING-SERVICES   one rule per cluster IP:port → KUBELING-SVC-<hash>; last rule: local
                           destinations → KUBELING-NODEPORTS
       KUBELING-NODEPORTS  per node port: mark for masquerade, → KUBELING-SVC-<hash>
       KUBELING-SVC-<h>    mark traffic from outside the cluster CIDR; ClientIP affinity (`recent`);
                           random spread (`statistic`, probability 1/(n-i)) → KUBELING-SEP-<h>
       KUBELING-SEP-<h>    mark hairpin traffic (source = the endpoint); DNAT to the endpoint
       KUBELING-MARK-MASQ  sets the masquerade bit; KUBELING-POSTROUTING masquerades marked packets
filter KUBELING-SERVICES   REJECT service ports without endpoints, then every other address of the
                           service CIDR, so nothing for it ever leaves the machine (TCP with a
                           reset, the rest with ICMP port unreachable)
       KUBELING-FORWARD    ACCEPT the pod network and marked service traffic (FORWARD may be DROP)

A Ruleset is {table: {chain: [rule lines]}}; restore_text() turns it into one
`iptables-restore --noflush` batch, writing only the chains that differ from the last one applied.
"""
from __future__ import annotations

import base64
import hashlib
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.proxy.model import USE_TERMINATING_DEFAULT, Endpoint, ServicePort, usable

PREFIX = "KUBELING-"
SERVICES = "KUBELING-SERVICES"
NODEPORTS = "KUBELING-NODEPORTS"
MARK_MASQ = "KUBELING-MARK-MASQ"
POSTROUTING = "KUBELING-POSTROUTING"
FORWARD = "KUBELING-FORWARD"
SVC_PREFIX = "KUBELING-SVC-"
SEP_PREFIX = "KUBELING-SEP-"

TABLES = ("filter", "nat")
STATIC_CHAINS: dict[str, tuple[str, ...]] = {
    "filter": (SERVICES, FORWARD),
    "nat": (SERVICES, NODEPORTS, MARK_MASQ, POSTROUTING),
}
# (table, built-in chain) → our chains jumped to from it, in the order they must be met.
# The filter services chain comes before the forward-accept chain so REJECTs win.
JUMPS: dict[tuple[str, str], tuple[str, ...]] = {
    ("nat", "PREROUTING"): (SERVICES,),
    ("nat", "OUTPUT"): (SERVICES,),
    ("nat", "POSTROUTING"): (POSTROUTING,),
    ("filter", "INPUT"): (SERVICES,),
    ("filter", "FORWARD"): (SERVICES, FORWARD),
    ("filter", "OUTPUT"): (SERVICES,),
}
JUMP_COMMENTS = {
    SERVICES: "kubeling service portals",
    POSTROUTING: "kubeling postrouting rules",
    FORWARD: "kubeling forwarding rules",
}

Ruleset = dict[str, dict[str, Sequence[str]]]  # table → chain → rule lines
EndpointKey = tuple[str, str, str, str]  # namespace, service, port name, protocol


_ORDER = operator.attrgetter("namespace", "name", "port_name", "protocol", "port")


def is_ours(table: str, chain: str) -> bool:
    """Exactly the chains this proxy creates; KUBELING-CNI-* (the CNI plugin's) never match."""
    if chain in STATIC_CHAINS.get(table, ()):
        return True
    return table == "nat" and chain.startswith((SVC_PREFIX, SEP_PREFIX))


def jump_rule(parent: str, chain: str) -> list[str]:
    """The argument list of one jump rule (for `iptables -C/-I/-D`)."""
    return [parent, "-m", "comment", "--comment", JUMP_COMMENTS[chain], "-j", chain]


def endpoint_key(sp: ServicePort) -> EndpointKey:
    return sp.namespace, sp.name, sp.port_name, sp.protocol


def _hash(*parts: str) -> str:
    # 15 base32 characters keep KUBELING-SVC-<hash> within iptables' 28-character chain names.
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return base64.b32encode(digest).decode()[:15]


def svc_chain(sp: ServicePort) -> str:
    return SVC_PREFIX + _hash(sp.key, sp.protocol)


def sep_chain(sp: ServicePort, ep: Endpoint) -> str:
    return SEP_PREFIX + _hash(sp.key, sp.protocol, ep.address)


def _reject_with(protocol: str) -> str:
    # TCP gets a reset: the kernel rate-limits ICMP errors sent to other hosts (pods) so hard that
    # a pod's first SYNs to a service without endpoints would go unanswered and the connect
    # would time out; a RST is not rate-limited and fails the connect at once ("refused").
    return "tcp-reset" if protocol == "tcp" else "icmp-port-unreachable"


def keep_live(cache: dict[ServicePort, Any], ordered: list[ServicePort]) -> dict[tuple[str, str], list[ServicePort]]:
    """After a render: forget the cached pieces of service ports that went away, and return the
    ports of each service (namespace, name), which a partial sync re-renders. Both renderers'."""
    if len(cache) > len(ordered):
        live = set(ordered)
        for gone in [k for k in cache if k not in live]:
            del cache[gone]
    ports_of: dict[tuple[str, str], list[ServicePort]] = {}
    for sp in ordered:
        ports_of.setdefault((sp.namespace, sp.name), []).append(sp)
    return ports_of


def _q(text: str) -> str:
    return '"' + text + '"'


@dataclass(frozen=True)
class Config:
    cluster_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/12"
    masq_mark: str = "0x4000"
    use_terminating: bool = USE_TERMINATING_DEFAULT  # serving terminating endpoints when none is ready


@dataclass(frozen=True)
class _Pieces:
    """The rules one service port contributes, cached while its inputs stay the same."""
    nat_services: tuple[str, ...]
    nat_nodeports: tuple[str, ...]
    filter_services: tuple[str, ...]
    chains: tuple[tuple[str, tuple[str, ...]], ...]


class Renderer:
    """Renders whole rulesets; remembers each service port's rules so a sync after one change
    renders only that service (10,000 unchanged services cost a dictionary look-up each)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._cache: dict[ServicePort, tuple[Sequence[Endpoint], _Pieces]] = {}
        self._last: Ruleset | None = None
        self._ports_of: dict[tuple[str, str], list[ServicePort]] = {}
        # After a render of `only` some services: the nat chains it (re)wrote and those it
        # dropped, so a sync need not compare 30k chains to find them; None after a whole render.
        self.delta: tuple[set[str], set[str]] | None = None

    def render(self, ports: Iterable[ServicePort], endpoints: Mapping[EndpointKey, list[Endpoint]],
               only: Iterable[tuple[str, str]] | None = None) -> Ruleset:
        """The whole ruleset. `only`: a promise that since the previous render nothing changed but
        the endpoints of these (namespace, name) services; then only their chains are redone,
        unless a change reaches the shared chains (a service gaining or losing all endpoints)."""
        if only is not None and self._last is not None:
            written: set[str] = set()
            dropped: set[str] = set()
            fast = self._endpoints_only(only, endpoints, written, dropped)
            if fast is not None:
                self._last = fast
                self.delta = (written, {c for c in dropped if c not in fast["nat"]})
                return fast
        self.delta = None
        self._last = self._render_all(ports, endpoints)
        return self._last

    def _endpoints_only(self, only: Iterable[tuple[str, str]], endpoints: Mapping[EndpointKey, list[Endpoint]],
                        written: set[str], dropped: set[str]) -> Ruleset | None:
        assert self._last is not None
        nat = dict(self._last["nat"])
        for svc in only:
            for sp in self._ports_of.get(svc, ()):
                raw = endpoints.get(endpoint_key(sp)) or ()
                old_raw, old = self._cache[sp]
                if old_raw is raw or old_raw == raw:
                    continue
                new = self._render_port(sp, tuple(usable(raw, self.cfg.use_terminating)))
                if (new.nat_services, new.nat_nodeports, new.filter_services) != \
                        (old.nat_services, old.nat_nodeports, old.filter_services):
                    return None
                for chain, _ in old.chains:
                    del nat[chain]
                    dropped.add(chain)
                nat.update(new.chains)
                old_bodies = dict(old.chains)
                written.update(c for c, body in new.chains if old_bodies.get(c) != body)
                self._cache[sp] = (raw, new)
        return {"filter": self._last["filter"], "nat": nat}

    def _render_all(self, ports: Iterable[ServicePort],
                    endpoints: Mapping[EndpointKey, list[Endpoint]]) -> Ruleset:
        cfg = self.cfg
        mark = cfg.masq_mark
        nat_services: list[str] = []
        nat_nodeports: list[str] = []
        filt_services: list[str] = []
        nat: dict[str, Sequence[str]] = {
            SERVICES: nat_services, NODEPORTS: nat_nodeports,
            MARK_MASQ: [f"-A {MARK_MASQ} -j MARK --or-mark {mark}"],
            POSTROUTING: [
                f"-A {POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN",
                # Clear the bit so a packet re-entering the stack (e.g. through a tunnel) is not
                # masqueraded twice.
                f"-A {POSTROUTING} -j MARK --xor-mark {mark}",
                f"-A {POSTROUTING} -m comment --comment {_q('kubeling service traffic requiring SNAT')} "
                f"-j MASQUERADE --random-fully",
            ],
        }
        cache = self._cache
        ordered = sorted(ports, key=_ORDER)
        for sp in ordered:
            raw = endpoints.get(endpoint_key(sp)) or ()
            hit = cache.get(sp)
            # The proxier replaces an endpoint list only when its slices change, so an unchanged
            # service is recognised by identity, without comparing endpoints.
            if hit is not None and (hit[0] is raw or hit[0] == raw):
                pieces = hit[1]
            else:
                pieces = self._render_port(sp, tuple(usable(raw, cfg.use_terminating)))
                cache[sp] = (raw, pieces)
            nat_services += pieces.nat_services
            nat_nodeports += pieces.nat_nodeports
            filt_services += pieces.filter_services
            nat.update(pieces.chains)
        self._ports_of = keep_live(cache, ordered)
        nat_services.append(
            f"-A {SERVICES} -m comment --comment {_q('kubeling service nodeports; must be the last rule')} "
            f"! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j {NODEPORTS}")
        filt_services += [
            f"-A {SERVICES} -m comment --comment {_q('unallocated service IP')} -d {cfg.service_cidr} "
            f"-p tcp -j REJECT --reject-with tcp-reset",
            f"-A {SERVICES} -m comment --comment {_q('unallocated service IP')} -d {cfg.service_cidr} "
            f"-j REJECT --reject-with icmp-port-unreachable",
        ]
        filt: dict[str, Sequence[str]] = {SERVICES: filt_services, FORWARD: forward_rules(cfg)}
        return {"filter": filt, "nat": nat}

    def _render_port(self, sp: ServicePort, eps: tuple[Endpoint, ...]) -> _Pieces:
        proto = f"-p {sp.protocol} -m {sp.protocol}"
        key = sp.key
        if not eps:
            how = _reject_with(sp.protocol)
            reject = [f"-A {SERVICES} -m comment --comment {_q(key + ' has no endpoints')} "
                      f"-d {sp.cluster_ip}/32 {proto} --dport {sp.port} -j REJECT --reject-with {how}"]
            if sp.node_port:
                reject.append(f"-A {SERVICES} -m comment --comment {_q(key + ' has no endpoints')} "
                              f"-m addrtype --dst-type LOCAL {proto} --dport {sp.node_port} "
                              f"-j REJECT --reject-with {how}")
            return _Pieces((), (), tuple(reject), ())
        svc = svc_chain(sp)
        nat_services = (f"-A {SERVICES} -m comment --comment {_q(key + ' cluster IP')} "
                        f"-d {sp.cluster_ip}/32 {proto} --dport {sp.port} -j {svc}",)
        nat_nodeports: tuple[str, ...] = ()
        if sp.node_port:
            nat_nodeports = (
                f"-A {NODEPORTS} -m comment --comment {_q(key)} {proto} --dport {sp.node_port} -j {MARK_MASQ}",
                f"-A {NODEPORTS} -m comment --comment {_q(key)} {proto} --dport {sp.node_port} -j {svc}",
            )
        seps = [sep_chain(sp, ep) for ep in eps]
        svc_rules = [f"-A {svc} -m comment --comment {_q(key + ' cluster IP')} ! -s {self.cfg.cluster_cidr} "
                     f"-d {sp.cluster_ip}/32 {proto} --dport {sp.port} -j {MARK_MASQ}"]
        if sp.affinity_seconds:
            svc_rules += [f"-A {svc} -m comment --comment {_q(key + ' -> ' + ep.address)} -m recent "
                          f"--name {sep} --rcheck --seconds {sp.affinity_seconds} --reap -j {sep}"
                          for ep, sep in zip(eps, seps)]
        n = len(eps)
        chains: list[tuple[str, tuple[str, ...]]] = []
        for i, (ep, sep) in enumerate(zip(eps, seps)):
            spread = f"-m statistic --mode random --probability {1.0 / (n - i):.10f} " if i < n - 1 else ""
            svc_rules.append(f"-A {svc} -m comment --comment {_q(key + ' -> ' + ep.address)} {spread}-j {sep}")
            affinity = f"-m recent --name {sep} --set " if sp.affinity_seconds else ""
            chains.append((sep, (
                f"-A {sep} -m comment --comment {_q(key)} -s {ep.ip}/32 -j {MARK_MASQ}",
                f"-A {sep} -m comment --comment {_q(key)} {affinity}{proto} -j DNAT --to-destination {ep.address}",
            )))
        chains.insert(0, (svc, tuple(svc_rules)))
        return _Pieces(nat_services, nat_nodeports, (), tuple(chains))


def forward_rules(cfg: Config) -> list[str]:
    """KUBELING-FORWARD: accept the pod network and marked service traffic (FORWARD may be DROP).
    The nftables mode keeps this chain too: only an iptables rule can overrule iptables' policy."""
    mark = cfg.masq_mark
    return [
        f"-A {FORWARD} -m comment --comment {_q('kubeling forwarding rules')} "
        f"-m mark --mark {mark}/{mark} -j ACCEPT",
        f"-A {FORWARD} -m comment --comment {_q('kubeling pod network')} -s {cfg.cluster_cidr} -j ACCEPT",
        f"-A {FORWARD} -m comment --comment {_q('kubeling pod network')} -d {cfg.cluster_cidr} -j ACCEPT",
    ]


def render(ports: Iterable[ServicePort], endpoints: Mapping[EndpointKey, list[Endpoint]],
           cfg: Config | None = None) -> Ruleset:
    return Renderer(cfg or Config()).render(ports, endpoints)


def restore_text(new: Ruleset, old: Ruleset | None = None,
                 stale: Mapping[str, Iterable[str]] | None = None) -> str:
    """One iptables-restore --noflush batch.

    Declaring a chain (`:NAME - [0:0]`) creates or flushes only that chain; chains not named are
    left alone. With `old` (the ruleset last applied successfully) only chains whose rules changed
    are declared and rewritten, as kube-proxy does after its first sync; `stale` chains (ours, no
    longer rendered) are flushed and deleted in the same batch, after every rule that could have
    referenced them is rewritten."""
    out: list[str] = []
    for table in TABLES:
        chains = new.get(table, {})
        prev = (old or {}).get(table, {})
        write = [c for c, rules in chains.items()
                 if old is None or (prev.get(c) is not rules and prev.get(c) != rules)]
        gone = sorted(c for c in (stale or {}).get(table, ()) if c not in chains and is_ours(table, c))
        if not write and not gone:
            continue
        out.append(f"*{table}")
        out += [f":{c} - [0:0]" for c in write + gone]
        for c in write:
            out += chains[c]
        out += [f"-X {c}" for c in gone]
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


# Chains per iptables-restore batch when a sync writes many. iptables-nft-restore takes time
# quadratic in one batch's size (1,000 services: 1.8 s; 3,000: 22.8 s in one batch, 1.3 s in
# batches of 500 chains), so a big write is split.
BATCH_CHAINS = 500


def _rank(chain: str) -> int:
    """Write order: a chain is written after every chain it jumps to (SEP ← SVC ← SERVICES)."""
    if chain in (SERVICES, NODEPORTS):
        return 3
    return 2 if chain.startswith(SVC_PREFIX) else 1 if chain.startswith(SEP_PREFIX) else 0


def restore_batches(new: Ruleset, old: Ruleset | None = None,
                    stale: Mapping[str, Iterable[str]] | None = None,
                    batch_chains: int = BATCH_CHAINS) -> list[str]:
    """restore_text's batch, split when it declares more than batch_chains chains: first the
    nat per-service chains in batches (endpoint chains before the service chains that jump to
    them, each chain flushed and refilled in one batch, so each is atomic), then one last batch
    with the rest: the service and node-port dispatch chains, the filter table and the stale
    chains' removal (only there may nothing refer to them any more). Rules are live as soon as
    their batch is: a new service's chains are unreferenced until the last batch jumps to them."""
    nat = new.get("nat", {})
    prev = (old or {}).get("nat", {})
    write = [c for c, body in nat.items()
             if (old is None or (prev.get(c) is not body and prev.get(c) != body)) and _rank(c) < 3]
    if len(write) <= batch_chains:
        return [t for t in [restore_text(new, old, stale)] if t]
    write.sort(key=_rank)
    out = [restore_text({"nat": {c: nat[c] for c in write[k:k + batch_chains]}})
           for k in range(0, len(write), batch_chains)]
    written = set(write)
    rest: Ruleset = {t: {c: b for c, b in chains.items() if t != "nat" or c not in written}
                     for t, chains in new.items()}
    # As written by now: restore_text then writes only what still differs (with `old`) or all the rest.
    base: Ruleset | None = None
    if old is not None:
        base = {t: dict(chains) for t, chains in old.items()}
        base.setdefault("nat", {}).update({c: nat[c] for c in written})
        rest = new
    last = restore_text(rest, base, stale)
    return out + ([last] if last else [])


def chain_names(rs: Ruleset) -> dict[str, set[str]]:
    return {table: set(chains) for table, chains in rs.items()}
