"""A real agent and proxy run on credentials of their node's own, not the admin's.

The node joins as `kubeling join` does (bootstrap token -> CSR -> certificate signed
by the controller-manager), and its agent and proxy then do all their work with
`system:node:<name>`: register the Node, keep its status and Lease, run a pod and
report its status, delete it when it goes, watch services. Nothing they do is
refused, so the Node authorizer and NodeRestriction give a node what it needs.
"""
from __future__ import annotations

import os
import secrets

import pytest

from agent_nodes import (REFUSALS, TestNode, condition, new_bootstrap_token, pod_manifest, refusals,
                         start_controller_manager, tear_down, wait_pod, wait_until)
from controlplane.apiserver.authn import bootstrap_token_line
from kubeling import errors
from kubeling.client import Client
from kubeling.resources import lookup
from tests.conftest import free_port, start_apiserver

pytestmark = pytest.mark.e2e
PODS, NODES, LEASES, NAMESPACES = lookup("pods"), lookup("nodes"), lookup("leases"), lookup("namespaces")


@pytest.fixture
async def joined_node(etcd, tmp_path, node_runtime):
    if os.geteuid() != 0:
        pytest.fail("agent e2e tests need root")
    port = free_port()
    boot_token = new_bootstrap_token()
    node = TestNode(port, "", f"10.244.{secrets.randbelow(250) + 1}.0/24", scheme="https", runtime=node_runtime)
    # The serving certificate names the address the node reaches the apiserver on.
    api_proc, api = start_apiserver(etcd, tmp_path, token="e2e-admin", bind="0.0.0.0", tls=True,
                                    tls_hosts=(node.root_ip,), extra_tokens=bootstrap_token_line(boot_token),
                                    port=port)
    node.ca_pem = api.ca_pem
    cm_proc, cm_log = start_controller_manager(api, tmp_path)
    admin = Client(api.url, api.token, ca_pem=api.ca_pem)
    problems: list[str] = []
    try:
        node.create()
        await node.join_async(boot_token)
        node.start_agent()
        node.start_proxy()
        yield node, admin
        problems += refusals({"agent": node.log_text(), "proxy": node.proxy_log.read_text(),
                              "apiserver": api.log.read_text(), "controller-manager": cm_log.read_text()},
                             REFUSALS + ("Traceback",))
    finally:
        print(f"---- agent log of {node.name} ----\n{node.log_text()[-6000:]}")
        problems += await tear_down(node, admin, cm_proc, api_proc)
    assert not problems, problems


async def test_agent_and_proxy_work_with_node_credentials(joined_node, unique_name):
    node, admin = joined_node
    ns = unique_name
    await admin.create(NAMESPACES, {"metadata": {"name": ns}})

    async def ready_node():
        n = await admin.get(NODES, node.name)
        return n if any(c["type"] == "Ready" and c["status"] == "True"
                        for c in n.get("status", {}).get("conditions", [])) else None
    await wait_until(ready_node, 60, "the node Ready")
    lease = await wait_until(lambda: admin.get(LEASES, node.name, "kube-node-lease"), 30, "the node's lease")
    assert lease["spec"]["holderIdentity"] == node.name
    await admin.create(PODS, pod_manifest("web", node.name, [{"name": "web", "command": ["sleep", "3600"]}]), ns)
    await wait_pod(admin, ns, "web", lambda p: condition(p, "Ready") == "True", 60, "pod Ready")
    await admin.delete(PODS, "web", ns)

    async def gone():
        try:
            await admin.get(PODS, "web", ns)
        except errors.ApiError as exc:
            return exc.code == 404
        return False
    # The agent stops the containers, then (as the node) deletes the pod for good.
    await wait_until(gone, 60, "the pod deleted by its node")
    await admin.delete(NAMESPACES, ns)
