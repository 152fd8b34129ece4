"""The scheduler: informers feed the cache and the queue; one loop takes a pod,
filters and scores the nodes, assumes the pod on the best node and hands the
binding to a task of its own, so the next cycle starts at once.

The informers come from the process's shared informer factory (one list+watch per resource
and selectors, each handler fed from a buffer of its own); a scheduler given no factory makes
and runs one of its own.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from kubeling import errors
from kubeling.client import Client
from kubeling.resources import lookup
from kubeling.shared_informers import SharedInformers
from kubeling.tasks import guarded

from . import metrics
from .cache import Cache
from .events import NORMAL, SCHEDULING_SECONDS, WARNING, EventRecorder, trace_details
from .framework import Diagnosis, FilterPlugin, ScorePlugin, Status
from .nodeinfo import NodeInfo, effective_taints
from .plugins import default_filters, default_scores
from .pod_status import unschedulable_patch
from .queue import QueuedPod, SchedulingQueue

log = logging.getLogger("kubeling.scheduler")

PODS, NODES = lookup("pods"), lookup("nodes")
DEFAULT_SCHEDULER_NAME = "default-scheduler"
# Pods that finished hold no resources; the watch reports them as deleted.
ACTIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"
# Plugins whose verdict can change when a bound pod goes away.
FREED_BY_POD_DELETE = {"NodeResourcesFit", "NodePorts"}
# Pod shapes whose static filter verdicts are kept (see framework.FilterPlugin).
STATIC_VERDICTS_KEPT = 256


def _assigned(pod: dict[str, Any]) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def _deleting(pod: dict[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def _uid(obj: dict[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("uid") or ""


def node_change_plugins(old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    """Which filters' verdicts a node update could flip; heartbeats flip none."""
    changed: set[str] = set()
    if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
        changed.add("NodeAffinity")
    if effective_taints(old) != effective_taints(new):
        changed.add("TaintToleration")
    if bool((old.get("spec") or {}).get("unschedulable")) != bool((new.get("spec") or {}).get("unschedulable")):
        changed.add("NodeUnschedulable")
    if (old.get("status") or {}).get("allocatable") != (new.get("status") or {}).get("allocatable"):
        changed.add("NodeResourcesFit")
    return changed


