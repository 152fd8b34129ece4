"""preStop hooks: exec through the injected runner, httpGet to a real server."""
from __future__ import annotations

import asyncio

from agent.prober import run_pre_stop
from tests.unit.prober.servers import closed_port

POD = {"metadata": {"uid": "u", "name": "p", "namespace": "default"}}


def events_list():
    got = []
    return got, lambda pod, reason, msg, typ, name: got.append((reason, msg, typ, name))


async def test_no_hook_is_a_no_op():
    async def never(*a):
        raise AssertionError("exec must not run")
    assert await run_pre_stop(POD, {"name": "a"}, "cid", "127.0.0.1", never, 30) == 0.0


async def test_exec_hook_runs_the_command_in_the_container():
    calls = []

    async def run(cid, cmd, timeout):
        calls.append((cid, cmd, timeout))
        return 0, b""
    got, sink = events_list()
    c = {"name": "a", "lifecycle": {"preStop": {"exec": {"command": ["nginx", "-s", "quit"]}}}}
    await run_pre_stop(POD, c, "cid-1", None, run, 30, sink)
    assert calls == [("cid-1", ["nginx", "-s", "quit"], 30)] and got == []


async def test_exec_hook_failure_is_an_event_without_details():
    async def run(cid, cmd, timeout):
        return 1, b"secret=hunter2"
    got, sink = events_list()
    c = {"name": "a", "lifecycle": {"preStop": {"exec": {"command": ["false"]}}}}
    await run_pre_stop(POD, c, "cid-1", None, run, 30, sink)
    assert got == [("FailedPreStopHook", "PreStopHook failed", "Warning", "a")]


async def test_hook_is_cut_at_the_timeout():
    async def run(cid, cmd, timeout):
        await asyncio.sleep(30)
    c = {"name": "a", "lifecycle": {"preStop": {"exec": {"command": ["sleep", "30"]}}}}
    spent = await run_pre_stop(POD, c, "cid-1", None, run, 0.3)
    assert 0.25 <= spent < 1.5


async def test_http_hook_gets_the_pod_ip_and_named_port(server):
    got, sink = events_list()
    server.status = 500  # hooks judge transport only, as kubelet
    c = {"name": "web", "ports": [{"name": "admin", "containerPort": server.port}],
         "lifecycle": {"preStop": {"httpGet": {"path": "/pre-stop?drain=1", "port": "admin",
                                               "httpHeaders": [{"name": "X-Why", "value": "stop"}]}}}}
    await run_pre_stop(POD, c, "cid-2", "127.0.0.1", None, 5, sink)
    assert server.paths == ["/pre-stop?drain=1"]
    assert server.requests[0].headers["X-Why"] == "stop"
    assert got == []


async def test_http_hook_transport_error_is_reported():
    got, sink = events_list()
    c = {"name": "web", "lifecycle": {"preStop": {"httpGet": {"path": "/", "port": closed_port()}}}}
    await run_pre_stop(POD, c, "cid-2", "127.0.0.1", None, 5, sink)
    assert got == [("FailedPreStopHook", "PreStopHook failed", "Warning", "web")]


async def test_sleep_hook_sleeps_until_the_timeout():
    got, sink = events_list()
    c = {"name": "a", "lifecycle": {"preStop": {"sleep": {"seconds": 5}}}}
    assert 0.2 <= await run_pre_stop(POD, c, "cid", None, None, 0.2, sink) < 1
    assert got == []
