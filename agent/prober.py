"""The prober (kubelet's prober manager and workers).

One asyncio task per (container id, probe kind), so a slow or hanging probe
never delays another. Each worker follows kubelet's worker.go:

- startupProbe gates the others: liveness and readiness do not run until the
  startup probe succeeded; after that success the startup worker stops.
- A result only counts after `successThreshold` / `failureThreshold`
  consecutive equal outcomes. A probe that could not run at all ("errored")
  is reported and not counted.
- Liveness or startup failing `failureThreshold` times asks for a restart
  (ProbeResults.liveness_failed) and the worker holds until a new container
  id comes: a restarted container gets new workers.
- Readiness starts False and keeps probing for the container's whole life.
- Once the pod has a deletionTimestamp, liveness and startup stop (a pod
  being shut down is not restarted); readiness goes on.
- http and tcp probes go from the node to the pod IP.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

from agent.probe_results import ProbeResults
from agent.probes import FAILURE, WARNING, Outcome, ProbeError
from agent.probes.exec import ExecInContainer, probe_exec
from agent.probes.http import probe_headers, probe_http, probe_url
from agent.probes.ports import resolve_port, target_host
from agent.probes.pre_stop import EventSink, run_pre_stop
from agent.probes.tcp import probe_tcp

# run_pre_stop is re-exported so the agent imports everything probe-related from here.
__all__ = ["Prober", "ProbeSpec", "run_pre_stop"]

log = logging.getLogger("agent.prober")

STARTUP, LIVENESS, READINESS = "startup", "liveness", "readiness"
_FIELDS = {STARTUP: "startupProbe", LIVENESS: "livenessProbe", READINESS: "readinessProbe"}


@dataclass(frozen=True)
class ProbeSpec:
    """A probe with Kubernetes' defaults filled in."""
    action: dict[str, Any]
    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def from_api(cls, probe: dict[str, Any], kind: str) -> "ProbeSpec":
        def num(field: str, default: int, minimum: int) -> int:
            v = probe.get(field)
            return v if isinstance(v, int) and not isinstance(v, bool) and v >= minimum else default
        success = num("successThreshold", 1, 1)
        if kind != READINESS:
            success = 1  # validation requires 1 for liveness and startup
        return cls(action=probe, initial_delay=num("initialDelaySeconds", 0, 0),
                   period=num("periodSeconds", 10, 1), timeout=num("timeoutSeconds", 1, 1),
                   success_threshold=success, failure_threshold=num("failureThreshold", 3, 1))


class _PodEntry:
    def __init__(self, pod: dict[str, Any], pod_ip: str | None) -> None:
        self.pod = pod
        self.pod_ip = pod_ip
        self.workers: dict[tuple[str, str], _Worker] = {}  # (container name, kind) -> worker


class Prober:
    """Starts and stops probe workers as containers come and go.

    `exec_in_container(container_id, cmd, timeout)` returns an exit code or
    (exit code, output). `events(pod, reason, message, type, container_name)`
    records pod events. `period_scale` is the length in real seconds of one
    second of initialDelaySeconds/periodSeconds (1.0 in production; tests
    shrink it); timeoutSeconds is never scaled."""

    def __init__(self, results: ProbeResults, exec_in_container: ExecInContainer,
                 events: EventSink | None = None, *, period_scale: float = 1.0) -> None:
        self.results = results
        self.exec_in_container = exec_in_container
        self.events = events
        self.period_scale = period_scale
        self.started_at = time.monotonic()
        self._pods: dict[str, _PodEntry] = {}
        self._started: dict[str, asyncio.Event] = {}  # container id -> startup succeeded

    # ---- called by the agent --------------------------------------------------

    def update_pod(self, pod: dict[str, Any], containers: dict[str, tuple[str, float]],
                   pod_ip: str | None) -> None:
        """`containers`: the pod's *running* app containers, name -> (container id,
        time.monotonic() when it started). Call after every pod sync."""
        uid = pod["metadata"]["uid"]
        entry = self._pods.get(uid)
        if entry is None:
            entry = self._pods[uid] = _PodEntry(pod, pod_ip)
        entry.pod, entry.pod_ip = pod, pod_ip
        wanted: dict[tuple[str, str], tuple[dict[str, Any], str, float]] = {}
        for c in (pod.get("spec") or {}).get("containers") or []:
            if c.get("name") not in containers:
                continue
            cid, started = containers[c["name"]]
            for kind, field in _FIELDS.items():
                if c.get(field):
                    wanted[(c["name"], kind)] = (c, cid, started)
        for key, worker in list(entry.workers.items()):
            if key not in wanted or wanted[key][1] != worker.container_id:
                self._stop_worker(entry, key)
        for key, (c, cid, started) in wanted.items():
            if key not in entry.workers:
                entry.workers[key] = _Worker(self, entry, uid, c, cid, started, key[1])
        if not entry.workers and not containers:
            self._pods.pop(uid, None)

    def remove_pod(self, uid: str) -> None:
        entry = self._pods.pop(uid, None)
        if entry is not None:
            for key in list(entry.workers):
                self._stop_worker(entry, key)

    async def stop(self) -> None:
        tasks = []
        for uid in list(self._pods):
            entry = self._pods.pop(uid)
            tasks += [w.task for w in entry.workers.values()]
            for key in list(entry.workers):
                self._stop_worker(entry, key)
        await asyncio.gather(*tasks, return_exceptions=True)

    def worker_count(self) -> int:
        return sum(len(e.workers) for e in self._pods.values())

    # ---- internals -----------------------------------------------------------------

    def _stop_worker(self, entry: _PodEntry, key: tuple[str, str]) -> None:
        worker = entry.workers.pop(key)
        # Python 3.11's wait_for can swallow a cancel that races with the probe
        # finishing; the flag makes the worker end anyway.
        worker.stopped = True
        worker.task.cancel()
        cid = worker.container_id
        if not any(w.container_id == cid for e in self._pods.values() for w in e.workers.values()):
            self.results.forget([cid])
            self._started.pop(cid, None)

    def _started_event(self, container_id: str) -> asyncio.Event:
        ev = self._started.get(container_id)
        if ev is None:
            ev = self._started[container_id] = asyncio.Event()
        return ev

    def _event(self, pod: dict[str, Any], reason: str, message: str, typ: str, name: str) -> None:
        if self.events is None:
            return
        try:
            self.events(pod, reason, message, typ, name)
        except Exception:
            log.exception("recording event %s failed", reason)


