"""Cluster DNS on a real node: the DNS server (a host process, as under `kubeling up`)
publishes itself as kube-dns's endpoint; the node's proxy carries pods' queries from the
kube-dns ClusterIP to it; the agent writes each pod's resolv.conf as kubelet does. A busybox
pod resolves a Service by name and fetches from it; the name goes with the Service."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from agent.dns_config import ClusterDNS, read_host_resolv_conf, resolv_conf
from agent_nodes import pod_manifest, wait_pod, wait_until
from kubeling.resources import lookup
from tests.conftest import REPO, stop_process, wait_for

pytestmark = pytest.mark.e2e
PODS, SERVICES, SLICES = lookup("pods"), lookup("services"), lookup("endpointslices")


@pytest.fixture
def dns_server(apiserver, tmp_path):
    """The DNS server in the root namespace; a node reaches it at its veth's root-side address,
    so it is started by the test once that address exists (a factory)."""
    procs = []

    def start(bind: str) -> int:
        ready = tmp_path / "dns-ready.json"
        log = tmp_path / "dns.log"
        procs.append((subprocess.Popen(
            [sys.executable, "-m", "clusterdns", "--kubeconfig", str(apiserver.kubeconfig), "--bind", bind,
             "--port", "0", "--publish-address", bind, "--node-name", "e2e-dns",
             # Nothing outside the cluster is asked in this test; no packet may leave the machine.
             "--upstream", "127.0.0.1:9", "--ready-file", str(ready)],
            stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=REPO), log))
        return wait_for(lambda: ready.exists() and json.loads(ready.read_text())["port"], 60, "the DNS server")
    yield start
    for proc, log in procs:
        stop_process(proc)
        assert "Traceback" not in log.read_text(), log.read_text()


async def test_busybox_pod_resolves_and_reaches_a_service_through_kube_dns(client, namespace, node_factory,
                                                                           control_plane, dns_server):
    node = node_factory(start_agent=False)
    dns_server(node.root_ip)
    # Service IPs are reached like any address off the node (a VM has its default route there).
    node.ns("ip", "route", "add", "10.96.0.0/12", "dev", node.node_veth)
    node.start_proxy("--sync-period", "5")
    node.start_agent("--cluster-dns", "10.96.0.10", "--cluster-domain", "cluster.local")
    serve = "mkdir -p /www && echo hello-dns > /www/index.html && exec httpd -f -p 8080 -h /www"
    await client.create(SERVICES, {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}, namespace)
    web = pod_manifest("web", node.name, [{"name": "httpd", "command": ["sh", "-c", serve],
                                           "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}])
    web["metadata"]["labels"] = {"app": "web"}
    await client.create(PODS, web, namespace)
    await client.create(PODS, pod_manifest("cli", node.name, [{"name": "sh", "command": ["sleep", "3600"]}]),
                        namespace)
    ready = lambda p: any(c["type"] == "Ready" and c["status"] == "True"  # noqa: E731
                          for c in (p.get("status") or {}).get("conditions") or [])
    await wait_pod(client, namespace, "web", ready, 120, "web ready")
    cli = await wait_pod(client, namespace, "cli", ready, 120, "cli ready")

    # The pod's resolv.conf is kubelet's ClusterFirst file.
    got = node.pod_exec(namespace, "cli", "sh", "cat", "/etc/resolv.conf", check=True).stdout
    assert got == resolv_conf(cli, ClusterDNS(["10.96.0.10"], "cluster.local",
                                              read_host_resolv_conf("/etc/resolv.conf")))
    assert got.startswith(f"nameserver 10.96.0.10\nsearch {namespace}.svc.cluster.local svc.cluster.local "
                          "cluster.local")
    assert "options ndots:5" in got

    fqdn = f"web.{namespace}.svc.cluster.local"
    ip = (await client.get(SERVICES, "web", namespace))["spec"]["clusterIP"]

    async def resolves():
        out = node.pod_exec(namespace, "cli", "sh", "nslookup", fqdn, timeout=15)
        return out.returncode == 0 and ip in out.stdout
    await wait_until(resolves, 30, "nslookup of the Service through the kube-dns ClusterIP")

    async def short_name_resolves():
        # `web`: completed through the search path, first entry `<ns>.svc.cluster.local`. (busybox
        # nslookup asks every search domain and exits 1 if any is NXDOMAIN: the answer counts; it
        # searches only dotless names, so `web.<ns>` is left to getaddrinfo below.)
        out = node.pod_exec(namespace, "cli", "sh", "nslookup", "web", timeout=15)
        if ip not in out.stdout:
            raise RuntimeError(f"{out.stdout} {out.stderr}")
        return True
    await wait_until(short_name_resolves, 30, "nslookup web")

    async def fetches():
        # The image's busybox wget crashes (SIGSEGV) even on an IP, so nc speaks HTTP to `web.<ns>`:
        # its getaddrinfo reads the resolv.conf the agent wrote.
        get = f"printf 'GET / HTTP/1.0\\r\\nHost: web\\r\\n\\r\\n' | nc -w 3 web.{namespace} 80"
        out = node.pod_exec(namespace, "cli", "sh", "sh", "-c", get, timeout=15)
        if "hello-dns" not in out.stdout:
            raise RuntimeError(f"rc {out.returncode}: {out.stdout} {out.stderr}")
        return True
    await wait_until(fetches, 30, "HTTP to web.<ns>:80 from the pod")

    # Deletion: the name goes with the Service (NXDOMAIN: nslookup fails).
    deleted = time.monotonic()
    await client.delete(SERVICES, "web", namespace)

    async def gone():
        out = node.pod_exec(namespace, "cli", "sh", "nslookup", fqdn, timeout=15)
        return out.returncode != 0 and ip not in out.stdout
    await wait_until(gone, 30, "the Service's name to go")
    assert time.monotonic() - deleted < 30
