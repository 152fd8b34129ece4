"""The nftables mode: the `nft` binary (one `nft -f` transaction per sync) and NftablesSync,
the proxier's backend that renders with nft_rules and writes only what changed.

Everything here touches only the table `ip kubeling-proxy`. One thing stays in iptables: an
accept in our table cannot overrule a DROP policy of iptables' FORWARD chain (Docker sets one;
every base chain on a hook gets its say), so forwarded service and pod traffic is accepted by
the iptables mode's own KUBELING-FORWARD chain, kept by the same Iptables backend.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Mapping

from agent.proxy import nft_rules, rules
from agent.proxy.iptables import Iptables
from agent.proxy.model import Endpoint, ServicePort

log = logging.getLogger("kubeling.proxy.nftables")

TABLE_REF = f"{nft_rules.FAMILY} {nft_rules.TABLE}"


class NftablesError(RuntimeError):
    pass


def available() -> bool:
    """The nft binary is there and the kernel answers it."""
    if not shutil.which("nft"):
        return False
    try:
        proc = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


class Nft:
    def run_script(self, text: str) -> None:
        if not text:
            return
        proc = subprocess.run(["nft", "-f", "-"], input=text, capture_output=True, text=True)
        if proc.returncode != 0:
            raise NftablesError(f"nft -f failed: {proc.stderr.strip()[:2000]}")

    def exists(self) -> bool:
        proc = subprocess.run(["nft", "list", "tables", nft_rules.FAMILY], capture_output=True, text=True)
        if proc.returncode != 0:
            raise NftablesError(f"nft list tables: {proc.stderr.strip()}")
        return f"table {TABLE_REF}" in proc.stdout.splitlines()

    def cleanup(self) -> bool:
        """Delete our table (and so every rule, map and set of ours); True if there was one."""
        if not self.exists():
            return False
        self.run_script(f"delete table {TABLE_REF}\n")
        return True


class NftablesSync:
    """The nftables mode behind the proxier's backend interface: `sync` renders (only the
    services that changed, from the renderer's cache) and writes one `nft -f` transaction
    holding only the elements and chains that differ from the last one applied."""

    mode = "nftables"

    def __init__(self, nft: Nft, cfg: rules.Config, ipt: Iptables | None = None) -> None:
        """ipt: where the forward-accept chain lives (None: not kept, e.g. in unit tests)."""
        self.nft = nft
        self.cfg = cfg
        self.ipt = ipt
        self.renderer = nft_rules.Renderer(cfg)
        self.applied: nft_rules.NftRuleset | None = None
        self._forward_ok = False

    @property
    def backend(self) -> str:
        return "nft"

    def sync(self, ports: list[ServicePort], endpoints: Mapping[rules.EndpointKey, list[Endpoint]],
             full: bool, only: set[tuple[str, str]] | None = None) -> int:
        partial = not full and self.applied is not None
        ruleset = self.renderer.render(ports, endpoints, only if partial else None)
        if partial:
            text = nft_rules.transaction(ruleset, self.applied, touched=self.renderer.delta)
        elif self.applied is not None:
            # What is ours is what was last written: no listing of the table (seconds at 10k).
            text = nft_rules.transaction(ruleset, None, {"chains": set(self.applied.chains),
                                                         "sets": set(self.applied.affinity)})
        else:
            # At start or after a failure the table's content is unknown: it is replaced whole,
            # in the same transaction (the affinity memory goes with it, as over a restart).
            text = nft_rules.transaction(ruleset, None, replace=self.nft.exists())
        if self.ipt is not None and (full or not self._forward_ok):
            self.ipt.ensure_forward(self.cfg)
            self._forward_ok = True
        self.applied = None  # a failed transaction leaves the state unknown: the next sync is full
        self.nft.run_script(text)
        self.applied = ruleset
        return text.count("\n")
