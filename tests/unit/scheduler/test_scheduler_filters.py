"""Each filter plugin on its own: the verdict and Kubernetes' reason string."""
from __future__ import annotations

import pytest
from sched_helpers import node_info, pod

from controlplane.scheduler.framework import UNRESOLVABLE, UNSCHEDULABLE
from controlplane.scheduler.plugins import (NodeAffinity, NodeName, NodePorts, NodeResourcesFit,
                                            NodeUnschedulable, TaintToleration, default_filters)
from controlplane.scheduler.plugins.taint_toleration import tolerates


# ---- NodeUnschedulable -------------------------------------------------------

def test_node_unschedulable_rejects_cordoned_node():
    st = NodeUnschedulable().filter(pod(), node_info(unschedulable=True))
    assert st is not None and st.code == UNRESOLVABLE
    assert st.reasons == ("node(s) were unschedulable",)
    assert NodeUnschedulable().filter(pod(), node_info()) is None


def test_node_unschedulable_passes_pod_tolerating_the_unschedulable_taint():
    tol = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]
    assert NodeUnschedulable().filter(pod(tolerations=tol), node_info(unschedulable=True)) is None


# ---- NodeName -------------------------------------------------------------------

def test_node_name_matches_only_the_named_node():
    p = pod(node_name="n2")
    assert NodeName().applies(p)
    assert NodeName().filter(p, node_info(name="n2")) is None
    st = NodeName().filter(p, node_info(name="n1"))
    assert st is not None and st.reasons == ("node(s) didn't match the requested node name",)
    assert not NodeName().applies(pod())


# ---- TaintToleration -------------------------------------------------------------

@pytest.mark.parametrize("effect", ["NoSchedule", "NoExecute"])
def test_taint_without_toleration_rejects(effect):
    n = node_info(taints=[{"key": "dedicated", "value": "gpu", "effect": effect}])
    st = TaintToleration().filter(pod(), n)
    assert st is not None and st.code == UNRESOLVABLE
    assert st.reasons == ("node(s) had untolerated taint {dedicated: gpu}",)


def test_prefer_no_schedule_taint_does_not_filter():
    n = node_info(taints=[{"key": "dedicated", "value": "gpu", "effect": "PreferNoSchedule"}])
    assert TaintToleration().filter(pod(), n) is None


