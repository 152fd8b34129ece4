"""The iptables rules kubeling-bridge owns, written with iptables-save / iptables-restore.

Per (bridge, subnet) two chains of our own:
  filter KUBELING-CNI-F-<hash>: ACCEPT from and to the pod subnet, jumped to from the top of
         FORWARD (Docker sets the FORWARD policy to DROP and br_netfilter sends bridged pod-to-pod
         frames through it). It lives as long as the bridge, which DEL keeps like the reference
         plugin does; remove_bridge_rules() (cni.cleanup) takes both away.
  nat    KUBELING-CNI-M-<hash>: ACCEPT to the subnet, RETURN to each non-masquerade CIDR (the
         cluster CIDR: pods on other nodes see the sender's pod IP), MASQUERADE the rest except
         multicast, jumped to from POSTROUTING by one rule per pod (-s <pod ip>), which only that
         pod owns; the DEL of the last such pod removes the chain. The non-masquerade CIDRs are
         part of the chain's hash, so a changed config makes a new chain instead of editing one
         that other pods use.
Rules are found again by their comments; nothing else is ever touched, and no table is flushed.
"""
from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import os
import shlex
import shutil
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

PREFIX = "KUBELING-CNI-"
FORWARD_PREFIX = PREFIX + "F-"
MASQ_PREFIX = PREFIX + "M-"
COMMENT = "kubeling-cni"
DEFAULT_LOCK = "/run/kubeling/cni-iptables.lock"

_backend: str | None = None

# When a long-lived process (the daemon) last saw a network's forward rules in place, so
# steady-state ADDs skip iptables-save. Keyed by the bridge's ifindex too: cleanup deletes the
# bridge, so a recreated one never inherits the entry. Short enough that rules removed behind
# our back come back soon.
VERIFIED_TTL = 30.0
_verified: dict[tuple[int, str, int, str], float] = {}
_verified_lock = threading.Lock()


