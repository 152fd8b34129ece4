"""etcd killed (-9) and restarted, or frozen (SIGSTOP) and resumed, under a running
apiserver: API watches must not stay open but dead. With the watch cache (the default)
the cache resumes its etcd watch from its revision and API watches go on across the
outage; without it the apiserver ends a watch whose etcd watch broke and clients watch
again from their last resourceVersion. Either way a pod created afterwards reaches
informers and gets scheduled.

Each test has its own etcd and apiserver (the session's etcd must not be killed)."""
from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from kubeling import errors
from kubeling.client import Client
from kubeling.informer import Informer
from kubeling.resources import lookup
from tests.conftest import ApiServer, eventually, free_port, start_apiserver, start_etcd, stop_process

PODS, NAMESPACES, NODES = lookup("pods"), lookup("namespaces"), lookup("nodes")
NS = "restart"
BOUND = 20  # seconds anything may take after etcd is back


@dataclass
class Cluster:
    base: Path
    port: int
    peer: int
    etcd_proc: subprocess.Popen
    api_proc: subprocess.Popen
    api: ApiServer
    cached: bool

    def kill_etcd(self) -> None:
        self.etcd_proc.send_signal(signal.SIGKILL)
        self.etcd_proc.wait(10)

    def restart_etcd(self) -> None:
        """The same data dir and ports, as `kubeling up` or systemd would restart it."""
        self.etcd_proc, _ = start_etcd(self.base, self.port, self.peer)


@pytest.fixture(params=["watch-cache", "no-watch-cache"])
async def cluster(request, tmp_path_factory):
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed: run scripts/setup")
    base = tmp_path_factory.mktemp("etcd-restart")
    port, peer = free_port(), free_port()
    etcd_proc, etcd = start_etcd(base, port, peer)
    cached = request.param == "watch-cache"
    api_proc, api = start_apiserver(etcd, base, extra_args=() if cached else ("--watch-cache", "false"))
    c = Cluster(base, port, peer, etcd_proc, api_proc, api, cached)
    try:
        async with Client(api.url, api.token) as kube:
            await kube.create(NAMESPACES, {"metadata": {"name": NS}})
        yield c
    finally:
        stop_process(c.api_proc)
        if c.etcd_proc.poll() is None:
            c.etcd_proc.send_signal(signal.SIGCONT)  # in case a test left it stopped
        stop_process(c.etcd_proc)
        shutil.rmtree(etcd.data_dir, ignore_errors=True)
    log = api.log.read_text()
    assert "Traceback" not in log, log[-4000:]


