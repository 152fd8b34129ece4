"""The watch cache against real etcd, seen from outside: many API watches cost etcd no
more watches (its own watcher gauge), every one of them gets each change, a LIST holds
the writes made before it, and a watch too old for the window is 410."""
from __future__ import annotations

import asyncio
import json
import re
import urllib.request

import aiohttp
import pytest

from kubeling.client import Client
from kubeling.resources import lookup
from tests.conftest import eventually, start_apiserver, stop_process

CONFIGMAPS = lookup("configmaps")
WATCHERS = 50


def etcd_watchers(etcd) -> int:
    text = urllib.request.urlopen(etcd.url + "/metrics", timeout=10).read().decode()
    return int(float(re.search(r"^etcd_debugging_mvcc_watcher_total (\S+)$", text, re.M).group(1)))


@pytest.fixture(scope="module")
def cached_apiserver(isolated_etcd, tmp_path_factory):
    """An apiserver alone on its etcd: etcd's watcher count is all its own."""
    proc, api = start_apiserver(isolated_etcd, tmp_path_factory.mktemp("watch-cache"))
    yield api
    stop_process(proc)
    assert "Traceback" not in api.log.read_text(), api.log.read_text()[-4000:]


async def test_many_api_watches_share_one_etcd_watch_and_all_get_each_change(cached_apiserver, isolated_etcd):
    api = cached_apiserver
    async with Client(api.url, api.token) as c:
        await c.create(lookup("namespaces"), {"metadata": {"name": "fanout"}})
        rv = (await c.list(CONFIGMAPS, "fanout"))["metadata"]["resourceVersion"]
        before = etcd_watchers(isolated_etcd)
        got: list[list[dict]] = [[] for _ in range(WATCHERS)]

        async def watch(i: int, s: aiohttp.ClientSession) -> None:
            async with s.get(f"{api.url}/api/v1/namespaces/fanout/configmaps",
                             params={"watch": "true", "resourceVersion": rv}) as r:
                assert r.status == 200
                async for line in r.content:
                    got[i].append(json.loads(line))
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {api.token}"}) as s:
            tasks = [asyncio.create_task(watch(i, s)) for i in range(WATCHERS)]
            try:
                await c.create(CONFIGMAPS, {"metadata": {"name": "one"}, "data": {"k": "v"}}, "fanout")
                await eventually(lambda: all(g for g in got), 20, "the change at every watcher")
                assert all([(e["type"], e["object"]["metadata"]["name"]) for e in g] == [("ADDED", "one")]
                           for g in got)
                # 50 open API watches, and etcd holds no more watches than before them.
                assert etcd_watchers(isolated_etcd) <= before
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_list_right_after_writes_holds_them(cached_apiserver):
    api = cached_apiserver
    async with Client(api.url, api.token) as c:
        await c.create(lookup("namespaces"), {"metadata": {"name": "ryw"}})
        for i in range(20):
            await c.create(CONFIGMAPS, {"metadata": {"name": f"cm-{i:02d}"}}, "ryw")
            names = [o["metadata"]["name"] for o in (await c.list(CONFIGMAPS, "ryw"))["items"]]
            assert names == [f"cm-{j:02d}" for j in range(i + 1)]
        await c.delete(CONFIGMAPS, "cm-05", "ryw")
        names = {o["metadata"]["name"] for o in (await c.list(CONFIGMAPS, "ryw"))["items"]}
        assert "cm-05" not in names and len(names) == 19
        # Items are typed, as a LIST from etcd was.
        item = (await c.list(CONFIGMAPS, "ryw"))["items"][0]
        assert item["kind"] == "ConfigMap" and item["apiVersion"] == "v1"
