"""Container behaviour on a real node: restart policies and crash back-off, init
containers, environment and the downward API, volumes, limits, image pulls."""
from __future__ import annotations

import pytest

from agent_nodes import condition, container_status, pod_manifest, wait_pod, wait_until
from kubeling.resources import lookup
from kubeling.timefmt import parse_time

pytestmark = pytest.mark.e2e
PODS = lookup("pods")
EVENTS = lookup("events")
CONFIGMAPS = lookup("configmaps")


async def events_for(client, ns, name):
    listed = await client.list(EVENTS, ns, field_selector=f"involvedObject.name={name}")
    return listed["items"]


async def test_restart_always_crash_backoff(client, namespace, node):
    await client.create(PODS, pod_manifest("crash", node.name, [
        {"name": "c", "command": ["sh", "-c", "echo run; exit 1"]}]), namespace)
    # First exit: restarted at once; second: CrashLoopBackOff with the 10 s back-off.
    p = await wait_pod(client, namespace, "crash", lambda p: (container_status(p, "c").get("state", {})
                       .get("waiting", {}).get("reason") == "CrashLoopBackOff"), 40, "CrashLoopBackOff")
    cs = container_status(p, "c")
    assert "back-off 10s restarting failed container=c" in cs["state"]["waiting"]["message"]
    assert cs["restartCount"] == 1
    assert cs["lastState"]["terminated"]["exitCode"] == 1 and cs["lastState"]["terminated"]["reason"] == "Error"
    assert cs["lastState"]["terminated"]["containerID"].startswith(node.container_id_prefix)
    assert p["status"]["phase"] == "Running" and condition(p, "Ready") == "False"
    finished = parse_time(cs["lastState"]["terminated"]["finishedAt"])
    p = await wait_pod(client, namespace, "crash", lambda p: container_status(p, "c")["restartCount"] >= 2,
                       40, "the restart after the back-off")
    cs = container_status(p, "c")
    st = cs["state"].get("running") or cs["state"].get("terminated") or cs["lastState"]["terminated"]
    gap = (parse_time(st["startedAt"]) - finished).total_seconds()
    assert 9 <= gap <= 14, gap
    reasons = {e["reason"] for e in await events_for(client, namespace, "crash")}
    assert {"Created", "Started", "BackOff", "Pulled"} <= reasons


async def test_restart_on_failure_and_never(client, namespace, node):
    await client.create(PODS, pod_manifest("ok", node.name, [
        {"name": "c", "command": ["sh", "-c", "exit 0"]}], restartPolicy="OnFailure"), namespace)
    await client.create(PODS, pod_manifest("retry", node.name, [
        {"name": "c", "command": ["sh", "-c", "exit 3"]}], restartPolicy="OnFailure"), namespace)
    await client.create(PODS, pod_manifest("once", node.name, [
        {"name": "c", "command": ["sh", "-c", "exit 3"]}], restartPolicy="Never"), namespace)
    ok = await wait_pod(client, namespace, "ok", lambda p: p["status"].get("phase") == "Succeeded")
    t = container_status(ok, "c")["state"]["terminated"]
    assert t["reason"] == "Completed" and t["exitCode"] == 0 and container_status(ok, "c")["restartCount"] == 0
    ready = [c for c in ok["status"]["conditions"] if c["type"] == "Ready"][0]
    assert ready["status"] == "False" and ready["reason"] == "PodCompleted"
    once = await wait_pod(client, namespace, "once", lambda p: p["status"].get("phase") == "Failed")
    t = container_status(once, "c")["state"]["terminated"]
    assert t["reason"] == "Error" and t["exitCode"] == 3 and container_status(once, "c")["restartCount"] == 0
    retry = await wait_pod(client, namespace, "retry", lambda p: container_status(p, "c").get("restartCount", 0) >= 1)
    assert retry["status"]["phase"] == "Running"
    # Finished pods keep their containers (for logs) but give back their IP.
    await wait_until(lambda: len(node.ipam_files()) == 1, 15, "finished pods' IPs released")
    assert once["status"]["podIP"]