def pod(name: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox:latest"}]}}


async def create_when_back(kube: Client, name: str) -> dict:
    """Create a pod, retrying while the apiserver still answers 503 (its etcd client
    reconnects within seconds of etcd's return)."""
    deadline = asyncio.get_running_loop().time() + BOUND
    while True:
        try:
            return await kube.create(PODS, pod(name), NS)
        except errors.ApiError as exc:
            if exc.code != 503 or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


class RawWatch:
    """A plain HTTP watch on the pods of NS: its lines, and whether the stream ended."""

    def __init__(self, api: ApiServer, rv: str) -> None:
        self.lines: list[dict] = []
        self.task = asyncio.create_task(self._run(api, rv))

    async def _run(self, api: ApiServer, rv: str) -> None:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {api.token}"}) as s:
            async with s.get(f"{api.url}/api/v1/namespaces/{NS}/pods",
                             params={"watch": "true", "resourceVersion": rv}) as resp:
                assert resp.status == 200
                async for line in resp.content:
                    self.lines.append(json.loads(line))

    def names(self) -> list[str]:
        return [ln["object"]["metadata"].get("name") for ln in self.lines if ln["type"] == "ADDED"]


class Seen:
    """An informer on the pods of NS, recording the names it was told about."""

    def __init__(self, kube: Client) -> None:
        self.added: list[str] = []
        self.informer = Informer(kube, PODS, namespace=NS, on_add=lambda o: self.added.append(o["metadata"]["name"]))
        self.task = asyncio.create_task(self.informer.run())

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def watches_open(kube: Client, seen: Seen, raw: RawWatch) -> None:
    """A pod created after the informer's list reaches it only through its watch: once
    both have it, both watches are open on the apiserver (no guessed sleep)."""
    await kube.create(PODS, pod("marker"), NS)
    await eventually(lambda: "marker" in seen.added and "marker" in raw.names(), 10, "both watches open")


async def test_watches_end_or_resume_and_informers_see_pods_after_etcd_is_killed_and_restarted(cluster):
    async with Client(cluster.api.url, cluster.api.token) as kube:
        await kube.create(PODS, pod("before"), NS)
        rv = (await kube.list(PODS, NS))["metadata"]["resourceVersion"]
        raw = RawWatch(cluster.api, rv)
        seen = Seen(kube)
        try:
            await eventually(lambda: "before" in seen.added, 10, "informer sync")
            await watches_open(kube, seen, raw)
            cluster.kill_etcd()
            if not cluster.cached:
                # The apiserver ends the watch whose etcd watch broke: no stream stays open but dead.
                await asyncio.wait_for(asyncio.shield(raw.task), BOUND)
                assert raw.names() == ["marker"]
            cluster.restart_etcd()
            await create_when_back(kube, "after")
            await eventually(lambda: "after" in seen.added, BOUND, "the informer to see the new pod")
            if cluster.cached:
                # The watch cache resumed its etcd watch: the stream opened before the kill goes on.
                await eventually(lambda: raw.names() == ["marker", "after"], BOUND,
                                 "the watch opened before the kill to deliver the new pod")
                assert not raw.task.done()
            # etcd kept its history: a watch from the version before the kill resumes there.
            again = RawWatch(cluster.api, rv)
            await eventually(lambda: again.names() == ["marker", "after"], BOUND,
                             "the resumed watch to deliver the pods")
            again.task.cancel()
            # GET and LIST recovered too.
            assert (await kube.get(PODS, "after", NS))["metadata"]["name"] == "after"
            assert {p["metadata"]["name"] for p in (await kube.list(PODS, NS))["items"]} == \
                {"before", "marker", "after"}
        finally:
            await seen.stop()
            raw.task.cancel()


async def test_a_pod_created_after_the_etcd_restart_is_scheduled(cluster):
    sys.path.insert(0, str(Path(__file__).parent / "scheduler"))
    from sched_cluster import Nodes, pod as sched_pod
    from controlplane.scheduler.scheduler import Scheduler
    async with Client(cluster.api.url, cluster.api.token) as kube, \
            Client(cluster.api.url, cluster.api.token) as sched_client:
        nodes = Nodes(kube)
        await nodes.add("node-a")
        s = Scheduler(sched_client, identity="restart-test")
        await s.start()
        run = asyncio.create_task(s.run())

        async def bound(name: str):
            return (await kube.get(PODS, name, NS))["spec"].get("nodeName")
        try:
            await kube.create(PODS, sched_pod("first"), NS)
            assert await eventually(lambda: bound("first"), BOUND, "the first pod bound") == "node-a"
            cluster.kill_etcd()
            await asyncio.sleep(1)  # an outage, not a wait: the scheduler's watches retry against no etcd
            cluster.restart_etcd()
            deadline = asyncio.get_running_loop().time() + BOUND
            while True:
                try:
                    await kube.create(PODS, sched_pod("second"), NS)
                    break
                except errors.ApiError as exc:
                    if exc.code != 503 or asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.2)
            assert await eventually(lambda: bound("second"), BOUND, "the pod created after the restart bound") \
                == "node-a"
        finally:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
            await s.stop()
            for p in ("first", "second"):
                try:
                    await kube.delete(PODS, p, NS, grace_period=0)
                except errors.ApiError:
                    pass
            await nodes.cleanup()


async def test_watches_deliver_after_etcd_is_stopped_and_continued(cluster):
    async with Client(cluster.api.url, cluster.api.token) as kube:
        rv = (await kube.list(PODS, NS))["metadata"]["resourceVersion"]
        raw = RawWatch(cluster.api, rv)
        seen = Seen(kube)
        try:
            await eventually(lambda: seen.informer.synced.is_set(), 10, "informer sync")
            await watches_open(kube, seen, raw)
            cluster.etcd_proc.send_signal(signal.SIGSTOP)
            await asyncio.sleep(4)
            cluster.etcd_proc.send_signal(signal.SIGCONT)
            await create_when_back(kube, "thawed")
            await eventually(lambda: "thawed" in seen.added, BOUND, "the informer to see the pod")
            await eventually(lambda: "thawed" in raw.names(), BOUND, "the raw watch to deliver the pod")
        finally:
            await seen.stop()
            raw.task.cancel()
