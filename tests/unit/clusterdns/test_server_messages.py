"""The server's message handling without sockets: bytes in, bytes out."""
from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode

from clusterdns.forward import Forwarder, parse_upstream, upstreams_from_resolv_conf
from clusterdns.records import ClusterRecords
from clusterdns.server import DNSServer


def server() -> DNSServer:
    r = ClusterRecords()
    r.set_service({"metadata": {"name": "web", "namespace": "default"},
                   "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}})
    return DNSServer(r, Forwarder([]))


def test_cluster_answers_at_once_and_the_rest_is_forwarded():
    s = server()
    wire, fwd = s.answer_now(dns.message.make_query("web.default.svc.cluster.local", "A").to_wire(), udp=True)
    reply = dns.message.from_wire(wire)
    assert fwd is None and reply.flags & dns.flags.AA and reply.answer[0][0].to_text() == "10.96.0.20"
    wire, fwd = s.answer_now(dns.message.make_query("example.org", "A").to_wire(), udp=True)
    assert wire is None and fwd is not None


def test_junk_with_a_header_is_formerr_without_one_or_a_response_is_dropped():
    s = server()
    wire, _ = s.answer_now(b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0", udp=True)
    reply = dns.message.from_wire(wire)
    assert reply.id == 0xABCD and reply.rcode() == dns.rcode.FORMERR
    assert s.answer_now(b"\x01\x02", udp=True) == (None, None)
    response = dns.message.make_response(dns.message.make_query("x.cluster.local", "A")).to_wire()
    assert s.answer_now(response, udp=True) == (None, None)


def test_udp_truncates_to_512_without_edns_and_edns_version_1_is_badvers():
    r = ClusterRecords()
    r.set_service({"metadata": {"name": "db", "namespace": "default"}, "spec": {"clusterIP": "None"}})
    r.set_slice({"metadata": {"name": "db-1", "namespace": "default",
                              "labels": {"kubernetes.io/service-name": "db"}},
                 "endpoints": [{"addresses": [f"10.244.0.{i}"]} for i in range(1, 60)]})
    s = DNSServer(r, Forwarder([]))
    q = dns.message.make_query("db.default.svc.cluster.local", "A")
    udp, _ = s.answer_now(q.to_wire(), udp=True)
    assert len(udp) <= 512 and dns.message.from_wire(udp, ignore_trailing=True).flags & dns.flags.TC
    tcp, _ = s.answer_now(q.to_wire(), udp=False)
    assert len(dns.message.from_wire(tcp).answer[0]) == 59
    q1 = dns.message.make_query("db.default.svc.cluster.local", "A", use_edns=1)
    assert dns.message.from_wire(s.answer_now(q1.to_wire(), udp=True)[0]).rcode() == dns.rcode.BADVERS


def test_the_answer_cache_is_emptied_by_a_change():
    s = server()
    data = dns.message.make_query("web.default.svc.cluster.local", "A").to_wire()
    s.answer_now(data, udp=True)
    s.records.delete_service({"metadata": {"name": "web", "namespace": "default"}})
    wire, _ = s.answer_now(data, udp=True)
    assert dns.message.from_wire(wire).rcode() == dns.rcode.NXDOMAIN


def test_upstreams_from_resolv_conf_and_flags(tmp_path):
    f = tmp_path / "resolv.conf"
    f.write_text("# c\nnameserver 10.0.0.2\nsearch x\nnameserver 10.0.0.3\n")
    assert upstreams_from_resolv_conf(str(f)) == [("10.0.0.2", 53), ("10.0.0.3", 53)]
    assert parse_upstream("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_upstream("[::1]:54") == ("::1", 54) and parse_upstream("1.1.1.1") == ("1.1.1.1", 53)
