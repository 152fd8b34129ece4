"""PodSyncer, PodWorkers, StatusManager and Pleg on the in-memory runtime: the
orderings that matter (a deletion cancels a sync under way, a shorter grace period
reaches a kill under way and a longer one never lengthens it, the preStop hook runs
once, no status written after the confirming delete, the PLEG names the pod)."""
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
from tests.unit.agent.waiting import wait_for


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
        self.workers = PodWorkers(self.syncer, self.pods.get)
        self.writer: asyncio.Task | None = None

    def start(self) -> None:
        self.writer = asyncio.create_task(self.status.run())

    async def stop(self) -> None:
        await self.workers.stop()
        if self.writer is not None:
            self.writer.cancel()
            await asyncio.gather(self.writer, return_exceptions=True)

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
    n.start()
    yield n
    await n.stop()


async def test_pod_runs_with_sandbox_ip_in_status(node):
    node.put(make_pod())
    await wait_for(lambda: any(w[0] == "patch-status" and w[2]["status"].get("phase") == "Running"
                               for w in node.client.writes), timeout=5)
    status = [w for w in node.client.writes if w[0] == "patch-status"][-1][2]["status"]
    sandbox = next(r for r in node.runtime.records.values() if r.is_sandbox)
    assert status["podIP"] == node.runtime.sandbox_ips[sandbox.id][0]
    assert {r.name for r in node.running()} == {"POD", "app"}


def stop_timeouts(node: Node, name: str) -> list[int]:
    """The timeouts of the stops the containers named `name` got, in order."""
    ids = {cid for cid, cfg in node.runtime.configs.items() if cfg.name == name}
    return [c[2] for c in node.runtime.calls_of("stop_container") if c[1] in ids]


async def test_delete_cancels_a_sync_held_by_an_image_pull(node):
    node.runtime.images.clear()
    node.runtime.pull_gate = asyncio.Event()   # never set: the pull would hold the sync for good
    pod = make_pod()
    node.put(pod)
    await wait_for(lambda: node.runtime.calls_of("pull"), timeout=5)
    sandbox = next(r.id for r in node.runtime.records.values() if r.is_sandbox)
    node.put(deleted(pod, 5))
    # The sync is cancelled at once: the kill, teardown and confirmation follow while
    # the pull is still stuck.
    await wait_for(lambda: "u1" not in node.workers, timeout=5)
    assert not node.runtime.pull_gate.is_set()
    assert node.client.kinds().count("delete") == 1
    assert not node.runtime.calls_of("create_container"), "the cancelled sync made nothing more"
    assert ("remove_sandbox", sandbox) in node.runtime.calls
    assert not node.runtime.records, "everything of the pod is removed"


async def test_a_sandbox_being_made_when_the_sync_is_cancelled_is_torn_down(node):
    node.runtime.sandbox_gate = asyncio.Event()
    pod = make_pod()
    node.put(pod)
    await wait_for(lambda: node.runtime.calls_of("run_sandbox"), timeout=5)
    node.put(deleted(pod, 5))
    await asyncio.sleep(0.05)
    # The sandbox call runs to its end before the kill lists the pod: nothing it makes
    # can appear after the teardown looked.
    assert "delete" not in node.client.kinds() and "u1" in node.workers
    node.runtime.sandbox_gate.set()
    await wait_for(lambda: "u1" not in node.workers, timeout=5)
    made = [c for c in node.runtime.calls if c[0] == "remove_sandbox"]
    assert len(made) == 1, "the sandbox that was made is removed"
    assert not node.runtime.records
    assert not node.runtime.calls_of("create_container")
    assert node.client.kinds().count("delete") == 1


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


async def test_a_shorter_grace_period_reaches_the_kill_under_way(node):
    pod = make_pod(grace=30)
    pod["spec"]["containers"][0]["lifecycle"] = {"preStop": {"exec": {"command": ["/bin/stop"]}}}
    node.runtime.ignore_sigterm = {"app"}   # only SIGKILL ends it
    node.put(pod)
    await wait_for(lambda: len(node.running()) == 2, timeout=5)
    node.put(deleted(pod, 30))
    await wait_for(lambda: stop_timeouts(node, "app"), timeout=5)
    assert len(node.running()) == 2, "the first stop waits out its 30 s"
    # kubectl delete --grace-period=1 while the 30 s kill is under way.
    node.put(deleted(pod, 1))
    await wait_for(lambda: "u1" not in node.workers, timeout=10)
    first, *rest = stop_timeouts(node, "app")
    assert 2 <= first <= 30 and rest == [1], stop_timeouts(node, "app")
    assert len(node.runtime.calls_of("exec")) == 1, "the preStop hook runs once"
    assert node.client.kinds().count("delete") == 1
    assert not node.runtime.records