class _Worker:
    def __init__(self, prober: Prober, entry: _PodEntry, uid: str, container: dict[str, Any],
                 container_id: str, started_at: float, kind: str) -> None:
        self.prober = prober
        self.entry = entry
        self.uid = uid
        self.container = container
        self.container_id = container_id
        self.started_at = started_at
        self.kind = kind
        self.spec = ProbeSpec.from_api(container[_FIELDS[kind]], kind)
        self.stopped = False
        if kind == READINESS:
            prober.results.set_readiness(uid, container_id, False)
        self.task = asyncio.create_task(self._run(), name=f"probe-{kind}-{container_id[:12]}")

    @property
    def name(self) -> str:
        return self.container.get("name", "")

    async def _run(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s probe worker for %s crashed", self.kind, self.name)

    async def _loop(self) -> None:
        scale = self.prober.period_scale
        period = self.spec.period * scale
        # Spread the first probes of many containers when the agent has just
        # (re)started, as kubelet does; otherwise probe at once.
        if time.monotonic() - self.prober.started_at < period:
            await asyncio.sleep(random.random() * period)
        if self.kind != STARTUP and self.container.get("startupProbe") \
                and not self.prober.results.started(self.container, self.container_id):
            await self.prober._started_event(self.container_id).wait()
        delay = self.started_at + self.spec.initial_delay * scale - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

        last, run = None, 0
        while not self.stopped:
            if self._terminating() and self.kind != READINESS:
                return
            began = time.monotonic()
            outcome = await self._probe_once()
            if self.stopped:
                return
            if outcome is not None:
                ok = outcome.result != FAILURE
                run = run + 1 if ok == last else 1
                last = ok
                threshold = self.spec.success_threshold if ok else self.spec.failure_threshold
                if run >= threshold and self._record(ok):
                    return
            await asyncio.sleep(max(0.0, began + period - time.monotonic()))

    def _terminating(self) -> bool:
        return bool((self.entry.pod.get("metadata") or {}).get("deletionTimestamp"))

    def _record(self, ok: bool) -> bool:
        """Store a result that passed its threshold; True when the worker is done."""
        results = self.prober.results
        if self.kind == READINESS:
            results.set_readiness(self.uid, self.container_id, ok)
            return False
        if self.kind == STARTUP and ok:
            results.set_startup(self.uid, self.container_id, True)
            self.prober._started_event(self.container_id).set()
            return True
        if not ok:
            if self.kind == STARTUP:
                results.set_startup(self.uid, self.container_id, False)
            results.liveness_failed(self.uid, self.name,
                                    f"Container {self.name} failed {self.kind} probe, will be restarted")
            return True
        return False

    async def _probe_once(self) -> Outcome | None:
        """One probe; None when it errored (not counted, as kubelet)."""
        label = self.kind.capitalize()
        pod = self.entry.pod
        try:
            # The handlers enforce the timeout; this is a backstop for a stuck handler.
            outcome = await asyncio.wait_for(self._handler(), self.spec.timeout + 1)
        except (ProbeError, asyncio.TimeoutError) as exc:
            msg = str(exc) or "timed out"
            self.prober._event(pod, "Unhealthy",
                               f"{label} probe errored and resulted in unknown state: {msg}",
                               "Warning", self.name)
            return None
        if outcome.result == FAILURE:
            self.prober._event(pod, "Unhealthy", f"{label} probe failed: {outcome.output}",
                               "Warning", self.name)
        elif outcome.result == WARNING:
            self.prober._event(pod, "ProbeWarning", f"{label} probe warning: {outcome.output}",
                               "Warning", self.name)
        return outcome

    async def _handler(self) -> Outcome:
        action = self.spec.action
        timeout = self.spec.timeout
        if action.get("exec") is not None:
            cmd = (action["exec"] or {}).get("command") or []
            return await probe_exec(self.prober.exec_in_container, self.container_id, cmd, timeout)
        if action.get("httpGet") is not None:
            h = action["httpGet"]
            url = probe_url(h.get("scheme") or "HTTP", target_host(h, self.entry.pod_ip),
                            resolve_port(h.get("port"), self.container), h.get("path") or "/")
            return await probe_http(url, probe_headers(h.get("httpHeaders")), timeout)
        if action.get("tcpSocket") is not None:
            t = action["tcpSocket"]
            return await probe_tcp(target_host(t, self.entry.pod_ip),
                                   resolve_port(t.get("port"), self.container), timeout)
        raise ProbeError("probe has no handler (exec, httpGet or tcpSocket)")

