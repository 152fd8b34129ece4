"""CRI messages turned into the runtime's neutral records (agent/runtime/cri.py)."""
from __future__ import annotations

import json

from agent.runtime import cri
from agent.runtime import types as t
from agent.runtime.cri_api import api_pb2 as pb
from agent.streaming.cri_io import exit_code_of

UID = "0f6c3c1e-1111-2222-3333-444455556666"


def status(**kw) -> pb.ContainerStatus:
    base = dict(id="c1", metadata=pb.ContainerMetadata(name="web", attempt=2), state=pb.CONTAINER_EXITED,
                created_at=1_700_000_000_123_000_000, started_at=1_700_000_001_000_000_000,
                finished_at=1_700_000_002_500_000_000, exit_code=137, reason="OOMKilled",
                image=pb.ImageSpec(image="docker.io/library/busybox:latest"), image_ref="sha256:abc",
                labels={t.POD_NAME: "p", t.POD_NAMESPACE: "ns", t.POD_UID: UID, t.CONTAINER_NAME: "web",
                        t.SANDBOX_ID: "sb1"},
                annotations={cri.HASH_ANNOTATION: "h1", cri.RESTART_COUNT_ANNOTATION: "2",
                             cri.INIT_ANNOTATION: "true"})
    base.update(kw)
    return pb.ContainerStatus(**base)


def test_container_record_times_exit_and_kubernetes_names():
    rec = cri.record_from_status(status(), "sb1")
    assert (rec.id, rec.name, rec.pod_name, rec.pod_namespace, rec.pod_uid) == ("c1", "web", "p", "ns", UID)
    assert rec.attempt == 2 and not rec.is_sandbox and rec.sandbox_id == "sb1"
    assert rec.state == "exited" and rec.exit_code == 137 and rec.oom_killed and rec.error == ""
    assert abs(rec.created_at - 1_700_000_000.123) < 1e-6 and rec.started_at == 1_700_000_001.0
    assert rec.finished_at == 1_700_000_002.5
    assert rec.image == "docker.io/library/busybox:latest" and rec.image_id == "sha256:abc"
    # Annotations read as dockershim's labels: the agent's pod status logic is unchanged.
    assert rec.container_hash == "h1" and rec.init and rec.labels[t.RESTART_COUNT] == "2"


def test_running_container_has_no_exit_code_and_zero_times_stay_zero():
    rec = cri.record_from_status(status(state=pb.CONTAINER_RUNNING, finished_at=0, reason="", exit_code=0), "sb1")
    assert rec.running and rec.exit_code is None and rec.finished_at == 0.0 and not rec.oom_killed
    rec = cri.record_from_status(status(state=pb.CONTAINER_CREATED, started_at=0, finished_at=0), "sb1")
    assert rec.state == "created" and rec.started_at == 0.0


def test_error_reason_message_kept_for_failed_starts():
    rec = cri.record_from_status(status(exit_code=128, reason="StartError", message="exec: not found"), "sb1")
    assert rec.error == "exec: not found"
    assert cri.record_from_status(status(exit_code=0, reason="Completed", message=""), "sb1").error == ""


def test_sandbox_record():
    sb = pb.PodSandbox(id="sb1", metadata=pb.PodSandboxMetadata(name="p", uid=UID, namespace="ns", attempt=1),
                       state=pb.SANDBOX_NOTREADY, created_at=2_000_000_000, labels={"app": "x"})
    rec = cri.record_from_sandbox(sb)
    assert rec.is_sandbox and rec.name == t.SANDBOX_NAME and rec.sandbox_id == "sb1" and rec.attempt == 1
    assert rec.state == "exited" and rec.created_at == 2.0 and rec.labels == {"app": "x"}
    assert cri.record_from_sandbox(pb.PodSandbox(id="s", state=pb.SANDBOX_READY)).running


def test_sandbox_config_paths_cgroup_and_namespaces():
    rt = cri.CriRuntime.__new__(cri.CriRuntime)
    rt.pod_log_root, rt.cgroup_root = "/var/log/pods", "/kubepods"
    cfg = rt._sandbox_config(t.SandboxConfig("web", "ns", UID, 0, "pause", "web-host", labels={"app": "x"}))
    assert cfg.log_directory == f"/var/log/pods/ns_web_{UID}" and cfg.hostname == "web-host"
    assert cfg.linux.cgroup_parent == f"/kubepods/pod{UID}"
    opts = cfg.linux.security_context.namespace_options
    assert opts.network == pb.POD and opts.pid == pb.CONTAINER
    assert cfg.labels[t.POD_UID] == UID and cfg.labels["app"] == "x"
    host = rt._sandbox_config(t.SandboxConfig("web", "ns", UID, 0, "pause", "web-host", host_network=True))
    assert host.hostname == "" and host.linux.security_context.namespace_options.network == pb.NODE
    assert cri.container_log_path("web", 3) == "web/3.log"


def test_state_changes_between_listings():
    before = {"a": ("u1", pb.CONTAINER_CREATED), "b": ("u1", pb.CONTAINER_RUNNING), "c": ("u2", pb.CONTAINER_EXITED)}
    now = {"a": ("u1", pb.CONTAINER_RUNNING), "b": ("u1", pb.CONTAINER_EXITED), "d": ("u3", pb.CONTAINER_CREATED)}
    got = {(e.container_id, e.pod_uid, e.type) for e in cri.state_changes(before, now)}
    assert got == {("a", "u1", t.STARTED), ("b", "u1", t.STOPPED), ("c", "u2", t.DELETED)}
    assert cri.state_changes(now, now) == []


def test_conditions_and_verbose_info():
    resp = pb.StatusResponse(status=pb.RuntimeStatus(conditions=[
        pb.RuntimeCondition(type="RuntimeReady", status=True),
        pb.RuntimeCondition(type="NetworkReady", status=False, reason="NetworkPluginNotReady")]))
    assert cri.conditions(resp) == t.RuntimeStatus(runtime_ready=True, network_ready=False)
    spec = {"pid": 42, "runtimeSpec": {"linux": {"namespaces": [{"type": "pid"},
                                                                {"type": "network", "path": "/var/run/netns/cni-1"}]}}}
    assert cri.netns_from_info({"info": json.dumps(spec)}) == "/var/run/netns/cni-1"
    assert cri.netns_from_info({"info": json.dumps({"pid": 42, "runtimeSpec": {}})}) == "/proc/42/ns/net"
    assert cri.netns_from_info({}) is None
    img = {"imageSpec": {"config": {"Entrypoint": ["/e"], "Cmd": ["c"], "Env": ["A=1"], "WorkingDir": "/w"}}}
    assert cri.image_config_from_info({"info": json.dumps(img)}) == {
        "Entrypoint": ["/e"], "Cmd": ["c"], "Env": ["A=1"], "WorkingDir": "/w", "User": ""}
    assert cri.container_tty({"info": json.dumps({"config": {"tty": True}})})


def test_exit_code_of_remotecommand_status():
    assert exit_code_of({"metadata": {}, "status": "Success"}) == 0
    assert exit_code_of({"status": "Failure", "reason": "NonZeroExitCode",
                         "details": {"causes": [{"reason": "ExitCode", "message": "5"}]}}) == 5
    assert exit_code_of({"status": "Failure", "message": "boom"}) is None
    assert exit_code_of(None) is None
