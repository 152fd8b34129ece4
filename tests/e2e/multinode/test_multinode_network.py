"""Pods on different nodes reach each other (issue 10, section 3), on real parts: two nodes
(netns + dockerd + agent + proxy) on an underlay bridge, see conftest.py. The tests run in
file order on one cluster; the last ones take node B away."""
from __future__ import annotations

import base64
import ipaddress
import subprocess
import time

import pytest

from agent_nodes import sh, wait_pod, wait_until

from agent.node_routes import ROUTE_PROTOCOL
from kubeling import errors
from kubeling.resources import lookup
from tests.conftest import wait_for

PODS, SERVICES, NODES, NAMESPACES, LEASES = (lookup(r) for r in ("pods", "services", "nodes", "namespaces",
                                                                  "leases"))
NS = "multinode"
ROUTE_PROTO = str(ROUTE_PROTOCOL)
# httpd with a CGI that answers the client address it sees: proof of (no) masquerade.
WEB_SCRIPT = ("mkdir -p /www/cgi-bin && echo '#!/bin/sh' > /www/cgi-bin/ip && "
              "echo 'echo Content-Type: text/plain; echo; echo $REMOTE_ADDR' >> /www/cgi-bin/ip && "
              "chmod +x /www/cgi-bin/ip && echo web > /www/index.html && exec httpd -f -p 8080 -h /www")


def our_routes(node) -> dict[str, str]:
    return node.routes("proto", ROUTE_PROTO)


def pod_cidr(nodes: dict, node) -> str:
    return nodes[node.name]["spec"]["podCIDR"]


def internal_ip(nodes: dict, node) -> str:
    return next(a["address"] for a in nodes[node.name]["status"]["addresses"] if a["type"] == "InternalIP")


