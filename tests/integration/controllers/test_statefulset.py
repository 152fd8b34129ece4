"""The StatefulSet controller (real controller manager and apiserver). Order is
proven from the pod watch: the test records every pod event while it plays the
agent (marking pods Running and Ready through pods/status)."""
from __future__ import annotations

import asyncio

import pytest

from controller_waits import eventually
from kubeling import errors
from kubeling.resources import lookup
from workload_pods import PODS, delete_namespace, reasons, set_phase

STS = lookup("statefulsets")


@pytest.fixture
async def ns(client, namespace, controller_manager):
    yield namespace
    await delete_namespace(client, namespace)


def statefulset(name: str, replicas: int, **spec) -> dict:
    return {"metadata": {"name": name},
            "spec": {"replicas": replicas, "serviceName": "web", "selector": {"matchLabels": {"app": name}},
                     **spec,
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


class PodLog:
    """Every pod event of a namespace, in watch order."""

    def __init__(self, client, ns):
        self.client, self.ns, self.events = client, ns, []

    async def run(self):
        listed = await self.client.list(PODS, self.ns)
        async for typ, obj in self.client.watch(PODS, self.ns, resource_version=listed["metadata"]["resourceVersion"]):
            self.events.append((typ, obj["metadata"]["name"], bool(obj["metadata"].get("deletionTimestamp"))))

    def index(self, typ: str, name: str) -> int:
        return next(i for i, e in enumerate(self.events) if e[0] == typ and e[1] == name)


async def pods(client, ns):
    return {p["metadata"]["name"]: p for p in (await client.list(PODS, ns))["items"]}


async def make_ready(client, ns, name):
    async def exists():
        return (await pods(client, ns)).get(name)
    await eventually(exists)
    await set_phase(client, ns, name, "Running", ready=True)


async def test_ordered_start_scale_down_and_rolling_update(client, ns):
    log = PodLog(client, ns)
    watcher = asyncio.create_task(log.run())
    await asyncio.sleep(0.2)
    try:
        await client.create(STS, statefulset("db", 3), ns)
        for i in range(3):
            await make_ready(client, ns, f"db-{i}")
        await eventually(lambda: _ready_replicas(client, ns, "db", 3))
        # Pod N+1 was created only after pod N was marked Running and Ready.
        for i in (1, 2):
            ready_prev = next(k for k, e in enumerate(log.events) if e[:2] == ("MODIFIED", f"db-{i-1}"))
            assert log.index("ADDED", f"db-{i}") > ready_prev, log.events
        p = (await pods(client, ns))["db-1"]
        assert p["spec"]["hostname"] == "db-1" and p["spec"]["subdomain"] == "web"
        assert p["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "db-1"
        assert p["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "1"
        ref = p["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["controller"], ref["blockOwnerDeletion"]) == ("StatefulSet", True, True)

        # Scale down through the scale subresource: the highest ordinal goes first.
        scale = await client.get(STS, "db", ns, subresource="scale")
        assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3
        await client.patch(STS, "db", {"spec": {"replicas": 1}}, ns, subresource="scale")

        async def only(names):
            return set(await pods(client, ns)) == names
        await eventually(lambda: only({"db-0"}))
        assert log.index("DELETED", "db-2") < log.index("DELETED", "db-1"), log.events

        # Scale up again, then a rolling update: replaced from the highest ordinal down.
        await client.patch(STS, "db", {"spec": {"replicas": 2}}, ns)
        await make_ready(client, ns, "db-1")
        await eventually(lambda: _ready_replicas(client, ns, "db", 2))
        mark = len(log.events)
        await client.patch(STS, "db", {"spec": {"template": {"metadata": {"annotations": {"v": "2"}}}}}, ns)

        async def replaced(name):
            p = (await pods(client, ns)).get(name)
            if p and (p["metadata"].get("annotations") or {}).get("v") == "2":
                if p["status"].get("phase") != "Running":
                    await set_phase(client, ns, name, "Running", ready=True)
                return True
            return False
        await eventually(lambda: replaced("db-1"))
        await eventually(lambda: replaced("db-0"))
        later = log.events[mark:]
        deleted = [e[1] for e in later if e[0] == "DELETED"]
        assert deleted == ["db-1", "db-0"], later

        async def rolled():
            s = await client.get(STS, "db", ns)
            st = s["status"]
            return st if st.get("updatedReplicas") == 2 and st["currentRevision"] == st["updateRevision"] \
                and st.get("readyReplicas") == 2 else None
        await eventually(rolled)
        assert "SuccessfulCreate" in await reasons(client, ns, "db")
    finally:
        watcher.cancel()


async def _ready_replicas(client, ns, name, n):
    s = await client.get(STS, name, ns)
    return s if (s.get("status") or {}).get("readyReplicas") == n else None


async def test_statefulset_get_table_and_invalid_spec(client, ns):
    await client.create(STS, statefulset("t", 0), ns)
    table = await client.request("GET", f"/apis/apps/v1/namespaces/{ns}/statefulsets",
                                 accept="application/json;as=Table;v=v1;g=meta.k8s.io")
    assert [c["name"] for c in table["columnDefinitions"]][:3] == ["Name", "Ready", "Age"]
    assert table["rows"][0]["cells"][:2] == ["t", "0/0"]
    bad = statefulset("u", -1, podManagementPolicy="Sometimes")
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(errors.ApiError) as exc:
        await client.create(STS, bad, ns)
    fields = {c["field"] for c in exc.value.details["causes"]}
    assert {"spec.replicas", "spec.podManagementPolicy", "spec.template.metadata.labels"} <= fields


async def test_min_ready_seconds_delays_available_replicas(client, ns):
    await client.create(STS, statefulset("slow", 1, minReadySeconds=3), ns)
    await make_ready(client, ns, "slow-0")
    s = await eventually(lambda: _ready_replicas(client, ns, "slow", 1))
    assert s["status"]["availableReplicas"] == 0

    async def available():
        got = await client.get(STS, "slow", ns)
        return got if got["status"].get("availableReplicas") == 1 else None
    await eventually(available, 10)  # no pod event comes: the controller requeued itself
