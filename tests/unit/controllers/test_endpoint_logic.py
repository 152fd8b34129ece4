"""Pure logic of the Endpoints and EndpointSlice controllers on plain dicts."""
from __future__ import annotations

import asyncio

from controlplane.controllers import service_pods
from controlplane.controllers.endpoints import desired_subsets, truncate
from controlplane.controllers.endpointslices import plan_slices
from controlplane.controllers.own_writes import OwnWrites
from controlplane.controllers.triggertime import TriggerTimeTracker
from controlplane.controllers.workqueue import WorkQueue


def pod(name, ip=None, ready=True, ports=None, deleting=False, phase="Running", labels=None, t="2024-01-01T00:00:00Z"):
    meta = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": labels or {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:30Z"
    status = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                              "lastTransitionTime": t}]}
    if ip:
        status["podIP"] = ip
    return {"metadata": meta, "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports or []}]},
            "status": status}


def service(ports, selector=None, cluster_ip="10.96.0.10", **spec):
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "svc-uid", "labels": {"team": "a"},
                         "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"selector": selector if selector is not None else {"app": "web"}, "ports": ports,
                     "clusterIP": cluster_ip, **spec}}


HTTP = [{"name": "http", "containerPort": 8080}]


def test_find_port_numeric_named_and_missing():
    p = pod("a", "10.0.0.1", ports=HTTP + [{"name": "dns", "containerPort": 53, "protocol": "UDP"}])
    assert service_pods.find_port(p, {"port": 80, "targetPort": 9090}) == 9090
    assert service_pods.find_port(p, {"port": 80}) == 80
    assert service_pods.find_port(p, {"port": 80, "targetPort": "http"}) == 8080
    assert service_pods.find_port(p, {"port": 53, "targetPort": "dns", "protocol": "UDP"}) == 53
    assert service_pods.find_port(p, {"port": 53, "targetPort": "dns", "protocol": "TCP"}) is None
    assert service_pods.find_port(p, {"port": 80, "targetPort": "nope"}) is None


def test_which_pods_belong():
    assert not service_pods.should_pod_be_in_endpoints(pod("a"), True)  # no IP
    assert not service_pods.should_pod_be_in_endpoints(pod("a", "10.0.0.1", phase="Failed"), True)
    assert not service_pods.should_pod_be_in_endpoints(pod("a", "10.0.0.1", deleting=True), False)
    assert service_pods.should_pod_be_in_endpoints(pod("a", "10.0.0.1", deleting=True), True)
    svc = service([{"port": 80}])
    assert service_pods.selects(svc, pod("a"))
    assert not service_pods.selects(svc, pod("a", labels={"app": "db"}))
    assert not service_pods.has_selector(service([{"port": 80}], type="ExternalName"))


def test_subsets_grouped_by_port_set_and_sorted():
    svc = service([{"name": "http", "port": 80, "targetPort": "http"},
                   {"name": "m", "port": 9000, "targetPort": 9090}])
    pods = [pod("b", "10.0.0.2", ready=False, ports=HTTP), pod("a", "10.0.0.1", ports=HTTP),
            pod("c", "10.0.0.3"), pod("d", "10.0.0.4", deleting=True, ports=HTTP), pod("e")]
    subsets = desired_subsets(svc, pods)
    assert subsets == desired_subsets(svc, list(reversed(pods)))  # order-independent
    by_n = {len(s["ports"]): s for s in subsets}
    assert [a["ip"] for a in by_n[2]["addresses"]] == ["10.0.0.1"]
    assert [a["ip"] for a in by_n[2]["notReadyAddresses"]] == ["10.0.0.2"]
    assert by_n[2]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"},
                                {"name": "m", "port": 9090, "protocol": "TCP"}]
    assert [a["ip"] for a in by_n[1]["addresses"]] == ["10.0.0.3"]
    assert by_n[1]["addresses"][0]["targetRef"] == {"kind": "Pod", "namespace": "ns", "name": "c", "uid": "uid-c"}
    # publishNotReadyAddresses: everyone ready, terminating ones included
    pub = desired_subsets(service([{"port": 80}], publishNotReadyAddresses=True), pods)
    assert sorted(a["ip"] for a in pub[0]["addresses"]) == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
    # headless without ports still lists addresses; a normal service without ports lists none
    assert desired_subsets(service([], cluster_ip="None"), pods)[0]["addresses"][0]["ip"] == "10.0.0.1"
    assert desired_subsets(service([]), pods) == []


def test_truncate_keeps_ready_first():
    subsets = [{"addresses": [{"ip": f"a{i}"} for i in range(6)], "notReadyAddresses": [{"ip": "n"}]},
               {"addresses": [{"ip": f"b{i}"} for i in range(2)]}]
    assert truncate(subsets, capacity=4)
    assert [len(s.get("addresses", [])) for s in subsets] == [3, 1]
    assert "notReadyAddresses" not in subsets[0]
    assert not truncate([{"addresses": [{"ip": "x"}]}], capacity=4)


def _apply(plan, existing):
    """Play a plan against a list of slices, naming created ones."""
    by_name = {s["metadata"]["name"]: s for s in existing}
    for s in plan.delete:
        by_name.pop(s["metadata"]["name"])
    for s in plan.update:
        by_name[s["metadata"]["name"]] = s
    for i, s in enumerate(plan.create):
        s = dict(s, metadata=dict(s["metadata"], name=f"web-{len(by_name)}-{i}"))
        by_name[s["metadata"]["name"]] = s
    return list(by_name.values())


