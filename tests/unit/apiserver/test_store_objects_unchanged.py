"""No request path changes an object after it left the store (they will be shared
between watchers once a watch cache serves them): the whole HTTP API over an in-memory
store wrapped in the mutation detector, which compares every object it handed out."""
from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from controlplane.apiserver import watch
from controlplane.apiserver.app import build_app
from controlplane.apiserver.mutation_detector import MutationDetectingStore, StoreObjectMutated
from controlplane.apiserver.registry import Registry
from controlplane.apiserver.store import WatchEvent
from kubeling.resources import lookup

from .memory_store import MemoryStore

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "a"}},
       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
SVC = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
       "spec": {"type": "NodePort", "selector": {"app": "a"}, "ports": [{"port": 80}]}}
DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
          "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "a"}},
                   "template": {"metadata": {"labels": {"app": "a"}},
                                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
TABLE = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}


class Api:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.s, self.url = session, url

    async def __call__(self, method: str, path: str, body: Any = None, ctype: str = "application/json",
                       headers: dict[str, str] | None = None, expect: int | tuple[int, ...] = (200, 201)
                       ) -> Any:
        data = None if body is None else (body if isinstance(body, (str, bytes)) else json.dumps(body))
        async with self.s.request(method, self.url + path, data=data,
                                  headers={"Content-Type": ctype, **(headers or {})}) as resp:
            text = await resp.text()
            codes = expect if isinstance(expect, tuple) else (expect,)
            assert resp.status in codes, f"{method} {path}: {resp.status} {text}"
            if "\n{" in text.strip():  # a watch: JSON lines
                return [json.loads(line) for line in text.splitlines() if line.strip()]
            return json.loads(text)


@pytest.fixture
async def api():
    store = MutationDetectingStore(MemoryStore(), settle=0)
    app = build_app(store)  # type: ignore[arg-type]
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as session:
        yield Api(session, url), store
    await runner.cleanup()


async def test_every_request_path_leaves_the_stores_objects_alone(api):
    call, store = api
    ns = "/api/v1/namespaces/t"
    await call("POST", "/api/v1/namespaces", {"metadata": {"name": "t"}})
    listed = await call("GET", ns + "/pods")
    since = listed["metadata"]["resourceVersion"]
    watcher = asyncio.create_task(call("GET", f"{ns}/pods?watch=true&timeoutSeconds=3&resourceVersion={since}"))
    table_watcher = asyncio.create_task(call("GET", f"{ns}/pods?watch=true&timeoutSeconds=3", headers=TABLE))

    pod = await call("POST", ns + "/pods", POD)
    await call("GET", ns + "/pods/p")
    await call("GET", ns + "/pods?labelSelector=app%3Da")
    await call("GET", ns + "/pods", headers=TABLE)
    await call("GET", ns + "/pods/p?includeObject=Object", headers=TABLE)
    await call("PUT", ns + "/pods/p", {**pod, "metadata": {**pod["metadata"], "labels": {"app": "a", "x": "1"}}})
    await call("PATCH", ns + "/pods/p", {"metadata": {"labels": {"m": "1"}}}, "application/merge-patch+json")
    await call("PATCH", ns + "/pods/p", {"metadata": {"annotations": {"s": "1"}}},
               "application/strategic-merge-patch+json")
    await call("PATCH", ns + "/pods/p", [{"op": "add", "path": "/metadata/labels/j", "value": "1"}],
               "application/json-patch+json")
    await call("PATCH", ns + "/pods/p?fieldManager=t", json.dumps(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"ssa": "1"}}}),
        "application/apply-patch+yaml")
    current = await call("GET", ns + "/pods/p")
    await call("PUT", ns + "/pods/p/status", {**current, "status": {"phase": "Running"}})
    await call("POST", ns + "/pods/p/binding", {"target": {"kind": "Node", "name": "n1"}})
    await call("DELETE", ns + "/pods/p")  # bound: held for its grace period
    await call("DELETE", ns + "/pods/p", {"gracePeriodSeconds": 0})

    svc = await call("POST", ns + "/services", SVC)
    await call("PUT", ns + "/services/s", {**svc, "spec": {**svc["spec"], "ports": [{"port": 81}]}})
    await call("PATCH", ns + "/services/s", {"spec": {"ports": [{"port": 82}]}}, "application/merge-patch+json")
    await call("DELETE", ns + "/services/s")

    await call("PUT", ns + "/endpoints/e", {"metadata": {"name": "e"}, "subsets": []})  # created by a PUT
    await call("POST", "/apis/apps/v1/namespaces/t/deployments", DEPLOY)
    scale = await call("GET", "/apis/apps/v1/namespaces/t/deployments/d/scale")
    await call("PUT", "/apis/apps/v1/namespaces/t/deployments/d/scale", {**scale, "spec": {"replicas": 3}})
    await call("PATCH", "/apis/apps/v1/namespaces/t/deployments/d/scale", {"spec": {"replicas": 2}},
               "application/merge-patch+json")
    await call("DELETE", "/apis/apps/v1/namespaces/t/deployments?labelSelector=")
    await call("POST", ns + "/configmaps", {"metadata": {"name": "c", "finalizers": ["x/y"]}, "data": {"a": "1"}})
    await call("DELETE", ns + "/configmaps/c", {"propagationPolicy": "Foreground"})
    await call("PATCH", ns + "/configmaps/c", {"metadata": {"finalizers": None}}, "application/merge-patch+json")

    await call("DELETE", "/api/v1/namespaces/t")  # Terminating: spec.finalizers hold it
    t = await call("GET", "/api/v1/namespaces/t")
    await call("PUT", "/api/v1/namespaces/t/finalize", {**t, "spec": {"finalizers": []}})
    await call("GET", "/api/v1/namespaces", headers=TABLE)

    events = await watcher
    assert [e["type"] for e in events][:1] == ["ADDED"] and events[-1]["type"] == "DELETED"
    assert (await table_watcher)[0]["object"]["kind"] == "Table"
    store.check(everything=True)
    assert store.mutations == []


async def test_the_detector_sees_a_change():
    store = MutationDetectingStore(MemoryStore(), settle=0)
    registry = Registry(store)  # type: ignore[arg-type]
    await registry.namespaces.start()
    ns = lookup("namespaces")
    await registry.create(ns, None, {"metadata": {"name": "t"}})
    obj = await registry.get(ns, None, "t")
    obj["metadata"]["labels"] = {"changed": "yes"}
    with pytest.raises(StoreObjectMutated):
        store.check(everything=True)
    await registry.namespaces.stop()


def test_a_deletion_event_leaves_the_previous_state_alone():
    prev = {"metadata": {"name": "a", "resourceVersion": "4"}}
    typ, obj = watch.classify(WatchEvent("DELETE", "/registry/pods/ns/a", None, prev, 9), lambda o: True) or ("", {})
    assert (typ, obj["metadata"]["resourceVersion"]) == ("DELETED", "9")
    assert prev == {"metadata": {"name": "a", "resourceVersion": "4"}}
