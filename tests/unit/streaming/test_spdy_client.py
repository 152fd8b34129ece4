"""The client end of SpdyConnection (the agent towards a CRI runtime's streaming
server), against the server end over an in-memory pipe."""
from __future__ import annotations

import asyncio

from agent.streaming import spdy
from agent.streaming.cri_io import parse_status


def pipe() -> tuple[spdy.SpdyConnection, spdy.SpdyConnection]:
    a_to_b: asyncio.Queue[bytes] = asyncio.Queue()
    b_to_a: asyncio.Queue[bytes] = asyncio.Queue()

    async def send_a(data: bytes) -> None:
        a_to_b.put_nowait(data)

    async def send_b(data: bytes) -> None:
        b_to_a.put_nowait(data)
    client = spdy.SpdyConnection(send_a, b_to_a.get)
    server = spdy.SpdyConnection(send_b, a_to_b.get)
    return client, server


async def test_client_streams_reach_the_server_and_data_flows_both_ways():
    client, server = pipe()
    runners = [asyncio.create_task(c.run()) for c in (client, server)]
    names = ["error", "stdin", "stdout", "stderr"]
    mine = [await client.open_stream({"streamType": n}) for n in names]
    assert [s.id for s in mine] == [1, 3, 5, 7]
    theirs = [await asyncio.wait_for(server.streams.get(), 2) for _ in names]
    assert [s.header("streamType") for s in theirs] == names
    # stdin: data, then the half-close the process sees as EOF.
    await mine[1].write(b"input")
    await mine[1].close()
    assert await asyncio.wait_for(theirs[1].read_all(), 2) == b"input"
    # Output and the status come back on the server's side of the same streams.
    await theirs[2].write(b"out")
    await theirs[2].close()
    await theirs[0].write(b'{"status":"Success"}')
    await theirs[0].close()
    assert await asyncio.wait_for(mine[2].read_all(), 2) == b"out"
    assert parse_status(await asyncio.wait_for(mine[0].read_all(), 2)) == {"status": "Success"}
    # Every SYN_REPLY's header block went through the client's zlib context: still in step.
    late = await client.open_stream({"streamType": "resize"})
    got = await asyncio.wait_for(server.streams.get(), 2)
    assert got.header("streamType") == "resize" and late.id == 9
    for r in runners:
        r.cancel()
    await asyncio.gather(*runners, return_exceptions=True)


def test_parse_status_text_and_empty():
    assert parse_status(b"") is None
    assert parse_status(b"boom") == {"status": "Failure", "message": "boom"}
