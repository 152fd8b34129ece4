"""`python -m agent --teardown`: take every pod of this node off the machine.

What `kubeling down` runs after stopping the agent: containers stopped and
removed, CNI DEL for every sandbox (IPs released), checkpoints and volumes
removed, then the pod network itself (bridge, our iptables chains,
allocation files, the host-gw routes to other nodes) and the conflist. Nothing of kubeling's stays behind."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil

from agent.agent import Agent, AgentConfig

log = logging.getLogger("kubeling.teardown")


async def teardown_node(cfg: AgentConfig) -> int:
    """Returns the number of pods torn down."""
    agent = Agent(cfg)
    try:
        records = await agent.runtime.list()
        uids = {r.pod_uid for r in records} | await agent.sandbox_pod_uids()
        for uid in sorted(uids):
            log.info("tearing down pod %s", uid)
            await agent.syncer.teardown(uid)
    finally:
        await agent.close()
    conf = os.path.join(cfg.cni_conf_dir, cfg.cni_conf_name)
    bridge, network, data_dir = "cni0", "kubeling", os.path.join(cfg.root_dir, "ipam")
    try:
        with open(conf) as f:
            doc = json.load(f)
        network = doc.get("name", network)
        first = (doc.get("plugins") or [{}])[0]
        bridge = first.get("bridge", bridge)
        data_dir = (first.get("ipam") or {}).get("dataDir", data_dir)
    except (OSError, ValueError):
        pass
    from cni.cleanup import remove_network
    # pyroute2's blocking API runs an event loop of its own: keep it off ours.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, remove_network, bridge, network, data_dir)
    from agent.node_routes import remove_routes
    routes = await loop.run_in_executor(None, remove_routes)
    if routes:
        log.info("removed %d route(s) to other nodes' pod CIDRs", routes)
    try:
        os.unlink(conf)
    except FileNotFoundError:
        pass
    shutil.rmtree(cfg.root_dir, ignore_errors=True)
    return len(uids)
