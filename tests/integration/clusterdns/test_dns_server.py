"""The cluster DNS as a real process against a real apiserver, asked by real `dig`.

Forwarding goes to a dnsmasq started here on 127.0.0.1 (never a real outside resolver: no
packet leaves the machine)."""
from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time

import pytest

from kubeling.resources import lookup
from tests.conftest import REPO, free_port, stop_process, wait_for

SERVICES, SLICES, PODS, SAS = (lookup("services"), lookup("endpointslices"), lookup("pods"),
                               lookup("serviceaccounts"))


@pytest.fixture(autouse=True, scope="module")
def _dig_and_dnsmasq_installed():
    # A missing tool is a failure, never a skip: scripts/setup installs both.
    missing = [t for t in ("dig", "dnsmasq") if not shutil.which(t)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run scripts/setup (bind9-dnsutils, dnsmasq-base)")


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """dnsmasq on 127.0.0.1: the 'node's resolver' the DNS server forwards to."""
    base = tmp_path_factory.mktemp("dnsmasq")
    port = free_port()
    big = " ".join(f"txt-chunk-{i:03d}" for i in range(6))
    proc = subprocess.Popen(
        ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
         "--listen-address=127.0.0.1", "--bind-interfaces", f"--port={port}", "--user=root",
         f"--pid-file={base / 'pid'}", "--address=/upstream.test/192.0.2.55",
         "--address=/flood.test/192.0.2.66",
         *[f"--txt-record=big.upstream.test,{big} {i}" for i in range(8)]],
        stdout=subprocess.DEVNULL, stderr=open(base / "log", "wb"))
    wait_for(lambda: dig(port, "a.upstream.test")["answer"], 10, "dnsmasq to answer")
    yield port
    stop_process(proc)


@pytest.fixture(scope="module")
def dns_server(apiserver, upstream, tmp_path_factory):
    base = tmp_path_factory.mktemp("dns")
    ready = base / "ready.json"
    log = base / "dns.log"
    proc = subprocess.Popen([sys.executable, "-m", "clusterdns", "--kubeconfig", str(apiserver.kubeconfig),
                             "--bind", "127.0.0.1", "--port", "0", "--upstream", f"127.0.0.1:{upstream}",
                             "--cache-size", "500", "--ready-file", str(ready), "--node-name", "dns-test",
                             "--publish-address", "127.0.0.1"],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=REPO)

    def started():
        if proc.poll() is not None:
            raise AssertionError(log.read_text())
        return ready.exists() and json.loads(ready.read_text())["port"]
    port = wait_for(started, 30, "the DNS server to serve")
    yield {"port": port, "proc": proc, "log": log}
    stop_process(proc)
    assert "Traceback" not in log.read_text(), log.read_text()


def dig(port: int, name: str, rdtype: str = "A", *extra: str) -> dict:
    out = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), name, rdtype, "+time=2", "+tries=1",
                          "+noall", "+answer", "+authority", "+comments", *extra],
                         capture_output=True, text=True, timeout=20).stdout
    status = flags = ""
    answer, authority, section = [], [], None
    for line in out.splitlines():
        if "status:" in line:
            status = line.split("status:")[1].split(",")[0].strip()
        elif line.startswith(";; flags:"):
            flags = line.split("flags:")[1].split(";")[0].split()
        elif "ANSWER SECTION" in line:
            section = answer
        elif "AUTHORITY SECTION" in line:
            section = authority
        elif line.startswith(";") or not line.strip():
            continue
        elif section is not None:
            f = line.split()
            section.append((f[0].lower(), f[3], " ".join(f[4:])))
    return {"status": status, "flags": flags, "answer": answer, "authority": authority, "raw": out}


def rev(ip: str) -> str:
    return ".".join(reversed(ip.split("."))) + ".in-addr.arpa"


def values(r: dict, rdtype: str) -> list[str]:
    return sorted(v for _, t, v in r["answer"] if t == rdtype)


async def test_clusterip_service_answered_within_a_second_with_srv_and_ptr(client, namespace, dns_server):
    port = dns_server["port"]
    created = time.monotonic()
    svc = await client.create(SERVICES, {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}, namespace)
    ip = svc["spec"]["clusterIP"]
    fqdn = f"web.{namespace}.svc.cluster.local"
    r = wait_for(lambda: (d := dig(port, fqdn))["answer"] and d, 1.0, "the Service's A record", interval=0.02)
    assert time.monotonic() - created < 1.0
    assert r["status"] == "NOERROR" and values(r, "A") == [ip] and "aa" in r["flags"]
    assert values(dig(port, fqdn.upper()), "A") == [ip]
    assert values(dig(port, f"_http._tcp.{fqdn}", "SRV"), "SRV") == [f"0 100 80 {fqdn}."]
    assert values(dig(port, rev(ip), "PTR"), "PTR") == [f"{fqdn}."]
    nodata = dig(port, fqdn, "AAAA")
    assert nodata["status"] == "NOERROR" and not nodata["answer"] and nodata["authority"][0][1] == "SOA"
    # The name goes with the Service.
    await client.delete(SERVICES, "web", namespace)
    wait_for(lambda: dig(port, fqdn)["status"] == "NXDOMAIN", 5, "the record to go")