async def test_init_containers_env_and_shared_empty_dir(client, namespace, node):
    await client.create(CONFIGMAPS, {"metadata": {"name": "cfg"}, "data": {"color": "blue", "size": "L"}},
                        namespace)
    pod = pod_manifest("init", node.name, [
        {"name": "main", "command": ["sh", "-c", "env > /data/env; cat /data/order > /data/seen; sleep 3600"],
         "volumeMounts": [{"name": "data", "mountPath": "/data"}],
         "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                 {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                 {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                 {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                 {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                 {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
                 {"name": "GREETING", "value": "hi-$(POD_NAME)-$$-$(NOPE)"},
                 {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                                     "divisor": "1Mi"}}}],
         "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CM_"}],
         "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}, "requests": {"cpu": "100m"}}},
        {"name": "reader", "command": ["sh", "-c", "sleep 3600"],
         "volumeMounts": [{"name": "data", "mountPath": "/in", "readOnly": True}]}],
        initContainers=[{"name": "one", "image": "busybox:latest", "command": ["sh", "-c", "echo one > /data/order"],
                         "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                        {"name": "two", "image": "busybox:latest", "command": ["sh", "-c", "echo two >> /data/order"],
                         "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        volumes=[{"name": "data", "emptyDir": {}}])
    await client.create(PODS, pod, namespace)
    p = await wait_pod(client, namespace, "init", lambda p: condition(p, "Ready") == "True")
    for name in ("one", "two"):
        st = container_status(p, name, init=True)
        assert st["state"]["terminated"]["reason"] == "Completed" and st["ready"] is True
    assert condition(p, "Initialized") == "True"
    reader = container_status(p, "reader")["containerID"].split("//")[1]
    await wait_until(lambda: node.container_exec(reader, "cat", "/in/seen", check=False).stdout == "one\ntwo\n",
                     10, "the app to see both init containers' writes")
    env = dict(line.split("=", 1) for line in node.container_exec(reader, "cat", "/in/env").stdout.splitlines()
               if "=" in line)
    assert env["POD_NAME"] == "init" and env["POD_NS"] == namespace and env["NODE"] == node.name
    assert env["POD_UID"] == p["metadata"]["uid"] and env["POD_IP"] == p["status"]["podIP"]
    assert env["COLOR"] == "blue" and env["CM_size"] == "L" and env["MEM"] == "64"
    assert env["GREETING"] == "hi-init-$-$(NOPE)"
    assert env["HOSTNAME"] == "init"
    # read-only mount is read-only
    assert node.container_exec(reader, "touch", "/in/x", check=False).returncode != 0
    # limits and requests reach the cgroup settings
    main = container_status(p, "main")["containerID"].split("//")[1]
    lim = node.container_limits(main)
    assert lim["memory"] == 64 * 2**20 and lim["memory_swap"] == 64 * 2**20
    assert lim["cpu_quota"] == 25000 and lim["cpu_period"] == 100000 and lim["cpu_shares"] == 102


async def test_init_failure_with_never_fails_pod(client, namespace, node):
    await client.create(PODS, pod_manifest("badinit", node.name, [{"name": "main", "command": ["true"]}],
                                           restartPolicy="Never",
                                           initContainers=[{"name": "boom", "image": "busybox:latest",
                                                            "command": ["sh", "-c", "exit 7"]}]), namespace)
    p = await wait_pod(client, namespace, "badinit", lambda p: p["status"].get("phase") == "Failed")
    assert container_status(p, "boom", init=True)["state"]["terminated"]["exitCode"] == 7
    assert condition(p, "Initialized") == "False"
    assert "waiting" in container_status(p, "main")["state"]
    assert not [r for r in node.containers() if r["LabelMap"].get("io.kubernetes.container.name") == "main"]


async def test_memory_limit_oom_killed(client, namespace, node):
    await client.create(PODS, pod_manifest("oom", node.name, [
        {"name": "hog", "command": ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=128M count=1"],
         "resources": {"limits": {"memory": "16Mi"}}}], restartPolicy="Never"), namespace)
    p = await wait_pod(client, namespace, "oom", lambda p: p["status"].get("phase") == "Failed")
    t = container_status(p, "hog")["state"]["terminated"]
    assert t["reason"] == "OOMKilled" and t["exitCode"] == 137


async def test_missing_image_pull_backoff(client, namespace, node):
    import asyncio
    seen: list[str] = []
    got_backoff = asyncio.Event()

    # Watch from a list's resourceVersion taken before the create: no status change can be missed,
    # however late the watch request itself gets through.
    rv = (await client.list(PODS, namespace))["metadata"]["resourceVersion"]

    async def watch():
        async for _, p in client.watch(PODS, namespace, resource_version=rv,
                                       field_selector="metadata.name=noimg"):
            r = container_status(p, "c").get("state", {}).get("waiting", {}).get("reason")
            if r and (not seen or seen[-1] != r):
                seen.append(r)
            if r == "ImagePullBackOff":
                got_backoff.set()
                return
    watcher = asyncio.create_task(watch())
    await client.create(PODS, pod_manifest("noimg", node.name, [
        {"name": "c", "image": "kubeling/does-not-exist:1.0"}]), namespace)
    await asyncio.wait_for(got_backoff.wait(), 30)
    watcher.cancel()
    assert "ErrImagePull" in seen and seen.index("ErrImagePull") < seen.index("ImagePullBackOff"), seen
    p = await client.get(PODS, "noimg", namespace)
    assert p["status"]["phase"] == "Pending"
    w = container_status(p, "c")["state"]["waiting"]
    assert w["reason"] in ("ImagePullBackOff", "ErrImagePull")
    # The events are recorded beside the status patches, not before them: wait for both.
    async def both_events():
        evs = await events_for(client, namespace, "noimg")
        failed = any(e["reason"] == "Failed" and e["type"] == "Warning" and "Failed to pull image" in e["message"]
                     for e in evs)
        backoff = any(e["reason"] == "BackOff" and "Back-off pulling image" in e["message"] for e in evs)
        return failed and backoff
    await wait_until(both_events, 30, "the Failed and BackOff events")
    assert not [r for r in node.containers() if r["LabelMap"].get("io.kubernetes.container.name") == "c"]
