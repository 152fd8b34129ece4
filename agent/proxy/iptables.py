"""The iptables mode: the binaries the proxy drives (backend choice, save, restore, jump rules,
cleanup) and IptablesSync, which turns service ports and endpoints into one restore per sync.

Everything here touches only chains for which rules.is_ours() is true and the jump rules
rules.JUMPS names; no table is ever flushed and no other rule is deleted.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Mapping

from agent.proxy import rules
from agent.proxy.model import Endpoint, ServicePort

log = logging.getLogger("kubeling.proxy.iptables")


class IptablesError(RuntimeError):
    pass


def _count_rules(save_cmd: str) -> int:
    try:
        out = subprocess.run([save_cmd], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return -1
    return sum(1 for line in out.splitlines() if line.startswith("-A "))


def detect_backend() -> str:
    """'nft' or 'legacy': like kube-proxy's iptables-wrapper, whichever backend already holds
    more rules (Docker's, the CNI plugin's, a previous run's) is the one the host uses; a tie
    (e.g. a fresh host) means nft, Debian 12's default."""
    if not (shutil.which("iptables-nft-save") and shutil.which("iptables-legacy-save")):
        return "plain"
    legacy = _count_rules("iptables-legacy-save")
    nft = _count_rules("iptables-nft-save")
    return "legacy" if legacy > nft else "nft"


class Iptables:
    def __init__(self, backend: str | None = None) -> None:
        self.backend = backend or detect_backend()
        base = "iptables" if self.backend == "plain" else f"iptables-{self.backend}"
        self.iptables = base
        self.save_cmd = base + "-save"
        self.restore_cmd = base + "-restore"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.iptables, "-w", "5", *args], capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise IptablesError(f"{self.iptables} {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def save(self, table: str) -> str:
        proc = subprocess.run([self.save_cmd, "-t", table], capture_output=True, text=True)
        if proc.returncode != 0:
            raise IptablesError(f"{self.save_cmd} -t {table}: {proc.stderr.strip()}")
        return proc.stdout

    def restore(self, text: str) -> None:
        if not text:
            return
        proc = subprocess.run([self.restore_cmd, "-w", "5", "--noflush"], input=text,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise IptablesError(f"{self.restore_cmd} failed: {proc.stderr.strip()[:2000]}")

    def our_chains(self) -> dict[str, set[str]]:
        """Our chains that exist now (e.g. left by a previous run)."""
        found: dict[str, set[str]] = {}
        for table in rules.TABLES:
            names = {line[1:].split()[0] for line in self.save(table).splitlines() if line.startswith(":")}
            found[table] = {c for c in names if rules.is_ours(table, c)}
        return found

    def ensure_jumps(self, jumps: dict[tuple[str, str], tuple[str, ...]] = rules.JUMPS) -> None:
        """Each built-in chain jumps to ours at its top, once, in rules.JUMPS order. Already
        right: nothing is written (a restart never duplicates). Missing or partial: our jumps in
        that chain are removed and inserted again in order."""
        for (table, parent), targets in jumps.items():
            for target in targets:
                self.run("-t", table, "-N", target, check=False)  # an empty chain until the restore
            present = [self.run("-t", table, "-C", *rules.jump_rule(parent, t), check=False).returncode == 0
                       for t in targets]
            if all(present):
                continue
            for target in targets:
                while self.run("-t", table, "-D", *rules.jump_rule(parent, target), check=False).returncode == 0:
                    pass
            for target in reversed(targets):
                spec = rules.jump_rule(parent, target)
                self.run("-t", table, "-I", spec[0], "1", *spec[1:])

    def ensure_forward(self, cfg: rules.Config) -> None:
        """Only the forward-accept chain and its jump (what the nftables mode needs of iptables)."""
        self.ensure_jumps({("filter", "FORWARD"): (rules.FORWARD,)})
        self.restore("\n".join(["*filter", f":{rules.FORWARD} - [0:0]", *rules.forward_rules(cfg), "COMMIT"]) + "\n")

    def cleanup(self, keep: frozenset[tuple[str, str]] = frozenset()) -> dict[str, list[str]]:
        """Remove every jump to our chains and the chains themselves, in one batch per table,
        but for the (table, chain)s in `keep`. Returns what was removed: {table: [chains]}."""
        removed: dict[str, list[str]] = {}
        batch: list[str] = []
        for table in rules.TABLES:
            saved = self.save(table)
            chains = sorted(c for c in (line[1:].split()[0] for line in saved.splitlines()
                                        if line.startswith(":"))
                            if rules.is_ours(table, c) and (table, c) not in keep)
            jumps = []
            for line in saved.splitlines():
                if not line.startswith("-A "):
                    continue
                words = line.split()
                parent = words[1]
                # The target follows the last -j (a comment earlier in the rule could hold "-j").
                at = len(words) - 1 - words[::-1].index("-j") if "-j" in words else -1
                target = words[at + 1] if 0 <= at < len(words) - 1 else ""
                if not rules.is_ours(table, parent) and rules.is_ours(table, target) \
                        and (table, target) not in keep:
                    jumps.append("-D " + line[3:])
            if not chains and not jumps:
                continue
            removed[table] = chains
            batch.append(f"*{table}")
            batch += [f":{c} - [0:0]" for c in chains]
            batch += jumps
            batch += [f"-X {c}" for c in chains]
            batch.append("COMMIT")
        if batch:
            self.restore("\n".join(batch) + "\n")
        return removed


def cleanup_all_backends() -> dict[str, dict[str, list[str]]]:
    """`kubeling down`: our chains may sit in either backend if the host's choice changed."""
    done: dict[str, dict[str, list[str]]] = {}
    backends = ["nft", "legacy"] if shutil.which("iptables-legacy-save") else ["plain"]
    for backend in backends:
        ipt = Iptables(backend)
        try:
            has = any(ipt.our_chains().values())
        except (IptablesError, OSError):
            continue
        if has:
            done[backend] = ipt.cleanup()
    return done


class IptablesSync:
    """The iptables mode behind the proxier's backend interface: `sync` renders (only the
    services that changed, from the renderer's cache) and writes `iptables-restore --noflush`
    batches holding only the chains that differ from the last ones applied (one batch unless
    that is many chains, rules.restore_batches); a full
    sync also reads which chains of ours exist, so a previous run's leftovers go."""

    mode = "iptables"

    def __init__(self, ipt: Iptables, cfg: rules.Config) -> None:
        self.ipt = ipt
        self.renderer = rules.Renderer(cfg)
        self.applied: rules.Ruleset | None = None  # last ruleset written successfully
        self._jumps_ok = False

    @property
    def backend(self) -> str:
        return self.ipt.backend

    def sync(self, ports: list[ServicePort], endpoints: Mapping[rules.EndpointKey, list[Endpoint]],
             full: bool, only: set[tuple[str, str]] | None = None) -> int:
        """Blocking (subprocesses). Returns the number of lines written."""
        partial = not full and self.applied is not None
        ruleset = self.renderer.render(ports, endpoints, only if partial else None)
        delta = self.renderer.delta
        if partial and delta is not None:
            # Only these services' chains changed: write them, nothing is compared.
            written, dropped = delta
            batches = [t for t in [rules.restore_text({"nat": {c: ruleset["nat"][c] for c in sorted(written)}},
                                                      None, {"nat": dropped})] if t]
        else:
            if partial:
                assert self.applied is not None
                existing, old = rules.chain_names(self.applied), self.applied
            else:
                existing, old = self.ipt.our_chains(), None
            stale = {t: existing.get(t, set()) - set(ruleset[t]) for t in rules.TABLES}
            batches = rules.restore_batches(ruleset, old, stale)
        if full or not self._jumps_ok:
            # Before the restore, so the rules are live the moment they appear (the jumps lead
            # to chains that are empty until then).
            self.ipt.ensure_jumps()
            self._jumps_ok = True
        self.applied = None  # a failed restore leaves the state unknown: the next sync is full
        for text in batches:
            self.ipt.restore(text)
        self.applied = ruleset
        return sum(text.count("\n") for text in batches)
