"""/metrics of the real processes: an apiserver on the real etcd, the controller manager and
the cluster DNS against it, each scraped over HTTP and parsed as Prometheus text; their
counters move when objects are created and names are asked for (with real `dig`)."""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubeling import errors
from kubeling.client import Client
from kubeling.resources import lookup
from tests.conftest import REPO, free_port, start_apiserver, stop_process, wait_for

CONFIGMAPS, SERVICES, NAMESPACES, ENDPOINTS = (lookup("configmaps"), lookup("services"), lookup("namespaces"),
                                               lookup("endpoints"))
MONITOR_TOKEN, NOBODY_TOKEN = "metrics-monitor-token", "metrics-nobody-token"


def scrape(url: str, token: str | None = None) -> dict[tuple[str, frozenset], float]:
    """Every sample of a /metrics page: (name, labels) -> value."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        text = resp.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, metric: str, /, **labels: str) -> float:
    """The sum of `metric`'s samples whose labels include `labels` (0 when there is none yet)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == metric and want <= ls)


def status(url: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(scope="module")
def api(etcd, tmp_path_factory):
    """An apiserver of this module's own: objects counted every 0.2 s (not every minute), a
    token in group system:monitoring and one in no group."""
    base = tmp_path_factory.mktemp("metrics-apiserver")
    proc, info = start_apiserver(
        etcd, base, extra_tokens=f'{MONITOR_TOKEN},prometheus,,"system:monitoring"\n{NOBODY_TOKEN},nobody,\n',
        extra_args=("--etcd-count-metric-poll-period", "0.2s"))
    yield info
    stop_process(proc)
    assert "Traceback" not in info.log.read_text(), info.log.read_text()[-4000:]


@pytest.fixture
async def api_client(api):
    async with Client(api.url, api.token) as c:
        yield c


@pytest.fixture
async def ns(api_client, unique_name):
    await api_client.create(NAMESPACES, {"metadata": {"name": unique_name}})
    yield unique_name


def test_apiserver_metrics_need_authentication_and_monitoring_rights(api):
    url = api.url + "/metrics"
    assert status(url, None) == 401
    assert status(url, NOBODY_TOKEN) == 403
    assert status(url, MONITOR_TOKEN) == 200


async def test_apiserver_counts_requests_and_stored_objects(api, api_client, ns):
    url = api.url + "/metrics"
    post = dict(verb="POST", resource="configmaps", code="201")
    before = scrape(url, MONITOR_TOKEN)
    stored = value(before, "apiserver_storage_objects", resource="configmaps")
    for i in range(3):
        await api_client.create(CONFIGMAPS, {"metadata": {"name": f"cm-{i}"}, "data": {"k": "v"}}, ns)
    after = scrape(url, MONITOR_TOKEN)
    assert value(after, "apiserver_request_total", **post) == value(before, "apiserver_request_total", **post) + 3
    timed = dict(verb="POST", resource="configmaps")
    assert value(after, "apiserver_request_duration_seconds_count", **timed) == \
        value(before, "apiserver_request_duration_seconds_count", **timed) + 3
    assert value(after, "apiserver_request_total", verb="GET", subresource="/metrics", code="200") >= 1
    # Counted by etcd on the poll period; other tests on the shared etcd may add some too.
    wait_for(lambda: value(scrape(url, MONITOR_TOKEN), "apiserver_storage_objects", resource="configmaps")
             >= stored + 3, 10, "apiserver_storage_objects to count the new ConfigMaps")


@pytest.fixture(scope="module")
def controller_manager(api, tmp_path_factory):
    log = tmp_path_factory.mktemp("metrics-cm") / "cm.log"
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "controlplane.controllers", "--kubeconfig",
                                 str(api.kubeconfig), "--metrics-port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=REPO)

    def serving():
        if proc.poll() is not None:
            raise AssertionError(log.read_text())
        return scrape(f"http://127.0.0.1:{port}/metrics")
    wait_for(serving, 30, "the controller manager's /metrics")
    yield f"http://127.0.0.1:{port}/metrics"
    stop_process(proc)
    assert "Traceback" not in log.read_text(), log.read_text()


async def test_controller_manager_work_queues_count_a_new_service(controller_manager, api_client, ns):
    async def service_synced(name: str) -> None:
        await api_client.create(SERVICES, {"metadata": {"name": name},
                                           "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}}, ns)
        for _ in range(400):  # its Endpoints written: the endpoint controller has synced it
            try:
                await api_client.get(ENDPOINTS, name, ns)
                return
            except errors.ApiError as exc:
                if exc.code != 404:
                    raise
            await asyncio.sleep(0.05)
        raise AssertionError(f"no Endpoints for Service {name} within 20 s")

    # The first Service proves the informers listed (their initial adds are counted by then).
    await service_synced("first")
    before = scrape(controller_manager)
    await service_synced("second")
    after = scrape(controller_manager)
    assert value(after, "workqueue_adds_total", name="endpoint") > \
        value(before, "workqueue_adds_total", name="endpoint")
    assert value(after, "workqueue_work_duration_seconds_count", name="endpoint") > \
        value(before, "workqueue_work_duration_seconds_count", name="endpoint")
    wait_for(lambda: value(scrape(controller_manager), "workqueue_adds_total", name="endpoint_slice")
             > value(before, "workqueue_adds_total", name="endpoint_slice"), 20,
             "the endpoint_slice queue to add the second Service")
    assert ("workqueue_depth", frozenset({("name", "deployment")})) in after


@pytest.fixture(scope="module")
def dns_server(api, tmp_path_factory):
    if not shutil.which("dig"):
        pytest.fail("dig is not installed: run scripts/setup (bind9-dnsutils)")
    base = tmp_path_factory.mktemp("metrics-dns")
    ready, log = base / "ready.json", base / "dns.log"
    proc = subprocess.Popen([sys.executable, "-m", "clusterdns", "--kubeconfig", str(api.kubeconfig),
                             "--bind", "127.0.0.1", "--port", "0", "--upstream", "127.0.0.1:9",
                             "--metrics-bind-address", "127.0.0.1:0", "--ready-file", str(ready)],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=REPO)

    def started():
        if proc.poll() is not None:
            raise AssertionError(log.read_text())
        return ready.exists() and json.loads(ready.read_text())
    ports = wait_for(started, 30, "the DNS server to serve")
    assert ports["metrics_port"], log.read_text()
    yield ports["port"], f"http://127.0.0.1:{ports['metrics_port']}/metrics"
    stop_process(proc)
    assert "Traceback" not in log.read_text(), log.read_text()


def dig(port: int, name: str, rdtype: str = "A", *extra: str) -> str:
    out = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), name, rdtype, "+time=2", "+tries=1", *extra],
                         capture_output=True, text=True, timeout=20).stdout
    return out.split("status:")[1].split(",")[0].strip() if "status:" in out else ""


def test_dns_server_counts_requests_responses_and_durations(dns_server):
    port, url = dns_server
    before = scrape(url)
    missing = "nothing-here.default.svc.cluster.local"
    assert [dig(port, missing) for _ in range(3)] == ["NXDOMAIN"] * 3
    assert dig(port, missing, "AAAA", "+tcp") == "NXDOMAIN"
    after = scrape(url)

    def grew(metric: str, **labels: str) -> float:
        return value(after, metric, **labels) - value(before, metric, **labels)
    assert grew("coredns_dns_requests_total", type="A", proto="udp") == 3
    assert grew("coredns_dns_requests_total", type="AAAA", proto="tcp") == 1
    assert grew("coredns_dns_responses_total", rcode="NXDOMAIN") == 4
    assert grew("coredns_dns_request_duration_seconds_count", type="A") == 3
    assert grew("coredns_dns_request_duration_seconds_bucket", type="A", le="+Inf") == 3
