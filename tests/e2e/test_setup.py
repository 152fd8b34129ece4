"""The local images built by scripts/setup exist and behave as pods need them to:
busybox has a working shell, httpd and wget; the pause container ends at once and
cleanly on SIGTERM and reaps orphans. Every container here carries a per-run label
and is removed at the end, which the last check asserts."""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import docker
import pytest

pytestmark = pytest.mark.e2e

BUSYBOX = "busybox:latest"
PAUSE = "kubeling/pause:3.9"
RUN_LABEL = {"kubeling.test": f"setup-{uuid.uuid4().hex[:8]}"}


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    c = docker.from_env(version="auto", timeout=60)
    yield c
    for ctr in c.containers.list(all=True, filters={"label": _label_filter()}):
        ctr.remove(force=True)
    c.close()


def _label_filter() -> str:
    (k, v), = RUN_LABEL.items()
    return f"{k}={v}"


def run_busybox(client: docker.DockerClient, script: str, **kw) -> str:
    """Run `sh -c script` in busybox (no network but loopback) and return stdout."""
    out = client.containers.run(BUSYBOX, ["sh", "-c", script], remove=True,
                                network_mode="none", labels=RUN_LABEL, **kw)
    return out.decode()


@pytest.mark.parametrize("tag", [BUSYBOX, PAUSE, "registry.k8s.io/pause:3.9"])
def test_image_exists(client: docker.DockerClient, tag: str) -> None:
    image = client.images.get(tag)
    assert image.labels.get("kubeling.source-hash"), f"{tag} was not built by scripts/setup"


def test_busybox_shell_runs(client: docker.DockerClient) -> None:
    assert run_busybox(client, "echo ok") == "ok\n"


def test_busybox_has_applets_pods_use(client: docker.DockerClient) -> None:
    # `which` searches PATH for the links; the shell's own `command -v` would
    # name built-in applets even if the links were missing.
    out = run_busybox(client, "which sh httpd nc wget sleep")
    assert out.split() == ["/bin/sh", "/bin/httpd", "/bin/nc", "/bin/wget", "/bin/sleep"]


def test_busybox_httpd_serves_and_wget_fetches(client: docker.DockerClient) -> None:
    # Both ends inside one container's own loopback: nothing leaves its netns.
    # `timeout`, not `wget -T`: Debian's busybox 1.35 wget segfaults with -T.
    script = ("echo hello-from-httpd > /var/www/index.html && "
              "httpd -p 127.0.0.1:8080 -h /var/www && "
              "timeout 5 wget -q -O - http://127.0.0.1:8080/")
    assert run_busybox(client, script) == "hello-from-httpd\n"


def test_pause_stops_promptly_with_exit_0(client: docker.DockerClient) -> None:
    ctr = client.containers.run(PAUSE, detach=True, network_mode="none", labels=RUN_LABEL)
    try:
        ctr.reload()
        assert ctr.status == "running"
        start = time.monotonic()
        ctr.stop(timeout=10)  # SIGTERM, then SIGKILL after 10 s if ignored
        elapsed = time.monotonic() - start
        ctr.reload()
        assert ctr.attrs["State"]["ExitCode"] == 0
        # Ignoring SIGTERM would take the whole 10 s until SIGKILL (exit 137, not 0).
        assert elapsed < 8.0, f"pause took {elapsed:.2f}s to stop on SIGTERM"
    finally:
        ctr.remove(force=True)


def test_pause_reaps_orphans(client: docker.DockerClient) -> None:
    # Share pause's PID namespace: orphans of the busybox shell are reparented to
    # pause (PID 1 there), and only its SIGCHLD handler keeps them from staying zombies.
    pause = client.containers.run(PAUSE, detach=True, network_mode="none", labels=RUN_LABEL)
    try:
        # Wait (bounded, 10 s) until no child of PID 1 is left: the orphans exited *and* were
        # reaped. A fixed sleep would pass vacuously when the machine is slow (orphans still running).
        script = ("for i in 1 2 3 4 5; do (sleep 0.2 &); done; "
                  "n=100; while [ $n -gt 0 ] && "
                  "[ \"$(cut -d' ' -f4 /proc/[0-9]*/stat 2>/dev/null | grep -cx 1)\" != 0 ]; "
                  "do sleep 0.1; n=$((n-1)); done; "
                  "echo pid1=$(cat /proc/1/comm); "
                  "for s in /proc/[0-9]*/stat; do cut -d' ' -f3 $s; done | grep -c Z || true")
        out = run_busybox(client, script, pid_mode=f"container:{pause.id}").split()
        assert out[0] == "pid1=pause"
        assert out[1] == "0", "orphaned children of pause were left as zombies"
    finally:
        pause.remove(force=True)


def test_leaves_no_containers(client: docker.DockerClient) -> None:
    left = client.containers.list(all=True, filters={"label": _label_filter()})
    assert left == []
