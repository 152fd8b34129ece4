"""scripts/bench watch: the apiserver's watch cache with 10k pods.

- LIST of every pod (JSON, as client-go without paging asks) through the apiserver,
  beside a raw etcd range of the same keys (the floor) and the same LIST from an
  apiserver without the cache (`--watch-cache=false`), all on one etcd in this run.
- 1,000 concurrent watchers of pods: the delay from a change's write to its arrival at
  each watcher (p50, p99 over every watcher and change), beside 1,000 raw etcd watches
  of the same prefix (the floor).
- The apiserver's memory (RSS) holding 10k pods, beside their size in etcd.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time

from benchlib import percentile, private_apiserver, private_etcd, progress, result

NS = "bench"


def pod(i: int) -> dict:
    return {"metadata": {"name": f"pod-{i:05d}", "labels": {"app": "bench", "shard": str(i % 10)}},
            "spec": {"nodeName": f"node-{i % 100}", "containers": [{
                "name": "app", "image": "busybox:latest", "command": ["sleep", "3600"],
                "env": [{"name": "INDEX", "value": str(i)}],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def fill(api, n: int, concurrency: int = 50) -> None:
    from kubeling.client import Client
    from kubeling.resources import lookup
    pods = lookup("pods")
    async with Client(api.url, api.token) as c:
        await c.create(lookup("namespaces"), {"metadata": {"name": NS}})
        todo = iter(range(n))
        t0 = time.monotonic()

        async def worker() -> None:
            for i in todo:
                await c.create(pods, pod(i), NS)
                if i and i % 2000 == 0:
                    progress(f"  {i} pods ({i / (time.monotonic() - t0):.0f}/s)")
        await asyncio.gather(*(worker() for _ in range(concurrency)))


async def time_lists(api, reps: int) -> tuple[list[float], int]:
    import aiohttp
    times, count = [], 0
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {api.token}"}) as s:
        for _ in range(reps):
            t0 = time.perf_counter()
            async with s.get(f"{api.url}/api/v1/pods") as r:
                body = await r.read()
            # The LIST's time is the server's: until the last byte arrived (a client's own
            # decoding of 10 MB is not the apiserver's). Likewise the etcd floor below.
            times.append((time.perf_counter() - t0) * 1000)
            count = len(json.loads(body)["items"])
    return times, count


async def time_raw_range(etcd, reps: int) -> tuple[list[float], int]:
    import aetcd
    client = aetcd.Client(host=etcd.host, port=etcd.port, options={"grpc.max_receive_message_length": 1 << 30})
    await client.connect()
    times, size = [], 0
    try:
        for _ in range(reps):
            t0 = time.perf_counter()
            rng = await client.get_prefix(b"/registry/pods/")
            times.append((time.perf_counter() - t0) * 1000)
            size = sum(len(kv.key) + len(kv.value) for kv in rng.kvs)
            assert rng.kvs
    finally:
        await client.close()
    return times, size


async def wait_all(arrivals: dict, mark, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(arrivals.get(mark, ())) < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(arrivals.get(mark, ()))} of {n} watchers got change {mark!r}")
        await asyncio.sleep(0.001)


async def api_watchers(api, watchers: int, changes: int) -> list[float]:
    """`watchers` watches of one pod (a field selector: the cache filters for each), then
    that pod patched `changes` times: each change's delay to each watcher, in ms."""
    import aiohttp
    from kubeling.client import Client
    from kubeling.resources import lookup
    pods = lookup("pods")
    arrivals: dict[str, list[float]] = {}
    opened = 0
    all_open = asyncio.Event()
    async with Client(api.url, api.token) as c, aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {api.token}"}, connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=None)) as s:
        # From now: a watch from the pod's creation would replay the whole window first.
        marked = await c.patch(pods, "pod-00001", {"metadata": {"annotations": {"mark": ""}}}, NS)
        rv = marked["metadata"]["resourceVersion"]

        async def watch() -> None:
            nonlocal opened
            async with s.get(f"{api.url}/api/v1/namespaces/{NS}/pods",
                             params={"watch": "true", "resourceVersion": rv,
                                     "fieldSelector": "metadata.name=pod-00001",
                                     "allowWatchBookmarks": "true"}) as r:   # as informers ask
                assert r.status == 200, await r.text()
                opened += 1
                if opened == watchers:
                    all_open.set()
                async for line in r.content:
                    now = time.perf_counter()
                    ev = json.loads(line)
                    mark = (ev["object"]["metadata"].get("annotations") or {}).get("mark")
                    if mark:
                        arrivals.setdefault(mark, []).append(now)
        tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
        await asyncio.wait_for(all_open.wait(), 120)
        # A 200 can come before the server registered the watch: a first change that
        # every watcher receives proves they all are.
        await c.patch(pods, "pod-00001", {"metadata": {"annotations": {"mark": "warm"}}}, NS)
        await wait_all(arrivals, "warm", watchers)
        delays: list[float] = []
        for k in range(changes):
            mark = f"m{k}"
            t0 = time.perf_counter()
            await c.patch(pods, "pod-00001", {"metadata": {"annotations": {"mark": mark}}}, NS)
            await wait_all(arrivals, mark, watchers)
            delays += [(t - t0) * 1000 for t in arrivals[mark]]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return delays


