"""kubeling's own containerd beside Docker's (agent/runtime/containerd_host.py): it starts
without touching Docker or its containerd, takes the images from the local Docker once,
and stops leaving no sandbox, shim or process; `kubeling node` reads it and Docker."""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from agent.runtime import containerd_host as host
from agent.runtime.containerd_config import ContainerdConfig
from tests.conftest import REPO, wait_for

pytestmark = pytest.mark.e2e

DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
DOCKER_CONTAINERD_PID = Path("/var/run/docker/containerd/containerd.pid")
DOCKER_ENV = {**os.environ, "DOCKER_API_VERSION": "1.41"}


def sh(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=timeout, env=DOCKER_ENV)


def kubeling(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubeling", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


def _alive(pid: int) -> bool:
    return host._alive(pid)


def _mounts_under(path: Path) -> list[str]:
    return [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(str(path))]


@pytest.fixture
def containerd():
    """Our containerd in a dir of its own (a short one: the socket path has a length limit)."""
    base = Path(tempfile.mkdtemp(prefix="kubeling-cd-", dir="/var/tmp"))
    cfg = ContainerdConfig(root=str(base / "root"), state=str(base / "state"),
                           socket=str(base / "state" / "containerd.sock"), cni_conf_dir=str(base / "net.d"))
    proc = host.start(cfg, base / "config.toml", base / "containerd.log")
    try:
        host.wait_ready(cfg.endpoint, 30, proc)
        yield cfg, proc, base
    finally:
        if proc.poll() is None:
            host.stop(proc.pid, cfg.endpoint)
        proc.wait(30)
        left = _mounts_under(base)
        for m in sorted(left, reverse=True):
            subprocess.run(["umount", "-l", m], check=False)
        shutil.rmtree(base, ignore_errors=True)
        assert not left, f"mounts left by containerd: {left}"
        assert not host.shim_pids(cfg.endpoint)


def test_it_runs_beside_dockers_containerd_and_leaves_docker_alone(containerd):
    cfg, proc, base = containerd
    docker_cd = int(DOCKER_CONTAINERD_PID.read_text().strip())
    assert _alive(docker_cd) and docker_cd != proc.pid
    name = f"kubeling-cd-test-{secrets.token_hex(3)}"
    sh(DOCKER, "run", "-d", "--name", name, "busybox:latest", "sleep", "600")
    try:
        assert host.cri_status(cfg.endpoint) is not None
        # Its own socket, root and state; Docker's containerd answers as before.
        assert cfg.socket != "/var/run/docker/containerd/containerd.sock"
        assert (base / "state" / "containerd.sock").is_socket()
        assert name in sh(DOCKER, "ps", "--format", "{{.Names}}").stdout.split()
        assert host.present_images(cfg.endpoint) == set(), "a new containerd holds no image"
        # Docker's containerd is asked nothing of ours: its k8s.io namespace stays empty.
        theirs = sh("ctr", "-a", "/var/run/docker/containerd/containerd.sock", "namespaces", "ls", "-q").stdout
        assert "k8s.io" not in theirs.split()

        problems = host.stop(proc.pid, cfg.endpoint)
        assert problems == []
        proc.wait(10)
        assert not _alive(proc.pid)
        assert _alive(docker_cd) and int(DOCKER_CONTAINERD_PID.read_text().strip()) == docker_cd
        assert sh(DOCKER, "inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
        assert name in sh(DOCKER, "ps", "--format", "{{.Names}}").stdout.split()
    finally:
        sh(DOCKER, "rm", "-f", name, check=False)


def test_images_come_from_docker_once_pause_first_and_cri_sees_them(containerd):
    cfg, _, _ = containerd
    assert host.import_images(cfg.endpoint, host.DEFAULT_IMAGES) == ["kubeling/pause:3.9", "busybox:latest"]
    listed = sh("ctr", "-a", cfg.socket, "-n", "k8s.io", "images", "ls", "-q").stdout.split()
    assert {"docker.io/kubeling/pause:3.9", "docker.io/library/busybox:latest"} <= set(listed)
    # Present ones are skipped.
    assert host.import_images(cfg.endpoint, host.DEFAULT_IMAGES) == []
    # An image Docker lacks is an error, not a silent skip.
    with pytest.raises(host.ContainerdError, match="docker save"):
        host.import_images(cfg.endpoint, [f"kubeling-no-such-image-{secrets.token_hex(3)}:1"])
    out = kubeling("node", "images", "--runtime-endpoint", cfg.endpoint)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()]
    assert rows[0] == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
    assert ["docker.io/kubeling/pause", "3.9"] in [r[:2] for r in rows]
    assert ["docker.io/library/busybox", "latest"] in [r[:2] for r in rows]
    docker_id = sh(DOCKER, "image", "inspect", "-f", "{{.Id}}", "busybox:latest").stdout.strip()
    assert [r for r in rows if r[0] == "docker.io/library/busybox"][0][2] == docker_id.split(":")[1][:13]


def _cgroup_dirs(parent: str) -> list[Path]:
    return [d for d in Path("/sys/fs/cgroup").glob(f"*/{parent.strip('/')}") if d.is_dir()]


def _run_host_network_pod(endpoint: str, uid: str, cgroup_parent: str) -> tuple[str, str]:
    """A sandbox on the host's network with one busybox container in it, through CRI:
    (sandbox id, container id)."""
    import grpc

    from agent.runtime.cri_api import api_pb2 as pb
    from agent.runtime.cri_api import api_pb2_grpc
    cfg = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="cd-test", uid=uid, namespace="kubeling-test", attempt=0),
        labels={"io.kubernetes.pod.uid": uid, "io.kubernetes.pod.name": "cd-test",
                "io.kubernetes.pod.namespace": "kubeling-test"},
        linux=pb.LinuxPodSandboxConfig(cgroup_parent=cgroup_parent, security_context=pb.LinuxSandboxSecurityContext(
            namespace_options=pb.NamespaceOption(network=pb.NODE))))
    labels = {"io.kubernetes.pod.uid": uid, "io.kubernetes.pod.name": "cd-test",
              "io.kubernetes.pod.namespace": "kubeling-test", "io.kubernetes.container.name": "app"}
    app = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="app", attempt=0),
        image=pb.ImageSpec(image="docker.io/library/busybox:latest"), command=["sleep", "600"], labels=labels,
        linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(
            namespace_options=pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER))))
    with grpc.insecure_channel(endpoint) as ch:
        rt = api_pb2_grpc.RuntimeServiceStub(ch)
        sandbox = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg), timeout=60).pod_sandbox_id
        container = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sandbox, config=app,
                                                                 sandbox_config=cfg), timeout=60).container_id
        rt.StartContainer(pb.StartContainerRequest(container_id=container), timeout=60)
    return sandbox, container


