"""A pod's /etc/resolv.conf from its dnsPolicy and dnsConfig, as kubelet writes it.

kubelet (pkg/kubelet/network/dns): ClusterFirst points the pod at the cluster DNS with the
search path `<ns>.svc.<domain> svc.<domain> <domain>` plus the host's searches and
`options ndots:5`; a host-network pod under ClusterFirst, or ClusterFirst with no cluster DNS
configured, gets the host's file instead (Default); ClusterFirstWithHostNet is ClusterFirst
for host-network pods too; None takes dnsConfig alone. dnsConfig's nameservers and searches are
appended (duplicates dropped), its options override same-named ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_NAMESERVERS = 3  # glibc reads three
MAX_SEARCHES = 32    # kubelet's limit since 1.28 (MaxDNSSearchPaths)
MAX_SEARCH_CHARS = 2048


@dataclass(frozen=True)
class ClusterDNS:
    nameservers: list[str] = field(default_factory=list)  # the agent's --cluster-dns
    domain: str = "cluster.local"                          # --cluster-domain
    host_resolv_conf: str = ""                             # the node's resolv.conf text (--resolv-conf)


@dataclass
class _Conf:
    nameservers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[tuple[str, str | None]] = field(default_factory=list)


def parse_resolv_conf(text: str) -> _Conf:
    conf = _Conf()
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1:
            conf.nameservers.append(words[1])
        elif words[0] in ("search", "domain"):
            conf.searches = words[1:]  # the last search/domain line wins, as in glibc
        elif words[0] == "options":
            conf.options.extend(_option(w) for w in words[1:])
    return conf


def _option(word: str) -> tuple[str, str | None]:
    name, sep, value = word.partition(":")
    return name, value if sep else None


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    return [x for x in items if not (x in seen or seen.add(x))]  # type: ignore[func-returns-value]


def _merge_options(base: list[tuple[str, str | None]], extra: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    merged = dict(base)
    for opt in extra:
        if opt.get("name"):
            merged[opt["name"]] = opt.get("value")
    return list(merged.items())


def effective_policy(pod: dict[str, Any], settings: ClusterDNS) -> str:
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "ClusterFirst" and spec.get("hostNetwork"):
        policy = "Default"
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and not settings.nameservers:
        policy = "Default"  # kubelet: no cluster DNS configured, fall back to the host's
    return policy


def resolv_conf(pod: dict[str, Any], settings: ClusterDNS) -> str:
    """The file's text for the pod."""
    spec = pod.get("spec") or {}
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    host = parse_resolv_conf(settings.host_resolv_conf)
    policy = effective_policy(pod, settings)
    if policy == "None":
        conf = _Conf()
    elif policy == "Default":
        conf = _Conf(list(host.nameservers), list(host.searches), list(host.options))
    else:
        d = settings.domain.strip(".")
        conf = _Conf(list(settings.nameservers), [f"{ns}.svc.{d}", f"svc.{d}", d, *host.searches],
                     [("ndots", "5")])
    extra = spec.get("dnsConfig") or {}
    conf.nameservers = _unique(conf.nameservers + list(extra.get("nameservers") or []))[:MAX_NAMESERVERS]
    searches = _unique([s.rstrip(".") for s in conf.searches + list(extra.get("searches") or []) if s])
    kept: list[str] = []
    for s in searches[:MAX_SEARCHES]:
        if len(" ".join([*kept, s])) > MAX_SEARCH_CHARS:
            break
        kept.append(s)
    conf.options = _merge_options(conf.options, list(extra.get("options") or []))
    lines = [f"nameserver {n}" for n in conf.nameservers]
    if kept:
        lines.append("search " + " ".join(kept))
    if conf.options:
        lines.append("options " + " ".join(n if v is None else f"{n}:{v}" for n, v in conf.options))
    return "\n".join(lines) + "\n"


def write_pod_resolv_conf(pod_dir: Path, pod: dict[str, Any], settings: ClusterDNS) -> str:
    """Write the pod's file under its agent dir (bind-mounted at /etc/resolv.conf into each
    container: Docker ignores its dns options for a sandbox with network mode none). Returns its path."""
    path = pod_dir / "resolv.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(resolv_conf(pod, settings))
    tmp.replace(path)  # a container starting meanwhile sees the old file or the new, never half
    return str(path)


def read_host_resolv_conf(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
