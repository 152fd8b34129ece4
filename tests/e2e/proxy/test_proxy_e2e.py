"""The proxy for real: `python -m agent.proxy` inside a node namespace, Services and EndpointSlices
written through the API server, rules checked with iptables-save of that namespace and with real
HTTP requests to busybox httpd pods."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time

from agent.proxy import rules
from agent.proxy.model import Endpoint, ServicePort
from kubeling.resources import lookup
from proxy_netenv import Node, Pod, sh, stop, wait_until

SERVICES = lookup("services")
SLICES = lookup("endpointslices")


async def make_service(client, ns: str, name: str, *, type_: str = "ClusterIP", affinity: bool = False,
                       protocol: str = "TCP", port: int = 80) -> dict:
    spec = {"type": type_, "ports": [{"name": "http", "port": port, "targetPort": 8080, "protocol": protocol}]}
    if affinity:
        spec["sessionAffinity"] = "ClientIP"
    return await client.create(SERVICES, {"metadata": {"name": name, "namespace": ns}, "spec": spec}, ns)


def slice_body(ns: str, svc: str, pods: list[Pod], protocol: str = "TCP", name: str | None = None) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name or f"{svc}-abc", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": protocol}],
            "endpoints": [{"addresses": [p.ip], "conditions": {"ready": True}} for p in pods]}


def dnat(ns: str, svc: str, ip: str, proto: str = "tcp") -> re.Pattern:
    """The DNAT rule of one endpoint of one service in iptables-save output (other tests'
    services, which this proxy also programs, have endpoints with the same pod IPs)."""
    chain = rules.sep_chain(ServicePort(ns, svc, "http", proto, "", 0), Endpoint(ip, 8080))
    return re.compile(rf"^-A {chain} .*-j DNAT --to-destination {re.escape(ip)}:8080$", re.M)


def our_lines(save: str) -> list[str]:
    return [l for l in save.splitlines() if "KUBELING-" in l and "KUBELING-CNI-" not in l]


def table_of(save: str, table: str) -> str:
    return save.split(f"*{table}\n", 1)[1].split("COMMIT", 1)[0]


def assert_jumps_once(save: str) -> None:
    """Each jump rule exists exactly once, at the top of its built-in chain, in JUMPS order."""
    for (table, parent), targets in rules.JUMPS.items():
        lines = [l for l in table_of(save, table).splitlines() if l.startswith(f"-A {parent} ")]
        for target in targets:
            rule = f'-A {parent} -m comment --comment "{rules.JUMP_COMMENTS[target]}" -j {target}'
            assert lines.count(rule) == 1, (table, parent, lines)
        assert [l.split("-j ")[-1] for l in lines[:len(targets)]] == list(targets), (table, parent, lines)


def start(node: Node, kubeconfig: str, tmp_path, *extra: str) -> subprocess.Popen:
    return node.start_proxy(kubeconfig, tmp_path / "proxy.log", "--sync-period", "30", *extra)


def fetch_many(node: Node, url: str, n: int, netns: str | None = None) -> list[str | None]:
    return [node.get(url, netns) for _ in range(n)]


def connect_error(node: Node, url: str, netns: str | None = None) -> tuple[float, str]:
    t0 = time.monotonic()
    proc = sh("nsenter", f"--net={netns or node.path}", "busybox", "wget", "-q", "-O", "-", url,
              check=False, timeout=15)
    assert proc.returncode != 0, f"{url} answered: {proc.stdout}"
    return time.monotonic() - t0, proc.stderr


async def test_clusterip_spreads_hairpins_and_nodeport_answers(node, node_kubeconfig, client, namespace, tmp_path):
    a, b = node.add_pod(1), node.add_pod(2)
    svc = await make_service(client, namespace, "web", type_="NodePort")
    ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
    await client.create(SLICES, slice_body(namespace, "web", [a, b]), namespace)
    proxy = start(node, node_kubeconfig, tmp_path)
    wait_until(lambda: all(bool(dnat(namespace, "web", p.ip).search(node.iptables_save())) for p in (a, b)), 20, "DNAT rules")

    # From the node itself (OUTPUT path): both endpoints get traffic.
    answers = fetch_many(node, f"http://{ip}/", 30)
    assert set(answers) == {a.name, b.name}, answers
    # From pod a (PREROUTING + FORWARD, which is DROP by policy): both, including itself (hairpin,
    # which only works because the hairpin connection is masqueraded).
    from_pod = fetch_many(node, f"http://{ip}/", 30, netns=a.path)
    assert set(from_pod) == {a.name, b.name}, from_pod
    # NodePort on the node's own address, from the node and from outside it (the root namespace).
    assert node.get(f"http://{node.ip}:{node_port}/") in (a.name, b.name)
    outside = sh("busybox", "wget", "-q", "-O", "-", f"http://{node.ip}:{node_port}/", check=False, timeout=10)
    assert outside.stdout.strip() in (a.name, b.name), outside.stderr

    save = node.iptables_save()
    sp = ServicePort(namespace, "web", "http", "tcp", ip, 80, node_port)
    svc_chain = rules.svc_chain(sp)
    assert f"-A KUBELING-SERVICES -d {ip}/32 -p tcp" in save and f"--dport 80 -j {svc_chain}" in save
    assert re.search(rf"-A KUBELING-NODEPORTS .*--dport {node_port} -j {svc_chain}", save)
    assert "--probability 0.50000000000" in save
    assert_jumps_once(save)
    assert proxy.poll() is None


async def test_service_without_endpoints_and_unallocated_ips_are_rejected_fast(
        node, node_kubeconfig, client, namespace, tmp_path):
    a = node.add_pod(1)
    svc = await make_service(client, namespace, "empty")
    ip = svc["spec"]["clusterIP"]
    start(node, node_kubeconfig, tmp_path)
    wait_until(lambda: re.search(rf"-A KUBELING-SERVICES -d {ip}/32 .*-j REJECT", node.iptables_save()), 20,
               "the REJECT rule")
    took, err = connect_error(node, f"http://{ip}/")
    assert "refused" in err.lower() and took < 1.5, (took, err)
    took, err = connect_error(node, f"http://{ip}/", netns=a.path)  # forwarded from a pod
    assert "refused" in err.lower() and took < 1.5, (took, err)

    listed = await client.list(SERVICES)
    taken = {s["spec"].get("clusterIP") for s in listed["items"]}
    spare = next(f"10.111.255.{i}" for i in range(250, 1, -1) if f"10.111.255.{i}" not in taken)
    for netns in (None, a.path):
        took, err = connect_error(node, f"http://{spare}:1234/", netns=netns)
        assert "refused" in err.lower() and took < 1.5, (spare, took, err)


async def test_client_ip_affinity_sticks(node, node_kubeconfig, client, namespace, tmp_path):
    a, b, c = node.add_pod(1), node.add_pod(2), node.add_pod(3, serve=False)
    svc = await make_service(client, namespace, "sticky", affinity=True)
    ip = svc["spec"]["clusterIP"]
    await client.create(SLICES, slice_body(namespace, "sticky", [a, b]), namespace)
    start(node, node_kubeconfig, tmp_path)
    wait_until(lambda: all(bool(dnat(namespace, "sticky", p.ip).search(node.iptables_save())) for p in (a, b)), 20,
               "DNAT rules")
    assert "-m recent --rcheck --seconds 10800 --reap" in node.iptables_save()
    from_node = fetch_many(node, f"http://{ip}/", 15)
    assert len(set(from_node)) == 1 and from_node[0] in (a.name, b.name), from_node
    from_c = fetch_many(node, f"http://{ip}/", 15, netns=c.path)
    assert len(set(from_c)) == 1 and from_c[0] in (a.name, b.name), from_c


async def test_endpoint_removal_drops_its_dnat_within_the_sync(node, node_kubeconfig, client, namespace, tmp_path):
    a, b = node.add_pod(1), node.add_pod(2)
    svc = await make_service(client, namespace, "shrink")
    ip = svc["spec"]["clusterIP"]
    body = slice_body(namespace, "shrink", [a, b])
    created = await client.create(SLICES, body, namespace)
    start(node, node_kubeconfig, tmp_path)
    wait_until(lambda: all(bool(dnat(namespace, "shrink", p.ip).search(node.iptables_save())) for p in (a, b)), 20,
               "DNAT rules")
    sep_b = rules.sep_chain(ServicePort(namespace, "shrink", "http", "tcp", ip, 80), Endpoint(b.ip, 8080))
    assert f":{sep_b} " in node.iptables_save()

    created["endpoints"] = [e for e in created["endpoints"] if e["addresses"] != [b.ip]]
    await client.update(SLICES, created)
    # Well inside the 30 s full-resync period: the change itself triggered the sync.
    wait_until(lambda: not dnat(namespace, "shrink", b.ip).search(node.iptables_save()), 15, "b's DNAT rule to go",
               interval=0.01)
    save = node.iptables_save()
    assert f":{sep_b} " not in save and bool(dnat(namespace, "shrink", a.ip).search(save))  # the chain is deleted, not just emptied
    assert set(fetch_many(node, f"http://{ip}/", 10)) == {a.name}

    await client.delete(SLICES, created["metadata"]["name"], namespace)
    wait_until(lambda: re.search(rf"-A KUBELING-SERVICES -d {ip}/32 .*-j REJECT", node.iptables_save()), 5,
               "REJECT once no endpoint is left")
    _, err = connect_error(node, f"http://{ip}/")
    assert "refused" in err.lower()


async def test_udp_conntrack_entries_of_a_removed_endpoint_are_deleted(
        node, node_kubeconfig, client, namespace, tmp_path):
    a, b = node.add_pod(1, serve=False), node.add_pod(2, serve=False)
    svc = await make_service(client, namespace, "dns", protocol="UDP", port=5353)
    ip = svc["spec"]["clusterIP"]
    created = await client.create(SLICES, slice_body(namespace, "dns", [a], protocol="UDP"), namespace)
    start(node, node_kubeconfig, tmp_path)
    wait_until(lambda: bool(dnat(namespace, "dns", a.ip, "udp").search(node.iptables_save())), 20, "UDP DNAT rule")

    def flows() -> str:
        return node.run("conntrack", "-L", "-p", "udp", "--orig-dst", ip, check=False).stdout

    send = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            f"s.sendto(b'x', ('{ip}', 5353))")
    node.run(sys.executable, "-c", send)
    wait_until(lambda: f"src={a.ip}" in flows(), 5, "a conntrack entry towards a")
    created["endpoints"] = [{"addresses": [b.ip], "conditions": {"ready": True}}]
    await client.update(SLICES, created)
    wait_until(lambda: bool(dnat(namespace, "dns", b.ip, "udp").search(node.iptables_save()))
               and not dnat(namespace, "dns", a.ip, "udp").search(node.iptables_save()), 5, "the new endpoint's rule")
    wait_until(lambda: f"src={a.ip}" not in flows(), 5, "the stale UDP entry to go")


async def test_restart_replaces_rules_and_cleanup_removes_exactly_ours(
        node, node_kubeconfig, client, namespace, tmp_path):
    a = node.add_pod(1)
    svc = await make_service(client, namespace, "again")
    ip = svc["spec"]["clusterIP"]
    await client.create(SLICES, slice_body(namespace, "again", [a]), namespace)
    proxy = start(node, node_kubeconfig, tmp_path)
    wait_until(lambda: bool(dnat(namespace, "again", a.ip).search(node.iptables_save())), 20, "DNAT rule")
    first = sorted(our_lines(node.iptables_save()))
    stop(proxy)

    # Someone else's rules, and a chain of ours that a previous run left and nothing renders now.
    node.run("iptables", "-N", "SOMEONE-ELSE")
    node.run("iptables", "-A", "SOMEONE-ELSE", "-j", "RETURN")
    node.run("iptables", "-A", "FORWARD", "-j", "SOMEONE-ELSE")
    node.run("iptables", "-t", "nat", "-N", "KUBELING-CNI-M-test")
    node.run("iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "10.244.1.0/24", "-j", "KUBELING-CNI-M-test")
    node.run("iptables", "-t", "nat", "-N", "KUBELING-SEP-LEFTOVER00000")
    node.run("iptables", "-t", "nat", "-A", "KUBELING-SEP-LEFTOVER00000", "-j", "RETURN")

    start(node, node_kubeconfig, tmp_path)
    wait_until(lambda: "KUBELING-SEP-LEFTOVER00000" not in node.iptables_save(), 20, "the leftover chain to go")
    second = sorted(our_lines(node.iptables_save()))
    assert second == first  # same rules, no duplicated jump
    assert_jumps_once(node.iptables_save())
    assert node.get(f"http://{ip}/") == a.name
    for p in node.procs:
        stop(p)

    out = node.run(sys.executable, "-m", "agent.proxy", "--cleanup", check=True).stdout
    removed = json.loads(out.strip().splitlines()[-1])["removed"]
    assert "KUBELING-SERVICES" in removed["nft"]["nat"] and "KUBELING-FORWARD" in removed["nft"]["filter"]
    save = node.iptables_save()
    assert our_lines(save) == [], our_lines(save)
    assert "-A FORWARD -j SOMEONE-ELSE" in save and "-A SOMEONE-ELSE -j RETURN" in save
    assert "-A POSTROUTING -s 10.244.1.0/24 -j KUBELING-CNI-M-test" in save
    assert ":FORWARD DROP" in save  # the policy is untouched
    # Idempotent: a second cleanup finds nothing.
    again = node.run(sys.executable, "-m", "agent.proxy", "--cleanup").stdout
    assert json.loads(again.strip().splitlines()[-1]) == {"removed": {}}


async def test_legacy_backend_is_used_when_it_holds_the_rules(node, node_kubeconfig, client, namespace, tmp_path):
    a = node.add_pod(1)
    svc = await make_service(client, namespace, "old")
    ip = svc["spec"]["clusterIP"]
    await client.create(SLICES, slice_body(namespace, "old", [a]), namespace)
    # The host's rules live in the legacy backend (someone else's chain with more rules than nft has).
    node.run("iptables-legacy", "-t", "nat", "-N", "SOMEONE-LEGACY")
    for _ in range(5):
        node.run("iptables-legacy", "-t", "nat", "-A", "SOMEONE-LEGACY", "-j", "RETURN")
    nft_before = node.run("iptables-nft-save").stdout
    proxy = start(node, node_kubeconfig, tmp_path)

    def legacy() -> str:
        return node.run("iptables-legacy-save").stdout
    wait_until(lambda: bool(dnat(namespace, "old", a.ip).search(legacy())), 20, "DNAT rule in legacy tables")
    assert_jumps_once(legacy())
    assert our_lines(node.run("iptables-nft-save").stdout) == our_lines(nft_before) == []
    assert node.get(f"http://{ip}/") == a.name
    stop(proxy)
    out = node.run(sys.executable, "-m", "agent.proxy", "--cleanup").stdout
    assert "legacy" in json.loads(out.strip().splitlines()[-1])["removed"]
    assert our_lines(legacy()) == []
    assert "-A SOMEONE-LEGACY -j RETURN" in legacy()
    node.run("iptables-legacy", "-t", "nat", "-F", "SOMEONE-LEGACY")
    node.run("iptables-legacy", "-t", "nat", "-X", "SOMEONE-LEGACY")
