"""Fixtures for the agent e2e tests: an API server reachable from node network
namespaces, and test nodes (netns + dockerd or containerd + agent) torn down after each test
with a check that nothing stayed behind. Tests taking a node run on each runtime."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from agent_nodes import DOCKER, TestNode, docker_env, ensure_host_images, parametrize_runtime, sh
from tests.conftest import REPO, start_apiserver, stop_process

pytestmark = pytest.mark.e2e


def _host_k8s_containers() -> set[str]:
    out = sh(DOCKER, "ps", "-aq", "--filter", "label=io.kubernetes.docker.type", check=False,
             env=docker_env()).stdout
    return set(out.split())


@pytest.fixture(scope="session")
def apiserver(etcd, tmp_path_factory):
    """The shared fixture's API server, but listening on every address: agents
    in node namespaces reach it over their veth."""
    if os.geteuid() != 0:
        pytest.fail("agent e2e tests need root")
    ensure_host_images()
    base = tmp_path_factory.mktemp("apiserver-agent")
    proc, api = start_apiserver(etcd, base, token="agent-test-token", bind="0.0.0.0")
    yield api
    stop_process(proc)


def pytest_generate_tests(metafunc) -> None:
    # Every test that takes a node (or `node_runtime`) runs once per runtime, the runtime in its id.
    parametrize_runtime(metafunc)


@pytest.fixture
def make_node(apiserver):
    """Nodes of any runtime for one test; each is destroyed afterwards and must leave nothing."""
    before = _host_k8s_containers()
    nodes: list[TestNode] = []

    def make(start_agent: bool = True, extra_args: list[str] | None = None, runtime: str | None = None) -> TestNode:
        """runtime None: KUBELING_TEST_RUNTIME's, else docker (see TestNode)."""
        port = int(apiserver.url.rsplit(":", 1)[1])
        n = TestNode(port, apiserver.token, f"10.244.{secrets.randbelow(250) + 1}.0/24",
                     extra_args=extra_args or [], client_ca=apiserver.kubelet_ca,
                     **({"runtime": runtime} if runtime else {}))
        nodes.append(n)
        n.create()
        if start_agent:
            n.start_agent()
        return n

    yield make
    problems = []
    for n in nodes:
        # Shown by pytest only when the test failed.
        print(f"---- agent log of {n.name} ----\n{n.log_text()[-6000:]}")
        if n.agent_proc is not None and n.agent_proc.poll() is not None:
            problems.append(f"agent of {n.name} died: {n.log_text()[-3000:]}")
        problems += n.destroy()
    assert _host_k8s_containers() <= before, "containers left in the host dockerd"
    assert not problems, problems


@pytest.fixture
def node_factory(make_node, node_runtime: str):
    """make_node on the test's runtime (its parameter)."""
    def make(start_agent: bool = True, extra_args: list[str] | None = None) -> TestNode:
        return make_node(start_agent, extra_args, node_runtime)
    return make


@pytest.fixture
def node(node_factory) -> TestNode:
    return node_factory()


@pytest.fixture
def containerd_node(make_node) -> TestNode:
    """A node whose agent runs pods through CRI on a containerd of its own (tests of containerd alone)."""
    return make_node(runtime="containerd")


@pytest.fixture
def control_plane(apiserver, tmp_path):
    """The real controller manager and scheduler on the shared API server; neither may log a Traceback."""
    procs = []
    for name, args in (("cm", ["controlplane.controllers"]),
                       ("sched", ["controlplane.scheduler", "--no-leader-elect"])):
        with open(tmp_path / f"{name}.log", "wb") as out:
            procs.append(subprocess.Popen([sys.executable, "-m", *args, "--kubeconfig", str(apiserver.kubeconfig)],
                                          stdout=out, stderr=subprocess.STDOUT, cwd=REPO))
    yield
    for p in procs:
        stop_process(p)
    for name in ("cm", "sched"):
        text = (tmp_path / f"{name}.log").read_text()
        assert "Traceback" not in text, text