def test_stop_removes_what_sandboxes_are_left_and_no_shim_outlives_it(containerd):
    cfg, proc, _ = containerd
    host.import_images(cfg.endpoint, host.DEFAULT_IMAGES)
    uid = secrets.token_hex(8)
    # A cgroup parent of the test's own, removed at the end (runc removes only the sandbox's).
    cgroup_parent = f"/kubeling-test-cd-{uid}"
    try:
        _check_stop_removes_the_sandbox(cfg, proc, uid, cgroup_parent)
    finally:
        for d in sorted(_cgroup_dirs(cgroup_parent), reverse=True):
            for sub in sorted((p for p in d.rglob("*") if p.is_dir()), reverse=True):
                sub.rmdir()
            d.rmdir()


def _check_stop_removes_the_sandbox(cfg: ContainerdConfig, proc: subprocess.Popen, uid: str,
                                    cgroup_parent: str) -> None:
    sandbox, container = _run_host_network_pod(cfg.endpoint, uid, cgroup_parent)
    assert _cgroup_dirs(cgroup_parent), "the sandbox runs under the cgroup parent it was given"
    out = kubeling("node", "ps", "--runtime-endpoint", cfg.endpoint)
    assert out.returncode == 0, out.stderr
    rows = [[c.strip() for c in line.split("   ") if c.strip()] for line in out.stdout.splitlines()]
    assert rows[0] == ["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD"]
    assert [container[:13], "docker.io/library/busybox:latest", "Running", "app", "0", sandbox[:13], "cd-test"] \
        in [r[:2] + r[3:] for r in rows], out.stdout
    shims = wait_for(lambda: host.shim_pids(cfg.endpoint), 30, "the sandbox's shim")
    # The shim has a process group of its own: signalling containerd's never reaches it.
    assert all(os.getpgid(s) != os.getpgid(proc.pid) for s in shims)
    out = kubeling("node", "pods", "--runtime-endpoint", cfg.endpoint)
    assert out.returncode == 0, out.stderr
    rows = [[c.strip() for c in line.split("   ") if c.strip()] for line in out.stdout.splitlines()]
    assert [sandbox[:13], "Ready", "cd-test", "kubeling-test", "0"] in [r[:1] + r[2:] for r in rows], out.stdout

    problems = host.stop(proc.pid, cfg.endpoint)
    assert problems == ["1 sandbox(es) were still there (removed)"]
    proc.wait(10)
    assert host.shim_pids(cfg.endpoint) == []
    assert not any(_alive(s) for s in shims)


