"""Benchmark of the service proxy (`scripts/bench proxy`), both modes in one run.

For each size (default 10,000 Services with 2 endpoints each), the Services and
EndpointSlices are created first, before any proxy runs (no pods needed): by default written
straight into etcd in the API server's storage format (create_etcd_Nk_s); with `--create api`
through a private API server, concurrently with a bounded number of requests in flight
(create_api_Nk_s). Either way that time is reported on its own: it is the API server's
figure, not the proxy's (and through the API, 10k take longer than this bench's 4 minutes).
Then, for each mode (iptables, nftables), a proxy starts in a fresh node network namespace and
is measured:
  <mode>_sync_Nk_ms     proxy start → its first sync written (listing, render, write)
  <mode>_full_Nk_ms     the proxy's own first (full) sync, from its log (render + write)
  <mode>_floor_Nk_ms    the same rules written by the binaries alone into an empty namespace, as
                        the mode writes them (iptables: rules.restore_batches into chains hooked
                        as the proxy hooks them; nftables: one `nft -f` transaction): what the
                        kernel and the binary cost
  <mode>_change_floor_ms  then single endpoint changes written there by the binary alone, as
                        the mode's partial syncs write them (p50 of 5): the floor of change_p50
  <mode>_change_p50/p99_ms  single endpoint changes on the largest set, each from the API write
                        (the slice's last-change-trigger-time) to its rules written, as the proxy
                        measures it (kubeproxy_network_programming_duration_seconds); the first
                        change is a warm-up, not timed. The proxy runs without --node-name,
                        so without its trace events (one per service at its start). After each,
                        a probe (`iptables -S CHAIN` / `nft list chain`) checks the rule is there
  <mode>_probe_ms       one such probe (`nft list` of one chain of a big table is slow)
  <mode>_partial_p50_ms the proxy's own syncs for those changes, from its log
Everything (etcd, apiservers, namespaces, processes) is removed at the end; a namespace takes
its iptables rules and nftables table with it.
Options: --sizes 10000 (comma-separated; changes on the largest), --changes 20,
--modes iptables,nftables, --parallel 32 (creates in flight), --create etcd|api.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import itertools
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts.benchlib import REPO, percentile, private_etcd, progress, result  # noqa: E402

sys.path.insert(0, str(REPO / "tests" / "e2e" / "proxy"))
from proxy_netenv import Node, Uplink, stop, wait_until  # noqa: E402

from tests.conftest import start_apiserver  # noqa: E402

from agent.proxy import nft_rules, rules  # noqa: E402
from agent.proxy.iptables import detect_backend  # noqa: E402
from agent.proxy.model import Endpoint, ServicePort, service_ports, slice_endpoints  # noqa: E402
from agent.proxy.__main__ import default_mode  # noqa: E402
from agent.proxy.nftables import available as nft_available  # noqa: E402
from kubeling.client import Client  # noqa: E402
from kubeling.resources import lookup  # noqa: E402
from kubeling.timefmt import format_micro_time  # noqa: E402

NS = "bench"
SERVICES, SLICES, NAMESPACES = lookup("services"), lookup("endpointslices"), lookup("namespaces")
FIRST_IP = int(ipaddress.ip_address("10.96.4.0"))  # clear of the kubernetes Service's 10.96.0.1
GENERATIONS = itertools.count(1)  # each change gets endpoint addresses never used before
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
METRICS_PORT = 10249
SYNC_LINE = re.compile(r"sync \d+ \((full|partial)\): .* ([\d.]+) ms \(rules")


def endpoint_ips(i: int, gen: int = 0) -> list[str]:
    base = 2 * i + gen * 100_000
    return [f"10.{244 + (base >> 16) % 8}.{(base >> 8) & 255}.{base & 255}",
            f"10.{244 + ((base + 1) >> 16) % 8}.{((base + 1) >> 8) & 255}.{(base + 1) & 255}"]


def slice_body(i: int, ips: list[str]) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"s{i}-x", "namespace": NS, "labels": {"kubernetes.io/service-name": f"s{i}"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]}


async def create_all(client: Client, n: int, parallel: int) -> dict[int, dict]:
    """Each Service with its own clusterIP: the bench measures the proxy, and the API server's
    random pick collides with a concurrent create's now and then (birthday odds at 10k)."""
    sem = asyncio.Semaphore(parallel)
    services: dict[int, dict] = {}

    async def one(i: int) -> None:
        async with sem:
            services[i] = await client.create(SERVICES, service_body(i), NS)
            await client.create(SLICES, slice_body(i, endpoint_ips(i)), NS)
    await asyncio.gather(*(one(i) for i in range(n)))
    return services


