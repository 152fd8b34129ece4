"""The DNS server's CoreDNS metrics, without sockets: requests counted by type and protocol,
responses by rcode, durations into the histogram, and the families as Prometheus text."""
from __future__ import annotations

import dns.message
import dns.rcode
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from clusterdns.forward import Forwarder
from clusterdns.metrics import BUCKETS, DNSMetrics, rcode_label, type_label
from clusterdns.records import ClusterRecords
from clusterdns.server import DNSServer


def server() -> DNSServer:
    r = ClusterRecords()
    r.set_service({"metadata": {"name": "web", "namespace": "default"},
                   "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}})
    return DNSServer(r, Forwarder([]))


def scrape(s: DNSServer) -> dict[str, list]:
    registry = CollectorRegistry()
    registry.register(s.metrics)
    text = generate_latest(registry).decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(samples: list, name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


async def test_requests_responses_and_durations_are_counted_cached_or_not():
    s = server()
    a = dns.message.make_query("web.default.svc.cluster.local", "A").to_wire()
    missing = dns.message.make_query("nope.default.svc.cluster.local", "AAAA").to_wire()
    for _ in range(3):  # the first is rendered, the next two come from the answer cache
        assert await s.handle(a, udp=True) is not None
    await s.handle(a, udp=False)
    assert dns.message.from_wire(await s.handle(missing, udp=True)).rcode() == dns.rcode.NXDOMAIN
    await s.handle(b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0", udp=True)  # FORMERR
    await s.handle(b"\x01\x02", udp=True)  # dropped: a request without a response
    forwarded = await s.handle(dns.message.make_query("example.org", "MX").to_wire(), udp=True)
    assert dns.message.from_wire(forwarded).rcode() == dns.rcode.SERVFAIL  # no upstream here

    m = scrape(s)
    req, resp, dur = m["coredns_dns_requests"], m["coredns_dns_responses"], m["coredns_dns_request_duration_seconds"]
    assert value(req, "coredns_dns_requests_total", type="A", proto="udp") == 3
    assert value(req, "coredns_dns_requests_total", type="A", proto="tcp") == 1
    assert value(req, "coredns_dns_requests_total", type="AAAA", proto="udp") == 1
    assert value(req, "coredns_dns_requests_total", type="other", proto="udp") == 2
    assert value(resp, "coredns_dns_responses_total", rcode="NOERROR") == 4
    assert value(resp, "coredns_dns_responses_total", rcode="NXDOMAIN") == 1
    assert value(resp, "coredns_dns_responses_total", rcode="FORMERR") == 1
    assert value(req, "coredns_dns_requests_total", type="MX", proto="udp") == 1
    assert value(resp, "coredns_dns_responses_total", rcode="SERVFAIL") == 1
    assert value(resp, "coredns_dns_responses_total") == 7  # the dropped one has no response
    assert value(dur, "coredns_dns_request_duration_seconds_count", type="A") == 4
    assert value(dur, "coredns_dns_request_duration_seconds_bucket", type="A", le="+Inf") == 4
    assert value(dur, "coredns_dns_request_duration_seconds_sum", type="A") > 0


def test_labels_stay_bounded_and_buckets_are_cumulative():
    assert type_label(dns.rdatatype.A) == "A" and type_label(4321) == "other"
    assert rcode_label(dns.rcode.NXDOMAIN) == "NXDOMAIN"
    metrics = DNSMetrics()
    s = metrics.series("udp", "A", "NOERROR")
    assert metrics.series("udp", "A", "NOERROR") is s
    for seconds in (0.0001, BUCKETS[0], BUCKETS[3], 100.0):  # a bound counts in its own bucket (le)
        s.observe(seconds)
    assert s.count == 4 and s.buckets[0] == 2 and s.buckets[3] == 1 and s.buckets[-1] == 1
    registry = CollectorRegistry()
    registry.register(metrics)
    buckets = [x for f in text_string_to_metric_families(generate_latest(registry).decode())
               for x in f.samples if x.name.endswith("_bucket")]
    counts = [b.value for b in buckets]
    assert counts == sorted(counts) and counts[0] == 2 and counts[-1] == 4
