"""Stale UDP conntrack entries: UDP has no connection to reset, so a flow keeps following its
old DNAT (to an endpoint that is gone, or to no endpoint at all) until its conntrack entry is
deleted. TCP needs nothing: the endpoint's RST or our REJECT ends it."""
from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterable, Mapping

from agent.proxy.model import Endpoint, ServicePort

log = logging.getLogger("kubeling.proxy.conntrack")

Flows = Mapping[ServicePort, tuple[Endpoint, ...]]


def stale_deletions(old: Flows, new: Flows) -> list[list[str]]:
    """conntrack arguments to run after a sync that changed `old` endpoints into `new`."""
    cmds: list[list[str]] = []
    for sp, eps in new.items():
        if sp.protocol != "udp":
            continue
        before = old.get(sp, ())
        if eps and not before:
            # Packets sent while there was no endpoint created entries with no DNAT.
            cmds.append(["-D", "-p", "udp", "--orig-dst", sp.cluster_ip, "--orig-port-dst", str(sp.port)])
            if sp.node_port:
                cmds.append(["-D", "-p", "udp", "--orig-port-dst", str(sp.node_port)])
        gone = {e.ip for e in before} - {e.ip for e in eps}
        for ip in sorted(gone):
            cmds.append(["-D", "-p", "udp", "--orig-dst", sp.cluster_ip, "--reply-src", ip])
            if sp.node_port:
                cmds.append(["-D", "-p", "udp", "--orig-port-dst", str(sp.node_port), "--reply-src", ip])
    for sp, before in old.items():
        if sp.protocol == "udp" and sp not in new and before:
            for ip in sorted({e.ip for e in before}):
                cmds.append(["-D", "-p", "udp", "--orig-dst", sp.cluster_ip, "--reply-src", ip])
    return cmds


def run_deletions(cmds: Iterable[list[str]]) -> int:
    """Runs them; conntrack exits 1 when nothing matched, which is fine."""
    n = 0
    for args in cmds:
        try:
            proc = subprocess.run(["conntrack", *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("conntrack %s: %s", " ".join(args), exc)
            continue
        if proc.returncode == 0:
            n += 1
        elif "0 flow entries" not in proc.stderr:
            log.warning("conntrack %s: %s", " ".join(args), proc.stderr.strip())
    return n
