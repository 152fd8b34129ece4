"""Docker's shapes stay inside agent/runtime/docker.py: events, times and mounts
come out neutral."""
from agent.runtime import types as t
from agent.runtime.docker import _bind, _time, event_from_docker, record_from_inspect


def test_docker_events_become_container_events():
    def ev(action):
        return {"Type": "container", "Action": action,
                "Actor": {"ID": "abc", "Attributes": {t.POD_UID: "u1"}}}
    assert event_from_docker(ev("start")) == t.ContainerEvent("abc", "u1", t.STARTED)
    assert event_from_docker(ev("die")).type == t.STOPPED
    assert event_from_docker(ev("oom")).type == t.STOPPED
    assert event_from_docker(ev("destroy")).type == t.DELETED
    assert event_from_docker(ev("exec_start: sh -c true")) is None
    assert event_from_docker({"Action": "start", "Actor": {"ID": "x", "Attributes": {}}}) is None


def test_docker_times_are_epoch_seconds():
    assert _time("0001-01-01T00:00:00Z") == 0.0
    assert _time("") == 0.0
    assert abs(_time("2024-01-01T00:00:05.250000001Z") - 1704067205.25) < 1e-6
    info = {"Id": "c1", "Name": "/k8s_a_p_ns_u_3", "Created": "2024-01-01T00:00:00Z",
            "Config": {"Labels": {t.DOCKER_TYPE: t.TYPE_CONTAINER, t.CONTAINER_NAME: "a"}},
            "State": {"Status": "exited", "ExitCode": 1, "StartedAt": "2024-01-01T00:00:01Z",
                      "FinishedAt": "2024-01-01T00:00:02Z"}}
    rec = record_from_inspect(info)
    assert (rec.created_at, rec.started_at, rec.finished_at) == (1704067200.0, 1704067201.0, 1704067202.0)
    assert rec.attempt == 3 and rec.exit_code == 1


def test_typed_mounts_render_as_docker_binds():
    assert _bind(t.Mount("/h", "/c", read_only=True)) == "/h:/c:ro"
    assert _bind(t.Mount("/h", "/c")) == "/h:/c:rw"
