"""The scheduler's, the agent's and the proxy's /metrics (the apiserver's, the controller
manager's and the DNS server's: tests/integration/test_metrics.py), scraped from the real
processes and parsed with prometheus-client: their counters move when a pod is created
behind a Service. The agent's answers only the apiserver's client certificate."""
from __future__ import annotations

import asyncio
import re
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from agent_nodes import container_status, pod_manifest, wait_pod, wait_until
from kubeling.resources import lookup
from tests.conftest import REPO, stop_process

PODS, SERVICES = lookup("pods"), lookup("services")


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample by (name, sorted labels)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def total(text: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there are none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples(text).items() if n == name and want <= set(ls))


def _get(url: str, ctx: ssl.SSLContext | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10, context=ctx) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _served_port(log: Path, timeout: float = 30) -> int:
    """The port a component logged it serves metrics on (started with --metrics-port 0)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"serving metrics on http://[^:]+:(\d+)/metrics", log.read_text())
        if m:
            return int(m.group(1))
        time.sleep(0.05)
    raise AssertionError(f"no metrics port in {log}: {log.read_text()[-2000:]}")


async def test_scheduler_agent_and_proxy_metrics_move_with_a_pod(client, namespace, make_node, apiserver,
                                                                 tmp_path):
    node = make_node(runtime="docker")
    node.start_proxy("--metrics-port", "10249")
    sched_log, cm_log = tmp_path / "scheduler.log", tmp_path / "controller-manager.log"
    procs = []
    for log, argv in ((sched_log, ["controlplane.scheduler", "--no-leader-elect", "--metrics-port", "0"]),
                      (cm_log, ["controlplane.controllers", "--metrics-port", "-1"])):   # its EndpointSlices
        with open(log, "wb") as out:
            procs.append(subprocess.Popen([sys.executable, "-m", *argv, "--kubeconfig", str(apiserver.kubeconfig)],
                                          stdout=out, stderr=subprocess.STDOUT, cwd=REPO))
    try:
        sched_url = f"http://127.0.0.1:{_served_port(sched_log)}/metrics"
        agent_url = f"https://{node.node_ip}:{node.logs_port}/metrics"
        as_apiserver = ssl.create_default_context()
        as_apiserver.check_hostname, as_apiserver.verify_mode = False, ssl.CERT_NONE
        as_apiserver.load_cert_chain(*apiserver.kubelet_client)
        anonymous = ssl.create_default_context()
        anonymous.check_hostname, anonymous.verify_mode = False, ssl.CERT_NONE

        def proxy_metrics() -> str:
            return node.ns("curl", "-sf", "--max-time", "5", "http://127.0.0.1:10249/metrics").stdout

        # Before: the agent has synced no pod of this test, the proxy has made its first sync.
        # The agent was just started: its server answers once it has loaded its certificate.
        code, agent_before = await wait_until(lambda: asyncio.to_thread(_get, agent_url, as_apiserver),
                                              60, "the agent's server")
        assert code == 200, agent_before
        sched_before = (await asyncio.to_thread(_get, sched_url))[1]
        proxy_before = await wait_until(
            lambda: (t := proxy_metrics()) and total(t, "kubeproxy_sync_proxy_rules_duration_seconds_count") and t,
            30, "the proxy's first sync")

        await client.create(SERVICES, {"metadata": {"name": "web"}, "spec": {
            "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}, namespace)
        pod = pod_manifest("web", node.name, [{"name": "c", "command": ["sh", "-c", "exec httpd -f -p 8080"]}])
        del pod["spec"]["nodeName"]   # the scheduler places it
        pod["metadata"]["labels"] = {"app": "web"}
        pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node.name}
        await client.create(PODS, pod, namespace)
        await wait_pod(client, namespace, "web", lambda p: "running" in container_status(p, "c").get("state", {}))

        sched_after = (await asyncio.to_thread(_get, sched_url))[1]
        name = "scheduler_scheduling_attempt_duration_seconds_count"
        assert total(sched_after, name, result="scheduled") >= total(sched_before, name, result="scheduled") + 1

        async def agent_counted() -> str | None:
            code, text = await asyncio.to_thread(_get, agent_url, as_apiserver)
            return text if code == 200 and total(text, "kubelet_pod_start_sli_duration_seconds_count") > \
                total(agent_before, "kubelet_pod_start_sli_duration_seconds_count") else None
        agent_after = await wait_until(agent_counted, 30, "the agent's pod start SLI")
        name = "kubelet_pod_worker_duration_seconds_count"
        assert total(agent_after, name, operation_type="create") > total(agent_before, name, operation_type="create")

        # The pod's endpoint reaches the proxy's rules: one more sync, one programming latency.
        def proxy_counted() -> str | None:
            t = proxy_metrics()
            return t if total(t, "kubeproxy_network_programming_duration_seconds_count") > total(
                proxy_before, "kubeproxy_network_programming_duration_seconds_count") else None
        proxy_after = await wait_until(proxy_counted, 30, "the proxy's network programming latency")
        assert total(proxy_after, "kubeproxy_sync_proxy_rules_duration_seconds_count") > \
            total(proxy_before, "kubeproxy_sync_proxy_rules_duration_seconds_count")

        # Without the apiserver's client certificate the agent's metrics are refused.
        try:
            code, _ = await asyncio.to_thread(_get, agent_url, anonymous)
        except (urllib.error.URLError, ssl.SSLError, ConnectionError):
            code = 0   # refused during the TLS handshake
        assert code in (0, 401, 403)
    finally:
        for p in procs:
            stop_process(p)
    for log in (sched_log, cm_log):
        assert "Traceback" not in log.read_text(), log.read_text()
