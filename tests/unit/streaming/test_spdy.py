"""SPDY/3.1 framing and the server connection, against a hand-driven client."""
from __future__ import annotations

import asyncio
import struct
import zlib

import pytest

from agent.streaming import spdy
from agent.streaming.spdy_dictionary import DICTIONARY


def test_dictionary_shape():
    # SPDY/3's dictionary: 1423 bytes, starting with the length-prefixed "options".
    assert len(DICTIONARY) == 1423
    assert DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert DICTIONARY.endswith(b"utf-,*,enq=0.")


def test_header_blocks_share_one_zlib_context_per_direction():
    comp, decomp = spdy.HeaderCompressor(), spdy.HeaderDecompressor()
    first = comp.compress({"streamType": ["error"], "port": ["80"], "requestID": ["0"]})
    second = comp.compress({"streamType": ["data"], "port": ["80"], "requestID": ["0"]})
    assert decomp.decompress(first) == {"streamtype": ["error"], "port": ["80"], "requestid": ["0"]}
    assert decomp.decompress(second)["streamtype"] == ["data"]
    # The second block depends on the first: a fresh decompressor cannot read it.
    with pytest.raises(spdy.SpdyError):
        spdy.HeaderDecompressor().decompress(second)


def test_a_wrong_dictionary_is_refused():
    c = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY[:-1] + b"!")
    block = c.compress(spdy.pack_headers({"a": ["b"]})) + c.flush(zlib.Z_SYNC_FLUSH)
    with pytest.raises(spdy.SpdyError):
        spdy.HeaderDecompressor().decompress(block)


def test_multiple_values_are_nul_separated():
    assert spdy.unpack_headers(spdy.pack_headers({"X-Stream-Protocol-Version": ["v4", "v3"]})) == \
        {"x-stream-protocol-version": ["v4", "v3"]}


def test_frames_round_trip_and_partial_input_waits():
    raw = spdy.encode_data(5, b"hello", fin=True) + spdy.encode_control(spdy.PING, 0, struct.pack(">I", 7))
    buf = bytearray(raw[:10])
    assert spdy.decode_frames(buf) == []
    buf += raw[10:]
    data, ping = spdy.decode_frames(buf)
    assert (data.control, data.stream_id, data.flags, data.payload) == (False, 5, spdy.FLAG_FIN, b"hello")
    assert (ping.control, ping.type, ping.payload) == (True, spdy.PING, struct.pack(">I", 7))
    assert not buf


def test_other_versions_are_refused():
    bad = struct.pack(">HHI", 0x8000 | 2, spdy.PING, 4) + b"\0\0\0\1"
    with pytest.raises(spdy.SpdyError):
        spdy.decode_frames(bytearray(bad))


class FakeClient:
    """The client's end: frames to the server, frames back."""

    def __init__(self) -> None:
        self.to_server: asyncio.Queue[bytes] = asyncio.Queue()
        self.from_server = bytearray()
        self.comp, self.decomp = spdy.HeaderCompressor(), spdy.HeaderDecompressor()

    async def send(self, data: bytes) -> None:
        self.from_server += data

    async def receive(self) -> bytes:
        return await self.to_server.get()

    def syn(self, sid: int, headers: dict[str, list[str]], fin: bool = False) -> None:
        payload = struct.pack(">IIBB", sid, 0, 0, 0) + self.comp.compress(headers)
        self.to_server.put_nowait(spdy.encode_control(spdy.SYN_STREAM, spdy.FLAG_FIN if fin else 0, payload))

    def frames(self) -> list[spdy.Frame]:
        return spdy.decode_frames(self.from_server)


async def test_connection_replies_to_streams_echoes_pings_and_carries_data():
    client = FakeClient()
    conn = spdy.SpdyConnection(client.send, client.receive)
    runner = asyncio.create_task(conn.run())
    client.syn(1, {"streamType": ["error"]})
    client.syn(3, {"streamType": ["stdin"]})
    s1, s3 = await conn.streams.get(), await conn.streams.get()
    assert (s1.id, s1.header("streamType"), s3.header("streamtype")) == (1, "error", "stdin")
    client.to_server.put_nowait(spdy.encode_data(3, b"abc") + spdy.encode_data(3, b"", fin=True))
    client.to_server.put_nowait(spdy.encode_control(spdy.PING, 0, struct.pack(">I", 1)))
    assert await s3.read_all() == b"abc"
    await s1.write(b"status")
    await s1.close()
    await asyncio.sleep(0.01)
    frames = client.frames()
    replies = [f for f in frames if f.control and f.type == spdy.SYN_REPLY]
    assert [f.stream_id for f in replies] == [1, 3]
    assert all(client.decomp.decompress(f.payload[4:]) == {} for f in replies)
    assert any(f.control and f.type == spdy.PING for f in frames)
    data = [f for f in frames if not f.control and f.stream_id == 1]
    assert b"".join(f.payload for f in data) == b"status" and data[-1].flags & spdy.FLAG_FIN
    client.to_server.put_nowait(b"")  # the client goes away
    await asyncio.wait_for(runner, 2)
    assert await conn.streams.get() is None


async def test_reset_stream_ends_its_reads():
    client = FakeClient()
    conn = spdy.SpdyConnection(client.send, client.receive)
    runner = asyncio.create_task(conn.run())
    client.syn(1, {"streamType": ["data"]})
    s = await conn.streams.get()
    client.to_server.put_nowait(spdy.encode_control(spdy.RST_STREAM, 0, struct.pack(">II", 1, spdy.RST_CANCEL)))
    assert await asyncio.wait_for(s.read(), 2) == b""
    client.to_server.put_nowait(b"")
    await asyncio.wait_for(runner, 2)
