"""Reading what a pod's trace needs from the API server (the pod, the namespace's
events and Services, the nodes), and the one thing the trace does itself: ask the
cluster DNS for each Service's name."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype

from kubeling import errors
from kubeling.client import Client
from kubeling.resources import lookup

from .timeline import DELETION, Timeline, build_creation, build_deletion, event_time

PODS, EVENTS, SERVICES, NODES, SLICES = (lookup(w) for w in ("pods", "events", "services", "nodes",
                                                            "endpointslices"))
DNS_TIMEOUT = 2.0


@dataclass
class Snapshot:
    name: str
    namespace: str
    pod: dict[str, Any] | None
    uid: str
    events: list[dict[str, Any]] = field(default_factory=list)
    services: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)


def uid_of(name: str, pod: dict[str, Any] | None, events: list[dict[str, Any]]) -> str:
    """The pod's uid; for a pod already gone, the newest one recorded under its name."""
    if pod is not None:
        return pod["metadata"].get("uid", "")
    mine = [(event_time(e), e) for e in events if (e.get("involvedObject") or {}).get("kind") == "Pod"
            and (e.get("involvedObject") or {}).get("name") == name and (e.get("involvedObject") or {}).get("uid")]
    mine = [(t, e) for t, e in mine if t is not None]
    return max(mine, key=lambda te: te[0])[1]["involvedObject"]["uid"] if mine else ""


async def _optional_list(client: Client, res: Any, ns: str | None) -> list[dict[str, Any]]:
    try:
        return (await client.list(res, ns)).get("items") or []
    except errors.ApiError as exc:
        if exc.code in (403, 404):
            return []
        raise


async def snapshot(client: Client, name: str, namespace: str) -> Snapshot:
    try:
        pod: dict[str, Any] | None = await client.get(PODS, name, namespace)
    except errors.ApiError as exc:
        if exc.code != 404:
            raise
        pod = None
    events, services, nodes = await asyncio.gather(
        _optional_list(client, EVENTS, namespace), _optional_list(client, SERVICES, namespace),
        _optional_list(client, NODES, None))
    return Snapshot(name, namespace, pod, uid_of(name, pod, events), events, services,
                    sorted(n["metadata"]["name"] for n in nodes))


def timelines(snap: Snapshot, dns_answers: dict[str, str] | None = None) -> list[Timeline]:
    out = [build_creation(snap.pod, snap.uid, snap.name, snap.namespace, snap.events, snap.services,
                          snap.nodes, dns_answers)]
    deletion = build_deletion(snap.uid, snap.name, snap.namespace, snap.events, snap.nodes)
    if deletion is not None:
        out.append(deletion)
    return out


def is_deleting(tls: list[Timeline]) -> bool:
    return any(t.kind == DELETION for t in tls)


async def _dns_servers(client: Client) -> list[tuple[str, int]]:
    """kube-dns's endpoints (its EndpointSlices), else its ClusterIP. The endpoints first:
    they answer from a host that is not a node too, where a ClusterIP has no rules and a
    query to it would follow the default route out of the machine."""
    out: list[tuple[str, int]] = []
    try:
        slices = await client.list(SLICES, "kube-system", label_selector="kubernetes.io/service-name=kube-dns")
        for s in slices.get("items") or []:
            port = next((p.get("port") for p in s.get("ports") or [] if p.get("protocol", "TCP") == "UDP"), 53)
            for ep in s.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready") is not False:
                    out.extend((a, int(port)) for a in ep.get("addresses") or [])
        if not out:
            svc = await client.get(SERVICES, "kube-dns", "kube-system")
            ip = (svc.get("spec") or {}).get("clusterIP")
            if ip and ip != "None":
                out.append((ip, 53))
    except errors.ApiError:
        pass
    return out


async def dns_check(client: Client, services: list[str], namespace: str, domain: str) -> dict[str, str]:
    """Per Service, what the cluster DNS answers for its name now (or why no answer)."""
    servers = await _dns_servers(client)
    out = {}
    for svc in services:
        fqdn = f"{svc}.{namespace}.svc.{domain}."
        if not servers:
            out[svc] = f"{fqdn} not asked: no kube-dns Service"
            continue
        answer = f"{fqdn} no answer from {', '.join(f'{h}:{p}' for h, p in servers)} (not reachable from here?)"
        for host, port in servers:
            try:
                resp = await dns.asyncquery.udp(dns.message.make_query(fqdn, dns.rdatatype.A), host, port=port,
                                                timeout=DNS_TIMEOUT)
            except Exception:   # unreachable or silent: try the next server
                continue
            ips = [r.address for rrset in resp.answer for r in rrset if r.rdtype == dns.rdatatype.A]
            answer = (f"{fqdn} → {', '.join(ips)} (asked {host}:{port})" if ips
                      else f"{fqdn}: {dns.rcode.to_text(resp.rcode())} from {host}:{port}")
            break
        out[svc] = answer
    return out