@pytest.mark.parametrize("toleration,ok", [
    ({"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}, True),
    ({"key": "dedicated", "value": "gpu"}, True),                      # Equal is the default; any effect
    ({"key": "dedicated", "operator": "Equal", "value": "cpu"}, False),  # wrong value
    ({"key": "dedicated", "operator": "Exists"}, True),
    ({"key": "other", "operator": "Exists"}, False),
    ({"operator": "Exists"}, True),                                    # empty key + Exists: everything
    ({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, False),  # wrong effect
])
def test_toleration_matching(toleration, ok):
    taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    assert tolerates(toleration, taint) is ok
    st = TaintToleration().filter(pod(tolerations=[toleration]), node_info(taints=[taint]))
    assert (st is None) is ok


@pytest.mark.parametrize("ready,taint", [("False", "node.kubernetes.io/not-ready"),
                                         (None, "node.kubernetes.io/not-ready"),
                                         ("Unknown", "node.kubernetes.io/unreachable")])
def test_node_not_ready_rejects_like_its_taint(ready, taint):
    st = TaintToleration().filter(pod(), node_info(ready=ready))
    assert st is not None and st.reasons == (f"node(s) had untolerated taint {{{taint}: }}",)
    tolerant = pod(tolerations=[{"key": taint, "operator": "Exists"}])
    assert TaintToleration().filter(tolerant, node_info(ready=ready)) is None


def test_ready_node_without_taints_passes():
    assert TaintToleration().filter(pod(), node_info()) is None


# ---- NodeAffinity ---------------------------------------------------------------

REASON_AFFINITY = "node(s) didn't match Pod's node affinity/selector"


def test_node_selector():
    p = pod(node_selector={"disk": "ssd"})
    assert NodeAffinity().filter(p, node_info(labels={"disk": "ssd", "x": "y"})) is None
    st = NodeAffinity().filter(p, node_info(labels={"disk": "hdd"}))
    assert st is not None and st.code == UNRESOLVABLE and st.reasons == (REASON_AFFINITY,)
    assert NodeAffinity().filter(p, node_info()) is not None
    assert not NodeAffinity().applies(pod())


@pytest.mark.parametrize("expr,labels,ok", [
    ({"key": "zone", "operator": "In", "values": ["a", "b"]}, {"zone": "b"}, True),
    ({"key": "zone", "operator": "In", "values": ["a", "b"]}, {"zone": "c"}, False),
    ({"key": "zone", "operator": "In", "values": ["a"]}, {}, False),
    ({"key": "zone", "operator": "NotIn", "values": ["a"]}, {"zone": "b"}, True),
    ({"key": "zone", "operator": "NotIn", "values": ["a"]}, {}, True),
    ({"key": "zone", "operator": "NotIn", "values": ["a"]}, {"zone": "a"}, False),
    ({"key": "gpu", "operator": "Exists"}, {"gpu": ""}, True),
    ({"key": "gpu", "operator": "Exists"}, {}, False),
    ({"key": "gpu", "operator": "DoesNotExist"}, {}, True),
    ({"key": "gpu", "operator": "DoesNotExist"}, {"gpu": "1"}, False),
    ({"key": "cores", "operator": "Gt", "values": ["4"]}, {"cores": "8"}, True),
    ({"key": "cores", "operator": "Gt", "values": ["4"]}, {"cores": "4"}, False),
    ({"key": "cores", "operator": "Lt", "values": ["4"]}, {"cores": "2"}, True),
    ({"key": "cores", "operator": "Lt", "values": ["4"]}, {"cores": "x"}, False),
])
def test_required_affinity_operators(expr, labels, ok):
    p = pod(affinity_terms=[{"matchExpressions": [expr]}])
    assert (NodeAffinity().filter(p, node_info(labels=labels)) is None) is ok


def test_affinity_terms_are_ored_and_expressions_anded():
    terms = [{"matchExpressions": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]},
             {"matchExpressions": [{"key": "c", "operator": "Exists"}]}]
    p = pod(affinity_terms=terms)
    assert NodeAffinity().filter(p, node_info(labels={"a": "", "b": ""})) is None
    assert NodeAffinity().filter(p, node_info(labels={"c": ""})) is None
    assert NodeAffinity().filter(p, node_info(labels={"a": ""})) is not None


def test_affinity_match_fields_and_empty_term():
    p = pod(affinity_terms=[{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}])
    assert NodeAffinity().filter(p, node_info(name="n7")) is None
    assert NodeAffinity().filter(p, node_info(name="n8")) is not None
    assert NodeAffinity().filter(pod(affinity_terms=[{}]), node_info()) is not None


def test_selector_and_affinity_must_both_match():
    p = pod(node_selector={"disk": "ssd"},
            affinity_terms=[{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}])
    assert NodeAffinity().filter(p, node_info(labels={"disk": "ssd", "zone": "a"})) is None
    assert NodeAffinity().filter(p, node_info(labels={"disk": "ssd", "zone": "b"})) is not None
    assert NodeAffinity().filter(p, node_info(labels={"zone": "a"})) is not None


# ---- NodeResourcesFit ------------------------------------------------------------

def test_resources_fit_exactly():
    n = node_info(pod(cpu="1500m", memory="1Gi"), cpu="2", memory="2Gi")
    assert NodeResourcesFit().filter(pod(cpu="500m", memory="1Gi"), n) is None


def test_insufficient_cpu_and_memory_are_both_reported():
    n = node_info(pod(cpu="1500m", memory="1Gi"), cpu="2", memory="2Gi")
    st = NodeResourcesFit().filter(pod(cpu="501m", memory="1025Mi"), n)
    assert st is not None and st.code == UNSCHEDULABLE
    assert st.reasons == ("Insufficient cpu", "Insufficient memory")


def test_too_many_pods():
    n = node_info(pod(), pod(), pods="2")
    st = NodeResourcesFit().filter(pod(), n)
    assert st is not None and st.reasons == ("Too many pods",)
    assert NodeResourcesFit().filter(pod(), node_info(pod(), pods="2")) is None


def test_extended_resource():
    n = node_info(extra={"example.com/gpu": "1"})
    assert NodeResourcesFit().filter(pod(extra={"example.com/gpu": "1"}), n) is None
    st = NodeResourcesFit().filter(pod(extra={"example.com/gpu": "2"}), n)
    assert st is not None and st.reasons == ("Insufficient example.com/gpu",)
    st = NodeResourcesFit().filter(pod(extra={"example.com/fpga": "1"}), n)
    assert st is not None and st.reasons == ("Insufficient example.com/fpga",)


def test_zero_request_pod_fits_an_overcommitted_node():
    n = node_info(pod(cpu="3"), cpu="2")
    assert NodeResourcesFit().filter(pod(), n) is None
    assert NodeResourcesFit().filter(pod(cpu="1m"), n) is not None


def test_removing_a_pod_frees_its_requests():
    big = pod(cpu="2")
    n = node_info(big, cpu="2")
    assert NodeResourcesFit().filter(pod(cpu="1"), n) is not None
    n.remove_pod(big.uid)
    assert NodeResourcesFit().filter(pod(cpu="1"), n) is None


# ---- NodePorts ----------------------------------------------------------------------

REASON_PORTS = "node(s) didn't have free ports for the requested pod ports"


@pytest.mark.parametrize("used,want,conflict", [
    (8080, 8080, True),
    (8080, 8081, False),
    (("10.0.0.1", "TCP", 8080), ("10.0.0.2", "TCP", 8080), False),  # other address
    (("10.0.0.1", "TCP", 8080), ("10.0.0.1", "TCP", 8080), True),
    (("10.0.0.1", "TCP", 8080), 8080, True),                         # wildcard vs a specific address
    (8080, ("10.0.0.1", "TCP", 8080), True),
    (("0.0.0.0", "UDP", 53), ("0.0.0.0", "TCP", 53), False),          # other protocol
])
def test_host_port_conflicts(used, want, conflict):
    n = node_info(pod(host_ports=[used]))
    p = pod(host_ports=[want])
    assert NodePorts().applies(p)
    st = NodePorts().filter(p, n)
    assert (st is not None) is conflict
    if conflict:
        assert st.code == UNSCHEDULABLE and st.reasons == (REASON_PORTS,)


def test_host_port_freed_when_pod_leaves():
    holder = pod(host_ports=[8080])
    n = node_info(holder)
    n.remove_pod(holder.uid)
    assert NodePorts().filter(pod(host_ports=[8080]), n) is None
    assert not NodePorts().applies(pod())


def test_default_filter_order_matches_kubernetes():
    assert [f.name for f in default_filters()] == [
        "NodeUnschedulable", "NodeName", "TaintToleration", "NodeAffinity", "NodePorts", "NodeResourcesFit"]
