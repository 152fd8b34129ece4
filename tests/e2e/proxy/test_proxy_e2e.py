"""The proxy for real: `python -m agent.proxy` inside a node namespace, Services and EndpointSlices
written through the API server, rules checked with iptables-save (or `nft list`) of that namespace
and with real HTTP requests to busybox httpd pods. Tests taking the `mode` fixture run under both
proxy modes (iptables, nftables)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from agent.proxy import nft_rules, rules
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


def nft(node: Node, *what: str) -> str | None:
    """`nft list <what…>` of our table in the node (None: no such chain, map or table)."""
    proc = node.run("nft", "list", *what[:1], nft_rules.FAMILY, nft_rules.TABLE, *what[1:], check=False)
    return proc.stdout if proc.returncode == 0 else None


def has_dnat(node: Node, mode: str, ns: str, svc: str, ip: str, proto: str = "tcp") -> bool:
    """Is this endpoint of this service DNATed to, in the mode's rules?"""
    if mode == "iptables":
        return bool(dnat(ns, svc, ip, proto).search(node.iptables_save()))
    chain = nft_rules.ep_chain(ServicePort(ns, svc, "http", proto, "", 0), Endpoint(ip, 8080))
    body = nft(node, "chain", chain)
    return body is not None and f"dnat to {ip}:8080" in body


def rejects(node: Node, mode: str, ip: str) -> bool:
    """Is this service IP rejected (no endpoints) in the mode's rules?"""
    if mode == "iptables":
        return bool(re.search(rf"-A KUBELING-SERVICES -d {ip}/32 .*-j REJECT", node.iptables_save()))
    # Every address of the service CIDR that no map element DNATs is rejected.
    chain, elements = nft(node, "chain", nft_rules.REJECT_SERVICES), nft(node, "map", nft_rules.SERVICE_IPS)
    return chain is not None and "reject" in chain and elements is not None and f"{ip} . " not in elements


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


def start(node: Node, kubeconfig: str, tmp_path, *extra: str, mode: str = "iptables") -> subprocess.Popen:
    return node.start_proxy(kubeconfig, tmp_path / "proxy.log", "--sync-period", "30", "--proxy-mode", mode, *extra)


def fetch_many(node: Node, url: str, n: int, netns: str | None = None) -> list[str | None]:
    return [node.get(url, netns) for _ in range(n)]


def connect_error(node: Node, url: str, netns: str | None = None) -> tuple[float, str]:
    t0 = time.monotonic()
    proc = sh("nsenter", f"--net={netns or node.path}", "busybox", "wget", "-q", "-O", "-", url,
              check=False, timeout=15)
    assert proc.returncode != 0, f"{url} answered: {proc.stdout}"
    return time.monotonic() - t0, proc.stderr


async def test_clusterip_spreads_hairpins_and_nodeport_answers(node, node_kubeconfig, client, namespace, tmp_path, mode):
    a, b = node.add_pod(1), node.add_pod(2)
    svc = await make_service(client, namespace, "web", type_="NodePort")
    ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
    await client.create(SLICES, slice_body(namespace, "web", [a, b]), namespace)
    proxy = start(node, node_kubeconfig, tmp_path, mode=mode)
    wait_until(lambda: all(has_dnat(node, mode, namespace, "web", p.ip) for p in (a, b)), 20, "DNAT rules")

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
    if mode == "iptables":
        svc_chain = rules.svc_chain(sp)
        assert f"-A KUBELING-SERVICES -d {ip}/32 -p tcp" in save and f"--dport 80 -j {svc_chain}" in save
        assert re.search(rf"-A KUBELING-NODEPORTS .*--dport {node_port} -j {svc_chain}", save)
        assert "--probability 0.50000000000" in save
        assert_jumps_once(save)
    else:
        assert f"{ip} . tcp . 80 : goto {nft_rules.svc_chain(sp)}" in (nft(node, "map", nft_rules.SERVICE_IPS) or "")
        assert f"tcp . {node_port} : goto {nft_rules.ext_chain(sp)}" in (nft(node, "map", nft_rules.SERVICE_NODEPORTS) or "")
        assert re.search(r"numgen random mod 2 (== )?0 goto ", nft(node, "chain", nft_rules.svc_chain(sp)) or "")
        # Of iptables only the forward-accept chain (FORWARD's DROP policy); no DNAT there.
        assert {l.split()[1] for l in our_lines(save) if l.startswith("-A KUBELING-")} == {rules.FORWARD}
    assert proxy.poll() is None


