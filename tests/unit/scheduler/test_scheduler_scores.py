"""Score plugins, host selection and the FailedScheduling message."""
from __future__ import annotations

import random
from collections import Counter

from sched_helpers import node_info, pod

from controlplane.scheduler.framework import UNRESOLVABLE, UNSCHEDULABLE, Diagnosis, Status
from controlplane.scheduler.plugins import LeastAllocated, SelectorSpread
from controlplane.scheduler.scheduler import Scheduler


def test_least_allocated_prefers_emptier_node():
    busy = node_info(pod(cpu="3", memory="6Gi"), name="busy", cpu="4", memory="8Gi")
    idle = node_info(name="idle", cpu="4", memory="8Gi")
    p = pod(cpu="1", memory="2Gi")
    scores = LeastAllocated().score(p, [busy, idle])
    # busy: cpu (4-4)/4 -> 0, memory (8-8)/8 -> 0; idle: cpu 3/4 -> 75, memory 6/8 -> 75
    assert scores == [0, 75]


def test_least_allocated_counts_default_requests_for_pods_without_any():
    n = node_info(name="n", cpu="1", memory="1000Mi")
    # The pod requests nothing: scored as 100m cpu and 200Mi memory.
    assert LeastAllocated().score(pod(), [n]) == [(90 + 80) // 2]


def test_least_allocated_overfull_scores_zero():
    n = node_info(pod(cpu="4"), name="n", cpu="2", memory="1Gi")
    assert LeastAllocated().score(pod(cpu="1", memory="1Mi"), [n])[0] <= 50


def test_selector_spread_prefers_nodes_with_fewer_siblings():
    a = node_info(pod(owner_uid="rs1"), pod(owner_uid="rs1"), name="a")
    b = node_info(pod(owner_uid="rs1"), name="b")
    c = node_info(pod(owner_uid="other"), name="c")
    assert SelectorSpread().score(pod(owner_uid="rs1"), [a, b, c]) == [0, 50, 100]


def test_selector_spread_groups_by_labels_without_controller():
    a = node_info(pod(labels={"app": "web"}), name="a")
    b = node_info(pod(labels={"app": "db"}), name="b")
    assert SelectorSpread().score(pod(labels={"app": "web"}), [a, b]) == [0, 100]
    # Other namespace, same labels: another group.
    assert SelectorSpread().score(pod(labels={"app": "web"}, namespace="x"), [a, b]) == [100, 100]


def test_selector_spread_ignores_ungrouped_pods():
    a = node_info(pod(), name="a")
    assert SelectorSpread().score(pod(), [a, node_info(name="b")]) == [0, 0]


def test_select_host_takes_the_best_and_breaks_ties_at_random():
    s = Scheduler.__new__(Scheduler)
    s.scores = [LeastAllocated(), SelectorSpread()]
    s._rng = random.Random(7)
    busy = node_info(pod(cpu="3"), name="busy")
    twins = [node_info(name=f"t{i}") for i in range(4)]
    picks = Counter(s.select_host(pod(cpu="1"), [busy, *twins]).name for _ in range(400))
    assert "busy" not in picks
    assert set(picks) == {"t0", "t1", "t2", "t3"}
    assert min(picks.values()) > 50  # roughly uniform over the tied nodes


def test_spread_weight_outweighs_small_resource_differences():
    s = Scheduler.__new__(Scheduler)
    s.scores = [LeastAllocated(), SelectorSpread()]
    s._rng = random.Random(1)
    crowded = node_info(pod(owner_uid="rs", cpu="100m"), name="crowded", cpu="8")
    slightly_busier = node_info(pod(cpu="400m"), name="other", cpu="8")
    assert s.select_host(pod(owner_uid="rs", cpu="100m"), [crowded, slightly_busier]).name == "other"


# ---- the FailedScheduling message ------------------------------------------------

def test_message_shape_of_kubernetes():
    d = Diagnosis(3, {
        "a": Status(UNSCHEDULABLE, ("Insufficient cpu",), "NodeResourcesFit"),
        "b": Status(UNRESOLVABLE, ("node(s) didn't match Pod's node affinity/selector",), "NodeAffinity"),
        "c": Status(UNRESOLVABLE, ("node(s) didn't match Pod's node affinity/selector",), "NodeAffinity"),
    })
    assert d.message() == (
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, "
        "2 Preemption is not helpful for scheduling.")
    assert d.plugins == {"NodeResourcesFit", "NodeAffinity"}


def test_message_counts_each_reason_of_a_node():
    d = Diagnosis(2, {
        "a": Status(UNSCHEDULABLE, ("Insufficient cpu", "Insufficient memory"), "NodeResourcesFit"),
        "b": Status(UNSCHEDULABLE, ("Insufficient memory",), "NodeResourcesFit"),
    })
    assert d.message() == ("0/2 nodes are available: 1 Insufficient cpu, 2 Insufficient memory. "
                           "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.")


def test_message_without_nodes():
    assert Diagnosis(0).message() == "no nodes available to schedule pods"
