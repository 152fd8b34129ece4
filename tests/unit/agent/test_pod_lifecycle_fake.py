"""PodSyncer, PodWorkers, StatusManager and Pleg on the in-memory runtime: the
orderings that matter (a kill during a sync, a kill held open while the pod is
updated, no status written after the confirming delete)."""
from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from agent.events import EventRecorder
from agent.pleg import Pleg
from agent.pod_sync import PodSyncer, SyncConfig
from agent.pod_workers import PodWorkers
from agent.probe_results import ProbeResults
from agent.runtime import types as t
from agent.runtime.fake import FakeRuntime
from agent.status_manager import StatusManager


async def wait_for(check: Any, timeout: float = 5) -> Any:
    """Await until check() is truthy (the loop keeps running the workers meanwhile)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        got = check()
        if got:
            return got
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s")


class FakeClient:
    """Records what the agent writes to the API; every write succeeds."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, Any, ...]] = []

    async def patch(self, res: Any, name: str, body: dict[str, Any], ns: str | None = None,
                    subresource: str | None = None) -> dict[str, Any]:
        if res.plural == "pods":
            self.writes.append(("patch-status", name, copy.deepcopy(body)))
        return body

    async def delete(self, res: Any, name: str, ns: str | None = None, **kw: Any) -> None:
        self.writes.append(("delete", name, kw))

    async def create(self, res: Any, body: dict[str, Any], ns: str | None = None) -> dict[str, Any]:
        return body

    def kinds(self) -> list[str]:
        return [w[0] for w in self.writes]


def make_pod(uid: str = "u1", grace: int = 30, image: str = "busybox") -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": uid, "resourceVersion": "1"},
            "spec": {"nodeName": "n1", "restartPolicy": "Always", "terminationGracePeriodSeconds": grace,
                     "containers": [{"name": "app", "image": image}]},
            "status": {"phase": "Pending"}}


