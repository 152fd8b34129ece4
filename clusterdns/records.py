"""The cluster zone: Services, EndpointSlices and Pods in, DNS answers out (pure, no I/O).

Follows the Kubernetes DNS specification (kubernetes/dns docs/specification.md), as CoreDNS's
kubernetes plugin answers it:
- `<svc>.<ns>.svc.<domain>` A: the ClusterIP; for a headless Service the ready endpoints' IPs;
  ExternalName: a CNAME to the external name.
- `<hostname>.<svc>.<ns>.svc.<domain>` A: a headless Service's endpoint that has a hostname (a pod
  with `spec.hostname` + `spec.subdomain` = the Service); endpoints without one are named by
  their dashed IP.
- `_<port>._<proto>.<svc>.<ns>.svc.<domain>` SRV for each named port.
- `<a-b-c-d>.<ns>.pod.<domain>` A for pods; PTR for ClusterIPs, endpoint IPs and pod IPs.
- A name in the domain that does not exist: NXDOMAIN with the zone's SOA; one that exists
  without the asked type (or an empty non-terminal like `<ns>.svc.<domain>`): NOERROR, SOA.

Each Service (with its slices) and each Pod is one *source*: a change rebuilds that source's
records only, so an update costs the size of one Service, not of the cluster.
"""
from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.reversename

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
A, AAAA, CNAME, SRV, PTR, SOA, NS = (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.CNAME,
                                     dns.rdatatype.SRV, dns.rdatatype.PTR, dns.rdatatype.SOA,
                                     dns.rdatatype.NS)
REVERSE_ZONES = (dns.name.from_text("in-addr.arpa."), dns.name.from_text("ip6.arpa."))

Source = tuple[str, str, str]  # ("svc" | "pod", namespace, name)
RecordMap = dict[dns.name.Name, dict[int, list[str]]]  # name → rdtype → rdata texts


@dataclass
class Answer:
    rcode: int
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)


def _ip_family(ip: str) -> int:
    return A if ipaddress.ip_address(ip).version == 4 else AAAA


def dashed(ip: str) -> str:
    """10.244.1.5 → 10-244-1-5; IPv6 colons become dashes too (as CoreDNS names them)."""
    return ip.replace(".", "-").replace(":", "-")


def endpoint_ready(ep: dict[str, Any]) -> bool:
    # An unset `ready` means ready (discovery/v1 says consumers should treat nil as true).
    return (ep.get("conditions") or {}).get("ready") is not False