async def test_headless_service_endpoints_hostnames_and_a_pod_leaving_the_endpoints(client, namespace, dns_server):
    port = dns_server["port"]
    await client.create(SERVICES, {"metadata": {"name": "db"}, "spec": {
        "clusterIP": "None", "selector": {"app": "db"}, "ports": [{"name": "pg", "port": 5432}]}}, namespace)

    def sl(eps):
        return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "db-manual", "namespace": namespace,
                             "labels": {"kubernetes.io/service-name": "db"}},
                "addressType": "IPv4", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
                "endpoints": [{"addresses": [ip], "hostname": h, "conditions": {"ready": ready}}
                              for ip, h, ready in eps]}
    await client.create(SLICES, sl([("10.244.7.5", "db-0", True), ("10.244.7.6", "db-1", True)]), namespace)
    fqdn = f"db.{namespace}.svc.cluster.local"
    wait_for(lambda: values(dig(port, fqdn), "A") == ["10.244.7.5", "10.244.7.6"], 2, "the endpoints' IPs")
    assert values(dig(port, f"db-0.{fqdn}"), "A") == ["10.244.7.5"]
    assert values(dig(port, f"_pg._tcp.{fqdn}", "SRV"), "SRV") == [
        f"0 100 5432 db-0.{fqdn}.", f"0 100 5432 db-1.{fqdn}."]
    assert values(dig(port, rev("10.244.7.6"), "PTR"), "PTR") == [f"db-1.{fqdn}."]
    cur = await client.get(SLICES, "db-manual", namespace)
    new = sl([("10.244.7.5", "db-0", True), ("10.244.7.6", "db-1", False)])
    new["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
    await client.update(SLICES, new)
    wait_for(lambda: values(dig(port, fqdn), "A") == ["10.244.7.5"], 1, "db-1 to leave the answers")
    assert dig(port, f"db-1.{fqdn}")["status"] == "NXDOMAIN"


async def test_external_name_pod_records_and_nxdomain_with_soa(client, namespace, dns_server):
    port = dns_server["port"]
    await client.create(SERVICES, {"metadata": {"name": "ext"}, "spec": {
        "type": "ExternalName", "externalName": "a.upstream.test"}}, namespace)
    fqdn = f"ext.{namespace}.svc.cluster.local"
    r = wait_for(lambda: (d := dig(port, fqdn, "CNAME"))["answer"] and d, 2, "the CNAME")
    assert values(r, "CNAME") == ["a.upstream.test."]
    # Asked for A, it follows the CNAME as a recursive server does (the target is upstream's).
    chased = dig(port, fqdn, "A")
    assert values(chased, "CNAME") == ["a.upstream.test."] and values(chased, "A") == ["192.0.2.55"]
    await client.create(SAS, {"metadata": {"name": "default"}}, namespace)
    await client.create(PODS, {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}]}}, namespace)
    pod = await client.get(PODS, "p", namespace)
    pod["status"] = {"phase": "Running", "podIP": "10.244.9.7", "podIPs": [{"ip": "10.244.9.7"}]}
    await client.update(PODS, pod, "status")
    name = f"10-244-9-7.{namespace}.pod.cluster.local"
    wait_for(lambda: values(dig(port, name), "A") == ["10.244.9.7"], 2, "the pod's A record")
    assert values(dig(port, rev("10.244.9.7"), "PTR"), "PTR") == [f"{name}."]
    nx = dig(port, f"nothing.{namespace}.svc.cluster.local")
    assert nx["status"] == "NXDOMAIN" and not nx["answer"]
    assert nx["authority"][0][0] == "cluster.local." and nx["authority"][0][1] == "SOA"