async def test_service_without_endpoints_and_unallocated_ips_are_rejected_fast(
        node, node_kubeconfig, client, namespace, tmp_path, mode):
    a = node.add_pod(1)
    svc = await make_service(client, namespace, "empty")
    ip = svc["spec"]["clusterIP"]
    start(node, node_kubeconfig, tmp_path, mode=mode)
    wait_until(lambda: rejects(node, mode, ip), 20, "the REJECT rule")
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


async def test_client_ip_affinity_sticks(node, node_kubeconfig, client, namespace, tmp_path, mode):
    a, b, c = node.add_pod(1), node.add_pod(2), node.add_pod(3, serve=False)
    svc = await make_service(client, namespace, "sticky", affinity=True)
    ip = svc["spec"]["clusterIP"]
    await client.create(SLICES, slice_body(namespace, "sticky", [a, b]), namespace)
    start(node, node_kubeconfig, tmp_path, mode=mode)
    wait_until(lambda: all(has_dnat(node, mode, namespace, "sticky", p.ip) for p in (a, b)), 20, "DNAT rules")
    sp = ServicePort(namespace, "sticky", "http", "tcp", ip, 80)
    if mode == "iptables":
        assert "-m recent --rcheck --seconds 10800 --reap" in node.iptables_save()
    else:
        assert "timeout 3h" in (nft(node, "set", nft_rules.affinity_set(sp, Endpoint(a.ip, 8080))) or "")
    from_node = fetch_many(node, f"http://{ip}/", 15)
    assert len(set(from_node)) == 1 and from_node[0] in (a.name, b.name), from_node
    from_c = fetch_many(node, f"http://{ip}/", 15, netns=c.path)
    assert len(set(from_c)) == 1 and from_c[0] in (a.name, b.name), from_c


async def test_endpoint_removal_drops_its_dnat_within_the_sync(node, node_kubeconfig, client, namespace, tmp_path,
                                                               mode):
    a, b = node.add_pod(1), node.add_pod(2)
    svc = await make_service(client, namespace, "shrink")
    ip = svc["spec"]["clusterIP"]
    body = slice_body(namespace, "shrink", [a, b])
    created = await client.create(SLICES, body, namespace)
    start(node, node_kubeconfig, tmp_path, mode=mode)
    wait_until(lambda: all(has_dnat(node, mode, namespace, "shrink", p.ip) for p in (a, b)), 20, "DNAT rules")
    sp = ServicePort(namespace, "shrink", "http", "tcp", ip, 80)

    def b_chain_exists() -> bool:
        if mode == "iptables":
            return f":{rules.sep_chain(sp, Endpoint(b.ip, 8080))} " in node.iptables_save()
        return nft(node, "chain", nft_rules.ep_chain(sp, Endpoint(b.ip, 8080))) is not None
    assert b_chain_exists()

    created["endpoints"] = [e for e in created["endpoints"] if e["addresses"] != [b.ip]]
    await client.update(SLICES, created)
    # Well inside the 30 s full-resync period: the change itself triggered the sync.
    wait_until(lambda: not has_dnat(node, mode, namespace, "shrink", b.ip), 15, "b's DNAT rule to go", interval=0.01)
    # The chain is deleted, not just emptied.
    assert not b_chain_exists() and has_dnat(node, mode, namespace, "shrink", a.ip)
    assert set(fetch_many(node, f"http://{ip}/", 10)) == {a.name}

    await client.delete(SLICES, created["metadata"]["name"], namespace)
    wait_until(lambda: rejects(node, mode, ip), 5, "REJECT once no endpoint is left")
    _, err = connect_error(node, f"http://{ip}/")
    assert "refused" in err.lower()


