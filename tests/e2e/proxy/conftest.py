"""Fixtures of the proxy e2e tests: see proxy_netenv.py for the topology and why."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from proxy_netenv import Node, Uplink, root_links, stop  # noqa: E402

from tests.conftest import start_apiserver  # noqa: E402


@pytest.fixture(scope="session")
def uplink():
    up = Uplink.create()
    yield up
    up.delete()
    assert up.name not in root_links(), f"link {up.name} left behind"


@pytest.fixture(scope="session")
def node_kubeconfig(etcd, apiserver, uplink, tmp_path_factory) -> str:
    """A kubeconfig for proxies inside node namespaces: a second apiserver on the shared etcd,
    so objects the `client` fixture creates are what the proxy sees."""
    base = tmp_path_factory.mktemp("node-apiserver")
    proc, api = start_apiserver(etcd, base, token="proxy-test-token", bind=uplink.ip)
    yield str(api.kubeconfig)
    stop(proc)
    log = (base / "apiserver.log").read_text()
    assert "Traceback" not in log, log[-4000:]


@pytest.fixture
def node(uplink):
    n = Node.create(uplink)
    yield n
    # destroy() checks exactly what this node created (namespaces, its root-side veth, processes);
    # a wider look at the root namespace would see other runs' nodes.
    left = n.destroy()
    assert not left, f"left behind: {left}"


@pytest.fixture(params=["iptables", "nftables"])
def mode(request) -> str:
    """The proxy mode a test runs under (`--proxy-mode`); the nftables one needs a working nft."""
    from agent.proxy.nftables import available
    if request.param == "nftables" and not available():
        pytest.skip("no working nft binary")
    return request.param
