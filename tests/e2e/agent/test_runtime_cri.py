"""The CRI runtime (agent/runtime/cri.py) against a real containerd of the test's
own, running in a network namespace: sandboxes get an IP from the pod CIDR through
kubeling's CNI plugin, containers run, log, exec and stop with their grace period,
and a pod's teardown leaves no netns, IP, cgroup, log directory or shim behind."""
from __future__ import annotations

import asyncio
import ipaddress
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from agent.runtime import types as t
from agent.runtime.cri import CriRuntime
from containerd_node import ContainerdNode, thread_in_netns

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def containerd():
    if os.geteuid() != 0:
        pytest.fail("the CRI runtime tests need root")
    node = ContainerdNode()
    try:
        node.start()
        yield node
    finally:
        log = node.log.read_text()[-4000:] if node.log.exists() else ""
        problems = node.stop()
        assert not problems, f"{problems}\n{log}"


@pytest.fixture
async def runtime(containerd):
    rt = CriRuntime(containerd.endpoint, pod_log_root=str(containerd.log_root),
                    cgroup_root=f"{containerd.cgroup_root}/kubepods")
    deadline = time.monotonic() + 30
    while True:
        try:
            st = await rt.status()
            if st.runtime_ready and st.network_ready:
                break
        except t.RuntimeError_:
            pass
        assert time.monotonic() < deadline, "containerd's CRI never became ready"
        await asyncio.sleep(0.1)
    run_sandbox = rt.run_sandbox

    async def tracked(cfg: t.SandboxConfig) -> t.ContainerRecord:
        rec = await run_sandbox(cfg)
        if not cfg.host_network:
            containerd.pod_netns.add(await rt.sandbox_netns(rec.id))
        return rec
    rt.run_sandbox = tracked
    yield rt
    # Whatever a test left goes, through the runtime (as the agent would); its netns is noted.
    try:
        await containerd.sweep(rt)
    finally:
        await rt.close()
    left = [p for p in containerd.pod_netns if os.path.exists(p)]
    assert not left, f"pod netns left behind: {left}"
    assert containerd.ip_allocations() == []