async def test_udp_conntrack_entries_of_a_removed_endpoint_are_deleted(
        node, node_kubeconfig, client, namespace, tmp_path, mode):
    a, b = node.add_pod(1, serve=False), node.add_pod(2, serve=False)
    svc = await make_service(client, namespace, "dns", protocol="UDP", port=5353)
    ip = svc["spec"]["clusterIP"]
    created = await client.create(SLICES, slice_body(namespace, "dns", [a], protocol="UDP"), namespace)
    start(node, node_kubeconfig, tmp_path, mode=mode)
    wait_until(lambda: has_dnat(node, mode, namespace, "dns", a.ip, "udp"), 20, "UDP DNAT rule")

    def flows() -> str:
        return node.run("conntrack", "-L", "-p", "udp", "--orig-dst", ip, check=False).stdout

    send = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            f"s.sendto(b'x', ('{ip}', 5353))")
    node.run(sys.executable, "-c", send)
    wait_until(lambda: f"src={a.ip}" in flows(), 5, "a conntrack entry towards a")
    created["endpoints"] = [{"addresses": [b.ip], "conditions": {"ready": True}}]
    await client.update(SLICES, created)
    wait_until(lambda: has_dnat(node, mode, namespace, "dns", b.ip, "udp")
               and not has_dnat(node, mode, namespace, "dns", a.ip, "udp"), 5, "the new endpoint's rule")
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


async def test_nftables_restart_drops_leftovers_and_cleanup_or_iptables_mode_removes_the_table(
        node, node_kubeconfig, client, namespace, tmp_path):
    from agent.proxy.nftables import available
    if not available():
        pytest.skip("no working nft binary")
    a = node.add_pod(1)
    svc = await make_service(client, namespace, "again")
    ip = svc["spec"]["clusterIP"]
    await client.create(SLICES, slice_body(namespace, "again", [a]), namespace)
    proxy = start(node, node_kubeconfig, tmp_path, mode="nftables")
    wait_until(lambda: has_dnat(node, "nftables", namespace, "again", a.ip), 20, "DNAT rule")
    stop(proxy)

    # Someone else's table, and a chain and an affinity set of ours that nothing renders now.
    node.run("nft", "add", "table", "ip", "someone-else")
    node.run("nft", "add", "chain", "ip", "someone-else", "theirs")
    node.run("nft", "add", "rule", "ip", "someone-else", "theirs", "counter")
    node.run("nft", "add", "chain", nft_rules.FAMILY, nft_rules.TABLE, "ep-LEFTOVER00000000")
    node.run("nft", "add", "set", nft_rules.FAMILY, nft_rules.TABLE, "aff-LEFTOVER0000000", "{ type ipv4_addr; }")
    proxy = start(node, node_kubeconfig, tmp_path, mode="nftables")
    wait_until(lambda: "LEFTOVER" not in (nft(node, "table") or "LEFTOVER"), 20, "the leftovers to go")
    assert has_dnat(node, "nftables", namespace, "again", a.ip)
    assert node.get(f"http://{ip}/") == a.name
    stop(proxy)

    # The iptables mode takes over: the nftables table goes (two sets of DNAT rules would race).
    proxy = start(node, node_kubeconfig, tmp_path, mode="iptables")
    wait_until(lambda: has_dnat(node, "iptables", namespace, "again", a.ip), 20, "the iptables DNAT rule")
    assert nft(node, "table") is None
    assert node.get(f"http://{ip}/") == a.name
    stop(proxy)

    proxy = start(node, node_kubeconfig, tmp_path, mode="nftables")
    wait_until(lambda: has_dnat(node, "nftables", namespace, "again", a.ip)
               and "DNAT" not in "\n".join(our_lines(node.iptables_save())), 20, "nftables again, iptables' DNAT gone")
    stop(proxy)
    out = node.run(sys.executable, "-m", "agent.proxy", "--cleanup").stdout
    removed = json.loads(out.strip().splitlines()[-1])["removed"]
    assert removed["nft-table"] == [f"{nft_rules.FAMILY} {nft_rules.TABLE}"]
    assert removed["nft"]["filter"] == [rules.FORWARD]  # the forward-accept chain, all that was in iptables
    assert nft(node, "table") is None and our_lines(node.iptables_save()) == []
    assert "counter" in node.run("nft", "list", "table", "ip", "someone-else").stdout
    again = node.run(sys.executable, "-m", "agent.proxy", "--cleanup").stdout
    assert json.loads(again.strip().splitlines()[-1]) == {"removed": {}}