def test_slices_of_at_most_100_filled_before_new_ones():
    svc = service([{"port": 80}])
    pods = [pod(f"p{i:03}", f"10.0.{i // 250}.{i % 250 + 1}") for i in range(250)]
    plan = plan_slices(svc, pods[:30], [])
    assert [len(s["endpoints"]) for s in plan.create] == [30] and not plan.update
    slices = _apply(plan, [])
    plan = plan_slices(svc, pods, slices)
    assert len(plan.update) == 1 and len(plan.update[0]["endpoints"]) == 100
    assert sorted(len(s["endpoints"]) for s in plan.create) == [50, 100]
    slices = _apply(plan, slices)
    assert plan_slices(svc, pods, slices).empty()  # settled: nothing to write
    first = slices[0]
    kept = {e["targetRef"]["name"] for e in first["endpoints"]}
    # one pod goes unready: exactly its slice changes, and it stays in place
    victim = next(iter(sorted(kept)))
    changed = [pod(p["metadata"]["name"], p["status"]["podIP"], ready=p["metadata"]["name"] != victim)
               for p in pods]
    plan = plan_slices(svc, changed, slices)
    assert not plan.create and not plan.delete and len(plan.update) == 1
    assert plan.update[0]["metadata"]["name"] == first["metadata"]["name"]
    eps = {e["targetRef"]["name"]: e for e in plan.update[0]["endpoints"]}
    assert eps[victim]["conditions"] == {"ready": False, "serving": False, "terminating": False}


def test_terminating_endpoint_conditions_and_metadata():
    svc = service([{"name": "http", "port": 80, "targetPort": "http"}])
    [s] = plan_slices(svc, [pod("a", "10.0.0.1", deleting=True, ports=HTTP)], []).create
    assert s["endpoints"][0]["conditions"] == {"ready": False, "serving": True, "terminating": True}
    assert s["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert s["metadata"]["generateName"] == "web-" and s["addressType"] == "IPv4"
    assert s["metadata"]["labels"] == {"team": "a", "kubernetes.io/service-name": "web",
                                       "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    assert s["metadata"]["ownerReferences"][0]["uid"] == "svc-uid"


def test_placeholder_when_no_endpoints_and_foreign_slices_deleted():
    svc = service([{"port": 80}])
    plan = plan_slices(svc, [], [])
    assert len(plan.create) == 1 and plan.create[0]["endpoints"] == [] and plan.create[0]["ports"] == []
    slices = _apply(plan, [])
    assert plan_slices(svc, [], slices).empty()
    plan = plan_slices(svc, [pod("a", "10.0.0.1")], slices)
    assert len(plan.create) == 1 and plan.delete == slices  # port set differs from the placeholder's
    stale = dict(slices[0], metadata=dict(slices[0]["metadata"], ownerReferences=[{"kind": "Service", "uid": "old"}]))
    plan = plan_slices(svc, [], [stale])
    assert plan.delete == [stale] and len(plan.create) == 1


async def test_workqueue_coalesces_and_never_runs_a_key_twice_at_once():
    q = WorkQueue()
    for _ in range(5):
        q.add("a")
    q.add("b")
    assert len(q) == 2
    k = await q.get()
    assert k == "a"
    q.add("a")                       # while processing: held back, not handed out
    assert await q.get() == "b"
    got = asyncio.ensure_future(q.get())
    await asyncio.sleep(0.01)
    assert not got.done()
    q.done("a")                      # now it comes back, once
    assert await asyncio.wait_for(got, 1) == "a"
    q.done("a")
    q.done("b")
    q.add_rate_limited("c")
    assert q.retries("c") == 1
    assert await asyncio.wait_for(q.get(), 1) == "c"
    q.shutdown()


def test_trigger_time_is_the_earliest_new_change():
    tracker = TriggerTimeTracker()
    svc = service([{"port": 80}])
    p1 = pod("a", "10.0.0.1", t="2024-01-01T00:00:05Z")
    assert tracker.compute("ns", svc, [p1]) == "2024-01-01T00:00:00Z"  # the new service itself
    assert tracker.compute("ns", svc, [p1]) is None                     # nothing new
    p2 = pod("b", "10.0.0.2", t="2024-01-01T00:00:09Z")
    p1b = pod("a", "10.0.0.1", t="2024-01-01T00:00:07Z")
    assert tracker.compute("ns", svc, [p1b, p2]) == "2024-01-01T00:00:07Z"


class _FakeInformer:
    def __init__(self):
        self.cache = {}


def test_own_writes_hide_a_lagging_cache():
    inf = _FakeInformer()
    own = OwnWrites(inf)
    old = {"metadata": {"namespace": "ns", "name": "x", "resourceVersion": "5"}}
    inf.cache[("ns", "x")] = old
    new = {"metadata": {"namespace": "ns", "name": "x", "resourceVersion": "9"}}
    own.wrote(new)
    assert own.get("ns", "x") is new
    inf.cache[("ns", "x")] = dict(new)
    assert own.get("ns", "x") == new and own.get("ns", "x") is inf.cache[("ns", "x")]
    own.deleted(new)
    assert own.get("ns", "x") is None and own.items() == []
    del inf.cache[("ns", "x")]
    again = {"metadata": {"namespace": "ns", "name": "x", "resourceVersion": "12"}}
    inf.cache[("ns", "x")] = again  # recreated later by someone: visible
    assert own.get("ns", "x") is again
    own.wrote({"metadata": {"namespace": "ns", "name": "y", "resourceVersion": "20"}})
    own.observed_delete({"metadata": {"namespace": "ns", "name": "y", "resourceVersion": "21"}})
    assert own.get("ns", "y") is None