def service_body(i: int) -> dict:
    ip = str(ipaddress.ip_address(FIRST_IP + i))
    return {"metadata": {"name": f"s{i}", "namespace": NS},
            "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


async def seed_etcd(etcd, n: int, parallel: int) -> dict[int, dict]:
    """The same objects written straight into etcd as the API server stores them (its key
    layout and JSON, the clusterIP's allocation key beside each Service): for when the API
    server's create rate, not the proxy, would make the bench too long."""
    import aetcd
    client = aetcd.Client(host=etcd.host, port=etcd.port)
    await client.connect()
    t = client.transactions
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    services: dict[int, dict] = {}

    def stored(obj: dict, kind: str, api_version: str) -> dict:
        meta = {**obj["metadata"], "uid": str(uuid.uuid4()), "creationTimestamp": now, "generation": 1}
        return {**obj, "metadata": meta, "kind": kind, "apiVersion": api_version}

    def puts(i: int) -> list:
        svc = service_body(i)
        ip = svc["spec"]["clusterIP"]
        svc["spec"].update({"type": "ClusterIP", "sessionAffinity": "None", "clusterIPs": [ip],
                            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"})
        svc["spec"]["ports"][0]["protocol"] = "TCP"
        svc = stored({**svc, "status": {"loadBalancer": {}}}, "Service", "v1")
        services[i] = svc
        key = f"/registry/services/{NS}/s{i}"
        return [t.put(key.encode(), json.dumps(svc).encode()),
                t.put(f"/registry/ranges/serviceips/{ip}".encode(), key.encode()),
                t.put(f"/registry/endpointslices/{NS}/s{i}-x".encode(),
                      json.dumps(stored(slice_body(i, endpoint_ips(i)), "EndpointSlice", "discovery.k8s.io/v1")).encode())]
    sem = asyncio.Semaphore(parallel)

    async def batch(start: int) -> None:
        async with sem:
            ops = [op for i in range(start, min(start + 40, n)) for op in puts(i)]  # etcd: ≤ 128 per txn
            await client.transaction(compare=[], success=ops, failure=[])
    try:
        await asyncio.gather(*(batch(k) for k in range(0, n, 40)))
    finally:
        await client.close()
    return services


def _sp(i: int) -> ServicePort:
    return ServicePort(NS, f"s{i}", "http", "tcp", "", 0)


class Probe:
    """Is service i's chain jumping to endpoint ip's chain? One listing of one chain."""

    def __init__(self, mode: str, node: Node) -> None:
        self.mode, self.node = mode, node

    def __call__(self, i: int, ip: str) -> bool:
        if self.mode == "iptables":
            out = self.node.run("iptables", "-w", "-t", "nat", "-S", rules.svc_chain(_sp(i)), check=False).stdout
            return f"-j {rules.sep_chain(_sp(i), Endpoint(ip, 8080))}" in out
        out = self.node.run("nft", "list", "chain", nft_rules.FAMILY, nft_rules.TABLE, nft_rules.svc_chain(_sp(i)),
                            check=False).stdout
        return f"goto {nft_rules.ep_chain(_sp(i), Endpoint(ip, 8080))}" in out

    def missing(self, n: int) -> list[int]:
        """Services without rules, from one listing of the dispatch (slow on a big table: once)."""
        if self.mode == "iptables":
            save = self.node.run("iptables-save", "-t", "nat").stdout
            return [i for i in range(n) if f"-j {rules.svc_chain(_sp(i))}" not in save]
        out = self.node.run("nft", "list", "map", nft_rules.FAMILY, nft_rules.TABLE, nft_rules.SERVICE_IPS).stdout
        return [i for i in range(n) if f"goto {nft_rules.svc_chain(_sp(i))}" not in out]


def programming(node: Node) -> tuple[float, float]:
    """The proxy's network-programming histogram: (count, sum in seconds)."""
    text = node.run("busybox", "wget", "-q", "-O", "-", f"http://127.0.0.1:{METRICS_PORT}/metrics").stdout
    found = dict(re.findall(r"^kubeproxy_network_programming_duration_seconds_(count|sum) (\S+)$", text, re.M))
    return float(found.get("count", 0)), float(found.get("sum", 0))


def sync_times(log: Path) -> list[tuple[str, float]]:
    return [(m.group(1), float(m.group(2))) for m in SYNC_LINE.finditer(log.read_text())] if log.exists() else []


def floor_ms(mode: str, ports: list[ServicePort], eps: dict, uplink: Uplink,
             changes: int = 5) -> tuple[float, int, float]:
    """The rules written into an empty namespace by the binaries alone, as the mode writes them;
    then `changes` single endpoint changes written there as the mode's partial syncs write them
    (rendered by the proxy's own renderer). Returns (full ms, its lines, change p50 ms)."""
    if mode == "iptables":
        renderer = rules.Renderer(rules.Config())
        texts = rules.restore_batches(renderer.render(ports, eps))
        cmd = [f"iptables-{detect_backend()}-restore", "-w", "--noflush"]
    else:
        renderer = nft_rules.Renderer(rules.Config())
        last = renderer.render(ports, eps)
        texts = [nft_rules.transaction(last, None, {})]
        cmd = ["nft", "-f", "-"]
    empty = Node.create(uplink)

    def write(text: str) -> None:
        proc = subprocess.run(["nsenter", f"--net={empty.path}", *cmd], input=text, text=True, capture_output=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
    try:
        if mode == "iptables":
            # Hooked as the proxy hooks them (rules.JUMPS): with the chains reachable from the
            # built-in ones the kernel validates the jumps of the whole table at each commit,
            # which is most of what a change costs at 10k services; unhooked it would not.
            subprocess.run(["nsenter", f"--net={empty.path}", sys.executable, "-c",
                            "from agent.proxy.iptables import Iptables; Iptables().ensure_jumps()"],
                           cwd=REPO, check=True, capture_output=True)
        t0 = time.monotonic()
        for text in texts:
            write(text)
        full = (time.monotonic() - t0) * 1000
        lat = []
        eps = dict(eps)
        for k in range(changes):
            i = (k * 7919 + 13) % len(ports)
            sp = ports[i]
            key = rules.endpoint_key(sp)
            eps[key] = [dataclasses.replace(eps[key][0], ip=endpoint_ips(i, gen=next(GENERATIONS))[0]), *eps[key][1:]]
            new = renderer.render(ports, eps, {(sp.namespace, sp.name)})
            if mode == "iptables":
                written, dropped = renderer.delta
                text = rules.restore_text({"nat": {c: new["nat"][c] for c in sorted(written)}}, None, {"nat": dropped})
            else:
                text = nft_rules.transaction(new, last, touched=renderer.delta)
                last = new
            t0 = time.monotonic()
            write(text)
            lat.append((time.monotonic() - t0) * 1000)
        return full, sum(t.count("\n") for t in texts), percentile(lat, 50)
    finally:
        left = empty.destroy()
        assert not left, left


async def bench_mode(mode: str, n: int, changes: int, client: Client, kubeconfig: str, base: Path,
                     uplink: Uplink, endpoints_of: dict[int, list[str]]) -> dict:
    out: dict = {}
    node = Node.create(uplink)
    log = base / f"proxy-{mode}-{n}.log"
    try:
        t0 = time.monotonic()
        # No trace events: at start they are one per service (10k API writes), and the first
        # changes after it would wait behind them; the steady state is what is measured here.
        proxy = node.start_proxy(kubeconfig, log, "--sync-period", "3600", "--proxy-mode", mode,
                                 "--metrics-port", str(METRICS_PORT), events=False)
        probe = Probe(mode, node)
        # The proxy's own word that its first sync is written (a probe of one service's chain
        # could see it before the dispatch chain written after it); then every service is checked.
        wait_until(lambda: any(kind == "full" for kind, _ in sync_times(log)) or proxy.poll() is not None, 3600,
                   f"{mode}: the first sync", interval=0.05)
        out["sync_ms"] = (time.monotonic() - t0) * 1000
        missing = probe.missing(n)
        assert not missing, f"{mode}: {len(missing)} services without rules, e.g. s{missing[0]}"
        assert proxy.poll() is None, log.read_text()[-2000:]
        out["full_ms"] = next((ms for kind, ms in sync_times(log) if kind == "full"), float("nan"))
        if changes:
            t0 = time.monotonic()
            assert probe(0, endpoints_of[0][0])
            out["probe_ms"] = (time.monotonic() - t0) * 1000
            progress(f"  {mode}: {changes} single endpoint changes (after one untimed)")
            before = len(sync_times(log))
            lat = []
            for k in range(changes + 1):
                i = (k * 7919) % n
                obj = await client.get(SLICES, f"s{i}-x", NS)
                new_ip = endpoint_ips(i, gen=next(GENERATIONS))[0]
                obj["endpoints"][0] = {"addresses": [new_ip], "conditions": {"ready": True}}
                endpoints_of[i] = [new_ip, endpoints_of[i][1]]
                count0, sum0 = programming(node)
                # As the endpointslice controller marks a change: the proxy measures from it to
                # its rules written (kubeproxy_network_programming_duration_seconds).
                obj["metadata"].setdefault("annotations", {})[TRIGGER_TIME] = format_micro_time(
                    datetime.now(timezone.utc))
                await client.update(SLICES, obj)
                wait_until(lambda: programming(node)[0] > count0, 120, f"{mode}: the change programmed",
                           interval=0.01)
                # The first change after the start: untimed (a warm-up).
                if k:
                    lat.append((programming(node)[1] - sum0) * 1000)
                assert probe(i, new_ip), f"{mode}: s{i}'s new endpoint is not in its rules"
            progress(f"  {mode}: change latencies (ms) {[round(x) for x in lat]}")
            out["change_p50_ms"] = percentile(lat, 50)
            out["change_p99_ms"] = percentile(lat, 99)
            partial = [ms for kind, ms in sync_times(log)[before:] if kind == "partial"]
            out["partial_p50_ms"] = percentile(partial, 50)
    finally:
        for line in (log.read_text().splitlines()[-3:] if log.exists() else []):
            progress(f"  {mode} proxy: " + line[:200])
        left = node.destroy()
        assert not left, f"left behind: {left}"
    return out


async def bench_size(n: int, changes: int, modes: list[str], parallel: int, create: str, work: Path,
                     uplink: Uplink) -> dict:
    out: dict = {}
    with private_etcd() as etcd:
        base = Path(tempfile.mkdtemp(prefix="kubeling-bench-proxy-", dir=work))
        api, info = start_apiserver(etcd, base, token="bench", bind=uplink.ip)
        client = Client.from_kubeconfig(str(info.kubeconfig))
        try:
            await client.create(NAMESPACES, {"metadata": {"name": NS}})
            progress(f"{n} services: creating services + endpoint slices ({create}, {parallel} in flight)")
            t0 = time.monotonic()
            services = await (create_all(client, n, parallel) if create == "api" else seed_etcd(etcd, n, parallel))
            out[f"create_{create}_s"] = time.monotonic() - t0
            progress(f"  created in {out[f'create_{create}_s']:.1f}s")
            endpoints_of = {i: endpoint_ips(i) for i in range(n)}
            for mode in modes:
                r = await bench_mode(mode, n, changes, client, str(info.kubeconfig), base, uplink, endpoints_of)
                out.update({f"{mode}_{k}": v for k, v in r.items()})
                progress(f"  {mode}: {r['sync_ms']:.0f} ms to all rules, first full sync {r['full_ms']:.0f} ms"
                         + (f"; changes p50 {r['change_p50_ms']:.0f} ms p99 {r['change_p99_ms']:.0f} ms"
                            f" (probe {r['probe_ms']:.0f} ms, proxy's partial syncs p50 {r['partial_p50_ms']:.0f} ms)"
                            if changes else ""))
            # From what was written (a list of 10k objects is too big for one etcd response).
            ports = [sp for s in services.values() for sp in service_ports(s)]
            eps = {}
            for i, ips in endpoints_of.items():
                for (pn, proto), e in slice_endpoints([slice_body(i, ips)]).items():
                    eps[(NS, f"s{i}", pn, proto)] = e
            for mode in modes:
                out[f"{mode}_floor_ms"], lines, out[f"{mode}_change_floor_ms"] = floor_ms(mode, ports, eps, uplink)
                progress(f"  {mode} floor: {out[f'{mode}_floor_ms']:.0f} ms ({lines} lines); one endpoint change "
                         f"written by the binary alone p50 {out[f'{mode}_change_floor_ms']:.0f} ms")
        finally:
            await client.close()
            stop(api)
            shutil.rmtree(base, ignore_errors=True)
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000")
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--modes", default="iptables,nftables" if nft_available() else "iptables")
    ap.add_argument("--parallel", type=int, default=32)
    # etcd by default: through the API server, 10k Services and their slices alone take longer
    # than the bench's 4 minutes on a 2-core machine (the API server's figure, not the proxy's).
    ap.add_argument("--create", choices=["api", "etcd"], default="etcd")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = args.modes.split(",")
    work = Path(tempfile.mkdtemp(prefix="kubeling-bench-proxy-"))
    uplink = Uplink.create()
    doc: dict = {}
    t_start = time.monotonic()
    try:
        for n in sizes:
            r = await bench_size(n, args.changes if n == max(sizes) else 0, modes, args.parallel, args.create, work,
                                 uplink)
            label = f"{n // 1000}k" if n % 1000 == 0 else str(n)
            for k, v in r.items():
                if k.endswith(("change_p50_ms", "change_p99_ms", "probe_ms", "partial_p50_ms")):
                    doc[k] = v
                else:  # create_api_s → create_api_10k_s, iptables_sync_ms → iptables_sync_10k_ms
                    stem, unit = k.rsplit("_", 1)
                    doc[f"{stem}_{label}_{unit}"] = v
    finally:
        uplink.delete()
        shutil.rmtree(work, ignore_errors=True)
    doc["iptables_backend"] = detect_backend()
    doc["default_mode"] = default_mode(doc["iptables_backend"])
    doc["total_s"] = time.monotonic() - t_start
    result(doc)


if __name__ == "__main__":
    asyncio.run(main())
