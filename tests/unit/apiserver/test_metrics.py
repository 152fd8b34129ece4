"""The apiserver's /metrics over an in-memory store: requests are counted and timed with
Kubernetes' labels, long-running requests tracked while open, stored objects counted by
the store's count, and /metrics itself sits behind authentication."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from controlplane.apiserver import metrics
from controlplane.apiserver.app import _counted_path, build_app
from controlplane.apiserver.authn import Authenticator

from .memory_store import MemoryStore


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("method,has_name,watch,sub,ctype,verb", [
    ("GET", False, False, "", "", "LIST"),
    ("GET", False, True, "", "", "WATCH"),
    ("GET", True, False, "", "", "GET"),
    ("HEAD", True, False, "", "", "GET"),
    ("POST", False, False, "", "application/json", "POST"),
    ("PUT", True, False, "status", "application/json", "PUT"),
    ("PATCH", True, False, "", "application/merge-patch+json", "PATCH"),
    ("PATCH", True, False, "", "application/apply-patch+yaml", "APPLY"),
    ("DELETE", True, False, "", "", "DELETE"),
    ("DELETE", False, False, "", "", "DELETECOLLECTION"),
    ("POST", True, False, "exec", "", "CONNECT"),
    ("GET", True, False, "portforward", "", "CONNECT"),
    ("BREW", True, False, "", "", "other"),
])
def test_request_verbs_are_kubernetes_metric_verbs(method, has_name, watch, sub, ctype, verb):
    assert metrics.request_verb(method, has_name, watch, sub, ctype) == verb


def test_scope_and_storage_labels():
    from kubeling.resources import lookup
    assert (metrics.scope(None, None), metrics.scope("ns", None), metrics.scope("ns", "x")) == \
        ("cluster", "namespace", "resource")
    assert metrics.storage_label(lookup("configmaps")) == "configmaps"
    assert metrics.storage_label(lookup("deployments")) == "deployments.apps"


def test_only_known_non_resource_paths_are_counted():
    assert all(_counted_path(p) for p in ("/healthz", "/metrics", "/api", "/apis", "/api/v1", "/apis/apps",
                                          "/apis/apps/v1", "/version/"))
    assert not any(_counted_path(p) for p in ("/", "/nope", "/apis/nope", "/apis/apps/v9", "/metrics/x"))


@pytest.fixture
async def server():
    store = MemoryStore()
    app = build_app(store, count_poll_period=0.05)  # type: ignore[arg-type]
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)  # as server.py runs it
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    async with aiohttp.ClientSession() as session:
        yield session, url
    await runner.cleanup()


async def wait_until(check, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_requests_are_counted_timed_and_served_as_prometheus_text(server):
    session, url = server
    post = dict(verb="POST", dry_run="", group="", version="v1", resource="configmaps", subresource="",
                scope="namespace", component="apiserver")
    created_before = sample("apiserver_request_total", **post, code="201")
    conflicts_before = sample("apiserver_request_total", **post, code="409")
    timed_before = sample("apiserver_request_duration_seconds_count", **post)
    cm = {"metadata": {"name": "metrics-cm"}, "data": {"a": "1"}}
    async with session.post(url + "/api/v1/namespaces/default/configmaps", json=cm) as resp:
        assert resp.status == 201
    async with session.post(url + "/api/v1/namespaces/default/configmaps", json=cm) as resp:
        assert resp.status == 409
    assert sample("apiserver_request_total", **post, code="201") == created_before + 1
    assert sample("apiserver_request_total", **post, code="409") == conflicts_before + 1
    assert sample("apiserver_request_duration_seconds_count", **post) == timed_before + 2

    async with session.get(url + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        families = {f.name: f for f in text_string_to_metric_families(await resp.text())}
    assert families["apiserver_request"].type == "counter"
    assert families["apiserver_request_duration_seconds"].type == "histogram"
    assert any(s.labels.get("resource") == "configmaps" and s.labels.get("verb") == "POST"
               for s in families["apiserver_request"].samples)


async def test_a_watch_is_long_running_while_open(server):
    session, url = server
    labels = dict(verb="WATCH", group="", version="v1", resource="secrets", subresource="", scope="namespace",
                  component="apiserver")
    before = sample("apiserver_longrunning_requests", **labels)
    async with session.get(url + "/api/v1/namespaces/default/secrets?watch=true&timeoutSeconds=30") as resp:
        assert resp.status == 200
        await wait_until(lambda: sample("apiserver_longrunning_requests", **labels) == before + 1)
        resp.close()  # the client goes away: the server's handler is cancelled
    await wait_until(lambda: sample("apiserver_longrunning_requests", **labels) == before)


async def test_stored_objects_are_counted_by_the_store(server):
    session, url = server
    for i in range(3):
        async with session.post(url + "/api/v1/namespaces/default/services",
                                json={"metadata": {"name": f"s{i}"}, "spec": {"ports": [{"port": 80}]}}) as resp:
            assert resp.status == 201
    await wait_until(lambda: sample("apiserver_storage_objects", resource="services") == 3)
    # kubeling's four default namespaces exist from the start.
    assert sample("apiserver_storage_objects", resource="namespaces") == 4
    assert REGISTRY.get_sample_value("apiserver_storage_objects", {"resource": "subjectaccessreviews"}) is None


async def test_metrics_need_authentication_and_the_monitoring_group(tmp_path):
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('admin-token,admin\nnobody-token,nobody,\nprom-token,prom,,"system:monitoring"\n')
    app = build_app(MemoryStore(), Authenticator(str(tokens)), count_poll_period=0)  # type: ignore[arg-type]
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)  # as server.py runs it
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
    try:
        async with aiohttp.ClientSession() as session:
            async def status(token: str | None) -> int:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                async with session.get(url, headers=headers) as resp:
                    return resp.status
            assert await status(None) == 401
            assert await status("nobody-token") == 403
            assert await status("prom-token") == 200  # RBAC's system:monitoring
            assert await status("admin-token") == 200
    finally:
        await runner.cleanup()
