"""preStop hooks (exec, httpGet, sleep), run before the container gets SIGTERM.

As kubelet: the hook gets at most the grace period; a failure is reported as a
FailedPreStopHook event (without details, so no secrets leak into events) and
the kill goes on regardless. HTTP hooks only fail on transport errors; the
status code is not judged."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from agent.probes import ProbeError
from agent.probes.exec import ExecInContainer, run_exec
from agent.probes.http import probe_headers, probe_url
from agent.probes.ports import resolve_port, target_host

log = logging.getLogger("agent.prober")

# (pod, reason, message, type, container_name) -> None
EventSink = Callable[[dict[str, Any], str, str, str, str], None]


async def _run_handler(handler: dict[str, Any], container: dict[str, Any], container_id: str,
                       pod_ip: str | None, exec_in_container: ExecInContainer,
                       timeout: float) -> None:
    if handler.get("exec") is not None:
        cmd = (handler["exec"] or {}).get("command") or []
        if not cmd:
            raise ProbeError("preStop exec has no command")
        code, out = await run_exec(exec_in_container, container_id, cmd, timeout)
        if code != 0:
            raise ProbeError(f"command {cmd!r} exited with {code}: {out.strip()}")
    elif handler.get("httpGet") is not None:
        action = handler["httpGet"]
        url = probe_url(action.get("scheme") or "HTTP", target_host(action, pod_ip),
                        resolve_port(action.get("port"), container), action.get("path") or "/")
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True, ssl=False),
                timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(url, headers=probe_headers(action.get("httpHeaders")),
                                   allow_redirects=False) as resp:
                await resp.read()
    elif handler.get("sleep") is not None:
        await asyncio.sleep(float((handler["sleep"] or {}).get("seconds") or 0))
    else:
        raise ProbeError("preStop hook has no handler")


async def run_pre_stop(pod: dict[str, Any], container: dict[str, Any], container_id: str,
                       pod_ip: str | None, exec_in_container: ExecInContainer, timeout: float,
                       events: EventSink | None = None) -> float:
    """Run the container's lifecycle.preStop, if any, for at most `timeout` seconds.
    Returns the seconds spent, so the caller can shorten the grace period it then
    gives SIGTERM (kubelet keeps at least 2 s)."""
    handler = (container.get("lifecycle") or {}).get("preStop")
    if not handler:
        return 0.0
    start = time.monotonic()
    name = container.get("name", "")
    try:
        await asyncio.wait_for(_run_handler(handler, container, container_id, pod_ip,
                                            exec_in_container, timeout), timeout)
    except asyncio.TimeoutError:
        log.info("preStop hook of %s/%s not completed in %.0fs",
                 (pod.get("metadata") or {}).get("name"), name, timeout)
    except Exception as exc:
        log.warning("preStop hook of %s/%s failed: %s",
                    (pod.get("metadata") or {}).get("name"), name, exc)
        if events is not None:
            events(pod, "FailedPreStopHook", "PreStopHook failed", "Warning", name)
    return time.monotonic() - start
