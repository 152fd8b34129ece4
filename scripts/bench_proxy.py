"""Benchmark of the service proxy (`scripts/bench proxy`).

For 1,000 and 10,000 Services with 2 endpoints each (Services and EndpointSlices created through
a private API server; no pods needed), with the proxy running in a network namespace of its own:
  sync_Nk_ms           time from the last create returning to the last service's rules being
                       present (then every service is checked in one iptables-save)
  restore_floor_10k_ms one raw `iptables-restore --noflush` of the same 10k ruleset into an empty
                       namespace: what the kernel + iptables binary alone cost
  change_p50/p99_ms    50 single endpoint changes on the 10k set, each from the API write to the
                       new DNAT chain being jumped to from the service chain
Everything (etcd, apiservers, namespaces, processes) is removed at the end.
Options: --sizes 1000,10000 (the floor and changes use the largest), --changes 50.
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts.benchlib import REPO, percentile, private_etcd, progress, result  # noqa: E402

sys.path.insert(0, str(REPO / "tests" / "e2e" / "proxy"))
from proxy_netenv import Node, Uplink, stop, wait_until  # noqa: E402

from tests.conftest import start_apiserver  # noqa: E402

from agent.proxy import rules  # noqa: E402
from agent.proxy.iptables import detect_backend  # noqa: E402
from agent.proxy.model import Endpoint, ServicePort, service_ports, slice_endpoints  # noqa: E402
from kubeling.client import Client  # noqa: E402
from kubeling.resources import lookup  # noqa: E402

NS = "bench"
SERVICES, SLICES, NAMESPACES = lookup("services"), lookup("endpointslices"), lookup("namespaces")


def endpoint_ips(i: int, gen: int = 0) -> list[str]:
    base = 2 * i + gen * 100_000
    return [f"10.{244 + (base >> 16) % 8}.{(base >> 8) & 255}.{base & 255}",
            f"10.{244 + ((base + 1) >> 16) % 8}.{((base + 1) >> 8) & 255}.{(base + 1) & 255}"]


def slice_body(i: int, ips: list[str]) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"s{i}-x", "namespace": NS, "labels": {"kubernetes.io/service-name": f"s{i}"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]}


async def create_all(client: Client, n: int, parallel: int = 48) -> dict[int, dict]:
    sem = asyncio.Semaphore(parallel)
    services: dict[int, dict] = {}

    async def one(i: int) -> None:
        async with sem:
            services[i] = await client.create(SERVICES, {
                "metadata": {"name": f"s{i}", "namespace": NS},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}, NS)
            await client.create(SLICES, slice_body(i, endpoint_ips(i)), NS)
    await asyncio.gather(*(one(i) for i in range(n - 1)))
    await one(n - 1)  # the last create, from whose return the sync is timed
    return services


def sep_of(i: int, ip: str) -> str:
    return rules.sep_chain(ServicePort(NS, f"s{i}", "http", "tcp", "", 0), Endpoint(ip, 8080))


def svc_of(i: int) -> str:
    return rules.svc_chain(ServicePort(NS, f"s{i}", "http", "tcp", "", 0))


def chain_rules(node: Node, chain: str) -> str:
    return node.run("iptables", "-w", "-t", "nat", "-S", chain, check=False).stdout


async def bench_size(n: int, changes: int, work: Path, uplink: Uplink) -> dict:
    out: dict = {}
    with private_etcd() as etcd:
        base = Path(tempfile.mkdtemp(prefix="kubeling-bench-proxy-", dir=work))
        api, info = start_apiserver(etcd, base, token="bench", bind=uplink.ip)
        kubeconfig = info.kubeconfig
        node = Node.create(uplink)
        client = Client.from_kubeconfig(str(kubeconfig))
        try:
            await client.create(NAMESPACES, {"metadata": {"name": NS}})
            proxy = node.start_proxy(str(kubeconfig), base / "proxy.log", "--sync-period", "3600")
            progress(f"{n} services: creating services + endpoint slices through the API")
            t_create = time.monotonic()
            services = await create_all(client, n)
            endpoints_of = {i: endpoint_ips(i) for i in range(n)}
            t_last = time.monotonic()
            progress(f"  created in {t_last - t_create:.1f}s; waiting for the rules")
            last = n - 1
            wait_until(lambda: f"-j {sep_of(last, endpoint_ips(last)[1])}" in chain_rules(node, svc_of(last)),
                       3600, "the last service's rules", interval=0.005)
            out["sync_ms"] = (time.monotonic() - t_last) * 1000
            save = node.run("iptables-save", "-t", "nat").stdout
            missing = [i for i in range(n) if f"-j {svc_of(i)}" not in save]
            assert not missing, f"{len(missing)} services without rules, e.g. s{missing[0]}"
            assert proxy.poll() is None, (base / "proxy.log").read_text()[-2000:]
            out["rules_lines"] = sum(1 for l in save.splitlines() if l.startswith("-A KUBELING-"))

            if changes:
                progress(f"  {changes} single endpoint changes")
                lat = []
                for k in range(changes):
                    i = (k * 7919) % n
                    obj = await client.get(SLICES, f"s{i}-x", NS)
                    new_ip = endpoint_ips(i, gen=k + 1)[0]
                    obj["endpoints"][0] = {"addresses": [new_ip], "conditions": {"ready": True}}
                    endpoints_of[i] = [new_ip, endpoints_of[i][1]]
                    want = f"-j {sep_of(i, new_ip)}"
                    t0 = time.monotonic()
                    await client.update(SLICES, obj)
                    wait_until(lambda: want in chain_rules(node, svc_of(i)), 60, "the changed rule", interval=0.002)
                    lat.append((time.monotonic() - t0) * 1000)
                out["change_p50_ms"] = percentile(lat, 50)
                out["change_p99_ms"] = percentile(lat, 99)

                progress("  the floor: one iptables-restore of the same ruleset into an empty namespace")
                # From what was written (a list of 10k objects is too big for one etcd response).
                ports = [sp for s in services.values() for sp in service_ports(s)]
                eps = {}
                for i, ips in endpoints_of.items():
                    for (pn, proto), e in slice_endpoints([slice_body(i, ips)]).items():
                        eps[(NS, f"s{i}", pn, proto)] = e
                text = rules.restore_text(rules.render(ports, eps))
                out["floor_lines"] = text.count("\n")
                empty = Node.create(uplink)
                try:
                    restore = f"iptables-{detect_backend()}-restore"
                    t0 = time.monotonic()
                    proc = subprocess.run(["nsenter", f"--net={empty.path}", restore, "-w", "--noflush"],
                                          input=text, text=True, capture_output=True)
                    out["floor_ms"] = (time.monotonic() - t0) * 1000
                    assert proc.returncode == 0, proc.stderr[-2000:]
                finally:
                    left = empty.destroy()
                    assert not left, left
        finally:
            await client.close()
            log = base / "proxy.log"
            if log.exists():
                for line in log.read_text().splitlines()[-4:]:
                    progress("  proxy: " + line)
            left = node.destroy()
            stop(api)
            shutil.rmtree(base, ignore_errors=True)
            assert not left, f"left behind: {left}"
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--changes", type=int, default=50)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="kubeling-bench-proxy-"))
    uplink = Uplink.create()
    doc: dict = {}
    try:
        for n in sizes:
            r = await bench_size(n, args.changes if n == max(sizes) else 0, work, uplink)
            label = f"{n // 1000}k" if n % 1000 == 0 else str(n)
            doc[f"sync_{label}_ms"] = r["sync_ms"]
            progress(f"  {n} services: {r['sync_ms']:.0f} ms to all rules ({r['rules_lines']} rules)")
            if "change_p50_ms" in r:
                doc[f"restore_floor_{label}_ms"] = r["floor_ms"]
                doc["change_p50_ms"] = r["change_p50_ms"]
                doc["change_p99_ms"] = r["change_p99_ms"]
                progress(f"  floor {r['floor_ms']:.0f} ms ({r['floor_lines']} lines); changes p50 "
                         f"{r['change_p50_ms']:.0f} ms p99 {r['change_p99_ms']:.0f} ms")
    finally:
        uplink.delete()
        shutil.rmtree(work, ignore_errors=True)
    doc["backend"] = detect_backend()
    result(doc)


if __name__ == "__main__":
    asyncio.run(main())
