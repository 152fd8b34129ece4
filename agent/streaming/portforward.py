"""kubelet's /portForward: connect to 127.0.0.1:<port> inside the pod's network
namespace and copy bytes both ways.

The socket is made in the sandbox's netns by a dedicated, short-lived thread that
calls setns(CLONE_NEWNET) and then connects: setns changes only the calling thread,
and a socket keeps the namespace it was created in, so the thread can simply end.
Never a pool thread: it would stay in the pod's namespace.

Transports: SPDY (kubectl < 1.31 over an upgraded connection, kubectl >= 1.31 tunnelled
in binary WebSocket messages): a pair of streams (error, data) per connection, named
by the `port` and `requestID` headers. WebSocket channels (the Python client): for the
i-th port of `?ports=`, channel 2i is data and 2i+1 errors, both opened by the port.
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import socket
import threading

from aiohttp import WSMsgType, web

from . import channels as ch
from .spdy import SpdyConnection, Stream

log = logging.getLogger("agent.portforward")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def connect_in_netns(netns: str, port: int, timeout: float = 5.0) -> socket.socket:
    """A TCP connection to 127.0.0.1:port made inside the namespace at path `netns`."""
    result: dict[str, object] = {}

    def run() -> None:
        try:
            fd = os.open(netns, os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {netns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            result["sock"] = socket.create_connection(("127.0.0.1", port), timeout)
        except BaseException as exc:  # handed to the caller
            result["error"] = exc

    t = threading.Thread(target=run, name=f"netns-connect-{port}", daemon=True)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["sock"]  # type: ignore[return-value]


def _failure(pod: str, uid: str, netns: str, port: int, exc: BaseException) -> str:
    reason = exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else str(exc)
    return (f"error forwarding port {port} to pod {pod}, uid {uid}: failed to connect to localhost:{port} "
            f"inside namespace \"{netns}\", IPv4: dial tcp4 127.0.0.1:{port}: connect: {reason}")


class Target:
    """The pod being forwarded to: its sandbox's netns, and names for messages."""

    def __init__(self, netns: str, pod_id: str, uid: str) -> None:
        self.netns, self.pod_id, self.uid = netns, pod_id, uid

    async def open(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        sock = await asyncio.to_thread(connect_in_netns, self.netns, port)
        sock.setblocking(False)
        return await asyncio.open_connection(sock=sock)

    def failure(self, port: int, exc: BaseException) -> str:
        return _failure(self.pod_id, self.uid, self.netns, port, exc)


# ---- SPDY (raw or tunnelled) -----------------------------------------------------------

async def _forward_pair(target: Target, port: int, data: Stream, err: Stream) -> None:
    try:
        reader, writer = await target.open(port)
    except OSError as exc:
        await err.write(target.failure(port, exc).encode())
        await err.close()
        await data.close()
        return

    async def upstream() -> None:
        while chunk := await data.read():
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    up = asyncio.create_task(upstream())
    try:
        while chunk := await reader.read(65536):
            await data.write(chunk)
    except (ConnectionError, OSError):
        pass
    finally:
        await data.close()
        await err.close()
        up.cancel()
        await asyncio.gather(up, return_exceptions=True)
        writer.close()


async def serve_spdy(conn: SpdyConnection, target: Target) -> None:
    """Pair the client's streams by requestID and forward each pair; until the connection ends."""
    runner = asyncio.create_task(conn.run())
    pending: dict[str, dict[str, Stream]] = {}
    tasks: set[asyncio.Task] = set()
    try:
        while (s := await conn.streams.get()) is not None:
            kind, rid = s.header("streamType"), s.header("requestID")
            try:
                port = int(s.header("port"))
            except ValueError:
                await s.reset()
                continue
            pair = pending.setdefault(rid, {})
            pair[kind] = s
            if "data" in pair and "error" in pair:
                del pending[rid]
                t = asyncio.create_task(_forward_pair(target, port, pair["data"], pair["error"]))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
    finally:
        for t in list(tasks):
            t.cancel()
        runner.cancel()
        await asyncio.gather(runner, *tasks, return_exceptions=True)


async def serve_tunneled(request: web.Request, ws: web.WebSocketResponse, target: Target) -> None:
    """kubectl >= 1.31: the SPDY connection rides in binary WebSocket messages."""
    async def receive() -> bytes:
        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.BINARY:
                if msg.data:
                    return msg.data
                continue
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                return b""

    async def send(data: bytes) -> None:
        await ws.send_bytes(data)

    conn = SpdyConnection(send, receive)
    try:
        await serve_spdy(conn, target)
    finally:
        await ws.close()


# ---- WebSocket channels ------------------------------------------------------------------

async def serve_channels(ws: web.WebSocketResponse, target: Target, ports: list[int]) -> None:
    conns: dict[int, asyncio.StreamWriter] = {}
    tasks = []

    async def pump(i: int, port: int, reader: asyncio.StreamReader) -> None:
        try:
            while chunk := await reader.read(65536):
                await ws.send_bytes(ch.frame(2 * i, chunk))
        except (ConnectionError, OSError, RuntimeError):
            pass

    for i, port in enumerate(ports):
        await ws.send_bytes(ch.frame(2 * i, ch.port_prefix(port)))
        await ws.send_bytes(ch.frame(2 * i + 1, ch.port_prefix(port)))
        try:
            reader, writer = await target.open(port)
        except OSError as exc:
            await ws.send_bytes(ch.frame(2 * i + 1, target.failure(port, exc).encode()))
            continue
        conns[i] = writer
        tasks.append(asyncio.create_task(pump(i, port, reader)))
    if not conns:
        await ws.close()
        return
    async def inbound() -> None:
        async for msg in ws:
            message = ch.message_bytes(msg.type.name.lower(), msg.data)
            if message is None:
                continue
            channel, data = ch.split(message)
            w = conns.get(channel // 2) if channel >= 0 and channel % 2 == 0 else None
            if w is not None and data:
                w.write(data)
                await w.drain()

    # Like kubelet: the session ends when the client goes or every forwarded connection closed.
    reading = asyncio.create_task(inbound())
    done = asyncio.gather(*tasks)
    try:
        await asyncio.wait([reading, done], return_when=asyncio.FIRST_COMPLETED)
    except (ConnectionError, OSError):
        pass
    finally:
        for w in conns.values():
            w.close()
        for t in (*tasks, reading):
            t.cancel()
        await asyncio.gather(done, reading, return_exceptions=True)
        await ws.close()


def parse_ports(query: str) -> list[int]:
    ports = []
    for part in query.split(","):
        part = part.strip()
        if part:
            p = int(part)
            if not 0 < p < 65536:
                raise ValueError(f"invalid port {p}")
            ports.append(p)
    return ports
