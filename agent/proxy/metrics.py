"""kube-proxy's metrics (pkg/proxy/metrics), on the process's default registry.

`SYNC_PROXY_RULES_DURATION`: one sync of the NAT rules (building and applying the
iptables-restore batch). `NETWORK_PROGRAMMING_DURATION`: from the change of a Service's
endpoints (the EndpointSlice's endpoints.kubernetes.io/last-change-trigger-time
annotation) to the rules that carry it being applied, observed once per changed Service
(`NetworkProgrammingTracker`)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Gauge, Histogram

from kubeling.timefmt import parse_time

# ExponentialBuckets(0.001, 2, 15): 1 ms to ~16 s.
SYNC_BUCKETS = tuple(0.001 * 2 ** i for i in range(15))
# kube-proxy's: every 0.25 s to 0.5 s, every second to a minute, every 5 s to 2 minutes,
# every 30 s to 5 minutes.
NETWORK_PROGRAMMING_BUCKETS = ((0.25, 0.5) + tuple(float(s) for s in range(1, 60))
                               + tuple(float(s) for s in range(60, 120, 5))
                               + tuple(float(s) for s in range(120, 330, 30)))

SYNC_PROXY_RULES_DURATION = Histogram("kubeproxy_sync_proxy_rules_duration_seconds",
                                      "SyncProxyRules latency in seconds", buckets=SYNC_BUCKETS)
SYNC_PROXY_RULES_LAST_TIMESTAMP = Gauge("kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                                        "The last time proxy rules were successfully synced")
NETWORK_PROGRAMMING_DURATION = Histogram("kubeproxy_network_programming_duration_seconds",
                                         "In Cluster Network Programming Latency in seconds",
                                         buckets=NETWORK_PROGRAMMING_BUCKETS)

TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"


class NetworkProgrammingTracker:
    """When each Service's endpoints last changed (its EndpointSlices' trigger-time annotation,
    which the endpointslice controller sets), until the sync that programs them: then that
    sync's end minus the change is observed, once per Service. Called on the event loop."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._pending: dict[tuple[str, str], float] = {}  # (namespace, service) -> earliest change
        self._seen: dict[tuple[str, str], float] = {}  # the latest change taken per service

    def changed(self, slice_obj: dict[str, Any]) -> None:
        meta = slice_obj.get("metadata") or {}
        service = (meta.get("labels") or {}).get("kubernetes.io/service-name")
        when = parse_time((meta.get("annotations") or {}).get(TRIGGER_TIME))
        if not service or when is None:
            return
        key = (meta.get("namespace") or "", service)
        t = when.timestamp()
        if t <= self._seen.get(key, float("-inf")):
            return  # a change already counted (a resync, or another slice of the same change)
        self._seen[key] = t
        self._pending[key] = min(t, self._pending.get(key, t))

    def take(self) -> dict[tuple[str, str], float]:
        """The changes a sync starting now will program."""
        taken, self._pending = self._pending, {}
        return taken

    def programmed(self, taken: dict[tuple[str, str], float]) -> None:
        """The sync that took `taken` succeeded: observe each change's latency."""
        now = self._now()
        for t in taken.values():
            NETWORK_PROGRAMMING_DURATION.observe(max(now - t, 0.0))

    def failed(self, taken: dict[tuple[str, str], float]) -> None:
        """The sync failed: its changes wait for the next one."""
        for key, t in taken.items():
            self._pending[key] = min(t, self._pending.get(key, t))
