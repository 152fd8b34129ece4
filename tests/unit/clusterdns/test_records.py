"""The cluster zone's records: objects in, answers out (no server, no sockets)."""
from __future__ import annotations

import dns.name
import dns.rcode
import dns.rdatatype as T

from clusterdns.records import ClusterRecords


def svc(name, ns="default", ip="10.96.0.20", ports=(("http", 80, "TCP"),), **spec):
    s = {"clusterIP": ip, "clusterIPs": [ip],
         "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports], **spec}
    return {"metadata": {"name": name, "namespace": ns}, "spec": s}


def slice_(svc_name, name, eps, ns="default", ports=(("http", 8080, "TCP"),)):
    return {"metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": svc_name}},
            "endpoints": eps, "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports]}


def ep(ip, ready=True, hostname=None):
    e = {"addresses": [ip], "conditions": {"ready": ready}}
    if hostname:
        e["hostname"] = hostname
    return e


def pod(name, ip, ns="default", **spec):
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec, "status": {"podIP": ip, "podIPs": [{"ip": ip}]}}


def ask(r, name, rdtype):
    ans = r.resolve(dns.name.from_text(name), rdtype)
    if ans is None:
        return None
    return dns.rcode.to_text(ans.rcode), sorted(rd.to_text() for rrset in ans.answer for rd in rrset), \
        [rrset.rdtype for rrset in ans.authority]


def test_clusterip_service_a_srv_ptr_and_deletion():
    r = ClusterRecords()
    r.set_service(svc("web", ports=(("http", 80, "TCP"), ("", 81, "TCP"))))
    assert ask(r, "web.default.svc.cluster.local.", T.A) == ("NOERROR", ["10.96.0.20"], [])
    assert ask(r, "WEB.Default.svc.cluster.local.", T.A)[1] == ["10.96.0.20"]  # case-insensitive
    assert ask(r, "_http._tcp.web.default.svc.cluster.local.", T.SRV) == \
        ("NOERROR", ["0 100 80 web.default.svc.cluster.local."], [])
    assert ask(r, "20.0.96.10.in-addr.arpa.", T.PTR)[1] == ["web.default.svc.cluster.local."]
    # Exists, but no AAAA: NODATA with the SOA; the namespace is an empty non-terminal.
    assert ask(r, "web.default.svc.cluster.local.", T.AAAA) == ("NOERROR", [], [T.SOA])
    assert ask(r, "default.svc.cluster.local.", T.A) == ("NOERROR", [], [T.SOA])
    r.delete_service(svc("web"))
    assert ask(r, "web.default.svc.cluster.local.", T.A) == ("NXDOMAIN", [], [T.SOA])
    assert ask(r, "default.svc.cluster.local.", T.A) == ("NXDOMAIN", [], [T.SOA])
    assert r.index == {} and not r.ents


def test_headless_service_answers_ready_endpoints_with_hostnames_and_follows_readiness():
    r = ClusterRecords()
    r.set_service(svc("db", ip="None"))
    assert ask(r, "db.default.svc.cluster.local.", T.A) == ("NOERROR", [], [T.SOA])
    r.set_slice(slice_("db", "db-abc", [ep("10.244.1.5", hostname="db-0"), ep("10.244.1.6"),
                                        ep("10.244.1.7", ready=False)]))
    assert ask(r, "db.default.svc.cluster.local.", T.A)[1] == ["10.244.1.5", "10.244.1.6"]
    assert ask(r, "db-0.db.default.svc.cluster.local.", T.A)[1] == ["10.244.1.5"]
    assert ask(r, "10-244-1-6.db.default.svc.cluster.local.", T.A)[1] == ["10.244.1.6"]
    assert ask(r, "_http._tcp.db.default.svc.cluster.local.", T.SRV)[1] == [
        "0 100 8080 10-244-1-6.db.default.svc.cluster.local.", "0 100 8080 db-0.db.default.svc.cluster.local."]
    assert ask(r, "5.1.244.10.in-addr.arpa.", T.PTR)[1] == ["db-0.db.default.svc.cluster.local."]
    # The pod stops being ready: it leaves the answers in the same update.
    r.set_slice(slice_("db", "db-abc", [ep("10.244.1.5", ready=False, hostname="db-0"), ep("10.244.1.6")]))
    assert ask(r, "db.default.svc.cluster.local.", T.A)[1] == ["10.244.1.6"]
    assert ask(r, "db-0.db.default.svc.cluster.local.", T.A)[0] == "NXDOMAIN"
    r.set_slice(slice_("db", "db-abc", []), deleted=True)
    assert ask(r, "10-244-1-6.db.default.svc.cluster.local.", T.A)[0] == "NXDOMAIN"


def test_external_name_is_a_cname():
    r = ClusterRecords()
    r.set_service(svc("ext", ip=None, ports=(), type="ExternalName", externalName="example.org"))
    assert ask(r, "ext.default.svc.cluster.local.", T.A) == ("NOERROR", ["example.org."], [])
    assert ask(r, "ext.default.svc.cluster.local.", T.CNAME)[1] == ["example.org."]


def test_pod_records_and_ptr_and_host_network_pods_are_not_named():
    r = ClusterRecords()
    r.set_pod(pod("p", "10.244.1.5", ns="team"))
    assert ask(r, "10-244-1-5.team.pod.cluster.local.", T.A)[1] == ["10.244.1.5"]
    assert ask(r, "5.1.244.10.in-addr.arpa.", T.PTR)[1] == ["10-244-1-5.team.pod.cluster.local."]
    assert ask(r, "10-244-1-5.other.pod.cluster.local.", T.A)[0] == "NXDOMAIN"
    r.set_pod(pod("h", "192.168.1.10", hostNetwork=True))
    assert ask(r, "192-168-1-10.default.pod.cluster.local.", T.A)[0] == "NXDOMAIN"
    r.set_pod(pod("p", "10.244.1.5", ns="team"), deleted=True)
    assert ask(r, "10-244-1-5.team.pod.cluster.local.", T.A)[0] == "NXDOMAIN"


def test_outside_the_domain_and_unknown_reverse_names_are_forwarded_and_the_apex_has_an_soa():
    r = ClusterRecords(domain="kube.test")
    r.set_service(svc("web"))
    assert ask(r, "example.org.", T.A) is None
    assert ask(r, "web.default.svc.cluster.local.", T.A) is None  # another domain: not ours
    assert ask(r, "9.9.9.9.in-addr.arpa.", T.PTR) is None
    assert ask(r, "web.default.svc.kube.test.", T.A)[1] == ["10.96.0.20"]
    rcode, answer, _ = ask(r, "kube.test.", T.SOA)
    assert rcode == "NOERROR" and answer[0].startswith("ns.dns.kube.test. hostmaster.kube.test.")
    assert ask(r, "nothing.kube.test.", T.A) == ("NXDOMAIN", [], [T.SOA])


def test_an_unchanged_update_does_not_bump_the_generation():
    r = ClusterRecords()
    r.set_service(svc("web"))
    gen = r.generation
    r.set_service(svc("web"))
    assert r.generation == gen
    r.set_service(svc("web", ip="10.96.0.21"))
    assert r.generation == gen + 1
    assert ask(r, "20.0.96.10.in-addr.arpa.", T.PTR) is None
