"""Turning a pod's container spec into a runtime ContainerConfig: command and
args against the image's Entrypoint/Cmd, $(VAR) expansion, resources to cgroup
settings, the spec hash that decides a restart. Pure functions."""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from kubeling.quantity import cpu_millis, to_bytes

_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")

MIN_SHARES = 2
SHARES_PER_CPU = 1024
QUOTA_PERIOD = 100000
MIN_QUOTA = 1000


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known names are replaced, `$$` is a literal
    `$`, unknown references stay as written."""
    def repl(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)
    return _VAR.sub(repl, text)


def command_and_args(container: dict[str, Any], env: dict[str, str]
                     ) -> tuple[list[str] | None, list[str] | None]:
    """(entrypoint, cmd) for the runtime; None keeps the image's value.

    command replaces the image's Entrypoint and drops its Cmd; args alone
    replace only Cmd (kubelet's rules, which Docker's create also follows)."""
    command = container.get("command")
    args = container.get("args")
    entry = [expand(str(c), env) for c in command] if command else None
    cmd = [expand(str(a), env) for a in args] if args else None
    if entry is not None and cmd is None:
        cmd = []
    return entry, cmd


def cgroup_settings(container: dict[str, Any]) -> dict[str, int | None]:
    res = container.get("resources") or {}
    limits = res.get("limits") or {}
    requests = res.get("requests") or {}
    out: dict[str, int | None] = {"memory_limit": None, "cpu_quota": None, "cpu_period": None,
                                  "cpu_shares": MIN_SHARES}
    if limits.get("memory") is not None:
        out["memory_limit"] = to_bytes(limits["memory"])
    if limits.get("cpu") is not None:
        millis = cpu_millis(limits["cpu"])
        out["cpu_period"] = QUOTA_PERIOD
        out["cpu_quota"] = max(MIN_QUOTA, millis * QUOTA_PERIOD // 1000)
    cpu_req = requests.get("cpu", limits.get("cpu"))
    if cpu_req is not None:
        out["cpu_shares"] = max(MIN_SHARES, cpu_millis(cpu_req) * SHARES_PER_CPU // 1000)
    return out


def container_hash(container: dict[str, Any]) -> str:
    """A stable hash of the spec fields that, when changed, need a new container
    (kubelet hashes the container spec; only image may change on a live pod)."""
    keep = {k: v for k, v in container.items() if k not in ("resources",)}
    data = json.dumps(keep, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:8]


def hosts_file(pod_ip: str, hostname: str, host_aliases: list[dict[str, Any]] | None = None) -> str:
    """The /etc/hosts kubelet writes for a pod (managed hosts file)."""
    lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet", "fe00::0\tip6-mcastprefix", "fe00::1\tip6-allnodes",
             "fe00::2\tip6-allrouters"]
    if pod_ip:
        lines.append(f"{pod_ip}\t{hostname}")
    for alias in host_aliases or []:
        names = alias.get("hostnames") or []
        if alias.get("ip") and names:
            lines.append("# Entries added by HostAliases.")
            lines.append(f"{alias['ip']}\t" + "\t".join(names))
    return "\n".join(lines) + "\n"