async def wait_for(fn, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        got = await fn()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def new_pod(name: str, **kw) -> t.SandboxConfig:
    return t.SandboxConfig(pod_name=name, pod_namespace="default", pod_uid=str(uuid.uuid4()), attempt=0,
                           image="kubeling/pause:3.9", hostname=name, **kw)


def container(sb: t.SandboxConfig, sandbox_id: str, name: str, cmd: list[str], **kw) -> t.ContainerConfig:
    return t.ContainerConfig(name=name, pod_name=sb.pod_name, pod_namespace=sb.pod_namespace, pod_uid=sb.pod_uid,
                             attempt=kw.pop("attempt", 0), sandbox_id=sandbox_id, image="busybox", cmd=cmd, **kw)


async def run(rt: CriRuntime, cfg: t.ContainerConfig) -> str:
    cid = await rt.create_container(cfg)
    await rt.start_container(cid)
    return cid


async def collect(it) -> bytes:
    return b"".join([chunk async for chunk in it])


def http_get_in(netns: str, url: str) -> str:
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode(), end='')"
    return subprocess.run(["nsenter", f"--net={netns}", sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=30, check=True).stdout


async def test_version_status_and_images(runtime):
    assert (await runtime.version()).startswith("1.6.")
    assert runtime.runtime_name == "containerd"
    assert await runtime.ping()
    assert runtime.network_ready()
    assert (await runtime.image_id("busybox")).startswith("sha256:")
    assert await runtime.image_id("busybox") == await runtime.image_id("docker.io/library/busybox:latest")
    assert await runtime.image_id("kubeling/never-built:1") is None
    cfg = await runtime.image_config("busybox")
    assert cfg["Cmd"] == ["sh"]
    # No registry: the pull fails (ErrImagePull for the agent) and does not hang.
    t0 = time.monotonic()
    with pytest.raises(t.PullError):
        await runtime.pull("kubeling/never-built:1")
    assert time.monotonic() - t0 < 65


async def test_pod_runs_logs_execs_and_goes_without_a_trace(runtime, containerd, tmp_path):
    sb_cfg = new_pod("web", labels={"app": "web"})
    sb = await runtime.run_sandbox(sb_cfg)
    assert sb.is_sandbox and sb.running and sb.pod_uid == sb_cfg.pod_uid and sb.name == t.SANDBOX_NAME
    st = await runtime.sandbox_status(sb.id)
    assert st is not None and st.state == "running" and len(st.pod_ips) == 1
    ip = st.pod_ips[0]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(containerd.pod_cidr)
    log_dir = containerd.log_root / f"default_web_{sb_cfg.pod_uid}"
    assert log_dir.is_dir()

    page = tmp_path / "index.html"
    page.write_text("hello-from-cri\n")
    script = ("echo started; echo to-stderr >&2; printf 'no-newline-yet'; sleep 0.2; echo ' done';"
              "trap 'echo got-term; exit 3' TERM; httpd -f -p 8080 -h /www & wait")
    cid = await run(runtime, container(
        sb_cfg, sb.id, "web", ["sh", "-c", script], env=[("GREETING", "hi there")], working_dir="/www",
        mounts=[t.Mount(str(page), "/www/index.html", read_only=True)], container_hash="abc123",
        memory_limit=64 << 20, cpu_quota=50000, cpu_period=100000, cpu_shares=512))

    records = await runtime.list(sb_cfg.pod_uid)
    assert {r.name for r in records} == {"POD", "web"}
    web = next(r for r in records if r.name == "web")
    assert web.running and not web.is_sandbox and web.sandbox_id == sb.id and web.attempt == 0
    assert web.container_hash == "abc123" and not web.init
    assert web.labels[t.RESTART_COUNT] == "0"
    assert next(r for r in records if r.is_sandbox).labels["app"] == "web"
    assert web.pod_name == "web" and web.pod_namespace == "default"
    assert web.image_id == await runtime.image_id("busybox")
    assert web.started_at >= web.created_at > time.time() - 120

    # Served on the pod IP from inside the node's namespace, the mount read-only.
    assert await wait_for(lambda: asyncio.to_thread(_try_get, containerd.netns_path, f"http://{ip}:8080/"),
                          what="httpd on the pod IP") == "hello-from-cri\n"
    code, out = await runtime.exec(cid, ["sh", "-c", "echo $GREETING; pwd; hostname; touch /www/index.html"])
    assert code != 0 and b"hi there\n/www\nweb\n" in out and b"Read-only" in out
    code, out = await runtime.exec(cid, ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"])
    assert code == 0 and out.strip() == str(64 << 20).encode()

    with pytest.raises(asyncio.TimeoutError):   # a probe's timeout: the command is killed
        await runtime.exec(cid, ["sleep", "30"], timeout=1)

    # Logs: whole lines (the partial one joined), both streams, timestamps, tail.
    async def logged() -> bytes | None:
        got = await collect(runtime.logs(cid))
        return got if b"no-newline-yet done\n" in got else None
    text = await wait_for(logged, what="the log lines")
    # stdout and stderr are separate pipes: their relative order is not the process's.
    assert sorted(text.splitlines()) == [b"no-newline-yet done", b"started", b"to-stderr"]
    assert await collect(runtime.logs(cid, tail=1)) == b"no-newline-yet done\n"
    stamped = (await collect(runtime.logs(cid, timestamps=True))).splitlines()
    assert len(stamped) == 3 and any(s.endswith(b" started") for s in stamped) and stamped[0][:4].isdigit()
    assert await collect(runtime.logs(cid, since=time.time() + 60)) == b""

    # A follower sees the rest and ends when the container stops; the stop honours the grace.
    follower = asyncio.create_task(collect(runtime.logs(cid, follow=True)))
    t0 = time.monotonic()
    await runtime.stop_container(cid, 30)
    assert time.monotonic() - t0 < 20, "the TERM trap should end it well before the grace period"
    rec = await runtime.inspect(cid)
    assert rec is not None and rec.state == "exited" and rec.exit_code == 3 and not rec.oom_killed
    assert rec.finished_at >= rec.started_at > 0
    assert (await asyncio.wait_for(follower, 15)).endswith(b"got-term\n")

    await runtime.stop_sandbox(sb.id)
    await runtime.stop_sandbox(sb.id)  # idempotent
    assert (await runtime.sandbox_status(sb.id)).state == "exited"
    assert containerd.ip_allocations() == [], "CNI DEL on stop frees the IP"
    await runtime.remove_sandbox(sb.id)
    await runtime.remove_sandbox(sb.id)  # idempotent
    await runtime.remove_container(cid)   # gone with its sandbox: not an error
    assert await runtime.list(sb_cfg.pod_uid) == []
    assert await runtime.inspect(cid) is None and await runtime.sandbox_status(sb.id) is None
    with pytest.raises(t.NotFound):
        await runtime.exec(cid, ["true"])
    assert not log_dir.exists()
    pod_cgroups = list(Path("/sys/fs/cgroup").glob(f"*{containerd.cgroup_root}/kubepods/pod{sb_cfg.pod_uid}"))
    assert pod_cgroups == []


def _try_get(netns: str, url: str) -> str | None:
    try:
        return http_get_in(netns, url)
    except subprocess.CalledProcessError:
        return None


async def test_stop_kills_after_the_grace_period(runtime):
    sb_cfg = new_pod("stubborn")
    sb = await runtime.run_sandbox(sb_cfg)
    cid = await run(runtime, container(sb_cfg, sb.id, "app", ["sh", "-c", "trap '' TERM; echo up; "
                                                                         "while true; do sleep 0.1; done"]))
    await wait_for(lambda: _logs_have(runtime, cid, b"up\n"), what="the container to start")
    t0 = time.monotonic()
    await runtime.stop_container(cid, 1)
    took = time.monotonic() - t0
    rec = await runtime.inspect(cid)
    assert rec.state == "exited" and rec.exit_code == 137
    assert 0.9 <= took < 10
    await runtime.stop_sandbox(sb.id)
    await runtime.remove_sandbox(sb.id)


async def _logs_have(runtime, cid: str, text: bytes) -> bool:
    return text in await collect(runtime.logs(cid))


async def test_exit_codes_oom_events_and_restart_attempts(runtime):
    sb_cfg = new_pod("jobs")
    sb = await runtime.run_sandbox(sb_cfg)
    events: list[t.ContainerEvent] = []

    async def watch() -> None:
        async for ev in runtime.events():
            events.append(ev)
    watcher = asyncio.create_task(watch())
    try:
        # The events are changes between polls: once one container's start was seen, the
        # poll has its baseline and every later change is reported.
        for attempt in range(10):
            first = await run(runtime, container(sb_cfg, sb.id, "first", ["sleep", "600"], attempt=attempt))
            try:
                await wait_for(lambda: _async_true(any(e.container_id == first for e in events)), 3,
                               "the first started event")
                break
            except AssertionError:
                continue
        assert any(e.type == t.STARTED for e in events)
        init = await run(runtime, container(sb_cfg, sb.id, "init", ["sh", "-c", "exit 7"], init=True))
        hog = await run(runtime, container(
            sb_cfg, sb.id, "hog", ["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"],
            memory_limit=32 << 20))

        async def exited(cid: str):
            rec = await runtime.inspect(cid)
            return rec if rec is not None and rec.state == "exited" else None
        rec = await wait_for(lambda: exited(init), what="the init container to exit")
        assert rec.exit_code == 7 and rec.init and not rec.oom_killed
        rec = await wait_for(lambda: exited(hog), 60, "the memory hog to be killed")
        assert rec.oom_killed and rec.exit_code == 137
        await wait_for(lambda: _async_true(any(e.container_id == init and e.type == t.STOPPED for e in events)),
                       what="a stopped event")
        assert all(e.pod_uid == sb_cfg.pod_uid for e in events)
        # The next attempt of a container: a new record, the old one kept for --previous.
        again = await run(runtime, container(sb_cfg, sb.id, "init", ["sh", "-c", "exit 0"], attempt=1, init=True))
        rec = await wait_for(lambda: exited(again), what="the second attempt to exit")
        assert rec.attempt == 1 and rec.labels[t.RESTART_COUNT] == "1" and rec.exit_code == 0
        attempts = sorted(r.attempt for r in await runtime.list(sb_cfg.pod_uid) if r.name == "init")
        assert attempts == [0, 1]
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    await runtime.stop_sandbox(sb.id)
    await runtime.remove_sandbox(sb.id)
    assert await runtime.list(sb_cfg.pod_uid) == []


async def _async_true(value: bool) -> bool:
    return value


async def test_exec_and_attach_streams(runtime, containerd):
    sb_cfg = new_pod("streams")
    sb = await runtime.run_sandbox(sb_cfg)
    cid = await run(runtime, container(sb_cfg, sb.id, "echo", ["sh", "-c", "read line; echo got:$line; sleep 600"],
                                       stdin=True))
    # The runtime's streaming server listens on 127.0.0.1 of the node's namespace.
    with thread_in_netns(containerd.netns_path):
        proc = await runtime.exec_stream(cid, ["sh", "-c", "cat; echo err >&2; exit 5"], stdin=True,
                                         stdout=True, stderr=True, tty=False)
    await proc.write(b"line-one\n")
    await proc.close_stdin()  # cat sees the end of its input
    out = []
    while (item := await asyncio.wait_for(proc.read(), 15)) is not None:
        out.append(item)
    assert b"".join(d for c, d in out if c == 1) == b"line-one\n"
    assert b"".join(d for c, d in out if c == 2) == b"err\n"
    assert await proc.exit_code() == 5
    proc.close()

    # A terminal: its size arrives just after the process started (as kubelet's resize would).
    script = ('for i in $(seq 50); do s=$(stty size 2>/dev/null); case "$s" in [1-9]*) break;; esac; sleep 0.1; '
              'done; echo "size=$s"; exit 4')
    with thread_in_netns(containerd.netns_path):
        tty = await runtime.exec_stream(cid, ["sh", "-c", script], stdin=True, stdout=True, stderr=True, tty=True,
                                        size=(101, 33))
    out = b""
    while (item := await asyncio.wait_for(tty.read(), 15)) is not None:
        assert item[0] == 1
        out += item[1]
    assert b"size=33 101" in out and await tty.exit_code() == 4
    tty.close()

    with thread_in_netns(containerd.netns_path):
        att = await runtime.attach_stream(cid, stdin=True, stdout=True, stderr=True)
    await att.write(b"hello\n")
    got = b""
    while b"got:hello\n" not in got:
        item = await asyncio.wait_for(att.read(), 15)
        assert item is not None, got
        got += item[1]
    assert await att.exit_code() is None
    att.close()

    netns = await runtime.sandbox_netns(sb.id)
    assert netns is not None and os.path.exists(netns)
    await runtime.stop_sandbox(sb.id)
    assert await runtime.sandbox_netns(sb.id) is None
    await runtime.remove_sandbox(sb.id)


async def test_host_network_sandbox(runtime, containerd):
    sb_cfg = new_pod("hostnet", host_network=True)
    sb = await runtime.run_sandbox(sb_cfg)
    st = await runtime.sandbox_status(sb.id)
    assert st.state == "running" and st.pod_ips == []
    netns = await runtime.sandbox_netns(sb.id)
    assert netns is not None and os.stat(netns).st_ino == os.stat(containerd.netns_path).st_ino
    cid = await run(runtime, container(sb_cfg, sb.id, "app", ["sh", "-c", "sleep 600"]))
    code, out = await runtime.exec(cid, ["cat", "/proc/net/dev"])
    assert code == 0 and b"eth0" not in out, "the node's interfaces, not a pod's"
    await runtime.stop_container(cid, 0)
    await runtime.stop_sandbox(sb.id)
    await runtime.remove_sandbox(sb.id)


async def test_no_network_config_fails_the_sandbox_until_it_is_back(runtime, containerd):
    """NetworkReady follows the CNI conf dir; without a config RunPodSandbox fails. The
    sandbox containerd keeps (NOTREADY) cannot even be stopped then (no CNI DEL without a
    config): once the config is back, the agent's teardown path removes it."""
    conf = next(containerd.cni_conf_dir.glob("*.conflist"))
    # Renames inside the directory, as the agent writes its conflist: containerd 1.6 ignores
    # Create events there, so a file moved in from elsewhere would go unnoticed.
    aside = conf.with_name(conf.name + ".off")
    conf.rename(aside)
    sb_cfg = new_pod("nonet")
    try:
        async def not_ready() -> bool:
            return not (await runtime.status()).network_ready
        await wait_for(not_ready, 30, "NetworkReady false without a CNI config")
        with pytest.raises(t.RuntimeError_):
            await runtime.run_sandbox(sb_cfg)
    finally:
        aside.rename(conf)

    async def ready() -> bool:
        return (await runtime.status()).network_ready
    await wait_for(ready, 30, "NetworkReady again")
    for sb in await runtime.list_sandboxes(sb_cfg.pod_uid):
        assert not sb.running
        await runtime.stop_sandbox(sb.id)
        await runtime.remove_sandbox(sb.id)
    assert await runtime.list_sandboxes(sb_cfg.pod_uid) == []
    assert not (containerd.log_root / f"default_nonet_{sb_cfg.pod_uid}").exists()
