"""scripts/bench apiserver: N concurrent clients creating pods through the API
for a fixed time, beside raw aetcd puts of the same size and concurrency (the
floor), measured in the same run."""
from __future__ import annotations

import argparse
import asyncio
import json
import time

from benchlib import percentile, private_cluster, progress, result


def pod(i: int, ns: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"bench-{i}", "namespace": ns, "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "app", "image": "busybox:latest",
                                     "command": ["sleep", "3600"],
                                     "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}


async def run_creates(api, clients: int, seconds: float) -> tuple[int, list[float], int]:
    from kubeling.client import Client
    from kubeling.resources import lookup
    pods = lookup("pods")
    latencies: list[float] = []
    counter = iter(range(10 ** 9))
    deadline = time.monotonic() + seconds
    async with Client(api.url, api.token) as c:
        await c.create(lookup("namespaces"), {"metadata": {"name": "bench"}})
        sample = await c.create(pods, pod(next(counter), "bench"))
        size = len(json.dumps(sample).encode())

        async def worker() -> None:
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                await c.create(pods, pod(next(counter), "bench"))
                latencies.append((time.perf_counter() - t0) * 1000)
        await asyncio.gather(*(worker() for _ in range(clients)))
    return len(latencies), latencies, size


async def run_puts(etcd, clients: int, seconds: float, size: int) -> float:
    import aetcd
    client = aetcd.Client(host=etcd.host, port=etcd.port)
    await client.connect()
    value = b"x" * size
    done = 0
    counter = iter(range(10 ** 9))
    deadline = time.monotonic() + seconds
    t = client.transactions

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            key = f"/bench/raw/{next(counter)}".encode()
            # The same shape of write the apiserver does: a create-if-absent transaction.
            await client.transaction(compare=[t.create(key) == 0], success=[t.put(key, value)], failure=[])
            done += 1
    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.monotonic() - t0
    await client.close()
    return done / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    with private_cluster() as api:
        progress(f"creating pods with {args.clients} concurrent clients for {args.seconds:.0f}s")
        t0 = time.monotonic()
        n, lat, size = asyncio.run(run_creates(api, args.clients, args.seconds))
        creates = n / (time.monotonic() - t0)
        progress(f"{n} pods created ({creates:.0f}/s), object size {size} bytes")
        progress(f"floor: raw etcd create transactions, {args.clients} concurrent, {args.seconds:.0f}s")
        puts = asyncio.run(run_puts(api.etcd, args.clients, args.seconds, size))
        progress(f"{puts:.0f} raw puts/s")
    result({"creates_per_s": creates, "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
            "etcd_puts_per_s": puts, "ratio": creates / puts, "clients": args.clients})


if __name__ == "__main__":
    main()