async def raw_watchers(etcd, watchers: int, changes: int) -> list[float]:
    """The floor: `watchers` etcd watches of one key, written `changes` times."""
    import aetcd
    client = aetcd.Client(host=etcd.host, port=etcd.port)
    await client.connect()
    arrivals: dict[bytes, list[float]] = {}
    key = f"/registry/pods/{NS}/raw-mark".encode()
    try:
        streams = [await client.watch(key) for _ in range(watchers)]

        async def follow(stream) -> None:
            async for ev in stream:
                now = time.perf_counter()
                json.loads(ev.kv.value)
                arrivals.setdefault(ev.kv.value, []).append(now)
        tasks = [asyncio.create_task(follow(st)) for st in streams]
        delays: list[float] = []
        for k in range(changes + 1):
            value = json.dumps({"metadata": {"name": "raw-mark", "annotations": {"mark": f"m{k}"}}}).encode()
            t0 = time.perf_counter()
            await client.put(key, value)
            await wait_all(arrivals, value, watchers)
            if k:  # the first change warms the streams
                delays += [(t - t0) * 1000 for t in arrivals[value]]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.delete(key)
    finally:
        await client.close()
    return delays


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--watchers", type=int, default=1000)
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--lists", type=int, default=5)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    out: dict = {"pods": args.pods, "watchers": args.watchers}
    with private_etcd() as etcd:
        with private_apiserver(etcd) as (pid, api):
            progress(f"creating {args.pods} pods")
            t0 = time.monotonic()
            asyncio.run(fill(api, args.pods))
            progress(f"  {time.monotonic() - t0:.0f} s")
            progress(f"LIST of every pod, from the watch cache, {args.lists} times")
            lists, count = asyncio.run(time_lists(api, args.lists))
            assert count == args.pods, count
            out.update(list_p50_ms=percentile(lists, 50), list_max_ms=max(lists))
            progress(f"  p50 {out['list_p50_ms']:.0f} ms")
            out["apiserver_rss_mib"] = rss_mib(pid)
            progress(f"{args.watchers} watchers of a pod, {args.changes} changes")
            delays = asyncio.run(api_watchers(api, args.watchers, args.changes))
            out.update(watch_p50_ms=percentile(delays, 50), watch_p99_ms=percentile(delays, 99))
            progress(f"  p50 {out['watch_p50_ms']:.1f} ms, p99 {out['watch_p99_ms']:.1f} ms")
        progress("floor: raw etcd range of the pods' prefix")
        raw, size = asyncio.run(time_raw_range(etcd, args.lists))
        out.update(etcd_range_p50_ms=percentile(raw, 50), etcd_pods_mib=size / 2**20)
        progress(f"  p50 {out['etcd_range_p50_ms']:.0f} ms; {out['etcd_pods_mib']:.1f} MiB in etcd")
        progress(f"floor: {args.watchers} raw etcd watches, {args.changes} changes")
        rdelays = asyncio.run(raw_watchers(etcd, args.watchers, args.changes))
        out.update(etcd_watch_p50_ms=percentile(rdelays, 50), etcd_watch_p99_ms=percentile(rdelays, 99))
        progress(f"  p50 {out['etcd_watch_p50_ms']:.1f} ms, p99 {out['etcd_watch_p99_ms']:.1f} ms")
        with private_apiserver(etcd, "--watch-cache", "false") as (_, api):
            progress("the same LIST from an apiserver without the watch cache")
            nocache, _ = asyncio.run(time_lists(api, args.lists))
            out["list_no_cache_p50_ms"] = percentile(nocache, 50)
            progress(f"  p50 {out['list_no_cache_p50_ms']:.0f} ms")
    out["list_ratio_to_etcd"] = out["list_p50_ms"] / out["etcd_range_p50_ms"]
    out["watch_p99_ratio_to_etcd"] = out["watch_p99_ms"] / out["etcd_watch_p99_ms"]
    out["goal_met"] = out["watch_p99_ms"] <= 100 and out["list_p50_ms"] <= 200
    result(out)


if __name__ == "__main__":
    main()
