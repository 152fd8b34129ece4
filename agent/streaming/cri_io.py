"""Exec and attach sessions through a CRI runtime's streaming server.

CRI Exec/Attach only answer a URL; the runtime (containerd's kubelet-derived
streaming server) serves the session there. Here is the client side, over SPDY/3.1
as client-go speaks it (remotecommand v4): after the HTTP upgrade the client opens
one stream per channel (error, stdin, stdout, stderr, resize), the process's output
arrives on stdout/stderr, and its result as a Status on the error stream. SPDY
rather than WebSocket: containerd 1.6 knows WebSocket channels only up to v4, which
cannot close stdin (`kubectl exec -i ... < file` would never see EOF); SPDY half-
closes the stdin stream.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

from . import channels as ch
from .spdy import SpdyConnection, Stream

PROTOCOLS = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")
CONNECT_TIMEOUT = 10.0


class CriStreamError(Exception):
    pass


def exit_code_of(status: dict[str, Any] | None) -> int | None:
    """The exit code a remotecommand Status on the error channel carries: 0 for
    Success, the ExitCode cause of NonZeroExitCode, None when there was none."""
    if status is None:
        return None
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message"))
            except (TypeError, ValueError):
                break
    return None


def parse_status(raw: bytes) -> dict[str, Any] | None:
    """v4+ writes a JSON Status; older protocols only a text message on failure."""
    if not raw.strip():
        return None
    try:
        doc = json.loads(raw)
        if isinstance(doc, dict):
            return doc
    except ValueError:
        pass
    return {"status": "Failure", "message": raw.decode(errors="replace")}


class CriProcess:
    """One session on the runtime's streaming server, in the shape of DockerProcess."""

    def __init__(self, writer: asyncio.StreamWriter, conn: SpdyConnection, runner: asyncio.Task,
                 streams: dict[int, Stream], is_exec: bool) -> None:
        self.writer, self.conn, self.runner, self.streams, self.is_exec = writer, conn, runner, streams, is_exec
        self._out: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        outputs = [k for k in (ch.STDOUT, ch.STDERR) if k in streams]
        self._pumps = [asyncio.create_task(self._pump(k)) for k in outputs]
        self._open_outputs = len(outputs)
        if not outputs:
            self._out.put_nowait(None)
        self._status: dict[str, Any] | None = None
        self._closed = False

    async def _pump(self, kind: int) -> None:
        try:
            while data := await self.streams[kind].read():
                self._out.put_nowait((kind, data))
        finally:
            self._open_outputs -= 1
            if self._open_outputs == 0:
                self._out.put_nowait(None)

    async def read(self) -> tuple[int, bytes] | None:
        if self._closed:
            return None
        return await self._out.get()

    async def write(self, data: bytes) -> None:
        s = self.streams.get(ch.STDIN)
        if s is not None and data:
            await s.write(data)

    async def close_stdin(self) -> None:
        s = self.streams.get(ch.STDIN)
        if s is not None:
            await s.close()

    async def resize(self, width: int, height: int) -> None:
        s = self.streams.get(ch.RESIZE)
        if s is not None and width and height:
            await s.write(json.dumps({"Width": width, "Height": height}).encode())

    async def exit_code(self, timeout: float = 5) -> int | None:
        """The Status the server writes on the error stream once the process ended."""
        if not self.is_exec:
            return None
        if self._status is None:
            try:
                raw = await asyncio.wait_for(self.streams[ch.ERROR].read_all(), timeout)
            except asyncio.TimeoutError:
                return None
            self._status = parse_status(raw) or {"status": "Success"}
        code = exit_code_of(self._status)
        # A failure without an exit code (the command could not run) still fails.
        return -1 if code is None else code

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._out.put_nowait(None)
        for t in self._pumps:
            t.cancel()
        self.runner.cancel()
        self.writer.close()


async def _upgrade(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    u = urlsplit(url)
    if u.scheme not in ("http", "") or not u.hostname:
        raise CriStreamError(f"unsupported streaming URL {url!r}")
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(u.hostname, u.port or 80, limit=1 << 20), CONNECT_TIMEOUT)
    except (OSError, asyncio.TimeoutError) as exc:
        raise CriStreamError(f"streaming server {u.netloc}: {exc}") from None
    path = u.path + (f"?{u.query}" if u.query else "")
    versions = "".join(f"X-Stream-Protocol-Version: {p}\r\n" for p in PROTOCOLS)
    writer.write((f"POST {path} HTTP/1.1\r\nHost: {u.netloc}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                  f"{versions}Content-Length: 0\r\n\r\n").encode())
    try:
        await writer.drain()
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONNECT_TIMEOUT)).decode(errors="replace")
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError) as exc:
        writer.close()
        raise CriStreamError(f"streaming server {u.netloc}: {exc}") from None
    status = head.split(" ", 2)
    if len(status) < 2 or status[1] != "101":
        writer.close()
        raise CriStreamError(f"streaming server refused the upgrade: {head.splitlines()[0] if head else ''}")
    return reader, writer


async def connect(url: str, *, is_exec: bool, stdin: bool, stdout: bool, stderr: bool, tty: bool,
                  size: tuple[int, int] | None = None) -> CriProcess:
    """Open the session at the URL CRI Exec/Attach returned, with the streams the
    request asked for (the server waits for exactly those)."""
    reader, writer = await _upgrade(url)

    async def send(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    async def receive() -> bytes:
        return await reader.read(65536)

    conn = SpdyConnection(send, receive)
    runner = asyncio.create_task(conn.run())
    wanted = [(ch.ERROR, "error")] + [(k, n) for k, n, on in (
        (ch.STDIN, "stdin", stdin), (ch.STDOUT, "stdout", stdout), (ch.STDERR, "stderr", stderr and not tty),
        (ch.RESIZE, "resize", tty)) if on]
    streams: dict[int, Stream] = {}
    for kind, name in wanted:
        streams[kind] = await conn.open_stream({"streamType": name})
    proc = CriProcess(writer, conn, runner, streams, is_exec)
    if size:
        await proc.resize(*size)
    return proc
