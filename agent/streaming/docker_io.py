"""Exec and attach through the Docker Engine API, as a stream of bytes.

The docker SDK's `exec_start(socket=True)` reads the upgrade answer through a
buffered reader and can lose the first output bytes behind it, so the hijacked
connections (`/exec/{id}/start`, `/containers/{id}/attach` with `Upgrade: tcp`)
are made here with asyncio on the engine's socket: the StreamReader keeps every
byte after the headers. Calls that return JSON go through the SDK in a thread.
Without a TTY Docker multiplexes stdout and stderr in 8-byte-header frames.
"""
from __future__ import annotations

import asyncio
import json
import logging
import struct
from typing import Any
from urllib.parse import urlsplit

import docker
import docker.errors

log = logging.getLogger("agent.streaming")

API = "v1.41"


class DockerStreamError(Exception):
    pass


class DockerProcess:
    """One exec or attach session: output as (1|2, bytes), stdin, resize, exit code."""

    def __init__(self, api: docker.APIClient, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 tty: bool, exec_id: str | None, container_id: str) -> None:
        self.api, self.reader, self.writer, self.tty = api, reader, writer, tty
        self.exec_id, self.container_id = exec_id, container_id
        self._stdin_closed = False
        self.size: tuple[int, int] | None = None
        self._settle: asyncio.Task | None = None

    def settle_size(self, size: tuple[int, int]) -> None:
        """Apply the first terminal size a few times in the first second: Engine 1.41 cannot
        create an exec with a size, and a resize right at the start can land before the
        runtime's console is ready and be lost."""
        self.size = size

        async def repeat() -> None:
            for delay in (0, 0.1, 0.3, 0.6, 1.0):
                await asyncio.sleep(delay)
                if self.size is not None:
                    await self._resize(*self.size)
        self._settle = asyncio.create_task(repeat())

    async def read(self) -> tuple[int, bytes] | None:
        """The next output chunk, None at the end."""
        try:
            if self.tty:
                data = await self.reader.read(65536)
                return (1, data) if data else None
            head = await self.reader.readexactly(8)
            kind, size = head[0], struct.unpack(">I", head[4:])[0]
            return (2 if kind == 2 else 1, await self.reader.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return None

    async def write(self, data: bytes) -> None:
        if self._stdin_closed or not data:
            return
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError):
            self._stdin_closed = True

    async def close_stdin(self) -> None:
        """Half-close the hijacked connection: Docker closes the process's stdin."""
        if not self._stdin_closed:
            self._stdin_closed = True
            try:
                if self.writer.can_write_eof():
                    self.writer.write_eof()
            except (ConnectionError, OSError):
                pass

    async def resize(self, width: int, height: int) -> None:
        self.size = (width, height)
        await self._resize(width, height)

    async def _resize(self, width: int, height: int) -> None:
        if not (width and height):
            return
        try:
            if self.exec_id:
                await asyncio.to_thread(self.api.exec_resize, self.exec_id, height=height, width=width)
            else:
                await asyncio.to_thread(self.api.resize, self.container_id, height=height, width=width)
        except docker.errors.APIError as exc:
            # The process may be gone already; a lost resize is harmless.
            log.debug("resize to %dx%d failed: %s", width, height, exc)

    async def exit_code(self, timeout: float = 5) -> int | None:
        """The exec's exit code (None for attach): the output ends a moment before Docker
        records the exit, so wait for Running to turn false."""
        if not self.exec_id:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            info = await asyncio.to_thread(self.api.exec_inspect, self.exec_id)
            if not info.get("Running") or loop.time() > deadline:
                return info.get("ExitCode")
            await asyncio.sleep(0.05)

    def close(self) -> None:
        """End the session (idempotent): the engine connection closes, reads return None."""
        if self._settle is not None:
            self._settle.cancel()
        self.writer.close()
        self.reader.feed_eof()


class DockerStreams:
    def __init__(self, host: str) -> None:
        self.host = host
        self.api = docker.APIClient(base_url=host, version=API.lstrip("v"), timeout=60)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        u = urlsplit(self.host)
        if u.scheme in ("unix", "http+unix"):
            return await asyncio.open_unix_connection(u.path, limit=1 << 20)
        return await asyncio.open_connection(u.hostname, u.port or 2375, limit=1 << 20)

    async def _hijack(self, path: str, body: dict[str, Any] | None) -> tuple[asyncio.StreamReader,
                                                                               asyncio.StreamWriter]:
        reader, writer = await self._connect()
        raw = json.dumps(body).encode() if body is not None else b""
        writer.write((f"POST /{API}{path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
                      f"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: {len(raw)}\r\n\r\n").encode() + raw)
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode(errors="replace")
        status = head.split(" ", 2)
        if len(status) < 2 or status[1] not in ("101", "200"):
            length = 0
            for line in head.split("\r\n"):
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1].strip() or 0)
            text = (await reader.readexactly(length)).decode(errors="replace") if length else head
            writer.close()
            try:
                text = json.loads(text).get("message", text)
            except (ValueError, AttributeError):
                pass
            raise DockerStreamError(text.strip())
        return reader, writer

    async def exec(self, container_id: str, cmd: list[str], *, stdin: bool, stdout: bool, stderr: bool,
                   tty: bool, size: tuple[int, int] | None = None) -> DockerProcess:
        try:
            created = await asyncio.to_thread(self.api.exec_create, container_id, cmd, stdout=stdout,
                                              stderr=stderr, stdin=stdin, tty=tty)
        except docker.errors.APIError as exc:
            raise DockerStreamError(str(exc.explanation or exc)) from None
        reader, writer = await self._hijack(f"/exec/{created['Id']}/start", {"Detach": False, "Tty": tty})
        proc = DockerProcess(self.api, reader, writer, tty, created["Id"], container_id)
        if tty and size:
            proc.settle_size(size)
        return proc

    async def attach(self, container_id: str, *, stdin: bool, stdout: bool, stderr: bool,
                     size: tuple[int, int] | None = None) -> DockerProcess:
        try:
            info = await asyncio.to_thread(self.api.inspect_container, container_id)
        except docker.errors.APIError as exc:
            raise DockerStreamError(str(exc.explanation or exc)) from None
        tty = bool((info.get("Config") or {}).get("Tty"))
        q = f"stream=1&stdin={int(stdin)}&stdout={int(stdout)}&stderr={int(stderr)}"
        reader, writer = await self._hijack(f"/containers/{container_id}/attach?{q}", None)
        proc = DockerProcess(self.api, reader, writer, tty, None, container_id)
        if tty and size:
            proc.settle_size(size)
        return proc

    def close(self) -> None:
        self.api.close()
