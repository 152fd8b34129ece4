"""CoreDNS's request metrics (plugin/metrics): coredns_dns_requests_total,
coredns_dns_responses_total and coredns_dns_request_duration_seconds.

The answer path runs tens of thousands of times a second, so it does not go through
prometheus-client's locked Counter and Histogram: each (proto, type, rcode) has one plain
`Series` (bucket counts and a sum) that the server keeps beside its cached answer and
bumps with a bisect and two additions; `DNSMetrics.collect` adds the series up into
Prometheus families at scrape time. The server is one asyncio thread, so the counts need
no lock, and a scrape (on the same loop) never sees a half-done update.
"""
from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

import dns.rcode
import dns.rdatatype
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

# CoreDNS's plugin/pkg/response default buckets: ExponentialBuckets(0.00025, 2, 16), 250 µs to ~8 s.
BUCKETS = tuple(0.00025 * 2 ** i for i in range(16))

# The types CoreDNS names in its `type` label (plugin/metrics/vars/monitor.go); any other is "other",
# so a client cannot grow the label's values without bound.
MONITORED_TYPES = frozenset(dns.rdatatype.from_text(t) for t in (
    "A", "AAAA", "NS", "PTR", "SRV", "TXT", "MX", "CNAME", "SOA", "NAPTR", "DS", "DNSKEY", "RRSIG", "NSEC",
    "NSEC3", "HINFO", "IXFR", "AXFR", "ANY", "HTTPS", "SVCB", "CAA"))


def type_label(rdtype: int) -> str:
    return dns.rdatatype.to_text(rdtype) if rdtype in MONITORED_TYPES else "other"


def rcode_label(rcode: int) -> str:
    try:
        return dns.rcode.to_text(rcode)
    except ValueError:  # an rcode dnspython has no name for
        return str(rcode)


class Series:
    """The requests of one (proto, type, rcode): how long each took, by bucket."""

    __slots__ = ("proto", "qtype", "rcode", "buckets", "sum")

    def __init__(self, proto: str, qtype: str, rcode: str | None) -> None:
        self.proto, self.qtype, self.rcode = proto, qtype, rcode  # rcode None: dropped, no response
        self.buckets = [0] * (len(BUCKETS) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds

    @property
    def count(self) -> int:
        return sum(self.buckets)


class DNSMetrics(Collector):
    """The server's series, collected as CoreDNS's families; register it on a registry."""

    def __init__(self, server: str = "dns://:53", zone: str = ".", family: str = "1") -> None:
        self.server, self.zone, self.family = server, zone, family  # family: "1" IPv4, "2" IPv6
        self._series: dict[tuple[str, str, str | None], Series] = {}

    def series(self, proto: str, qtype: str, rcode: str | None) -> Series:
        key = (proto, qtype, rcode)
        s = self._series.get(key)
        if s is None:
            s = self._series[key] = Series(proto, qtype, rcode)
        return s

    def collect(self) -> Iterator[Metric]:
        base = ["server", "zone", "view"]
        requests = CounterMetricFamily("coredns_dns_requests", "Counter of DNS requests made per zone, "
                                       "protocol and family.", labels=base + ["proto", "family", "type"])
        responses = CounterMetricFamily("coredns_dns_responses", "Counter of response status codes.",
                                        labels=base + ["rcode", "plugin"])
        duration = HistogramMetricFamily("coredns_dns_request_duration_seconds",
                                         "Histogram of the time (in seconds) each request took per zone.",
                                         labels=base + ["type"])
        by_request: dict[tuple[str, str], int] = {}
        by_rcode: dict[str, int] = {}
        by_type: dict[str, tuple[list[int], list[float]]] = {}
        for s in list(self._series.values()):
            n = s.count
            if not n:
                continue
            by_request[(s.proto, s.qtype)] = by_request.get((s.proto, s.qtype), 0) + n
            if s.rcode is not None:
                by_rcode[s.rcode] = by_rcode.get(s.rcode, 0) + n
            counts, total = by_type.setdefault(s.qtype, ([0] * len(s.buckets), [0.0]))
            for i, c in enumerate(s.buckets):
                counts[i] += c
            total[0] += s.sum
        head = [self.server, self.zone, ""]
        for (proto, qtype), n in sorted(by_request.items()):
            requests.add_metric(head + [proto, self.family, qtype], n)
        for rcode, n in sorted(by_rcode.items()):
            # CoreDNS names the plugin that wrote the answer; here one server answers everything.
            responses.add_metric(head + [rcode, "kubeling"], n)
        for qtype, (counts, total) in sorted(by_type.items()):
            cumulative, running = [], 0
            for bound, c in zip([*(repr(b) for b in BUCKETS), "+Inf"], counts):
                running += c
                cumulative.append((bound, running))
            duration.add_metric(head + [qtype], cumulative, total[0])
        yield requests
        yield responses
        yield duration
