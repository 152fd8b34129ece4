"""The cache: assumed pods take room at once; confirmation and forgetting."""
from __future__ import annotations

from sched_helpers import node_obj, pod, pod_obj

from controlplane.scheduler.cache import Cache
from controlplane.scheduler.podinfo import pod_info, pod_requests


def test_assume_then_forget_restores_the_node():
    c = Cache()
    c.set_node(node_obj("n1", cpu="2"))
    p = pod(cpu="1500m")
    c.assume(p, "n1")
    n = c.nodes["n1"]
    assert n.requested.milli_cpu == 1500 and c.is_assumed(p.uid)
    c.forget(p.uid)
    assert n.requested.milli_cpu == 0 and not n.pods and not c.is_assumed(p.uid)


def test_informer_confirms_an_assumed_pod_once():
    c = Cache()
    c.set_node(node_obj("n1"))
    obj = pod_obj("p", cpu="1")
    c.assume(pod_info(obj), "n1")
    bound = {**obj, "spec": {**obj["spec"], "nodeName": "n1"}}
    c.add_pod(bound)
    assert c.nodes["n1"].requested.milli_cpu == 1000 and not c.is_assumed(obj["metadata"]["uid"])
    c.forget(obj["metadata"]["uid"])  # a late failure report must not undo a confirmed pod
    assert c.nodes["n1"].requested.milli_cpu == 1000


def test_pod_bound_elsewhere_moves_to_the_real_node():
    c = Cache()
    c.set_node(node_obj("n1"))
    c.set_node(node_obj("n2"))
    obj = pod_obj("p", cpu="1")
    c.assume(pod_info(obj), "n1")
    c.add_pod({**obj, "spec": {**obj["spec"], "nodeName": "n2"}})
    assert c.nodes["n1"].requested.milli_cpu == 0 and c.nodes["n2"].requested.milli_cpu == 1000


def test_pods_of_an_unknown_node_are_kept_but_not_schedulable():
    c = Cache()
    obj = pod_obj("p", cpu="1", node_name="ghost")
    c.add_pod(obj)
    assert c.schedulable_nodes() == []
    c.set_node(node_obj("ghost", cpu="2"))
    [n] = c.schedulable_nodes()
    assert n.requested.milli_cpu == 1000
    c.remove_node("ghost")
    assert c.schedulable_nodes() == [] and "ghost" in c.nodes
    c.remove_pod(obj)
    assert "ghost" not in c.nodes


def test_pod_requests_sum_containers_max_init_and_overhead():
    spec = {"containers": [{"resources": {"requests": {"cpu": "200m", "memory": "1Gi"}}},
                           {"resources": {"limits": {"cpu": "300m"}}}],
            "initContainers": [{"resources": {"requests": {"cpu": "1", "memory": "100Mi"}}}],
            "overhead": {"cpu": "10m"}}
    total, nonzero = pod_requests(spec)
    assert total.milli_cpu == 1010 and total.memory == 1024 ** 3
    # the container without memory counts as 200Mi when scoring
    assert nonzero.memory == 1024 ** 3 + 200 * 1024 ** 2
