"""SPDY/3.1 as Kubernetes uses it (moby/spdystream under client-go's httpstream):
one upgraded connection on which the client opens streams. The agent is the server
end for kubectl, and the client end towards a CRI runtime's streaming server
(`open_stream`).

Framing (pure, unit-tested): control frames (SYN_STREAM, SYN_REPLY, RST_STREAM,
SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE) and data frames; header blocks are
zlib-compressed with the SPDY/3 dictionary, one zlib context per direction for the
whole connection, each block ended with a sync flush.

`SpdyConnection` runs over any byte transport (a raw socket after an HTTP upgrade,
or binary WebSocket messages for kubectl's tunnelled port-forward): it answers
every new stream with SYN_REPLY (client-go waits for it), echoes PINGs, and hands
streams to the caller. spdystream does not enforce flow control, so neither do we.
"""
from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .spdy_dictionary import DICTIONARY

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_PROTOCOL_ERROR, RST_CANCEL = 1, 5


class SpdyError(Exception):
    """A frame that cannot be parsed: the connection is unusable."""


# ---- header blocks ---------------------------------------------------------------------

def pack_headers(headers: dict[str, list[str]]) -> bytes:
    """The uncompressed SPDY/3 name/value block (names lowercased, values NUL-joined)."""
    out = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        n, v = name.lower().encode(), "\x00".join(values).encode()
        out += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(out)


def unpack_headers(block: bytes) -> dict[str, list[str]]:
    try:
        (count,), pos = struct.unpack_from(">I", block), 4
        headers: dict[str, list[str]] = {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4:pos + 4 + n].decode().lower()
            pos += 4 + n
            (v,) = struct.unpack_from(">I", block, pos)
            value = block[pos + 4:pos + 4 + v].decode()
            pos += 4 + v
            headers.setdefault(name, []).extend(value.split("\x00"))
        return headers
    except (struct.error, UnicodeDecodeError) as exc:
        raise SpdyError(f"bad header block: {exc}") from None


class HeaderCompressor:
    def __init__(self) -> None:
        self._z = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    def compress(self, headers: dict[str, list[str]]) -> bytes:
        return self._z.compress(pack_headers(headers)) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    def __init__(self) -> None:
        self._z = zlib.decompressobj(zdict=DICTIONARY)

    def decompress(self, data: bytes) -> dict[str, list[str]]:
        try:
            return unpack_headers(self._z.decompress(data))
        except zlib.error as exc:
            raise SpdyError(f"header decompression failed: {exc}") from None


# ---- frames ----------------------------------------------------------------------------

@dataclass
class Frame:
    control: bool
    type: int = 0          # control frame type; 0 for data
    flags: int = 0
    stream_id: int = 0     # data frames and stream-scoped control frames
    payload: bytes = b""


def encode_control(ftype: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(payload)) + payload


