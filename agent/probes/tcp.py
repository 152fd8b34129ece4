"""tcpSocket: success when a TCP connection opens within the timeout."""
from __future__ import annotations

import asyncio

from agent.probes import FAILURE, SUCCESS, Outcome
from agent.probes.ports import join_host_port


async def probe_tcp(host: str, port: int, timeout: float) -> Outcome:
    where = f"dial tcp {join_host_port(host, port)}"
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except asyncio.TimeoutError:
        return Outcome(FAILURE, f"{where}: i/o timeout")
    except ConnectionRefusedError:
        return Outcome(FAILURE, f"{where}: connect: connection refused")
    except OSError as exc:
        return Outcome(FAILURE, f"{where}: connect: {exc.strerror or exc}")
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return Outcome(SUCCESS)
