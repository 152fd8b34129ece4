"""Take over an aiohttp server connection after an HTTP/1.1 Upgrade (SPDY/3.1 or a
byte-level proxy of any upgrade), as Go's http.Hijacker does.

aiohttp parses no further HTTP on a connection whose request asked for an
upgrade; it keeps the bytes that follow and hands them to whatever parser is set
on the protocol. We set one that feeds an asyncio.StreamReader, answer the
upgrade ourselves, and write raw bytes to the transport from then on.
"""
from __future__ import annotations

import asyncio

from aiohttp import web


class _RawParser:
    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.reader.feed_data(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.reader.feed_eof()


class Hijacked:
    """The raw connection: `reader` yields the client's bytes, `write`/`close` send."""

    def __init__(self, request: web.Request, response: web.StreamResponse) -> None:
        self.request, self.response = request, response
        self.reader = asyncio.StreamReader(limit=1 << 20)
        self.transport = request.transport
        request.protocol.set_parser(_RawParser(self.reader))  # type: ignore[union-attr]

    async def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("the client went away")
        self.transport.write(data)
        await self.request.protocol._drain_helper()  # type: ignore[union-attr]  # back-pressure

    async def read(self) -> bytes:
        """The next bytes from the client, b"" at its end."""
        try:
            return await self.reader.read(65536)
        except (ConnectionError, OSError):
            return b""

    def close(self) -> None:
        self.request.protocol.force_close()  # type: ignore[union-attr]
        if self.transport is not None:
            self.transport.close()


async def hijack(request: web.Request, status: int, reason: str,
                 headers: list[tuple[str, str]]) -> Hijacked:
    """Answer the upgrade with `status` (101) and these headers, then own the connection.
    Return the Hijacked; the handler returns `hijacked.response` when done."""
    resp = web.StreamResponse(status=status, reason=reason)
    for k, v in headers:
        resp.headers.add(k, v)
    await resp.prepare(request)
    return Hijacked(request, resp)
