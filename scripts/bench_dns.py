"""scripts/bench dns: dnsperf against kubeling's cluster DNS and, in the same run, against
dnsmasq serving the same names from a hosts file (the floor). Then the time from a
Service's create to its first answer, over N Services.

Both servers listen on 127.0.0.1 only; nothing is forwarded anywhere (no packet leaves)."""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import REPO, percentile, private_cluster, progress, result

from tests.conftest import free_port, stop_process, wait_for  # noqa: E402


def start_kubeling_dns(api, base: Path) -> tuple[subprocess.Popen, int]:
    ready = base / "dns-ready.json"
    log = open(base / "dns.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "clusterdns", "--kubeconfig", str(api.kubeconfig),
                             "--bind", "127.0.0.1", "--port", "0", "--upstream", "127.0.0.1:9",
                             "--ready-file", str(ready)], stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    port = wait_for(lambda: ready.exists() and json.loads(ready.read_text())["port"], 60, "kubeling dns")
    return proc, port


def start_dnsmasq(base: Path, hosts: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                             "--no-hosts", f"--addn-hosts={hosts}", "--listen-address=127.0.0.1",
                             "--bind-interfaces", f"--port={port}", "--user=root", "--cache-size=10000",
                             f"--pid-file={base / 'dnsmasq.pid'}"],
                            stdout=subprocess.DEVNULL, stderr=open(base / "dnsmasq.log", "wb"))
    return proc, port


def ask(port: int, name: str, timeout: float = 0.2) -> list[str]:
    import dns.message
    import dns.query
    import dns.rdatatype
    reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=timeout)
    return [rd.to_text() for rrset in reply.answer for rd in rrset if rrset.rdtype == dns.rdatatype.A]


def dnsperf(port: int, queries: Path, seconds: float, qps: float | None = None) -> dict:
    """Max throughput (no qps limit), or per-query latencies at a fixed load (-v)."""
    args = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-l", str(seconds),
            "-c", "4", "-q", "100", "-t", "2"]
    if qps:
        args += ["-Q", str(int(qps)), "-v"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60).stdout
    doc = {"qps": float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1)),
           "lost": int(re.search(r"Queries lost:\s+(\d+)", out).group(1))}
    # -v lines: "> NOERROR name A 0.000123" (rcode, query, latency in seconds)
    lat = [float(m.group(1)) * 1000 for m in re.finditer(r"^> \S+ .* ([\d.]+)$", out, re.M)]
    if lat:
        doc.update(p50_ms=percentile(lat, 50), p99_ms=percentile(lat, 99), answered=len(lat))
    return doc


async def create_to_answer(api, port: int, n: int) -> list[float]:
    from kubeling.client import Client
    from kubeling.resources import lookup
    services = lookup("services")
    out = []
    loop = asyncio.get_running_loop()
    async with Client(api.url, api.token) as c:
        await c.create(lookup("namespaces"), {"metadata": {"name": "dnsbench-new"}})
        for i in range(n):
            name = f"new-{i}.dnsbench-new.svc.cluster.local."
            t0 = time.perf_counter()
            await c.create(services, {"metadata": {"name": f"new-{i}"}, "spec": {"ports": [{"port": 80}]}},
                           "dnsbench-new")
            deadline = t0 + 10
            while time.perf_counter() < deadline:
                if await loop.run_in_executor(None, ask, port, name, 0.1):
                    break
                await asyncio.sleep(0.002)
            else:
                raise RuntimeError(f"{name} was not answered within 10 s")
            out.append((time.perf_counter() - t0) * 1000)
    return out


async def make_services(api, n: int) -> dict[str, str]:
    from kubeling.client import Client
    from kubeling.resources import lookup
    services = lookup("services")
    names = {}
    async with Client(api.url, api.token) as c:
        await c.create(lookup("namespaces"), {"metadata": {"name": "dnsbench"}})
        for i in range(n):
            svc = await c.create(services, {"metadata": {"name": f"svc-{i}"}, "spec": {"ports": [{"port": 80}]}},
                                 "dnsbench")
            names[f"svc-{i}.dnsbench.svc.cluster.local"] = svc["spec"]["clusterIP"]
    return names


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--names", type=int, default=100, help="Services both servers answer")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--new-services", type=int, default=100, help="Services timed from create to first answer")
    a = p.parse_args()
    for tool in ("dnsperf", "dnsmasq"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: run scripts/setup")
    base = Path(tempfile.mkdtemp(prefix="kubeling-bench-dns-"))
    procs = []
    try:
        with private_cluster() as api:
            progress(f"creating {a.names} Services")
            names = asyncio.run(make_services(api, a.names))
            hosts = base / "hosts"
            hosts.write_text("".join(f"{ip} {name}\n" for name, ip in names.items()))
            queries = base / "queries"
            queries.write_text("".join(f"{name} A\n" for name in names))
            proc, kport = start_kubeling_dns(api, base)
            procs.append(proc)
            dproc, mport = start_dnsmasq(base, hosts)
            procs.append(dproc)
            first = next(iter(names))
            wait_for(lambda: ask(mport, first) == [names[first]], 10, "dnsmasq")
            wait_for(lambda: ask(kport, first) == [names[first]], 10, "kubeling dns")
            progress(f"dnsperf max throughput, {a.seconds:g} s each: dnsmasq (floor), then kubeling")
            floor = dnsperf(mport, queries, a.seconds)
            ours = dnsperf(kport, queries, a.seconds)
            progress(f"dnsmasq {floor['qps']:.0f} q/s, kubeling {ours['qps']:.0f} q/s")
            load = max(100.0, 0.3 * floor["qps"])
            progress(f"latency at {load:.0f} q/s (0.3x dnsmasq's), {a.seconds:g} s each")
            floor_lat = dnsperf(mport, queries, a.seconds, load)
            ours_lat = dnsperf(kport, queries, a.seconds, load)
            progress(f"timing create → first answer over {a.new_services} Services")
            created = asyncio.run(create_to_answer(api, kport, a.new_services))
            rss = next(int(line.split()[1]) for line in open(f"/proc/{proc.pid}/status")
                       if line.startswith("VmRSS"))
            result({
                "bench": "dns", "names": a.names, "seconds": a.seconds,
                "kubeling_qps": ours["qps"], "dnsmasq_qps": floor["qps"],
                "qps_ratio": ours["qps"] / floor["qps"] if floor["qps"] else float("nan"),
                "kubeling_lost": ours["lost"], "dnsmasq_lost": floor["lost"],
                "load_qps": load,
                "kubeling_p50_ms": ours_lat.get("p50_ms"), "kubeling_p99_ms": ours_lat.get("p99_ms"),
                "kubeling_qps_at_load": ours_lat["qps"], "kubeling_lost_at_load": ours_lat["lost"],
                "dnsmasq_p50_ms": floor_lat.get("p50_ms"), "dnsmasq_p99_ms": floor_lat.get("p99_ms"),
                "create_to_answer_p50_ms": percentile(created, 50),
                "create_to_answer_p99_ms": percentile(created, 99),
                "kubeling_rss_kb": rss,
            })
    finally:
        for proc in procs:
            stop_process(proc)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    main()