def _count_rules(save_cmd: str) -> int:
    try:
        out = subprocess.run([save_cmd], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return -1
    return sum(1 for line in out.splitlines() if line.startswith("-A "))


def backend() -> str:
    """The iptables command family to use: the one the host's rules live in.

    KUBELING_CNI_IPTABLES=nft|legacy forces it; otherwise, like kube-proxy's iptables-wrapper,
    prefer whichever backend already holds more rules (Docker's), defaulting to `iptables`."""
    global _backend
    if _backend is not None:
        return _backend
    forced = os.environ.get("KUBELING_CNI_IPTABLES", "")
    if forced in ("nft", "legacy"):
        _backend = f"iptables-{forced}"
    elif shutil.which("iptables-nft-save") and shutil.which("iptables-legacy-save"):
        legacy = _count_rules("iptables-legacy-save")
        nft = _count_rules("iptables-nft-save")
        _backend = "iptables-legacy" if legacy > nft else "iptables-nft"
    else:
        _backend = "iptables"
    return _backend


def _cmd(tool: str) -> str:
    # iptables-nft -> iptables-nft-save; iptables -> iptables-save
    return backend() + "-" + tool if tool else backend()


@contextmanager
def _locked() -> Iterator[None]:
    path = os.environ.get("KUBELING_CNI_IPTABLES_LOCK", DEFAULT_LOCK)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def pod_key(network: str, container_id: str, ifname: str) -> str:
    return _hash(network, container_id, ifname)[:16]


@dataclass
class Saved:
    lines: dict[str, list[str]]  # table -> "-A ..." lines
    chains: dict[str, set[str]]  # table -> chain names

    def has_chain(self, table: str, chain: str) -> bool:
        return chain in self.chains.get(table, set())


def _save() -> Saved:
    out = subprocess.run([_cmd("save")], capture_output=True, text=True, check=True).stdout
    lines: dict[str, list[str]] = {}
    chains: dict[str, set[str]] = {}
    table = ""
    for line in out.splitlines():
        if line.startswith("*"):
            table = line[1:]
            lines.setdefault(table, [])
            chains.setdefault(table, set())
        elif line.startswith(":"):
            chains[table].add(line[1:].split()[0])
        elif line.startswith("-A "):
            lines[table].append(line)
    return Saved(lines, chains)


def _restore(tables: dict[str, list[str]]) -> None:
    text = ""
    for table, cmds in tables.items():
        if cmds:
            text += f"*{table}\n" + "\n".join(cmds) + "\nCOMMIT\n"
    if not text:
        return
    proc = subprocess.run([_cmd("restore"), "-w", "--noflush"], input=text, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"iptables-restore failed: {proc.stderr.strip()}\ninput:\n{text}")


def _net_comment(bridge: str, subnet: str) -> str:
    return f"{COMMENT} bridge={bridge} subnet={subnet}"


def _quote(comment: str) -> str:
    return '"' + comment + '"'


def _jump(parent: str, comment: str, chain: str, match: str = "") -> str:
    return f"{parent} {match}-m comment --comment {_quote(comment)} -j {chain}"


def _is_ipv4(subnet: str) -> bool:
    return ipaddress.ip_network(subnet, strict=False).version == 4


def ensure_pod_rules(bridge: str, bridge_index: int, subnet: str, masq: bool, pod_ip: str, key: str,
                     non_masquerade: tuple[str, ...] | list[str] = ()) -> None:
    """Forward-accept for the pod subnet and, with ipMasq, the pod's own masquerade jump
    (traffic to `non_masquerade` CIDRs leaves with the pod's own address)."""
    if not _is_ipv4(subnet):
        return  # the chains are IPv4 (iptables); IPv6 pods are left to ip6tables users
    subnet = str(ipaddress.ip_network(subnet, strict=False))
    keep = [str(ipaddress.ip_network(c, strict=False)) for c in non_masquerade if _is_ipv4(c)]
    h = _hash(bridge, subnet)[:12]
    fchain = FORWARD_PREFIX + h
    mchain = MASQ_PREFIX + (_hash(bridge, subnet, *keep)[:12] if keep else h)
    comment = _net_comment(bridge, subnet)
    vkey = (_netns_inode(), bridge, bridge_index, subnet)
    if not masq:
        with _verified_lock:
            seen = _verified.get(vkey)
        if seen is not None and time.monotonic() - seen < VERIFIED_TTL:
            return
    with _locked():
        saved = _save()
        filt: list[str] = []
        nat: list[str] = []
        if not saved.has_chain("filter", fchain):
            filt += [f":{fchain} - [0:0]", f"-A {fchain} -s {subnet} -j ACCEPT", f"-A {fchain} -d {subnet} -j ACCEPT"]
        if _jump("-A FORWARD", comment, fchain) not in saved.lines.get("filter", []):
            filt.append(_jump("-I FORWARD 1", comment, fchain))
        if masq:
            if not saved.has_chain("nat", mchain):
                nat += [
                    f":{mchain} - [0:0]",
                    f"-A {mchain} -d {subnet} -m comment --comment {_quote(comment)} -j ACCEPT",
                    *(f"-A {mchain} -d {c} -m comment --comment {_quote(comment)} -j RETURN" for c in keep),
                    f"-A {mchain} ! -d 224.0.0.0/4 -m comment --comment {_quote(comment)} -j MASQUERADE",
                ]
            rule = _jump("-A POSTROUTING", f"{COMMENT} pod={key}", mchain, f"-s {pod_ip}/32 ")
            if rule not in saved.lines.get("nat", []):
                nat.append(rule)
        _restore({"filter": filt, "nat": nat})
        with _verified_lock:
            _verified[vkey] = time.monotonic()


def _netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def _forget(bridge: str) -> None:
    with _verified_lock:
        for k in [k for k in _verified if k[1] == bridge]:
            del _verified[k]


def _unreferenced_masq_chains(saved: Saved, removed: set[str]) -> list[str]:
    chains = [c for c in saved.chains.get("nat", set()) if c.startswith(MASQ_PREFIX)]
    used = set()
    for line in saved.lines.get("nat", []):
        if line in removed:
            continue
        parts = line.split(" -j ")
        if len(parts) > 1:
            used.add(parts[-1].split()[0])
    return [c for c in chains if c not in used]


def remove_pod_rules(key: str, bridge: str) -> None:
    """Drop the pod's masquerade jump, and the masquerade chain once no pod jumps to it."""
    with _locked():
        saved = _save()
        mine = {l for l in saved.lines.get("nat", []) if f'--comment "{COMMENT} pod={key}"' in l}
        nat = ["-D" + l[2:] for l in mine]
        mchains = _masq_chains_of(saved, bridge)
        for chain in sorted(_unreferenced_masq_chains(saved, mine)):
            if chain in mchains:
                nat += [f"-F {chain}", f"-X {chain}"]
        _restore({"nat": nat})


def _masq_chains_of(saved: Saved, bridge: str) -> set[str]:
    return {
        l.split()[1]
        for l in saved.lines.get("nat", [])
        if l.split()[1].startswith(MASQ_PREFIX) and f"bridge={bridge} " in l
    }


def _forward_removal(saved: Saved, bridge: str) -> list[str]:
    cmds: list[str] = []
    chains = set()
    for l in saved.lines.get("filter", []):
        if l.startswith("-A FORWARD ") and f'"{COMMENT} bridge={bridge} ' in l:
            chain = l.split(" -j ")[-1].split()[0]
            if chain.startswith(FORWARD_PREFIX):
                cmds.append("-D" + l[2:])
                chains.add(chain)
    for chain in sorted(chains):
        cmds += [f"-F {chain}", f"-X {chain}"]
    return cmds


def remove_bridge_rules(bridge: str) -> None:
    """Explicit cleanup: every chain and jump kubeling-cni made for `bridge`."""
    _forget(bridge)
    with _locked():
        saved = _save()
        mchains = _masq_chains_of(saved, bridge)
        nat = ["-D" + l[2:] for l in saved.lines.get("nat", []) if l.startswith("-A POSTROUTING ") and
               l.split(" -j ")[-1].split()[0] in mchains]
        for chain in sorted(mchains):
            nat += [f"-F {chain}", f"-X {chain}"]
        _restore({"filter": _forward_removal(saved, bridge), "nat": nat})


def remove_stale_pod_rules(valid_keys: set[str], bridge: str) -> None:
    """GC: drop masquerade jumps of pods the runtime no longer knows, for this bridge only."""
    with _locked():
        saved = _save()
        mchains = _masq_chains_of(saved, bridge)
        stale = set()
        for l in saved.lines.get("nat", []):
            if not l.startswith("-A POSTROUTING ") or l.split(" -j ")[-1].split()[0] not in mchains:
                continue
            words = shlex.split(l)
            comment = words[words.index("--comment") + 1] if "--comment" in words else ""
            if comment.startswith(f"{COMMENT} pod=") and comment.split("=", 1)[1] not in valid_keys:
                stale.add(l)
        _restore({"nat": ["-D" + l[2:] for l in stale]})


def owned_rules() -> list[str]:
    """Every rule or chain line of ours, for tests and diagnostics."""
    out = subprocess.run([_cmd("save")], capture_output=True, text=True, check=True).stdout
    return [l for l in out.splitlines() if PREFIX in l or COMMENT in l]