def encode_data(stream_id: int, data: bytes, fin: bool = False) -> bytes:
    return struct.pack(">II", stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data


def decode_frames(buf: bytearray) -> list[Frame]:
    """Take every complete frame off the front of buf (the rest stays for later)."""
    frames = []
    while len(buf) >= 8:
        first, second = struct.unpack_from(">II", buf)
        length = second & 0xFFFFFF
        if len(buf) < 8 + length:
            break
        payload = bytes(buf[8:8 + length])
        del buf[:8 + length]
        flags = second >> 24
        if first & 0x80000000:
            version, ftype = (first >> 16) & 0x7FFF, first & 0xFFFF
            if version != VERSION:
                raise SpdyError(f"unsupported SPDY version {version}")
            sid = struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF if ftype in (
                SYN_STREAM, SYN_REPLY, RST_STREAM, HEADERS, WINDOW_UPDATE) and len(payload) >= 4 else 0
            frames.append(Frame(True, ftype, flags, sid, payload))
        else:
            frames.append(Frame(False, 0, flags, first & 0x7FFFFFFF, payload))
    return frames


# ---- streams and the connection --------------------------------------------------------

@dataclass
class Stream:
    conn: "SpdyConnection"
    id: int
    headers: dict[str, list[str]]
    data: asyncio.Queue = field(default_factory=asyncio.Queue)  # bytes; b"" = the peer's FIN
    remote_closed: bool = False
    local_closed: bool = False

    def header(self, name: str) -> str:
        return (self.headers.get(name.lower()) or [""])[0]

    async def read(self) -> bytes:
        """The next chunk the peer sent, b"" once it finished (FIN or reset)."""
        if self.remote_closed and self.data.empty():
            return b""
        chunk = await self.data.get()
        if not chunk:
            self.remote_closed = True
        return chunk

    async def read_all(self) -> bytes:
        parts = []
        while chunk := await self.read():
            parts.append(chunk)
        return b"".join(parts)

    async def write(self, data: bytes) -> None:
        if self.local_closed or not data:
            return
        for i in range(0, len(data), 0xFFFF):
            await self.conn.send(encode_data(self.id, data[i:i + 0xFFFF]))

    async def close(self) -> None:
        """Half-close our side (FIN)."""
        if not self.local_closed:
            self.local_closed = True
            await self.conn.send(encode_data(self.id, b"", fin=True))

    async def reset(self) -> None:
        self.local_closed = True
        await self.conn.send(encode_control(RST_STREAM, 0, struct.pack(">II", self.id, RST_CANCEL)))


Send = Callable[[bytes], Awaitable[None]]
Receive = Callable[[], Awaitable[bytes]]  # b"" at the end of the connection


class SpdyConnection:
    """Either end. `run()` reads frames until the peer goes; streams the peer opens
    land in `streams` (an asyncio.Queue of Stream, None when the connection ended);
    `open_stream` opens one of ours (client ids are odd)."""

    def __init__(self, send: Send, receive: Receive) -> None:
        self._send, self._receive = send, receive
        self._lock = asyncio.Lock()
        self._compress, self._decompress = HeaderCompressor(), HeaderDecompressor()
        self.open: dict[int, Stream] = {}
        self.streams: asyncio.Queue[Stream | None] = asyncio.Queue()
        self.closed = False
        self._next_id = 1

    async def open_stream(self, headers: dict[str, str]) -> Stream:
        """SYN_STREAM with these headers (e.g. streamType); the peer's SYN_REPLY is read by run()."""
        sid, self._next_id = self._next_id, self._next_id + 2
        s = Stream(self, sid, {k.lower(): [v] for k, v in headers.items()})
        self.open[sid] = s
        block = self._compress.compress({k: [v] for k, v in headers.items()})
        await self.send(encode_control(SYN_STREAM, 0, struct.pack(">IIH", sid, 0, 0) + block))
        return s

    async def send(self, raw: bytes) -> None:
        if self.closed:
            return
        async with self._lock:  # frames must not interleave
            try:
                await self._send(raw)
            except (ConnectionError, RuntimeError, OSError):
                self.closed = True

    async def run(self) -> None:
        buf = bytearray()
        try:
            while True:
                chunk = await self._receive()
                if not chunk:
                    break
                buf += chunk
                for frame in decode_frames(buf):
                    await self._handle(frame)
        except (ConnectionError, OSError, SpdyError):
            pass
        finally:
            self.closed = True
            for s in list(self.open.values()):
                s.data.put_nowait(b"")
            self.streams.put_nowait(None)

    async def _handle(self, f: Frame) -> None:
        if not f.control:
            s = self.open.get(f.stream_id)
            if s is not None:
                if f.payload:
                    s.data.put_nowait(f.payload)
                if f.flags & FLAG_FIN:
                    s.data.put_nowait(b"")
            return
        if f.type == SYN_STREAM:
            headers = self._decompress.decompress(f.payload[10:])
            s = Stream(self, f.stream_id, headers)
            self.open[s.id] = s
            # SYN_REPLY goes out before anything else on the stream: client-go waits for it.
            await self.send(encode_control(SYN_REPLY, 0, struct.pack(">I", s.id) + self._compress.compress({})))
            if f.flags & FLAG_FIN:
                s.data.put_nowait(b"")
            self.streams.put_nowait(s)
        elif f.type in (HEADERS, SYN_REPLY) and len(f.payload) > 4:
            self._decompress.decompress(f.payload[4:])  # keeps the zlib context in step
        elif f.type == RST_STREAM:
            s = self.open.pop(f.stream_id, None)
            if s is not None:
                s.local_closed = True
                s.data.put_nowait(b"")
        elif f.type == PING:
            await self.send(encode_control(PING, 0, f.payload))
        elif f.type == GOAWAY:
            raise ConnectionError("peer sent GOAWAY")
        # SETTINGS and WINDOW_UPDATE: nothing to do (no flow control, as spdystream)

    async def goaway(self) -> None:
        last = max(self.open, default=0)
        await self.send(encode_control(GOAWAY, 0, struct.pack(">II", last, 0)))
