"""Pod rows against what kube-apiserver's printPod shows for the same pod."""
from datetime import timedelta

import pytest

from helpers_printers import NOW, ago, cond, container_status, pod, running
from kubeling.printers.pods import row


def cells(p: dict) -> list:
    return row(p, NOW)["cells"]


def test_unscheduled_pending_pod():
    p = pod(phase="Pending", node="", pod_ip="", conditions=[
        cond("PodScheduled", "False", "Unschedulable")])
    assert cells(p) == ["web", "0/1", "Pending", "0", "5m", "<none>", "<none>", "<none>",
                        "<none>"]


def test_container_creating():
    p = pod(phase="Pending", pod_ip="", statuses=[
        container_status("c0", ready=False, state={"waiting": {"reason": "ContainerCreating"}})])
    assert cells(p)[:5] == ["web", "0/1", "ContainerCreating", "0", "5m"]
    assert cells(p)[5:7] == ["<none>", "node-1"]


def test_running_and_ready():
    p = pod(statuses=[container_status("c0", ready=True, state=running())],
            conditions=[cond("Ready")])
    assert cells(p) == ["web", "1/1", "Running", "0", "5m", "10.244.0.5", "node-1", "<none>",
                        "<none>"]
    assert "conditions" not in row(p, NOW)


def test_running_with_one_of_two_ready():
    p = pod(containers=2, statuses=[
        container_status("c0", ready=True, state=running()),
        container_status("c1", ready=False, state=running())])
    assert cells(p)[1:3] == ["1/2", "Running"]


def test_init_container_running():
    p = pod(phase="Pending", init=[{"name": "init", "image": "busybox"}],
            init_statuses=[container_status("init", ready=False, state=running())],
            statuses=[container_status("c0", ready=False,
                                       state={"waiting": {"reason": "PodInitializing"}})])
    assert cells(p)[1:4] == ["0/1", "Init:0/1", "0"]


def test_second_of_two_init_containers():
    p = pod(phase="Pending",
            init=[{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}],
            init_statuses=[
                container_status("a", ready=False, state={"terminated": {
                    "exitCode": 0, "reason": "Completed"}}),
                container_status("b", ready=False, state=running())])
    assert cells(p)[2] == "Init:1/2"


@pytest.mark.parametrize("state,expected", [
    ({"waiting": {"reason": "CrashLoopBackOff"}}, "Init:CrashLoopBackOff"),
    ({"terminated": {"exitCode": 1, "reason": "Error"}}, "Init:Error"),
    ({"terminated": {"exitCode": 2}}, "Init:ExitCode:2"),
    ({"terminated": {"exitCode": 137, "signal": 9}}, "Init:Signal:9"),
    # PodInitializing on an init container is not a reason worth showing.
    ({"waiting": {"reason": "PodInitializing"}}, "Init:0/1"),
])
def test_init_container_failures(state, expected):
    p = pod(phase="Pending", init=[{"name": "init", "image": "busybox"}],
            init_statuses=[container_status("init", ready=False, state=state, restarts=3)])
    assert cells(p)[2] == expected
    assert cells(p)[3] == "3"  # init restarts count while initialising


def test_pod_initializing():
    p = pod(phase="Pending", init=[{"name": "init", "image": "busybox"}],
            init_statuses=[container_status("init", ready=False, state={
                "terminated": {"exitCode": 0, "reason": "Completed"}})],
            statuses=[container_status("c0", ready=False,
                                       state={"waiting": {"reason": "PodInitializing"}})],
            conditions=[cond("Initialized")])
    assert cells(p)[1:3] == ["0/1", "PodInitializing"]


def test_terminating():
    p = pod(statuses=[container_status("c0", ready=True, state=running())],
            deletionTimestamp=ago(seconds=-30), deletionGracePeriodSeconds=30)
    assert cells(p)[1:3] == ["1/1", "Terminating"]


def test_deleted_but_finished_pod_is_not_terminating():
    p = pod(phase="Succeeded", statuses=[container_status("c0", ready=False, state={
        "terminated": {"exitCode": 0, "reason": "Completed"}})],
        deletionTimestamp=ago(seconds=-30))
    assert cells(p)[2] == "Completed"


def test_crash_loop_with_restarts_and_last_restart_age():
    p = pod(statuses=[container_status(
        "c0", ready=False, restarts=5, state={"waiting": {
            "reason": "CrashLoopBackOff", "message": "back-off 2m40s"}},
        last_state={"terminated": {"exitCode": 1, "reason": "Error",
                                   "finishedAt": ago(minutes=5)}})])
    assert cells(p)[1:4] == ["0/1", "CrashLoopBackOff", "5 (5m ago)"]


def test_restarts_without_termination_time_have_no_suffix():
    p = pod(statuses=[container_status("c0", ready=True, restarts=2, state=running())])
    assert cells(p)[3] == "2"