async def ensure_pods(client, cluster) -> dict[str, str]:
    """A web pod on node B, a client pod on node A (made once, through the scheduler); their IPs."""
    try:
        await client.create(NAMESPACES, {"metadata": {"name": NS}})
        for name, node, labels, cmd in (
                ("web", cluster.b, {"app": "web"}, ["sh", "-c", WEB_SCRIPT]),
                ("client", cluster.a, {"app": "client"}, ["sleep", "3600"])):
            ctr = {"name": "main", "image": "busybox:latest", "command": cmd}
            if name == "web":
                ctr["readinessProbe"] = {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
            await client.create(PODS, {"metadata": {"name": name, "namespace": NS, "labels": labels}, "spec": {
                "nodeSelector": {"kubernetes.io/hostname": node.name}, "containers": [ctr],
                "terminationGracePeriodSeconds": 1}}, NS)
    except Exception as exc:
        if getattr(exc, "code", None) != 409:
            raise
    ips = {}
    for name in ("web", "client"):
        pod = await wait_pod(client, NS, name, lambda p: (p.get("status") or {}).get("podIP") and
                             p["status"].get("phase") == "Running", 90, f"pod {name} running")
        ips[name] = pod["status"]["podIP"]
    return ips


def peer(text: str | None) -> str | None:
    """The client address busybox httpd reports ("[::ffff:10.244.0.2]" for IPv4) as plain IPv4."""
    return text.strip().strip("[]").removeprefix("::ffff:") if text else text


def wget(node, url: str, pod: str = "client") -> str | None:
    """GET from inside a pod's container on `node` (busybox wget, bounded by docker exec)."""
    try:
        proc = node.pod_exec(NS, pod, "main", "wget", "-q", "-O", "-", url, timeout=8)
    except (subprocess.TimeoutExpired, LookupError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def test_each_node_routes_the_others_pod_cidr_via_its_internal_ip(cluster, ready_nodes):
    a, b = cluster.a, cluster.b
    nodes = ready_nodes
    # --node-ip is what is reported: the underlay address, never the /30 to the API server.
    assert internal_ip(nodes, a) == cluster.ip_a and internal_ip(nodes, b) == cluster.ip_b
    cidr_a, cidr_b = pod_cidr(nodes, a), pod_cidr(nodes, b)
    assert cidr_a != cidr_b
    wait_for(lambda: our_routes(a) == {cidr_b: cluster.ip_b}, 15, f"A's route to {cidr_b}", 0.2)
    wait_for(lambda: our_routes(b) == {cidr_a: cluster.ip_a}, 15, f"B's route to {cidr_a}", 0.2)
    # Marked as ours and over the underlay.
    line = a.ns("ip", "-4", "route", "show", cidr_b).stdout
    assert f"via {cluster.ip_b} dev ul0 proto {ROUTE_PROTO}" in line, line
    # Node A started with strict reverse-path filtering: the agent made it loose. B kept its own.
    assert a.ns("sysctl", "-n", "net.ipv4.conf.all.rp_filter").stdout.strip() == "2"
    assert b.ns("sysctl", "-n", "net.ipv4.conf.all.rp_filter").stdout.strip() == "0"
    # A route deleted by hand comes back with the periodic re-check.
    a.ns("ip", "route", "del", cidr_b)
    assert cidr_b not in our_routes(a)
    wait_for(lambda: our_routes(a) == {cidr_b: cluster.ip_b}, 15, "the deleted route back", 0.2)


async def test_pod_reaches_pod_on_the_other_node_with_its_own_ip(cluster, ready_nodes, client):
    a, b = cluster.a, cluster.b
    proxies_running = a.proxy_proc is not None
    ips = await ensure_pods(client, cluster)
    assert ipaddress.ip_address(ips["web"]) in ipaddress.ip_network(pod_cidr(ready_nodes, b))
    # B's server sees A's pod IP: no masquerade between pods.
    seen = await wait_until(lambda: wget(a, f"http://{ips['web']}:8080/cgi-bin/ip"), 20,
                            "the web pod on B from the client pod on A")
    assert peer(seen) == ips["client"]
    if not proxies_running:
        # What accepted it in FORWARD (policy DROP) was the node's own CNI rule, not the proxy's.
        for n in (a, b):
            save = n.ns("iptables-save", "-t", "filter").stdout
            assert "KUBELING-FORWARD" not in save and "KUBELING-CNI-F-" in save
    # Traffic from a pod to outside the cluster CIDR (here node B's own address) is masqueraded
    # to node A's address.
    docroot = cluster.base / "b-host-www"
    (docroot / "cgi-bin").mkdir(parents=True, exist_ok=True)
    script = docroot / "cgi-bin" / "ip"
    script.write_text("#!/bin/sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n")
    script.chmod(0o755)
    httpd = subprocess.Popen(["nsenter", f"--net={b.netns_path}", "busybox", "httpd", "-f", "-p",
                              f"{cluster.ip_b}:8081", "-h", str(docroot)])
    try:
        seen = await wait_until(lambda: wget(a, f"http://{cluster.ip_b}:8081/cgi-bin/ip"), 20,
                                "node B's host server from the client pod on A")
        assert peer(seen) == cluster.ip_a
    finally:
        httpd.terminate()
        httpd.wait(10)


async def test_a_node_may_not_write_the_other_nodes_objects(cluster, ready_nodes, client):
    """NodeRestriction between the two nodes: A's own credentials (what its agent runs on)
    are refused B's Node status, B's Lease and the status of a pod bound to B, and nothing
    of it reaches etcd."""
    a, b = cluster.a, cluster.b
    await ensure_pods(client, cluster)  # "web" is bound to B
    marker = f"written-by-{a.name}"
    writes = (  # (resource, namespace, name, merge patch, subresource)
        (NODES, None, b.name, {"status": {"conditions": [
            {"type": "Ready", "status": "False", "reason": marker, "message": marker}]}}, "status"),
        (LEASES, "kube-node-lease", b.name, {"spec": {"holderIdentity": marker}}, None),
        (PODS, NS, "web", {"status": {"phase": "Failed", "message": marker}}, "status"),
    )
    as_a = cluster.node_client(a)
    try:
        # A's credentials work (it reads B's Node, as its routes need) and are A's.
        assert (await as_a.get(NODES, b.name))["metadata"]["name"] == b.name
        for res, ns, name, patch, sub in writes:
            with pytest.raises(errors.ApiError) as refused:
                await as_a.patch(res, name, patch, ns, subresource=sub)
            assert refused.value.code == 403, (res.plural, refused.value)
            assert a.name in refused.value.message, refused.value.message  # refused as node A
    finally:
        await as_a.close()
    # Unchanged, through the API and in etcd.
    node_b = await client.get(NODES, b.name)
    ready = next(c for c in node_b["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready.get("reason") != marker
    assert (await client.get(LEASES, b.name, "kube-node-lease"))["spec"]["holderIdentity"] == b.name
    web = await client.get(PODS, "web", NS)
    assert web["status"]["phase"] == "Running" and web["status"].get("message") != marker
    for res, ns, name, _, _ in writes:
        kv = cluster.api.etcd.get_json(res.key(ns, name))
        assert kv is not None and marker.encode() not in base64.b64decode(kv["value"]), res.key(ns, name)


async def test_service_with_its_only_endpoint_on_the_other_node(cluster, ready_nodes, client):
    a, b = cluster.a, cluster.b
    ips = await ensure_pods(client, cluster)
    cluster.start_proxies()
    try:
        await client.create(SERVICES, {"metadata": {"name": "web", "namespace": NS}, "spec": {
            "type": "NodePort", "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}, NS)
    except Exception as exc:
        if getattr(exc, "code", None) != 409:
            raise
    svc = await client.get(SERVICES, "web", NS)
    cluster_ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
    # From node A itself (the host): the ClusterIP answers from the pod on B.
    assert await wait_until(lambda: a.http_get(f"http://{cluster_ip}/index.html", timeout=3).strip() == "web",
                            30, "the ClusterIP from node A's namespace")
    # From a pod on A: the ClusterIP answers, and the endpoint sees the client pod's own IP.
    seen = await wait_until(lambda: wget(a, f"http://{cluster_ip}/cgi-bin/ip"), 20,
                            "the ClusterIP from the client pod on A")
    assert peer(seen) == ips["client"]
    # A NodePort on node A's address, from node B's namespace, reaches the endpoint on B (through
    # A, masqueraded to A's address so the reply goes back the same way).
    seen = await wait_until(lambda: b.http_get(f"http://{cluster.ip_a}:{node_port}/cgi-bin/ip",
                                               timeout=3).strip(), 30, "the NodePort on A from B")
    assert peer(seen) == cluster.ip_a


async def test_a_deleted_node_takes_its_route_and_teardown_removes_the_rest(cluster, ready_nodes, client):
    a, b = cluster.a, cluster.b
    cidr_b, cidr_a = pod_cidr(ready_nodes, b), pod_cidr(ready_nodes, a)
    wait_for(lambda: our_routes(a) == {cidr_b: cluster.ip_b}, 15, f"A's route to {cidr_b}", 0.2)
    # Node B leaves: its agent stops (its routes and pods stay, as across an agent restart) and
    # its Node object is deleted.
    b.stop_agent()
    assert our_routes(b) == {cidr_a: cluster.ip_a}
    t0 = time.monotonic()
    await client.delete(NODES, b.name)
    wait_for(lambda: our_routes(a) == {}, 10, f"A's route to {cidr_b} to go", 0.1)
    print(f"route removed {time.monotonic() - t0:.2f}s after the Node was deleted")
    assert sh("nsenter", f"--net={a.netns_path}", "ip", "-4", "route", "show", cidr_b).stdout == ""
    # `agent --teardown` on B (what `kubeling down` / `kubeling reset` run): pods, pod network,
    # chains and the host-gw routes all go.
    out = b.agent_teardown()
    assert out.returncode == 0, out.stderr
    assert our_routes(b) == {}
    save = b.ns("iptables-save").stdout
    assert "KUBELING-CNI" not in save, [l for l in save.splitlines() if "KUBELING-CNI" in l]
    assert b.docker("ps", "-aq").stdout.split() == []
    assert b.ns("ip", "link", "show", "cni0", check=False).returncode != 0
