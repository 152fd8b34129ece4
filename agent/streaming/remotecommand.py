"""kubelet's /exec and /attach: run a session of a container process over
WebSocket channels or SPDY streams.

Both transports come down to the same pump: container output to the stdout/stderr
channel, stdin and resizes to the process, and once the output ends the result as a
Status on the error channel (Success, or NonZeroExitCode with the ExitCode cause
that makes kubectl exit with the same code), then the end of the connection.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from agent.runtime.types import Process
from kubeling.wire.hijack import Hijacked

from . import channels as ch
from .spdy import SpdyConnection, Stream

log = logging.getLogger("agent.streaming")
STREAM_CREATION_TIMEOUT = 30.0
FIRST_SIZE_WAIT = 1.0

# Starts the process, with the terminal's first (width, height) when known.
Start = Callable[[tuple[int, int] | None], Awaitable[Process]]


def flag(q: Any, name: str) -> bool:
    return (q.get(name) or "").lower() in ("1", "true", "yes")


class Options:
    """What the client asked for (kubelet's remotecommand Options)."""

    def __init__(self, query: Any) -> None:
        self.stdin, self.stdout = flag(query, "stdin"), flag(query, "stdout")
        self.tty = flag(query, "tty")
        # Like kubelet: with a TTY there is no separate stderr.
        self.stderr = flag(query, "stderr") and not self.tty
        self.command = query.getall("command", [])


async def _pump(proc: Process, out: Callable[[int, bytes], Awaitable[None]],
                cmd: list[str] | None) -> dict[str, Any]:
    """Copy the output until it ends, then the Status for the error channel."""
    while (item := await proc.read()) is not None:
        await out(item[0], item[1])
    if cmd is None:
        return ch.success()
    code = await proc.exit_code()
    if code:
        return ch.exit_status(code, cmd)
    return ch.success()


# ---- WebSocket -------------------------------------------------------------------------

async def serve_websocket(request: web.Request, opts: Options, start: Start, is_exec: bool) -> web.StreamResponse:
    ws = web.WebSocketResponse(protocols=ch.WS_EXEC_PROTOCOLS, heartbeat=None, max_msg_size=0)
    await ws.prepare(request)
    v5 = ws.ws_protocol == ch.WS_V5
    early: list[bytes] = []
    size = None
    if opts.tty:
        # The client sends the terminal size first thing: start the process with it
        # (applied as soon as the process exists), keeping anything else for later.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FIRST_SIZE_WAIT
        while size is None and loop.time() < deadline:
            try:
                msg = await ws.receive(timeout=max(0.01, deadline - loop.time()))
            except asyncio.TimeoutError:
                break
            message = ch.message_bytes(msg.type.name.lower(), msg.data)
            if message is None:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                    return ws
                continue
            channel, data = ch.split(message)
            sizes = ch.ResizeDecoder().feed(data) if channel == ch.RESIZE else []
            if sizes:
                size = sizes[-1]
            else:
                early.append(message)
    try:
        proc = await start(size)
    except Exception as exc:  # the process never started: say why on the error channel
        await ws.send_bytes(ch.frame(ch.ERROR, ch.encode_status(ch.internal_error(str(exc)))))
        await ws.close()
        return ws
    # An empty frame on the lowest output channel tells the client the session is up (as kubelet).
    first = ch.STDOUT if opts.stdout else ch.STDERR if opts.stderr else ch.ERROR
    await ws.send_bytes(ch.frame(first))
    resizes = ch.ResizeDecoder()

    async def handle(message: bytes) -> None:
        channel, data = ch.split(message)
        if channel == ch.STDIN:
            await proc.write(data)
        elif channel == ch.RESIZE:
            for w, h in resizes.feed(data):
                await proc.resize(w, h)
        elif channel == ch.CLOSE and v5 and data[:1] == bytes([ch.STDIN]):
            await proc.close_stdin()

    async def inbound() -> None:
        for message in early:
            await handle(message)
        async for msg in ws:
            message = ch.message_bytes(msg.type.name.lower(), msg.data)
            if message is not None:
                await handle(message)
        # The client went away: the session is over (an attach would otherwise follow the
        # container's output until it exits).
        await proc.close_stdin()
        proc.close()

    async def out(channel: int, data: bytes) -> None:
        if not ws.closed:
            await ws.send_bytes(ch.frame(channel, data))

    reader = asyncio.create_task(inbound())
    try:
        status = await _pump(proc, out, opts.command if is_exec else None)
        if not ws.closed:
            await ws.send_bytes(ch.frame(ch.ERROR, ch.encode_status(status)))
    except (ConnectionError, RuntimeError) as exc:
        log.debug("websocket session ended: %s", exc)
    finally:
        proc.close()
        await ws.close()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    return ws


# ---- SPDY ------------------------------------------------------------------------------

async def collect_streams(conn: SpdyConnection, wanted: set[int]) -> dict[int, Stream]:
    """Wait for the client to open every stream the options call for (kubelet's waitForStreams)."""
    got: dict[int, Stream] = {}

    async def collect() -> None:
        while not wanted <= set(got):
            s = await conn.streams.get()
            if s is None:
                raise ConnectionError("the client went away before opening its streams")
            kind = ch.STREAM_TYPES.get(s.header("streamType"))
            if kind is None:
                await s.reset()
                continue
            got[kind] = s
    await asyncio.wait_for(collect(), STREAM_CREATION_TIMEOUT)
    return got


async def serve_spdy(raw: Hijacked, opts: Options, start: Start, is_exec: bool) -> None:
    conn = SpdyConnection(raw.write, raw.read)
    runner = asyncio.create_task(conn.run())
    tasks: list[asyncio.Task] = []
    try:
        wanted = {ch.ERROR} | ({ch.STDIN} if opts.stdin else set()) | ({ch.STDOUT} if opts.stdout else set()) \
            | ({ch.STDERR} if opts.stderr else set()) | ({ch.RESIZE} if opts.tty else set())
        streams = await collect_streams(conn, wanted)
        err = streams[ch.ERROR]
        size, pending = None, b""
        if ch.RESIZE in streams:
            try:
                pending = await asyncio.wait_for(streams[ch.RESIZE].read(), FIRST_SIZE_WAIT)
            except asyncio.TimeoutError:
                pass
            sizes = ch.ResizeDecoder().feed(pending)
            size = sizes[-1] if sizes else None
        try:
            proc = await start(size)
        except Exception as exc:
            await err.write(ch.encode_status(ch.internal_error(str(exc))))
            await err.close()
            return

        async def stdin(s: Stream) -> None:
            while data := await s.read():
                await proc.write(data)
            await proc.close_stdin()

        async def resize(s: Stream) -> None:
            dec = ch.ResizeDecoder()
            while data := await s.read():
                for w, h in dec.feed(data):
                    await proc.resize(w, h)

        async def client_gone() -> None:
            await asyncio.shield(runner)
            proc.close()  # ends the output pump below

        tasks.append(asyncio.create_task(client_gone()))
        if ch.STDIN in streams:
            tasks.append(asyncio.create_task(stdin(streams[ch.STDIN])))
        if ch.RESIZE in streams:
            tasks.append(asyncio.create_task(resize(streams[ch.RESIZE])))

        async def out(channel: int, data: bytes) -> None:
            s = streams.get(channel) or streams.get(ch.STDOUT)
            if s is not None:
                await s.write(data)

        try:
            status = await _pump(proc, out, opts.command if is_exec else None)
        finally:
            proc.close()
        for kind in (ch.STDOUT, ch.STDERR):
            if kind in streams:
                await streams[kind].close()
        # client-go reads the error stream to its end: a Success status too (v4), then FIN.
        await err.write(ch.encode_status(status))
        await err.close()
        await asyncio.sleep(0.05)  # let the last frames reach the client before the connection goes
    except (asyncio.TimeoutError, ConnectionError) as exc:
        log.info("spdy session ended: %s", exc)
    finally:
        for t in tasks:
            t.cancel()
        await conn.goaway()
        runner.cancel()
        await asyncio.gather(runner, *tasks, return_exceptions=True)
        raw.close()