def test_latest_restart_across_containers_wins():
    p = pod(containers=2, statuses=[
        container_status("c0", ready=True, restarts=1, state=running(), last_state={
            "terminated": {"exitCode": 1, "finishedAt": ago(hours=3)}}),
        container_status("c1", ready=True, restarts=2, state=running(), last_state={
            "terminated": {"exitCode": 1, "finishedAt": ago(seconds=40)}})])
    assert cells(p)[3] == "3 (40s ago)"


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "CreateContainerError"])
def test_image_problems(reason):
    p = pod(phase="Pending", statuses=[
        container_status("c0", ready=False, state={"waiting": {"reason": reason}})])
    assert cells(p)[2] == reason


def test_completed_pod_row_has_completed_condition():
    p = pod(phase="Succeeded", statuses=[container_status("c0", ready=False, state={
        "terminated": {"exitCode": 0, "reason": "Completed"}})])
    r = row(p, NOW)
    assert r["cells"][1:4] == ["0/1", "Completed", "0"]
    assert r["conditions"] == [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                "message": "The pod has completed successfully."}]


@pytest.mark.parametrize("terminated,expected", [
    ({"exitCode": 1, "reason": "Error"}, "Error"),
    ({"exitCode": 137, "reason": "OOMKilled"}, "OOMKilled"),
    ({"exitCode": 137}, "ExitCode:137"),
    ({"exitCode": 137, "signal": 9}, "Signal:9"),
])
def test_failed_pods(terminated, expected):
    p = pod(phase="Failed", statuses=[container_status("c0", ready=False,
                                                       state={"terminated": terminated})])
    r = row(p, NOW)
    assert r["cells"][2] == expected
    assert r["conditions"][0]["reason"] == "Failed"


def test_first_container_state_is_the_one_shown():
    p = pod(containers=2, statuses=[
        container_status("c0", ready=False, state={"waiting": {"reason": "ErrImagePull"}}),
        container_status("c1", ready=False, state={"waiting": {"reason": "CrashLoopBackOff"}})])
    assert cells(p)[2] == "ErrImagePull"


def test_completed_next_to_running_container():
    statuses = [container_status("c0", ready=False, state={"terminated": {
        "exitCode": 0, "reason": "Completed"}}),
        container_status("c1", ready=True, state=running())]
    ready = pod(containers=2, statuses=statuses, conditions=[cond("Ready")])
    not_ready = pod(containers=2, statuses=statuses, conditions=[cond("Ready", "False")])
    assert cells(ready)[1:3] == ["1/2", "Running"]
    assert cells(not_ready)[1:3] == ["1/2", "NotReady"]


def test_node_lost_and_unknown():
    statuses = [container_status("c0", ready=True, state=running())]
    lost = pod(statuses=statuses)
    lost["status"]["reason"] = "NodeLost"
    assert cells(lost)[2] == "NodeLost"
    lost["metadata"]["deletionTimestamp"] = ago(seconds=0)
    assert cells(lost)[2] == "Unknown"


def test_evicted():
    p = pod(phase="Failed", pod_ip="")
    p["status"]["reason"] = "Evicted"
    assert cells(p)[1:3] == ["0/1", "Evicted"]


def test_scheduling_gated():
    p = pod(phase="Pending", node="", pod_ip="",
            conditions=[cond("PodScheduled", "False", "SchedulingGated")])
    assert cells(p)[2] == "SchedulingGated"


def test_sidecar_counts_as_container():
    p = pod(init=[{"name": "proxy", "image": "busybox", "restartPolicy": "Always"}],
            init_statuses=[container_status("proxy", ready=True, state=running(), restarts=1)],
            statuses=[container_status("c0", ready=True, state=running())],
            conditions=[cond("Initialized"), cond("Ready")])
    assert cells(p)[1:4] == ["2/2", "Running", "1"]


def test_wide_columns():
    p = pod(statuses=[container_status("c0", ready=True, state=running())],
            conditions=[cond("Ready"), cond("example.com/gate-a"),
                        cond("example.com/gate-b", "False")])
    p["spec"]["readinessGates"] = [{"conditionType": "example.com/gate-a"},
                                   {"conditionType": "example.com/gate-b"}]
    p["status"]["nominatedNodeName"] = "node-2"
    assert cells(p)[5:] == ["10.244.0.5", "node-1", "node-2", "1/2"]


def test_pod_ip_falls_back_to_pod_ip_field():
    p = pod()
    del p["status"]["podIPs"]
    assert cells(p)[5] == "10.244.0.5"


def test_age_of_old_pod():
    p = pod(age=timedelta(days=3, hours=4))
    assert cells(p)[4] == "3d4h"


@pytest.mark.parametrize("broken", [
    {},
    {"metadata": None, "spec": "x", "status": 5},
    {"metadata": {"name": 3, "creationTimestamp": "nope"},
     "spec": {"containers": "c", "initContainers": [None, 1]},
     "status": {"containerStatuses": [None, {"state": "x", "restartCount": "7", "ready": "yes"}],
                "initContainerStatuses": {"a": 1}, "conditions": [1, None], "podIPs": [3]}},
])
def test_odd_objects_do_not_raise(broken):
    got = cells(broken)
    assert len(got) == 9
    assert got[4] == "<unknown>"
    assert got[5] == "<none>"