def test_node_ps_and_pods_read_dockers_containers_through_the_runtime_interface():
    """Containers labelled as the agent labels them (a sandbox and an app container of one pod)."""
    uid = secrets.token_hex(8)
    pod = f"np-{uid[:6]}"
    labels = ["io.kubernetes.pod.name=" + pod, "io.kubernetes.pod.namespace=kubeling-test",
              "io.kubernetes.pod.uid=" + uid]
    lab = [a for label in labels for a in ("--label", label)]
    made = []
    try:
        sandbox = sh(DOCKER, "run", "-d", "--name", f"k8s_POD_{pod}_kubeling-test_{uid}_0", *lab,
                     "--label", "io.kubernetes.docker.type=podsandbox", "--label", "io.kubernetes.container.name=POD",
                     "--network", "none", "kubeling/pause:3.9").stdout.strip()
        made.append(sandbox)
        app = sh(DOCKER, "run", "-d", "--name", f"k8s_app_{pod}_kubeling-test_{uid}_1", *lab,
                 "--label", "io.kubernetes.docker.type=container", "--label", "io.kubernetes.container.name=app",
                 "--label", "io.kubernetes.sandbox.id=" + sandbox, "--label", "annotation.io.kubernetes.attempt=1",
                 "--network", "container:" + sandbox, "busybox:latest", "sleep", "600").stdout.strip()
        made.append(app)
        ps = kubeling("node", "ps", "--runtime-endpoint", "unix:///var/run/docker.sock")
        assert ps.returncode == 0, ps.stderr
        rows = [[c.strip() for c in line.split("   ") if c.strip()] for line in ps.stdout.splitlines()]
        assert [app[:13], "busybox:latest", "Running", "app", "1", sandbox[:13], pod] in [r[:2] + r[3:] for r in rows]
        assert not [r for r in rows if r[0] == sandbox[:13]], "sandboxes are not containers of the pod"
        pods = kubeling("node", "pods", "--runtime-endpoint", "unix:///var/run/docker.sock")
        assert pods.returncode == 0, pods.stderr
        rows = [[c.strip() for c in line.split("   ") if c.strip()] for line in pods.stdout.splitlines()]
        assert [sandbox[:13], "Ready", pod, "kubeling-test", "0"] in [r[:1] + r[2:] for r in rows], pods.stdout
        sh(DOCKER, "stop", "-t", "0", app)
        ps = kubeling("node", "ps", "--runtime-endpoint", "unix:///var/run/docker.sock")
        assert app[:13] not in ps.stdout
        ps = kubeling("node", "ps", "-a", "--runtime-endpoint", "unix:///var/run/docker.sock")
        assert app[:13] in ps.stdout and "Exited" in ps.stdout
        images = kubeling("node", "images", "--runtime-endpoint", "unix:///var/run/docker.sock")
        assert ["busybox", "latest"] in [line.split()[:2] for line in images.stdout.splitlines()]
    finally:
        if made:
            sh(DOCKER, "rm", "-f", *made, check=False)