def test_forwarding_tcp_truncation_and_edns0(dns_server, upstream):
    port = dns_server["port"]
    r = dig(port, "x.upstream.test")
    assert r["status"] == "NOERROR" and values(r, "A") == ["192.0.2.55"] and "aa" not in r["flags"]
    assert values(dig(port, "x.upstream.test", "A", "+tcp"), "A") == ["192.0.2.55"]
    # Eight long TXT strings: more than 512 bytes. Without EDNS0 UDP is truncated (TC) ...
    tc = dig(port, "big.upstream.test", "TXT", "+noedns", "+ignore")
    assert "tc" in tc["flags"], tc["raw"]
    # ... dig then asks again over TCP and gets it all; with EDNS0 it fits UDP at once.
    assert len(values(dig(port, "big.upstream.test", "TXT", "+noedns"), "TXT")) == 8
    edns = dig(port, "big.upstream.test", "TXT", "+bufsize=1232", "+ignore")
    assert "tc" not in edns["flags"] and len(values(edns, "TXT")) == 8
    assert "udp: 1232" in subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "kubernetes.default.svc.cluster.local"],
                                         capture_output=True, text=True, timeout=20).stdout


async def test_cluster_answers_truncate_over_udp_and_come_whole_over_tcp(client, namespace, dns_server):
    port = dns_server["port"]
    await client.create(SERVICES, {"metadata": {"name": "many"}, "spec": {
        "clusterIP": "None", "ports": [{"name": "x", "port": 1}]}}, namespace)
    await client.create(SLICES, {
        "metadata": {"name": "many-1", "labels": {"kubernetes.io/service-name": "many"}},
        "addressType": "IPv4", "ports": [{"name": "x", "port": 1, "protocol": "TCP"}],
        "endpoints": [{"addresses": [f"10.244.8.{i}"]} for i in range(1, 61)]}, namespace)
    fqdn = f"many.{namespace}.svc.cluster.local"
    wait_for(lambda: len(values(dig(port, fqdn, "A", "+tcp"), "A")) == 60, 2, "60 endpoints")
    assert "tc" in dig(port, fqdn, "A", "+noedns", "+ignore")["flags"]
    assert len(values(dig(port, fqdn, "A", "+noedns"), "A")) == 60  # dig retried over TCP


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


def test_malformed_oversized_and_a_flood_of_random_names_leave_it_serving_in_bounded_memory(dns_server):
    port = dns_server["port"]
    proc = dns_server["proc"]
    rng = random.Random(13)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        # Junk with a header: FORMERR echoing its id; shorter than a header: dropped.
        s.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff\xff", ("127.0.0.1", port))
        reply = s.recv(4096)
        assert reply[:2] == b"\x12\x34" and reply[3] & 0x0F == 1  # FORMERR
        for _ in range(200):
            s.sendto(rng.randbytes(rng.randrange(0, 600)), ("127.0.0.1", port))
        s.sendto(b"\x00" * 3, ("127.0.0.1", port))
    # An oversized TCP message (64 KB of junk) and a connection that sends half a length.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as t:
        t.sendall(b"\xff\xff" + rng.randbytes(65535))
        t.settimeout(5)
        assert len(t.recv(2)) in (0, 2)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as t:
        t.sendall(b"\x01")
    assert dig(port, "kubernetes.default.svc.cluster.local")["status"] in ("NOERROR", "NXDOMAIN")
    before = _rss_kb(proc.pid)
    # A flood of random names, in the cluster domain (NXDOMAIN) and forwarded (cached, capped).
    import dns.message
    answered = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        for batch in range(90):  # 4500 names, 50 in flight at a time, so the flood is answered, not shed
            for i in range(50):
                zone = "flood.test" if i % 2 else "svc.cluster.local"
                q = dns.message.make_query(f"r{rng.getrandbits(48):x}.{zone}", "A")
                s.sendto(q.to_wire(), ("127.0.0.1", port))
            try:
                for _ in range(50):
                    s.recv(4096)
                    answered += 1
            except socket.timeout:
                pass
    assert answered > 4000
    grown = _rss_kb(proc.pid) - before
    assert proc.poll() is None
    assert grown < 40_000, f"RSS grew {grown} KB"
    r = wait_for(lambda: (d := dig(port, "again.flood.test"))["answer"] and d, 5, "an answer after the flood")
    assert values(r, "A") == ["192.0.2.66"]


async def test_publishes_kube_dns_service_at_the_tenth_address_and_its_endpoint_slice(client, dns_server):
    svc = await client.get(SERVICES, "kube-dns", "kube-system")
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    assert [(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]
    assert "selector" not in svc["spec"] or not svc["spec"]["selector"]
    sl = await client.get(SLICES, "kube-dns-dns-test", "kube-system")
    assert sl["endpoints"][0]["addresses"] == ["127.0.0.1"]
    assert {p["port"] for p in sl["ports"]} == {dns_server["port"]}
    r = dig(dns_server["port"], "kube-dns.kube-system.svc.cluster.local")
    assert values(r, "A") == ["10.96.0.10"]
