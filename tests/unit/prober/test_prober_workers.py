"""Prober workers: thresholds, gating, restarts, events — with real HTTP/TCP
servers on 127.0.0.1 (the "pod IP") and an injected exec."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from agent.probe_results import ProbeResults
from agent.prober import Prober, ProbeSpec

SCALE = 0.02  # one probe-spec second = 20 ms


async def until(check: Callable[[], bool], timeout: float = 3.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def make_pod(uid: str, *containers: dict, deleting: bool = False) -> dict:
    meta = {"uid": uid, "name": f"pod-{uid}", "namespace": "default"}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"containers": list(containers)}}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []
        self.liveness: list[tuple[str, str, str]] = []
        self.changes: list[str] = []

    def __call__(self, pod, reason, message, typ, container) -> None:
        self.events.append((reason, message, typ, container))

    def results(self) -> ProbeResults:
        r = ProbeResults()
        r.on_change = self.changes.append
        r.on_liveness_failure = lambda uid, name, msg: self.liveness.append((uid, name, msg))
        return r


class Exec:
    """An injected exec whose exit codes per command are scripted."""

    def __init__(self) -> None:
        self.codes: dict[str, list[int]] = {}
        self.calls: list[tuple[str, str]] = []
        self.hang: set[str] = set()

    async def __call__(self, cid: str, cmd: list[str], timeout: float):
        self.calls.append((cid, cmd[0]))
        if cmd[0] in self.hang:
            await asyncio.sleep(30)
        codes = self.codes.get(cmd[0], [0])
        return (codes.pop(0) if len(codes) > 1 else codes[0]), b""

    def count(self, name: str) -> int:
        return sum(1 for _, c in self.calls if c == name)


def exec_probe(cmd: str, **kw) -> dict:
    return {"exec": {"command": [cmd]}, **kw}


def http_probe(port, path="/healthz", **kw) -> dict:
    return {"httpGet": {"path": path, "port": port}, **kw}


async def test_defaults():
    s = ProbeSpec.from_api({"tcpSocket": {"port": 80}}, "liveness")
    assert (s.initial_delay, s.period, s.timeout, s.success_threshold, s.failure_threshold) == (0, 10, 1, 1, 3)
    s = ProbeSpec.from_api({"tcpSocket": {"port": 80}, "successThreshold": 3}, "liveness")
    assert s.success_threshold == 1
    assert ProbeSpec.from_api({"periodSeconds": 2, "successThreshold": 3}, "readiness").success_threshold == 3


async def test_readiness_http_by_port_name_follows_server(server):
    rec = Recorder()
    results = rec.results()
    prober = Prober(results, Exec(), rec, period_scale=SCALE)
    c = {"name": "web", "ports": [{"name": "http", "containerPort": server.port}],
         "readinessProbe": http_probe("http", periodSeconds=1, successThreshold=2, failureThreshold=2)}
    pod = make_pod("u1", c)
    server.status = 503
    prober.update_pod(pod, {"web": ("cid-1", time.monotonic())}, "127.0.0.1")
    assert results.readiness["cid-1"] is False and not results.ready(c, "cid-1")
    await until(lambda: len(server.paths) >= 3, what="probes")
    assert results.readiness["cid-1"] is False
    assert ("Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503",
            "Warning", "web") in rec.events
    n = len(server.paths)
    server.status = 200
    await until(lambda: results.ready(c, "cid-1"), what="ready")
    assert len(server.paths) >= n + 2, "successThreshold 2 needs two successes"
    server.status = 500
    await until(lambda: not results.ready(c, "cid-1"), what="unready")
    assert rec.liveness == [] and "u1" in rec.changes
    await prober.stop()
    assert prober.worker_count() == 0 and "cid-1" not in results.readiness


async def test_liveness_fails_after_threshold_then_holds(server):
    rec = Recorder()
    prober = Prober(rec.results(), Exec(), rec, period_scale=SCALE)
    server.status = 500
    c = {"name": "app", "livenessProbe": http_probe(server.port, periodSeconds=1, failureThreshold=3)}
    prober.update_pod(make_pod("u2", c), {"app": ("cid-2", time.monotonic())}, "127.0.0.1")
    await until(lambda: rec.liveness, what="liveness failure")
    assert rec.liveness == [("u2", "app", "Container app failed liveness probe, will be restarted")]
    unhealthy = [e for e in rec.events if e[0] == "Unhealthy"]
    assert unhealthy == [("Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 500",
                          "Warning", "app")] * 3
    # On hold until a new container id: no more probes of this container.
    n = len(server.paths)
    await asyncio.sleep(10 * SCALE * 5)
    assert len(server.paths) == n == 3 and len(rec.liveness) == 1
    # The restarted container gets a fresh worker.
    server.status = 200
    prober.update_pod(make_pod("u2", c), {"app": ("cid-2b", time.monotonic())}, "127.0.0.1")
    await until(lambda: len(server.paths) >= 5, what="probes of the new container")
    assert len(rec.liveness) == 1
    await prober.stop()


async def test_startup_gates_liveness_and_readiness():
    rec = Recorder()
    results = rec.results()
    ex = Exec()
    ex.codes = {"started": [1, 1, 1, 0], "live": [0], "ready": [0]}
    prober = Prober(results, ex, rec, period_scale=SCALE)
    c = {"name": "slow",
         "startupProbe": exec_probe("started", periodSeconds=1, failureThreshold=10),
         "livenessProbe": exec_probe("live", periodSeconds=1),
         "readinessProbe": exec_probe("ready", periodSeconds=1)}
    prober.update_pod(make_pod("u3", c), {"slow": ("cid-3", time.monotonic())}, "127.0.0.1")
    await until(lambda: ex.count("started") == 3, what="startup probes")
    assert ex.count("live") == ex.count("ready") == 0 and not results.started(c, "cid-3")
    await until(lambda: results.ready(c, "cid-3"), what="ready after startup")
    assert results.started(c, "cid-3") and ex.count("live") >= 1
    assert ex.count("started") == 4, "the startup probe stops once it succeeded"
    await asyncio.sleep(3 * SCALE * 2)
    assert ex.count("started") == 4
    await prober.stop()


async def test_startup_failure_counts_as_liveness_failure():
    rec = Recorder()
    ex = Exec()
    ex.codes = {"started": [1]}
    prober = Prober(rec.results(), ex, rec, period_scale=SCALE)
    c = {"name": "never", "startupProbe": exec_probe("started", periodSeconds=1, failureThreshold=2),
         "readinessProbe": exec_probe("ready")}
    prober.update_pod(make_pod("u4", c), {"never": ("cid-4", time.monotonic())}, None)
    await until(lambda: rec.liveness, what="startup failure")
    assert rec.liveness == [("u4", "never", "Container never failed startup probe, will be restarted")]
    assert ("Unhealthy", "Startup probe failed: ", "Warning", "never") in rec.events
    assert ex.count("started") == 2 and ex.count("ready") == 0
    await prober.stop()


async def test_initial_delay_counts_from_container_start():
    ex = Exec()
    prober = Prober(ProbeResults(), ex, None, period_scale=SCALE)
    c = {"name": "a", "readinessProbe": exec_probe("ready", initialDelaySeconds=20, periodSeconds=1)}
    started = time.monotonic()
    prober.update_pod(make_pod("u5", c), {"a": ("cid-5", started)}, None)
    await until(lambda: ex.count("ready") >= 1, what="first probe")
    assert time.monotonic() - started >= 20 * SCALE
    await prober.stop()


async def test_hanging_probe_does_not_block_others(server):
    rec = Recorder()
    results = rec.results()
    ex = Exec()
    ex.hang = {"stuck"}
    prober = Prober(results, ex, rec, period_scale=SCALE)
    stuck = {"name": "stuck", "readinessProbe": exec_probe("stuck", periodSeconds=1, timeoutSeconds=1)}
    web = {"name": "web", "readinessProbe": {"tcpSocket": {"port": server.port}, "periodSeconds": 1}}
    prober.update_pod(make_pod("u6", stuck), {"stuck": ("cid-6a", time.monotonic())}, "127.0.0.1")
    prober.update_pod(make_pod("u7", web), {"web": ("cid-7", time.monotonic())}, "127.0.0.1")
    await until(lambda: results.ready(web, "cid-7"), timeout=0.8, what="other pod ready while one hangs")
    # The hanging exec is cut at timeoutSeconds and reported.
    await until(lambda: any("timed out" in e[1] for e in rec.events), timeout=3, what="timeout event")
    assert ("Unhealthy", "Readiness probe failed: command 'stuck' timed out", "Warning", "stuck") in rec.events
    assert not results.ready(stuck, "cid-6a")
    await prober.stop()


async def test_errored_probe_is_reported_not_counted():
    rec = Recorder()
    prober = Prober(rec.results(), Exec(), rec, period_scale=SCALE)
    c = {"name": "a", "livenessProbe": {"httpGet": {"port": "nope"}, "periodSeconds": 1,
                                         "failureThreshold": 1}}
    prober.update_pod(make_pod("u8", c), {"a": ("cid-8", time.monotonic())}, "127.0.0.1")
    await until(lambda: len(rec.events) >= 3, what="errored events")
    assert rec.events[0] == ("Unhealthy", 'Liveness probe errored and resulted in unknown state: '
                             'strconv.Atoi: parsing "nope": invalid syntax', "Warning", "a")
    assert rec.liveness == []
    await prober.stop()


async def test_containers_coming_and_going_start_and_stop_workers():
    ex = Exec()
    results = ProbeResults()
    prober = Prober(results, ex, None, period_scale=SCALE)
    a = {"name": "a", "readinessProbe": exec_probe("ready", periodSeconds=1),
         "livenessProbe": exec_probe("live", periodSeconds=1)}
    b = {"name": "b"}  # no probes, no worker
    pod = make_pod("u9", a, b)
    prober.update_pod(pod, {"a": ("cid-a", time.monotonic()), "b": ("cid-b", time.monotonic())}, None)
    assert prober.worker_count() == 2
    await until(lambda: results.ready(a, "cid-a"), what="ready")
    tasks = [w.task for e in prober._pods.values() for w in e.workers.values()]
    prober.update_pod(pod, {"b": ("cid-b", time.monotonic())}, None)  # a exited
    assert prober.worker_count() == 0 and "cid-a" not in results.readiness
    await until(lambda: all(t.cancelled() for t in tasks), timeout=1, what="workers cancelled")
    n = len(ex.calls)
    await asyncio.sleep(3 * SCALE * 2)
    assert len(ex.calls) == n, "stopped workers must not probe"
    prober.update_pod(pod, {"a": ("cid-a2", time.monotonic())}, None)
    assert prober.worker_count() == 2
    prober.remove_pod("u9")
    assert prober.worker_count() == 0 and "cid-a2" not in results.readiness
    await prober.stop()


async def test_liveness_stops_when_pod_is_deleted_readiness_goes_on():
    rec = Recorder()
    ex = Exec()
    ex.codes = {"live": [1], "ready": [0]}
    prober = Prober(rec.results(), ex, rec, period_scale=SCALE)
    c = {"name": "a", "livenessProbe": exec_probe("live", periodSeconds=1, failureThreshold=50),
         "readinessProbe": exec_probe("ready", periodSeconds=1)}
    containers = {"a": ("cid-d", time.monotonic())}
    prober.update_pod(make_pod("u10", c), containers, None)
    await until(lambda: ex.count("live") >= 1, what="liveness")
    prober.update_pod(make_pod("u10", c, deleting=True), containers, None)
    await asyncio.sleep(2 * SCALE)
    live, ready = ex.count("live"), ex.count("ready")
    await asyncio.sleep(5 * SCALE * 2)
    assert ex.count("live") == live and ex.count("ready") > ready
    assert rec.liveness == []
    await prober.stop()