async def test_a_shorter_grace_period_cuts_a_pre_stop_hook_short(node):
    hook_started = asyncio.Event()

    async def hang(container_id: str, cmd: list[str]) -> tuple[int, bytes]:
        hook_started.set()
        await asyncio.Event().wait()   # a hook that would take the whole grace period
        return 0, b""
    node.runtime.exec_handler = hang
    pod = make_pod(grace=30)
    pod["spec"]["containers"][0]["lifecycle"] = {"preStop": {"exec": {"command": ["/bin/stop"]}}}
    node.runtime.ignore_sigterm = {"app"}
    node.put(pod)
    await wait_for(lambda: len(node.running()) == 2, timeout=5)
    node.put(deleted(pod, 30))
    await asyncio.wait_for(hook_started.wait(), 5)
    node.put(deleted(pod, 1))
    await wait_for(lambda: "u1" not in node.workers, timeout=10)
    assert len(node.runtime.calls_of("exec")) == 1
    assert stop_timeouts(node, "app") and all(t <= 1 for t in stop_timeouts(node, "app"))
    assert not node.runtime.records


async def test_a_longer_grace_period_never_lengthens_the_kill(node):
    pod = make_pod(grace=30)
    node.runtime.ignore_sigterm = {"app"}
    node.put(pod)
    await wait_for(lambda: len(node.running()) == 2, timeout=5)
    node.put(deleted(pod, 2))
    await wait_for(lambda: stop_timeouts(node, "app"), timeout=5)
    node.put(deleted(pod, 30))
    state = node.workers.state("u1")
    assert state is not None and state.terminating and state.grace.seconds == 2
    await wait_for(lambda: "u1" not in node.workers, timeout=10)
    assert stop_timeouts(node, "app") == [2]
    assert node.client.kinds().count("delete") == 1


async def test_a_pod_force_deleted_during_its_kill_is_killed_sooner(node):
    pod = make_pod(grace=30)
    node.runtime.ignore_sigterm = {"app"}
    node.put(pod)
    await wait_for(lambda: len(node.running()) == 2, timeout=5)
    node.put(deleted(pod, 30))
    await wait_for(lambda: stop_timeouts(node, "app"), timeout=5)
    del node.pods["u1"]            # gone from the API (a force delete)
    node.workers.update("u1")
    await wait_for(lambda: "u1" not in node.workers, timeout=10)
    assert stop_timeouts(node, "app") == [30, 1]
    assert not node.runtime.records


async def test_deletion_cancels_a_liveness_kill_and_the_hook_still_runs_once(node):
    hook_started = asyncio.Event()

    async def hang(container_id: str, cmd: list[str]) -> tuple[int, bytes]:
        hook_started.set()
        await asyncio.Event().wait()
        return 0, b""
    node.runtime.exec_handler = hang
    pod = make_pod(grace=30)
    pod["spec"]["containers"][0]["lifecycle"] = {"preStop": {"exec": {"command": ["/bin/stop"]}}}
    node.put(pod)
    await wait_for(lambda: len(node.running()) == 2, timeout=5)
    node.workers.kill_container("u1", "app", "Container app failed liveness probe, will be restarted")
    await asyncio.wait_for(hook_started.wait(), 5)
    node.put(deleted(pod, 0))
    await wait_for(lambda: "u1" not in node.workers, timeout=10)
    assert len(node.runtime.calls_of("exec")) == 1
    assert not [c for c in node.runtime.calls_of("create_container") if c[3] == 1], "no restart"
    assert not node.runtime.records
    assert node.client.kinds().count("delete") == 1


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


async def test_pleg_reports_only_the_pods_whose_containers_changed(node):
    node.put(make_pod("u1"))
    node.put(make_pod("u2"))
    await wait_for(lambda: len(node.running("u1")) == 2 and len(node.running("u2")) == 2, timeout=5)
    changed: list[str] = []
    pleg = Pleg(node.runtime, changed.append)
    await pleg.relist()
    changed.clear()
    await pleg.relist()
    assert changed == [], "nothing changed: nothing reported"
    gone = next(r.id for r in node.running("u2") if not r.is_sandbox)
    await node.runtime.stop_container(gone, 0)
    await node.runtime.remove_container(gone)   # stopped and removed between two relists
    await pleg.relist()
    assert changed == ["u2"]
