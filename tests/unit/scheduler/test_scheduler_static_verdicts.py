"""The static filters' verdicts reused per pod shape: the same feasible nodes and the same
first-failing statuses as running every filter on every node, and stale as soon as a
node's labels, taints, readiness or cordon change or a node comes or goes."""
from __future__ import annotations

from typing import Any

from sched_helpers import node_obj, pod

from controlplane.scheduler.framework import Status
from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.plugins import NodeResourcesFit, TaintToleration, default_filters
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.scheduler import Scheduler

TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
TOLERATE = [{"key": "dedicated", "operator": "Exists"}]


def reference(filters: list[Any], info: PodInfo, nodes: list[NodeInfo]) -> tuple[list[str], dict[str, Status]]:
    """Every applicable filter on every node, in order: the first failure is the node's status."""
    feasible, statuses = [], {}
    for n in nodes:
        for f in filters:
            if not f.applies(info):
                continue
            st = f.filter(info, n)
            if st is not None:
                statuses[n.name] = st
                break
        else:
            feasible.append(n.name)
    return feasible, statuses


def feasible(s: Scheduler, info: PodInfo) -> tuple[list[str], dict[str, Status]]:
    nodes, diagnosis = s.find_feasible(info, s.cache.schedulable_nodes())
    return [n.name for n in nodes], diagnosis.node_statuses


def cluster() -> Scheduler:
    s = Scheduler(client=None)  # type: ignore[arg-type]  # no I/O: only the cycle's functions run
    s.cache.set_node(node_obj("plain", pods="2"))
    s.cache.set_node(node_obj("gpu", taints=[TAINT]))
    s.cache.set_node(node_obj("ssd", labels={"disk": "ssd"}))
    s.cache.set_node(node_obj("cordoned", unschedulable=True))
    s.cache.set_node(node_obj("down", ready="False"))
    return s


SHAPES = [dict(), dict(tolerations=TOLERATE), dict(node_selector={"disk": "ssd"}),
          dict(node_name="gpu", tolerations=TOLERATE), dict(cpu="3"),
          dict(affinity_terms=[{"matchExpressions": [{"key": "disk", "operator": "DoesNotExist"}]}])]


def test_verdicts_equal_running_every_filter_for_each_shape_twice() -> None:
    s = cluster()
    for _ in range(2):  # the second round is served from the cached static verdicts
        for i, shape in enumerate(SHAPES):
            info = pod(f"p{i}", **shape)
            assert feasible(s, info) == reference(s.filters, info, s.cache.schedulable_nodes()), shape


def test_a_node_change_makes_the_verdicts_stale() -> None:
    s = cluster()
    plain, ssd = pod("a"), pod("b", node_selector={"disk": "ssd"})
    assert feasible(s, plain)[0] == ["plain", "ssd"]
    assert feasible(s, ssd)[0] == ["ssd"]

    s.cache.set_node(node_obj("plain", pods="2", labels={"disk": "ssd"}))      # labels
    assert feasible(s, pod("b2", node_selector={"disk": "ssd"}))[0] == ["plain", "ssd"]
    s.cache.set_node(node_obj("ssd", labels={"disk": "ssd"}, taints=[TAINT]))  # taints
    assert feasible(s, pod("a2"))[0] == ["plain"]
    s.cache.set_node(node_obj("down"))                                         # Ready again
    s.cache.set_node(node_obj("plain", pods="2", labels={"disk": "ssd"}, unschedulable=True))  # cordon
    assert feasible(s, pod("a3"))[0] == ["down"]
    s.cache.set_node(node_obj("new"))                                          # a node added
    assert feasible(s, pod("a4"))[0] == ["down", "new"]
    s.cache.remove_node("down")                                                # and one gone
    assert feasible(s, pod("a5"))[0] == ["new"]
    info = pod("a6", tolerations=TOLERATE)
    assert feasible(s, info) == reference(s.filters, info, s.cache.schedulable_nodes())


def test_a_heartbeat_keeps_the_verdicts() -> None:
    s = cluster()
    feasible(s, pod("a"))
    version = s.cache.static_version
    beat = node_obj("plain", pods="2")
    beat["status"]["conditions"][0]["lastHeartbeatTime"] = "2030-01-01T00:00:00Z"
    s.cache.set_node(beat)
    assert s.cache.static_version == version


def test_room_is_judged_per_pod_even_when_the_static_verdicts_are_reused() -> None:
    s = cluster()
    first = pod("first")
    assert "plain" in feasible(s, first)[0]
    s.cache.assume(first, "plain")
    s.cache.assume(pod("second"), "plain")  # plain takes 2 pods: now full
    names, statuses = feasible(s, pod("third"))
    assert names == ["ssd"]
    assert statuses["plain"].plugin == "NodeResourcesFit" and statuses["plain"].reasons == ("Too many pods",)


def test_a_filter_after_a_dynamic_one_keeps_its_place_in_the_order() -> None:
    # Only the leading static filters are cached: here the room check comes first, so a
    # full and tainted node is reported full, as running the filters in order says.
    s = Scheduler(client=None, filters=[NodeResourcesFit(), TaintToleration()])  # type: ignore[arg-type]
    s.cache.set_node(node_obj("full", pods="1", taints=[TAINT]))
    s.cache.set_node(node_obj("tainted", taints=[TAINT]))
    s.cache.assume(pod("resident"), "full")
    for name in ("x", "y"):
        info = pod(name)
        names, statuses = feasible(s, info)
        assert (names, statuses) == reference(s.filters, info, s.cache.schedulable_nodes())
        assert statuses["full"].plugin == "NodeResourcesFit"
        assert statuses["tainted"].plugin == "TaintToleration"


def test_the_default_filters_that_are_static_come_first() -> None:
    flags = [bool(getattr(f, "static", False)) for f in default_filters()]
    assert flags == sorted(flags, reverse=True) and flags.count(True) == 4
