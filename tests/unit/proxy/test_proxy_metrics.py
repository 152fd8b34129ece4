"""kube-proxy's network programming latency: a Service's endpoints change (the slice's
trigger time) until the sync that programs it; once per change, failed syncs carried over."""
from __future__ import annotations

from prometheus_client import REGISTRY

from agent.proxy.metrics import NetworkProgrammingTracker


def eps(name: str, trigger: str | None, service: str = "web") -> dict:
    ann = {"endpoints.kubernetes.io/last-change-trigger-time": trigger} if trigger else {}
    return {"metadata": {"name": name, "namespace": "default", "annotations": ann,
                         "labels": {"kubernetes.io/service-name": service}}}


def observed() -> tuple[float, float]:
    return (REGISTRY.get_sample_value("kubeproxy_network_programming_duration_seconds_count") or 0.0,
            REGISTRY.get_sample_value("kubeproxy_network_programming_duration_seconds_sum") or 0.0)


def test_each_change_is_observed_once_after_the_sync_that_programs_it():
    t0 = 1767225600.0  # 2026-01-01T00:00:00Z
    tracker = NetworkProgrammingTracker(now=lambda: t0 + 3.0)
    n, total = observed()
    tracker.changed(eps("web-a", "2026-01-01T00:00:01Z"))
    tracker.changed(eps("web-b", "2026-01-01T00:00:01Z"))  # another slice of the same change
    tracker.changed(eps("no-trigger", None, "other"))
    taken = tracker.take()
    tracker.failed(taken)  # the sync failed: the next one carries the change
    tracker.programmed(tracker.take())
    assert observed() == (n + 1, total + 2.0)
    tracker.changed(eps("web-a", "2026-01-01T00:00:01Z"))  # a resync of the same object
    tracker.programmed(tracker.take())
    assert observed() == (n + 1, total + 2.0)
