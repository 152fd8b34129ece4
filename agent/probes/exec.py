"""exec: run a command in the container; exit code 0 is success."""
from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable, Callable
from typing import Any

from agent.probes import FAILURE, SUCCESS, Outcome, ProbeError

# (container_id, command, timeout_seconds) -> exit code, or (exit code, output) as the
# Docker runtime's exec returns.
ExecInContainer = Callable[[str, list[str], float], Awaitable[Any]]


async def run_exec(exec_in_container: ExecInContainer, container_id: str, cmd: list[str],
                   timeout: float) -> tuple[int, str]:
    """Returns (exit code, output); raises asyncio.TimeoutError past the timeout."""
    got = await asyncio.wait_for(exec_in_container(container_id, list(cmd), timeout), timeout)
    if isinstance(got, tuple):
        code, out = got
    else:
        code, out = got, b""
    if isinstance(out, bytes):
        out = out.decode("utf-8", "replace")
    return int(code), out or ""


async def probe_exec(exec_in_container: ExecInContainer, container_id: str, cmd: list[str],
                     timeout: float) -> Outcome:
    if not cmd:
        raise ProbeError("exec probe has no command")
    try:
        code, out = await run_exec(exec_in_container, container_id, cmd, timeout)
    except asyncio.TimeoutError:
        return Outcome(FAILURE, f"command {shlex.join(cmd)!r} timed out")
    except Exception as exc:  # the runtime could not exec at all (container gone ...)
        raise ProbeError(str(exc) or type(exc).__name__) from exc
    if code == 0:
        return Outcome(SUCCESS, out)
    # Kubelet's failure text is the command's output, which may be empty.
    return Outcome(FAILURE, out.strip())
