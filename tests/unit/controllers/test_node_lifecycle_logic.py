"""The node lifecycle controller's pure logic: when a silent Node goes Unknown."""
from __future__ import annotations

from datetime import datetime, timezone

from controlplane.controllers.node_lifecycle import Observed, silent_nodes, unknown_status


def node(name: str, heartbeat: str, status: str = "True") -> dict:
    return {"metadata": {"name": name, "resourceVersion": "7"},
            "status": {"conditions": [
                {"type": "Ready", "status": status, "reason": "KubeletReady", "lastHeartbeatTime": heartbeat,
                 "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": heartbeat}]}}


def lease(renew: str) -> dict:
    return {"spec": {"renewTime": renew}}


def test_a_node_first_seen_gets_the_whole_grace_period() -> None:
    seen: dict[str, Observed] = {}
    leases = {"a": lease("r1")}
    assert silent_nodes([node("a", "t1")], leases, seen, now=100.0, grace=40) == []
    assert silent_nodes([node("a", "t1")], leases, seen, now=140.0, grace=40) == []
    assert [n["metadata"]["name"] for n in silent_nodes([node("a", "t1")], leases, seen, 140.5, 40)] == ["a"]


def test_a_heartbeat_or_a_lease_renewal_restarts_the_grace_period() -> None:
    seen: dict[str, Observed] = {}
    silent_nodes([node("a", "t1")], {"a": lease("r1")}, seen, 0.0, 40)
    assert silent_nodes([node("a", "t2")], {"a": lease("r1")}, seen, 39.0, 40) == []  # status heartbeat
    assert silent_nodes([node("a", "t2")], {"a": lease("r2")}, seen, 70.0, 40) == []  # lease only
    assert silent_nodes([node("a", "t2")], {"a": lease("r2")}, seen, 109.0, 40) == []
    assert len(silent_nodes([node("a", "t2")], {"a": lease("r2")}, seen, 111.0, 40)) == 1


def test_a_node_already_unknown_is_left_alone_and_a_deleted_one_forgotten() -> None:
    seen: dict[str, Observed] = {}
    leases = {"a": lease("r1"), "b": lease("r1")}
    silent_nodes([node("a", "t1", "Unknown"), node("b", "t1")], leases, seen, 0.0, 40)
    assert silent_nodes([node("a", "t1", "Unknown")], leases, seen, 100.0, 40) == []
    assert set(seen) == {"a"}


def test_a_node_no_agent_ever_leased_is_left_alone() -> None:
    seen: dict[str, Observed] = {}
    silent_nodes([node("by-hand", "t1")], {}, seen, 0.0, 40)
    assert silent_nodes([node("by-hand", "t1")], {}, seen, 1000.0, 40) == []


def test_unknown_status_sets_every_condition_and_keeps_the_heartbeats() -> None:
    original = node("a", "2026-01-01T00:00:05Z")
    out = unknown_status(original, datetime(2026, 1, 1, 0, 1, tzinfo=timezone.utc))
    for c in out["status"]["conditions"]:
        assert (c["status"], c["reason"]) == ("Unknown", "NodeStatusUnknown")
        assert c["lastHeartbeatTime"] == "2026-01-01T00:00:05Z"
        assert c["lastTransitionTime"] == "2026-01-01T00:01:00Z"
    assert out["metadata"]["resourceVersion"] == "7"  # the PUT is conditional on it
    assert original["status"]["conditions"][0]["status"] == "True"  # the cached object is untouched