class ClusterRecords:
    def __init__(self, domain: str = "cluster.local", ttl: int = 5) -> None:
        self.domain = dns.name.from_text(domain)
        self.ttl = ttl
        self.services: dict[tuple[str, str], dict[str, Any]] = {}
        self.slices: dict[tuple[str, str], dict[str, Any]] = {}  # (ns, slice name) → slice
        self.slices_of: dict[tuple[str, str], set[tuple[str, str]]] = {}  # (ns, svc) → slice keys
        self.index: dict[dns.name.Name, dict[Source, dict[int, list[str]]]] = {}
        self.ents: Counter[dns.name.Name] = Counter()  # names that exist because a child does
        self.contrib: dict[Source, RecordMap] = {}
        self.generation = 0  # bumped on every change (the server's answer cache keys on it)
        soa = f"ns.dns.{domain}. hostmaster.{domain}. 1 7200 1800 86400 {ttl}"
        self.soa = dns.rrset.from_text(self.domain, ttl, "IN", "SOA", soa)

    # --- updates (informer handlers call these) ---------------------------------------------

    def set_service(self, svc: dict[str, Any]) -> None:
        meta = svc["metadata"]
        key = (meta.get("namespace") or "default", meta["name"])
        self.services[key] = svc
        self._rebuild_service(key)

    def delete_service(self, svc: dict[str, Any]) -> None:
        meta = svc["metadata"]
        key = (meta.get("namespace") or "default", meta["name"])
        self.services.pop(key, None)
        self._rebuild_service(key)

    def set_slice(self, sl: dict[str, Any], deleted: bool = False) -> None:
        meta = sl["metadata"]
        ns = meta.get("namespace") or "default"
        skey = (ns, meta["name"])
        touched = set()
        old = self.slices.pop(skey, None)
        if old is not None and (svc := (old["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)):
            self.slices_of.get((ns, svc), set()).discard(skey)
            touched.add((ns, svc))
        if not deleted:
            self.slices[skey] = sl
            if svc := (meta.get("labels") or {}).get(SERVICE_NAME_LABEL):
                self.slices_of.setdefault((ns, svc), set()).add(skey)
                touched.add((ns, svc))
        for key in touched:
            self._rebuild_service(key)

    def set_pod(self, pod: dict[str, Any], deleted: bool = False) -> None:
        meta = pod["metadata"]
        ns = meta.get("namespace") or "default"
        records: RecordMap = {}
        ips = [p.get("ip") for p in (pod.get("status") or {}).get("podIPs") or []]
        if not ips and (pod.get("status") or {}).get("podIP"):
            ips = [pod["status"]["podIP"]]
        # A host-network pod's IP is its node's: naming the node after one pod would be wrong.
        if not deleted and not (pod.get("spec") or {}).get("hostNetwork"):
            for ip in filter(None, ips):
                name = self._name(f"{dashed(ip)}.{ns}.pod")
                self._add(records, name, _ip_family(ip), ip)
                self._add(records, dns.reversename.from_address(ip), PTR, name.to_text())
        self._replace(("pod", ns, meta["name"]), records)

    # --- building -----------------------------------------------------------------------------

    def _name(self, relative: str) -> dns.name.Name:
        return dns.name.from_text(relative, origin=self.domain)

    @staticmethod
    def _add(records: RecordMap, name: dns.name.Name, rdtype: int, text: str) -> None:
        texts = records.setdefault(name, {}).setdefault(rdtype, [])
        if text not in texts:
            texts.append(text)

    def _rebuild_service(self, key: tuple[str, str]) -> None:
        ns, name = key
        records: RecordMap = {}
        svc = self.services.get(key)
        if svc is not None:
            self._service_records(records, svc, ns, name)
        self._replace(("svc", ns, name), records)

    def _service_records(self, records: RecordMap, svc: dict[str, Any], ns: str, name: str) -> None:
        spec = svc.get("spec") or {}
        fqdn = self._name(f"{name}.{ns}.svc")
        # The namespace's name exists as soon as one Service is in it (NOERROR, not NXDOMAIN).
        records.setdefault(fqdn, {})
        if spec.get("type") == "ExternalName":
            if spec.get("externalName"):
                self._add(records, fqdn, CNAME, spec["externalName"].rstrip(".") + ".")
            return
        named = [p for p in spec.get("ports") or [] if p.get("name")]
        cluster_ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip]
        if cluster_ips and cluster_ips[0] != "None":
            for ip in cluster_ips:
                self._add(records, fqdn, _ip_family(ip), ip)
                self._add(records, dns.reversename.from_address(ip), PTR, fqdn.to_text())
            for p in named:
                srv = dns.name.from_text(f"_{p['name']}._{(p.get('protocol') or 'TCP').lower()}", origin=fqdn)
                self._add(records, srv, SRV, f"0 100 {p.get('port')} {fqdn.to_text()}")
            return
        # Headless: every ready endpoint of every slice of the Service.
        for skey in sorted(self.slices_of.get((ns, name), ())):
            sl = self.slices[skey]
            slice_ports = {p.get("name") or "": p for p in sl.get("ports") or []}
            for ep in sl.get("endpoints") or []:
                if not endpoint_ready(ep):
                    continue
                for ip in ep.get("addresses") or []:
                    host = dns.name.from_text(ep.get("hostname") or dashed(ip), origin=fqdn)
                    self._add(records, fqdn, _ip_family(ip), ip)
                    self._add(records, host, _ip_family(ip), ip)
                    self._add(records, dns.reversename.from_address(ip), PTR, host.to_text())
                    for pname, p in slice_ports.items():
                        if not pname or p.get("port") is None:
                            continue
                        srv = dns.name.from_text(f"_{pname}._{(p.get('protocol') or 'TCP').lower()}",
                                                 origin=fqdn)
                        self._add(records, srv, SRV, f"0 100 {p['port']} {host.to_text()}")

    def _replace(self, source: Source, records: RecordMap) -> None:
        old = self.contrib.pop(source, {})
        if old == records:
            if records:
                self.contrib[source] = records
            return
        for name in old:
            entry = self.index.get(name)
            if entry is not None:
                entry.pop(source, None)
                if not entry:
                    del self.index[name]
            self._ent(name, -1)
        for name, types in records.items():
            self.index.setdefault(name, {})[source] = types
            self._ent(name, +1)
        if records:
            self.contrib[source] = records
        self.generation += 1

    def _ent(self, name: dns.name.Name, delta: int) -> None:
        # Every ancestor up to the zone exists as an empty non-terminal while a record is under it.
        parent = name
        while len(parent) > 1:
            parent = parent.parent()
            self.ents[parent] += delta
            if self.ents[parent] <= 0:
                del self.ents[parent]
            if parent == self.domain or parent in REVERSE_ZONES:
                break

    # --- answering ----------------------------------------------------------------------------

    def authoritative_for(self, qname: dns.name.Name) -> bool:
        return qname.is_subdomain(self.domain)

    def resolve(self, qname: dns.name.Name, qtype: int) -> Answer | None:
        """The answer for a question, or None when it is not ours (forward it upstream).

        Reverse names are ours only for IPs we know: any other PTR goes to the upstream."""
        entry = self.index.get(qname)
        in_zone = qname.is_subdomain(self.domain)
        if not in_zone:
            if entry is None or not any(qname.is_subdomain(z) for z in REVERSE_ZONES):
                return None
        if qname == self.domain and qtype in (SOA, dns.rdatatype.ANY):
            return Answer(dns.rcode.NOERROR, [self.soa])
        if entry is None:
            if qname in self.ents or qname == self.domain:
                return Answer(dns.rcode.NOERROR, [], [self.soa])
            return Answer(dns.rcode.NXDOMAIN, [], [self.soa])
        merged: dict[int, list[str]] = {}
        for types in entry.values():
            for rdtype, texts in types.items():
                merged.setdefault(rdtype, []).extend(t for t in texts if t not in merged.get(rdtype, ()))
        if CNAME in merged and qtype != CNAME:
            qtype_texts, qtype = merged[CNAME], CNAME
        else:
            qtype_texts = merged.get(qtype) or []
        if qtype == dns.rdatatype.ANY:
            answer = [dns.rrset.from_text_list(qname, self.ttl, "IN", t, texts) for t, texts in merged.items()]
            return Answer(dns.rcode.NOERROR, answer)
        if not qtype_texts:
            return Answer(dns.rcode.NOERROR, [], [self.soa])
        rrset = dns.rrset.from_text_list(qname, self.ttl, "IN", qtype, qtype_texts)
        return Answer(dns.rcode.NOERROR, [rrset])
