"""The probe handlers against real sockets on 127.0.0.1."""
from __future__ import annotations

import asyncio
import socket
import time

import pytest

from agent.probes import FAILURE, SUCCESS, WARNING, ProbeError
from agent.probes.exec import probe_exec
from agent.probes.http import probe_headers, probe_http, probe_url
from agent.probes.ports import resolve_port, target_host
from agent.probes.tcp import probe_tcp
from tests.unit.prober.servers import closed_port


def url(port: int, path: str = "/healthz", host: str = "127.0.0.1"):
    return probe_url("HTTP", host, port, path)


async def test_http_2xx_and_3xx_succeed_4xx_5xx_fail(server):
    for status, want in [(200, SUCCESS), (204, SUCCESS), (399, SUCCESS), (400, FAILURE), (500, FAILURE)]:
        server.status = status
        out = await probe_http(url(server.port), probe_headers(None), 1)
        assert out.result == want, status
    assert out.output == "HTTP probe failed with statuscode: 500"


async def test_http_sends_kubelet_headers_and_custom_ones(server):
    hdrs = probe_headers([{"name": "X-Probe", "value": "a"}, {"name": "X-Probe", "value": "b"},
                          {"name": "Host", "value": "example.test"}])
    out = await probe_http(url(server.port, "/healthz?x=1"), hdrs, 1)
    assert out.result == SUCCESS
    req = server.requests[-1]
    assert req.headers["User-Agent"].startswith("kube-probe/")
    assert req.headers["Accept"] == "*/*"
    assert req.headers.getall("X-Probe") == ["a", "b"]
    assert req.headers["Host"] == "example.test"
    assert server.paths[-1] == "/healthz?x=1"


async def test_path_without_slash_and_default():
    u = probe_url("HTTPS", "10.1.2.3", 8443, "ready")
    assert str(u) == "https://10.1.2.3:8443/ready"
    v6 = probe_url("HTTP", "fd00::5", 80, "/")
    assert (v6.host, v6.port, v6.path) == ("fd00::5", 80, "/")


async def test_http_follows_redirect_on_same_host(server):
    to = f"http://127.0.0.1:{server.port}/healthz"
    out = await probe_http(url(server.port, f"/redirect?to={to}"), probe_headers(None), 1)
    assert out.result == SUCCESS
    assert server.paths[-2:] == [f"/redirect?to={to}", "/healthz"]


async def test_http_redirect_to_other_host_is_not_followed(server):
    # Same server, but under another host name: kubelet stops and warns.
    to = f"http://localhost:{server.port}/healthz"
    out = await probe_http(url(server.port, f"/redirect?to={to}"), probe_headers(None), 1)
    assert out.result == WARNING
    assert out.output.startswith("Probe terminated redirects")
    assert server.paths == [f"/redirect?to={to}"]


async def test_http_connection_refused():
    port = closed_port()
    out = await probe_http(url(port), probe_headers(None), 1)
    assert out.result == FAILURE
    assert out.output == (f'Get "http://127.0.0.1:{port}/healthz": dial tcp 127.0.0.1:{port}: '
                          "connect: connection refused")


async def test_http_timeout_is_enforced(server):
    server.delay = 5
    t0 = time.monotonic()
    out = await probe_http(url(server.port), probe_headers(None), 0.3)
    assert time.monotonic() - t0 < 1.5
    assert out.result == FAILURE
    assert "Client.Timeout exceeded" in out.output


async def test_tcp_success_and_refused(server):
    assert (await probe_tcp("127.0.0.1", server.port, 1)).result == SUCCESS
    port = closed_port()
    out = await probe_tcp("127.0.0.1", port, 1)
    assert (out.result, out.output) == (FAILURE, f"dial tcp 127.0.0.1:{port}: connect: connection refused")


async def test_tcp_timeout_when_listener_backlog_is_full():
    # A listener that never accepts, with its backlog filled: further SYNs are dropped.
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        out = await probe_tcp("127.0.0.1", port, 0.3)
        assert time.monotonic() - t0 < 1.5
        assert (out.result, out.output) == (FAILURE, f"dial tcp 127.0.0.1:{port}: i/o timeout")
    finally:
        for s in fillers:
            s.close()
        lst.close()


async def test_exec_exit_codes_output_and_timeout():
    calls = []

    async def run(cid, cmd, timeout):
        calls.append((cid, cmd, timeout))
        if cmd[0] == "hang":
            await asyncio.sleep(10)
        if cmd[0] == "boom":
            raise RuntimeError("container not running")
        return (0, b"fine") if cmd[0] == "ok" else (2, b"not healthy\n")

    assert (await probe_exec(run, "c1", ["ok"], 1)).result == SUCCESS
    out = await probe_exec(run, "c1", ["bad", "x"], 1)
    assert (out.result, out.output) == (FAILURE, "not healthy")
    t0 = time.monotonic()
    out = await probe_exec(run, "c1", ["hang"], 0.2)
    assert time.monotonic() - t0 < 1
    assert (out.result, out.output) == (FAILURE, "command 'hang' timed out")
    with pytest.raises(ProbeError, match="container not running"):
        await probe_exec(run, "c1", ["boom"], 1)
    assert calls[0] == ("c1", ["ok"], 1)


async def test_exec_accepts_a_bare_exit_code():
    async def run(cid, cmd, timeout):
        return 0 if cmd == ["true"] else 1
    assert (await probe_exec(run, "c", ["true"], 1)).result == SUCCESS
    assert (await probe_exec(run, "c", ["false"], 1)).result == FAILURE


def test_ports_by_number_name_and_string():
    c = {"ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 9090}]}
    assert resolve_port(80, c) == 80
    assert resolve_port("http", c) == 8080
    assert resolve_port("9000", c) == 9000
    with pytest.raises(ProbeError, match='parsing "metrics"'):
        resolve_port("metrics", c)
    with pytest.raises(ProbeError, match="invalid port number"):
        resolve_port(70000, c)


def test_target_host_defaults_to_pod_ip():
    assert target_host({}, "10.244.0.5") == "10.244.0.5"
    assert target_host({"host": "127.0.0.1"}, "10.244.0.5") == "127.0.0.1"
    with pytest.raises(ProbeError):
        target_host({}, None)