def deleted(pod: dict[str, Any], grace: int) -> dict[str, Any]:
    out = copy.deepcopy(pod)
    out["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    out["metadata"]["deletionGracePeriodSeconds"] = grace
    return out


class Node:
    """The agent's pod lifecycle wired over the fakes, as agent.Agent wires it."""

    def __init__(self, tmp_path: Any) -> None:
        self.runtime = FakeRuntime()
        self.runtime.images["busybox"] = "sha256:busybox"
        self.client = FakeClient()
        self.status = StatusManager(self.client)  # type: ignore[arg-type]
        self.syncer = PodSyncer(SyncConfig("n1", "192.0.2.1", str(tmp_path)), self.runtime, self.status,
                                EventRecorder(self.client, "n1"), ProbeResults(),  # type: ignore[arg-type]
                                self.get_configmap, self.runtime.network_ready)
        self.pods: dict[str, dict[str, Any]] = {}
        self.workers = PodWorkers(self.syncer.sync, self.pods.get, self.syncer.teardown,
                                  self.syncer.kill_container)

    async def get_configmap(self, ns: str, name: str) -> dict[str, Any] | None:
        return None

    def put(self, pod: dict[str, Any]) -> None:
        self.pods[pod["metadata"]["uid"]] = pod
        self.workers.update(pod["metadata"]["uid"])

    def running(self, uid: str = "u1") -> list[t.ContainerRecord]:
        return [r for r in self.runtime.records.values() if r.pod_uid == uid and r.running]


@pytest.fixture
async def node(tmp_path):
    n = Node(tmp_path)
    yield n
    await n.workers.stop()


async def test_pod_runs_with_sandbox_ip_in_status(node):
    node.put(make_pod())
    await wait_for(lambda: any(w[0] == "patch-status" and w[2]["status"].get("phase") == "Running"
                               for w in node.client.writes), timeout=5)
    status = [w for w in node.client.writes if w[0] == "patch-status"][-1][2]["status"]
    sandbox = next(r for r in node.runtime.records.values() if r.is_sandbox)
    assert status["podIP"] == node.runtime.sandbox_ips[sandbox.id][0]
    assert {r.name for r in node.running()} == {"POD", "app"}


async def test_delete_during_a_sync_kills_after_the_sync_and_confirms_once(node):
    node.runtime.images.clear()
    node.runtime.pull_gate = asyncio.Event()
    pod = make_pod()
    node.put(pod)
    await wait_for(lambda: node.runtime.calls_of("pull"), timeout=5)
    # The pod is deleted while its sync waits on the image pull.
    node.put(deleted(pod, 5))
    await asyncio.sleep(0.05)
    assert not node.runtime.calls_of("stop_container")
    node.runtime.pull_gate.set()
    await wait_for(lambda: "delete" in node.client.kinds(), timeout=5)
    await wait_for(lambda: "u1" not in node.workers, timeout=5)
    assert node.client.kinds().count("delete") == 1
    assert not node.runtime.records, "everything of the pod is removed"
    stops = node.runtime.calls_of("stop_container")
    assert stops and all(c[2] == 5 for c in stops), "the deletion's grace period is used"


async def test_no_status_is_written_after_the_confirming_delete(node):
    pod = make_pod()
    node.put(pod)
    await wait_for(lambda: len(node.running()) == 2, timeout=5)
    node.put(deleted(pod, 0))
    await wait_for(lambda: "delete" in node.client.kinds(), timeout=5)
    # Late asks (PLEG, probes, the resync timer) for the uid after the delete.
    node.workers.update("u1")
    await wait_for(lambda: "u1" not in node.workers, timeout=5)
    kinds = node.client.kinds()
    assert "patch-status" not in kinds[kinds.index("delete"):]


async def test_update_during_a_kill_reaches_the_pod_after_the_kill(node):
    pod = make_pod(grace=30)
    node.put(pod)
    await wait_for(lambda: len(node.running()) == 2, timeout=5)
    node.runtime.stop_gate = asyncio.Event()
    node.put(deleted(pod, 30))
    await wait_for(lambda: node.runtime.calls_of("stop_container"), timeout=5)
    # A shorter grace period arrives while the first kill is held open: the worker
    # folds it into one more pass, which runs once the kill returns.
    node.put(deleted(pod, 1))
    node.runtime.stop_gate.set()
    await wait_for(lambda: "u1" not in node.workers, timeout=5)
    assert node.client.kinds().count("delete") == 1
    assert node.runtime.calls_of("stop_container")[0][2] == 30
    assert not node.runtime.records


async def test_teardown_of_a_pod_that_left_the_api(node):
    pod = make_pod()
    node.put(pod)
    await wait_for(lambda: len(node.running()) == 2, timeout=5)
    sandbox = next(r.id for r in node.runtime.records.values() if r.is_sandbox)
    del node.pods["u1"]
    node.workers.update("u1")
    await wait_for(lambda: "u1" not in node.workers, timeout=5)
    assert not node.runtime.records
    assert ("remove_sandbox", sandbox) in node.runtime.calls
    assert node.status.last("u1") is None


async def test_pleg_reports_the_pod_of_a_container_that_died(node):
    pod = make_pod()
    node.put(pod)
    await wait_for(lambda: len(node.running()) == 2, timeout=5)
    changed: list[str] = []
    pleg = Pleg(node.runtime, changed.append)
    await pleg.relist()
    assert pleg.pod_uids() == {"u1"}
    changed.clear()
    app = next(r.id for r in node.running() if not r.is_sandbox)
    node.runtime.exit(app, 1)
    await pleg.relist()
    assert changed == ["u1"]
    events = asyncio.create_task(pleg.run_events())
    try:
        changed.clear()
        node.runtime.exit(next(r.id for r in node.running()), 0)
        await wait_for(lambda: "u1" in changed, timeout=5)
    finally:
        events.cancel()
        await asyncio.gather(events, return_exceptions=True)


async def test_liveness_kills_run_in_the_workers_turn_with_one_pre_stop(node):
    pod = make_pod()
    pod["spec"]["containers"][0]["lifecycle"] = {"preStop": {"exec": {"command": ["/bin/stop"]}}}
    node.put(pod)
    await wait_for(lambda: len(node.running()) == 2, timeout=5)
    first = next(r for r in node.running() if not r.is_sandbox)
    # Liveness and startup fail together: two asks for the same container fold into one kill.
    node.workers.kill_container("u1", "app", "Container app failed liveness probe, will be restarted")
    node.workers.kill_container("u1", "app", "Container app failed startup probe, will be restarted")
    await wait_for(lambda: any(r.name == "app" and r.attempt == 1 for r in node.running()), timeout=5)
    assert len(node.runtime.calls_of("exec")) == 1, "the preStop hook runs once"
    assert node.runtime.records[first.id].state == "exited"
    kill_at = next(i for i, c in enumerate(node.runtime.calls) if c[:2] == ("stop_container", first.id))
    creates = [i for i, c in enumerate(node.runtime.calls) if c[0] == "create_container" and c[3] == 1]
    assert creates and creates[0] > kill_at, "the restart comes after the kill, in the worker's next pass"


async def test_sandbox_failures_back_off_until_the_network_is_ready(node):
    node.runtime.network_is_ready = False
    pod = make_pod()
    first = await node.syncer.sync(pod)
    assert first.resync_after is not None and 1.0 <= first.resync_after < 1.5
    again = await node.syncer.sync(pod)   # within the back-off: no second try
    assert again.resync_after is not None and again.resync_after <= first.resync_after
    assert not node.runtime.calls_of("run_sandbox")
    node.runtime.network_is_ready = True
    node.syncer.sandbox_retry.succeeded("u1/POD")   # as if the back-off had passed
    await node.syncer.sync(pod)
    assert node.runtime.calls_of("run_sandbox")
    await node.syncer.teardown("u1")
    assert node.syncer.sandbox_retry.waiting("u1/POD") is None


async def test_image_pull_failure_backs_off_per_image(node):
    node.runtime.images.clear()
    node.runtime.pull_error = "no registry"
    pod = make_pod()
    result = await node.syncer.sync(pod)
    assert result.resync_after is not None and result.resync_after > 9
    await node.syncer.sync(pod)
    assert len(node.runtime.calls_of("pull")) == 1, "no pull while backing off"
    await node.syncer.teardown("u1")
    assert node.syncer.image_retry.waiting("u1/app/busybox") is None