class Scheduler:
    def __init__(self, client: Client, *, scheduler_name: str = DEFAULT_SCHEDULER_NAME,
                 identity: str = "", filters: list[FilterPlugin] | None = None,
                 scores: list[ScorePlugin] | None = None, bind_concurrency: int = 64,
                 queue: SchedulingQueue | None = None, informers: SharedInformers | None = None) -> None:
        self.client = client
        self.scheduler_name = scheduler_name
        self.filters = filters if filters is not None else default_filters()
        self.scores = scores if scores is not None else default_scores()
        self.cache = Cache()
        self.queue = queue or SchedulingQueue()
        # Set while no binding is in flight: Events then get all their writers.
        self._no_bindings = asyncio.Event()
        self._no_bindings.set()
        self._bindings_in_flight = 0
        self.events = EventRecorder(client, scheduler_name, identity or scheduler_name, quiet=self._no_bindings)
        # Whoever passes a factory runs it (after every component registered its handlers).
        self._own_informers = informers is None
        self.informers = informers if informers is not None else SharedInformers(client)
        self.pods = self.informers.add_handlers(PODS, self._pod_added, self._pod_updated, self._pod_deleted,
                                                field_selector=ACTIVE_PODS)
        self.nodes = self.informers.add_handlers(NODES, self._node_added, self._node_updated,
                                                 self._node_deleted)
        self._bind_slots = asyncio.Semaphore(bind_concurrency)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._background: list[asyncio.Task[Any]] = []
        # Told when a background loop (an informer, the event writer, the flusher) ends on its
        # own: the scheduler would go on with stale caches, so its main stops (see __main__).
        self.on_failure: Callable[[BaseException], None] | None = None
        self._rng = random.Random()
        # The leading filters marked static, and their verdicts per pod shape (static_key):
        # (cache.static_version, the node list judged, the nodes passing, why the others not).
        self._static_filters: list[FilterPlugin] = []
        for f in self.filters:
            if not getattr(f, "static", False):
                break
            self._static_filters.append(f)
        self._dynamic_filters = self.filters[len(self._static_filters):]
        self._static_verdicts: dict[str, tuple[int, list[NodeInfo], list[NodeInfo], dict[str, Status]]] = {}
        self.scheduled = 0
        self.failed = 0

    # ---- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Start the informers (when the factory is ours) and helpers; return once both
        caches are synced and our handlers have seen them."""
        informers = [guarded(self.informers.run(), "scheduler informers", self._background_failed)] \
            if self._own_informers else []
        self._background = [*informers,
                            guarded(self.events.run(), "event-writer", self._background_failed),
                            guarded(self.queue.run_flusher(), "queue-flusher", self._background_failed)]
        waits = {asyncio.create_task(self.nodes.synced.wait()), asyncio.create_task(self.pods.synced.wait())}
        try:
            while waits:
                done, _ = await asyncio.wait(waits | set(informers), return_when=asyncio.FIRST_COMPLETED)
                for t in done & set(informers):
                    t.result()  # the informers ended before syncing: surface why
                    raise RuntimeError(f"{t.get_name()} stopped before syncing")
                waits -= done
        finally:
            for w in waits:
                w.cancel()

    def _background_failed(self, exc: BaseException) -> None:
        if self.on_failure is not None:
            self.on_failure(exc)

    async def stop(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        await self.events.drain(2)
        for t in [*self._background, *self._tasks]:
            t.cancel()
        await asyncio.gather(*self._background, *self._tasks, return_exceptions=True)

    async def run(self) -> None:
        """The scheduling loop; runs until cancelled."""
        log.info("scheduling as %s", self.scheduler_name)
        while True:
            qp = await self.queue.pop()
            try:
                self.schedule_one(qp)
            except Exception:
                log.exception("scheduling %s failed", qp.info.key)
                self.queue.requeue_backoff(qp.pod, qp.attempts)
            # Let the informers and the bindings' responses in between pods.
            await asyncio.sleep(0)

    # ---- one scheduling cycle --------------------------------------------------

    def schedule_one(self, qp: QueuedPod) -> None:
        start = time.perf_counter()  # scheduler_scheduling_attempt_duration_seconds: to the binding's end
        info = qp.info
        current = self.pods.get(info.namespace, info.name)
        if current is None or _uid(current) != info.uid or _assigned(current) or _deleting(current):
            self.queue.done(info.uid)
            return
        nodes = self.cache.schedulable_nodes()
        feasible, diagnosis = self.find_feasible(info, nodes)
        if not feasible:
            self._unschedulable(qp, diagnosis)
            metrics.observe_attempt(metrics.UNSCHEDULABLE, time.perf_counter() - start)
            return
        host = self.select_host(info, feasible)
        self.cache.assume(info, host.name)
        self.queue.done(info.uid)
        self._spawn(self._bind(qp, host.name, start, trace_details(diagnosis)))

    def find_feasible(self, info: Any, nodes: list[NodeInfo]) -> tuple[list[NodeInfo], Diagnosis]:
        """The nodes passing every filter, in order; a rejected node's status is its first
        failing filter's, as if every filter ran on every node."""
        diagnosis = Diagnosis(len(nodes))
        candidates, rejected = self._static_pass(info, nodes)
        if rejected:
            diagnosis.node_statuses.update(rejected)
        filters = [f for f in self._dynamic_filters if f.applies(info)]
        if not filters:
            return list(candidates), diagnosis
        return _run_filters(filters, info, candidates, diagnosis.node_statuses), diagnosis

    def _static_pass(self, info: Any, nodes: list[NodeInfo]) -> tuple[list[NodeInfo], dict[str, Status]]:
        """The nodes the static filters let through and why they rejected the others,
        computed once per pod shape and node version."""
        version = self.cache.static_version
        hit = self._static_verdicts.get(info.static_key)
        # The cache hands out the same list object until its membership changes.
        if hit is not None and hit[0] == version and hit[1] is nodes:
            return hit[2], hit[3]
        filters = [f for f in self._static_filters if f.applies(info)]
        rejected: dict[str, Status] = {}
        passed = _run_filters(filters, info, nodes, rejected)
        if len(self._static_verdicts) >= STATIC_VERDICTS_KEPT:
            self._static_verdicts.clear()  # many shapes, or stale: start over
        self._static_verdicts[info.static_key] = (version, nodes, passed, rejected)
        return passed, rejected

    def select_host(self, info: Any, feasible: list[NodeInfo]) -> NodeInfo:
        if len(feasible) == 1:
            return feasible[0]
        totals = [0] * len(feasible)
        for plugin in self.scores:
            w = plugin.weight
            for i, s in enumerate(plugin.score(info, feasible)):
                totals[i] += w * s
        best = max(totals)
        tied = [i for i, t in enumerate(totals) if t == best]
        return feasible[tied[0] if len(tied) == 1 else self._rng.choice(tied)]  # ties: at random

    def _unschedulable(self, qp: QueuedPod, diagnosis: Diagnosis) -> None:
        self.failed += 1
        message = diagnosis.message()
        log.info("unable to schedule %s: %s", qp.info.key, message)
        self.events.record(qp.pod, WARNING, "FailedScheduling", "Scheduling", message)
        patch = unschedulable_patch(qp.pod, message)
        if patch is not None:
            self._spawn(self._patch_status(qp.info.namespace, qp.info.name, patch))
        self.queue.requeue_unschedulable(qp, diagnosis.plugins)

    # ---- async side effects ----------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        t = asyncio.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _bind(self, qp: QueuedPod, node: str, start: float,
                    details: dict[str, str] | None = None) -> None:
        info = qp.info
        decided = datetime.now(timezone.utc)   # the Scheduled event's time: the binding goes out now
        try:
            await self._post_binding(info, node)
        except Exception as exc:
            metrics.observe_attempt(metrics.ERROR, time.perf_counter() - start)
            self.cache.forget(info.uid)
            self.queue.move_all(FREED_BY_POD_DELETE)  # the node's room is free again
            if isinstance(exc, errors.ApiError) and exc.code in (404, 409):
                # Bound by someone else, deleted, or replaced: the informer has
                # (or will have) the truth; retrying could never succeed.
                log.info("binding %s to %s refused: %s", info.key, node, exc.message)
                return
            log.warning("binding %s to %s failed: %s; retrying", info.key, node, exc)
            current = self.pods.get(info.namespace, info.name)
            if current is not None and _uid(current) == info.uid and not _assigned(current) \
                    and not _deleting(current):
                self.queue.requeue_backoff(current, qp.attempts)
            return
        self.scheduled += 1
        metrics.observe_attempt(metrics.SCHEDULED, time.perf_counter() - start)
        if details is not None:
            details[SCHEDULING_SECONDS] = f"{time.perf_counter() - start:.6f}"
        log.debug("bound %s to %s", info.key, node)
        self.events.record(info.pod, NORMAL, "Scheduled", "Binding",
                           f"Successfully assigned {info.namespace}/{info.name} to {node}", details, decided)

    async def _post_binding(self, info: Any, node: str) -> None:
        self._bindings_in_flight += 1
        self._no_bindings.clear()
        try:
            async with self._bind_slots:
                await self.client.create_binding(info.namespace, info.name, node, info.uid)
        finally:
            self._bindings_in_flight -= 1
            if not self._bindings_in_flight:
                self._no_bindings.set()

    async def _patch_status(self, ns: str, name: str, patch: dict[str, Any]) -> None:
        try:
            await self.client.patch(PODS, name, patch, ns, patch_type="strategic", subresource="status")
        except errors.ApiError as exc:
            log.debug("could not set PodScheduled on %s/%s: %s", ns, name, exc.message)

    # ---- informer handlers -------------------------------------------------------

    def _responsible(self, pod: dict[str, Any]) -> bool:
        return ((pod.get("spec") or {}).get("schedulerName") or DEFAULT_SCHEDULER_NAME) == self.scheduler_name

    def _pod_added(self, pod: dict[str, Any]) -> None:
        if _assigned(pod):
            self.cache.add_pod(pod)
        elif self._responsible(pod) and not _deleting(pod):
            self.queue.add(pod)

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        uid = _uid(new)
        if _assigned(new):
            if not _assigned(old):
                self.queue.delete(uid)
            self.cache.add_pod(new)
            return
        if _deleting(new) or not self._responsible(new):
            self.queue.delete(uid)
        elif not self.cache.is_assumed(uid):
            self.queue.update(new)

    def _pod_deleted(self, pod: dict[str, Any]) -> None:
        uid = _uid(pod)
        self.queue.delete(uid)
        if self.cache.node_of(uid) is not None:
            self.cache.remove_pod(pod)
            self.queue.move_all(FREED_BY_POD_DELETE)

    def _node_added(self, node: dict[str, Any]) -> None:
        self.cache.set_node(node)
        self.queue.move_all()

    def _node_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.cache.set_node(new)
        plugins = node_change_plugins(old, new)
        if plugins:
            self.queue.move_all(plugins)

    def _node_deleted(self, node: dict[str, Any]) -> None:
        self.cache.remove_node(node["metadata"]["name"])


def _run_filters(filters: list[Any], info: Any, nodes: Iterable[NodeInfo],
                 rejected: dict[str, Status]) -> list[NodeInfo]:
    """The nodes every filter lets through, in order; the first refusal of each other node
    goes into `rejected` by node name."""
    passed = []
    for n in nodes:
        for f in filters:
            st = f.filter(info, n)
            if st is not None:
                rejected[n.name] = st
                break
        else:
            passed.append(n)
    return passed
