"""The binding race: a pod bound by someone else between our decision and our
POST gets 409; the scheduler forgets its assumption and does not retry."""
from __future__ import annotations

import asyncio

from sched_cluster import PODS, pod, wait_bound

from kubeling import errors
from kubeling.client import Client


class RacingClient(Client):
    """Binds each pod to `rival_node` through another connection just before
    passing the scheduler's own binding on."""

    def __init__(self, server: str, token: str, rival: Client, rival_node: str) -> None:
        super().__init__(server, token)
        self.rival, self.rival_node = rival, rival_node
        self.attempts: list[tuple[str, str]] = []
        self.refused: list[errors.ApiError] = []

    async def create_binding(self, namespace, name, node, uid=None):
        self.attempts.append((name, node))
        await self.rival.create_binding(namespace, name, self.rival_node)
        try:
            return await super().create_binding(namespace, name, node, uid)
        except errors.ApiError as exc:
            self.refused.append(exc)
            raise


async def test_pod_bound_by_someone_else_is_forgotten_not_retried(cluster, kube, nodes, ns):
    from controlplane.scheduler.scheduler import Scheduler
    await nodes.add(f"ours-{ns}", cpu="1")
    await nodes.add(f"rival-{ns}", cpu="1", unschedulable=True)  # our scheduler never picks it
    client = RacingClient(cluster.url, cluster.token, kube, f"rival-{ns}")
    s = Scheduler(client, identity="race")
    await s.start()
    task = asyncio.create_task(s.run())
    try:
        created = await kube.create(PODS, pod("contested", cpu="600m"), ns)
        uid = created["metadata"]["uid"]
        assert await wait_bound(kube, ns, "contested") == f"rival-{ns}"
        await asyncio.sleep(2.5)  # longer than the first backoff: a retry would have happened
        assert client.attempts == [("contested", f"ours-{ns}")]
        [refusal] = client.refused
        assert refusal.code == 409
        assert refusal.message.endswith(f'pod contested is already assigned to node "rival-{ns}"')
        assert s.queue.where(uid) is None
        assert not s.cache.is_assumed(uid)
        # Accounted once, on the node the API server says, and our node is free.
        assert s.cache.node_of(uid) == f"rival-{ns}"
        assert s.cache.nodes[f"ours-{ns}"].requested.milli_cpu == 0
        assert s.cache.nodes[f"rival-{ns}"].requested.milli_cpu == 600
        # ... so the next 600m pod fits on our node.
        client.rival_node = "nowhere"  # stop racing
        client.create_binding = super(RacingClient, client).create_binding  # type: ignore[method-assign]
        await kube.create(PODS, pod("next", cpu="600m"), ns)
        assert await wait_bound(kube, ns, "next") == f"ours-{ns}"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await s.stop()
        await client.close()
