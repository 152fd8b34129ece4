"""A second delete with a shorter grace period reaches the agent's kill under way
(a real runtime: its stop is issued again with the shorter timeout)."""
from __future__ import annotations

import time

import pytest

from agent_nodes import condition, pod_gone, pod_manifest, wait_pod, wait_until
from kubeling.resources import lookup

pytestmark = pytest.mark.e2e
PODS = lookup("pods")
EVENTS = lookup("events")


async def killing(client, ns, name) -> bool:
    evs = (await client.list(EVENTS, ns, field_selector=f"involvedObject.name={name}"))["items"]
    return any(e["reason"] == "Killing" for e in evs)


async def test_shorter_grace_period_during_the_kill(client, namespace, node):
    await client.create(PODS, pod_manifest("stubborn", node.name, [
        {"name": "c", "command": ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]}],
        terminationGracePeriodSeconds=300), namespace)
    await wait_pod(client, namespace, "stubborn", lambda p: condition(p, "Ready") == "True")
    t0 = time.monotonic()
    await client.delete(PODS, "stubborn", namespace)   # 300 s: SIGTERM is ignored
    await wait_until(lambda: killing(client, namespace, "stubborn"), 60, "the kill under way")
    await client.delete(PODS, "stubborn", namespace, grace_period=1)
    # Far below the first grace period: the shorter one reached the stop under way.
    await wait_until(lambda: pod_gone(client, namespace, "stubborn"), 90, "pod gone after SIGKILL")
    assert time.monotonic() - t0 < 150
    assert node.containers() == []
    assert node.ipam_files() == []
    assert "Traceback" not in node.log_text()
