"""The proxy reports when it programmed a Service's changed endpoints (its trace events):
once per change, with the EndpointSlice's trigger time, not once per sync."""
from __future__ import annotations

from typing import Any

from tests.unit.proxy.test_proxier import Node, eslice, eventually, service

TRIGGER = "endpoints.kubernetes.io/last-change-trigger-time"


def _with_trigger(s: dict[str, Any], when: str) -> dict[str, Any]:
    s["metadata"]["annotations"] = {TRIGGER: when}
    return s


async def test_a_programmed_endpoints_change_is_reported_once_with_its_trigger_time() -> None:
    reports: list[tuple[set[tuple[str, str]], dict[tuple[str, str], float], float]] = []
    async with Node() as node:
        node.proxier.on_programmed = lambda touched, changes, at: reports.append((touched, changes, at))
        await node.synced_once()
        node.client.send("services", "ADDED", service("web", "10.96.0.10"))
        node.client.send("endpointslices", "ADDED",
                         _with_trigger(eslice("web-1", "web", ("10.244.1.5", "ready")), "2026-01-01T00:00:01.5Z"))
        await eventually(lambda: reports, "a report")
        (touched, changes, at), = reports
        assert touched == {("ns", "web")} and list(changes) == [("ns", "web")] and at >= changes[("ns", "web")]
        assert abs(changes[("ns", "web")] - 1767225601.5) < 1e-6
        # A service change alone programs no endpoint change: nothing more is reported.
        node.client.send("services", "MODIFIED", service("web", "10.96.0.10", 81))
        await eventually(lambda: node.ipt.restores >= 3, "the service's resync")
        assert len(reports) == 1
