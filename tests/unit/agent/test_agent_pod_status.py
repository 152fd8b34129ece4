from agent.pod_status import PodRuntimeView, phase, pod_status
from agent.probe_results import ProbeResults
from agent.runtime.types import ContainerRecord


def rec(name, attempt=0, state="running", code=None, sandbox=False, oom=False, cid=None):
    return ContainerRecord(id=cid or f"{name}-{attempt}", name=name, pod_name="p", pod_namespace="ns",
                           pod_uid="u", attempt=attempt, is_sandbox=sandbox, sandbox_id="sb", state=state,
                           exit_code=code, oom_killed=oom, image_id="sha256:abc",
                           started_at=1704067200.123456,  # 2024-01-01T00:00:00.123456Z
                           finished_at=1704067205.0 if state == "exited" else 0.0)


def pod(policy="Always", containers=("a",), init=(), status=None, probe=False):
    cs = [{"name": n, "image": "busybox"} for n in containers]
    if probe:
        cs[0]["readinessProbe"] = {"exec": {"command": ["true"]}}
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"restartPolicy": policy, "containers": cs,
                     "initContainers": [{"name": n, "image": "busybox"} for n in init]},
            "status": status or {"phase": "Pending", "qosClass": "BestEffort"}}


SB = rec("POD", sandbox=True, cid="sb")


def conds(st):
    return {c["type"]: c["status"] for c in st["conditions"]}


def test_running_and_ready():
    st = pod_status(pod(), PodRuntimeView([SB, rec("a")], SB, ["10.0.0.2"]), ProbeResults(), "1.2.3.4")
    assert st["phase"] == "Running" and st["podIP"] == "10.0.0.2" and st["hostIP"] == "1.2.3.4"
    assert conds(st) == {"PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "True",
                         "ContainersReady": "True", "PodScheduled": "True"}
    cs = st["containerStatuses"][0]
    assert cs["ready"] and cs["started"] and cs["state"]["running"]["startedAt"] == "2024-01-01T00:00:00Z"
    assert cs["containerID"] == "docker://a-0" and cs["imageID"] == "docker://sha256:abc"
    assert st["qosClass"] == "BestEffort"


def test_readiness_probe_holds_ready_until_prober_says_so():
    probes = ProbeResults()
    view = PodRuntimeView([SB, rec("a")], SB, ["10.0.0.2"])
    st = pod_status(pod(probe=True), view, probes, "h")
    assert conds(st)["Ready"] == "False" and st["containerStatuses"][0]["ready"] is False
    probes.set_readiness("u", "a-0", True)
    st = pod_status(pod(probe=True), view, probes, "h")
    assert conds(st)["Ready"] == "True"


def test_crash_loop_waiting_keeps_last_termination():
    view = PodRuntimeView([SB, rec("a", 1, "exited", 2), rec("a", 0, "exited", 1)], SB, ["10.0.0.2"],
                          waiting={"a": ("CrashLoopBackOff", "back-off 10s ...")})
    st = pod_status(pod(), view, ProbeResults(), "h")
    cs = st["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff" and cs["restartCount"] == 1
    assert cs["lastState"]["terminated"]["exitCode"] == 2 and st["phase"] == "Running"


def test_terminal_phases():
    done = PodRuntimeView([SB, rec("a", 0, "exited", 0)], SB, ["10.0.0.2"])
    assert pod_status(pod("Never"), done, ProbeResults(), "h")["phase"] == "Succeeded"
    assert pod_status(pod("OnFailure"), done, ProbeResults(), "h")["phase"] == "Succeeded"
    failed = PodRuntimeView([SB, rec("a", 0, "exited", 1, oom=True)], SB, ["10.0.0.2"])
    st = pod_status(pod("Never"), failed, ProbeResults(), "h")
    assert st["phase"] == "Failed"
    assert st["containerStatuses"][0]["state"]["terminated"]["reason"] == "OOMKilled"
    # a terminal phase never goes back
    st = pod_status(pod("Never", status={"phase": "Succeeded"}), PodRuntimeView([]), ProbeResults(), "h")
    assert st["phase"] == "Succeeded"


def test_init_containers_gate_the_pod():
    view = PodRuntimeView([SB, rec("i1", 0, "exited", 0), rec("i2")], SB, ["10.0.0.2"])
    st = pod_status(pod(init=("i1", "i2")), view, ProbeResults(), "h")
    assert st["phase"] == "Pending" and conds(st)["Initialized"] == "False"
    assert st["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    assert [c["ready"] for c in st["initContainerStatuses"]] == [True, False]
    failed = PodRuntimeView([SB, rec("i1", 0, "exited", 3)], SB, ["10.0.0.2"])
    assert pod_status(pod("Never", init=("i1",)), failed, ProbeResults(), "h")["phase"] == "Failed"


def test_transition_time_kept_when_unchanged():
    view = PodRuntimeView([SB, rec("a")], SB, ["10.0.0.2"])
    first = pod_status(pod(), view, ProbeResults(), "h")
    again = pod_status(pod(status=first), view, ProbeResults(), "h")
    assert again == first


def test_phase_counts_waiting_as_pending():
    assert phase({"spec": {}}, [{"state": {"waiting": {}}}], True, False) == "Pending"
