"""Resolve a probe/hook port (number, numeric string, or a container port name)."""
from __future__ import annotations

from typing import Any

from agent.probes import ProbeError


def resolve_port(port: Any, container: dict[str, Any]) -> int:
    if isinstance(port, bool):
        raise ProbeError(f"invalid port number: {port}")
    if isinstance(port, int):
        value = port
    elif isinstance(port, str):
        value = None
        for p in container.get("ports") or []:
            if p.get("name") == port:
                value = p.get("containerPort")
                break
        if value is None:
            # Kubelet's last resort: a number written as a string.
            try:
                value = int(port)
            except ValueError:
                raise ProbeError(f'strconv.Atoi: parsing "{port}": invalid syntax') from None
    else:
        raise ProbeError(f"invalid port: {port!r}")
    if not isinstance(value, int) or not 0 < value < 65536:
        raise ProbeError(f"invalid port number: {value}")
    return value


def target_host(action: dict[str, Any], pod_ip: str | None) -> str:
    """httpGet.host / tcpSocket.host if given, else the pod IP (from the node, as kubelet)."""
    host = action.get("host") or pod_ip
    if not host:
        raise ProbeError("pod has no IP address yet")
    return host


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
