"""The agent's kubelet metrics: pod start SLI observed once per pod, from its creation to
every container started, less image pulls; pod worker syncs timed as create, then update."""
from __future__ import annotations

from prometheus_client import REGISTRY

from agent.metrics import PodStartTracker, TimedSyncer


def pod(uid: str, started: bool, created: str = "2026-01-01T00:00:00Z") -> dict:
    status = {"containerStatuses": [{"name": "c", "started": started,
                                     "state": {"running": {}} if started else {"waiting": {}}}]}
    return {"metadata": {"uid": uid, "creationTimestamp": created}, "spec": {"containers": [{"name": "c"}]},
            "status": status}


def count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_pod_start_is_observed_once_from_creation_less_pulls():
    created = 1767225600.0  # 2026-01-01T00:00:00Z
    tracker = PodStartTracker(now=lambda: created + 7.5)
    before_n = count("kubelet_pod_start_sli_duration_seconds_count")
    before_sum = count("kubelet_pod_start_sli_duration_seconds_sum")
    tracker.observe(pod("a", started=False))
    tracker.pulled("a", 2.0)
    assert count("kubelet_pod_start_sli_duration_seconds_count") == before_n
    tracker.observe(pod("a", started=True))
    tracker.observe(pod("a", started=True))  # later updates: not again
    assert count("kubelet_pod_start_sli_duration_seconds_count") == before_n + 1
    assert count("kubelet_pod_start_sli_duration_seconds_sum") == before_sum + 5.5


def test_a_pod_running_before_the_agent_saw_it_is_not_observed():
    tracker = PodStartTracker()
    before = count("kubelet_pod_start_sli_duration_seconds_count")
    tracker.observe(pod("b", started=True))
    tracker.observe(pod("b", started=True))
    assert count("kubelet_pod_start_sli_duration_seconds_count") == before


async def test_pod_worker_syncs_are_timed_create_then_update():
    class Syncer:
        async def sync(self, p: dict) -> str:
            return "ok"

        async def teardown(self, uid: str) -> None:
            return None

        def other(self) -> str:
            return "inner"

    timed = TimedSyncer(Syncer())
    creates = count("kubelet_pod_worker_duration_seconds_count", operation_type="create")
    updates = count("kubelet_pod_worker_duration_seconds_count", operation_type="update")
    assert await timed.sync(pod("c", False)) == "ok"
    await timed.sync(pod("c", True))
    await timed.teardown("c")
    await timed.sync(pod("c", False))  # the same uid after a teardown starts again
    assert timed.other() == "inner"
    assert count("kubelet_pod_worker_duration_seconds_count", operation_type="create") == creates + 2
    assert count("kubelet_pod_worker_duration_seconds_count", operation_type="update") == updates + 1
