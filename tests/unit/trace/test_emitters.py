"""What each component puts on its trace events: the scheduler's filter summary, the
endpointslice controller's membership changes, the agent's and the proxy's events."""
from __future__ import annotations

from typing import Any

from agent.events import EventRecorder
from agent.proxy.trace_events import programmed_events
from agent.trace_events import PodTraceEvents
from controlplane.controllers.endpointslices import pod_membership_changes
from controlplane.scheduler.events import trace_details
from controlplane.scheduler.framework import Diagnosis, Status
from kubeling.timefmt import parse_time


def test_scheduler_details_count_the_nodes_filtered_out_and_why() -> None:
    d = Diagnosis(4)
    d.node_statuses = {"a": Status("Unschedulable", ("Insufficient cpu",), "NodeResourcesFit"),
                       "b": Status("Unschedulable", ("Insufficient cpu", "Insufficient memory"), "NodeResourcesFit"),
                       "c": Status("Unschedulable", ("node(s) had untolerated taint {x: }",), "TaintToleration")}
    got = trace_details(d)
    assert got["trace.kubeling.io/nodes"] == "4"
    assert got["trace.kubeling.io/filtered-out"] == \
        "3: 2 Insufficient cpu, 1 Insufficient memory, 1 node(s) had untolerated taint {x: }"
    assert trace_details(Diagnosis(2))["trace.kubeling.io/filtered-out"] == "0"


def _slice(*eps: tuple[str, bool]) -> dict[str, Any]:
    return {"metadata": {"name": "s"}, "endpoints": [
        {"addresses": ["10.0.0.1"], "conditions": {"ready": ready},
         "targetRef": {"kind": "Pod", "namespace": "ns", "name": f"p-{uid}", "uid": uid}} for uid, ready in eps]}


def test_membership_changes_are_pods_whose_ready_endpoint_came_or_went() -> None:
    before = [_slice(("a", True), ("b", True), ("c", False))]
    after = [_slice(("a", True), ("b", False), ("c", True), ("d", True))]
    got = {(ref["uid"], reason) for ref, reason, _ in pod_membership_changes(before, after)}
    assert got == {("c", "AddedToEndpoints"), ("d", "AddedToEndpoints"), ("b", "RemovedFromEndpoints")}
    assert pod_membership_changes(after, after) == []


class Recorded(EventRecorder):
    """The real recorder's event objects, captured instead of sent."""

    def __init__(self) -> None:
        super().__init__(client=None, node_name="n1")  # type: ignore[arg-type]
        self.sent: list[dict[str, Any]] = []

        class Client:
            async def create(inner, _res: Any, body: dict[str, Any], _ns: str) -> None:
                self.sent.append(body)

            async def patch(inner, *_: Any) -> None:
                raise AssertionError("trace events are never folded")
        self.client = Client()  # type: ignore[assignment]


POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
       "spec": {"containers": [{"name": "web", "readinessProbe": {"httpGet": {"port": 80}}}]}}


async def test_agent_events_carry_the_time_of_the_step_and_the_cni_add() -> None:
    rec = Recorded()

    class Cni:
        def take_add_time(self, sid: str) -> tuple[float, float, str, list[str]] | None:
            return (1000.25, 1000.5, "kubeling", ["kubeling-bridge"]) if sid == "sb1" else None

    class Network:
        cni = Cni()

    class DockerRuntime:
        network = Network()
    trace = PodTraceEvents(rec, DockerRuntime(), "n1")
    trace.accepted(POD)
    trace.accepted(POD)   # once per pod
    trace.sandbox_created(POD, "sb1", 1000.0, "10.244.0.7", host_network=False)
    ready, not_ready = {"conditions": [{"type": "Ready", "status": "True"}]}, {"conditions": []}
    trace.status_written("u1", "ns", "p", None, ready)   # not got ready here (an agent restart): no event
    trace.status_computed(POD, not_ready, ready)
    trace.status_computed(POD, ready, ready)
    trace.status_written("u1", "ns", "p", not_ready, not_ready)
    trace.status_written("u1", "ns", "p", not_ready, ready)
    trace.status_written("u1", "ns", "p", not_ready, ready)
    await rec.drain()
    by = {e["reason"]: e for e in rec.sent}
    reasons = [e["reason"] for e in rec.sent]
    assert reasons == ["Accepted", "SandboxCreated", "NetworkReady", "ContainersReady", "Ready"]
    assert parse_time(by["SandboxCreated"]["eventTime"]).timestamp() == 1000.25
    net = by["NetworkReady"]
    assert parse_time(net["eventTime"]).timestamp() == 1000.5
    assert net["metadata"]["annotations"] == {"trace.kubeling.io/ip": "10.244.0.7",
                                              "trace.kubeling.io/cni": "kubeling (kubeling-bridge)",
                                              "trace.kubeling.io/cni-add-seconds": "0.250000"}
    assert by["SandboxCreated"]["message"].endswith("(docker runtime)")
    assert by["ContainersReady"]["message"] == "Containers ready: readiness probe of web passed"
    assert by["Ready"]["message"] == "Ready reported to the API server"
    assert all(e["eventTime"].count(".") == 1 and e["involvedObject"]["uid"] == "u1" for e in rec.sent)


async def test_proxy_events_one_per_service_with_or_without_a_trigger_time() -> None:
    rec = Recorded()
    report = programmed_events(rec, "n1")
    report({("a", "web"), ("b", "web")}, {("a", "web"): 100.0}, 100.5)
    await rec.drain()
    assert len(rec.sent) == 2   # same message for both services: never folded into one
    by_ns = {e["involvedObject"]["namespace"]: e for e in rec.sent}
    assert by_ns["a"]["message"] == "Service rules programmed on node n1, 0.500s after the endpoints changed"
    assert by_ns["a"]["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"] \
        == "1970-01-01T00:01:40.000000Z"
    assert by_ns["b"]["message"] == "Service rules programmed on node n1"
    assert all(e["involvedObject"]["kind"] == "Service" and e["reason"] == "RulesProgrammed" for e in rec.sent)
