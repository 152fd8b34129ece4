"""Framing between the executables and the daemon, kept free of imports the shim would pay for.

A frame is a 4-byte big-endian length, then the body: a 4-byte count of items, then each item as
a 4-byte length and its bytes. Request items: plugin, stdin, then one "KEY=VALUE" per
environment variable. The daemon answers one byte first: ACCEPTED (it is doing the work; a
frame of exit code, stdout, stderr follows) or DECLINED (nothing was done; the caller does it).
A connection that ends before that byte means the request was never taken.
"""
from __future__ import annotations

DEFAULT_SOCKET = "/run/kubeling/cni.sock"
SOCKET_ENV = "KUBELING_CNI_SOCKET"
MAX_FRAME = 16 * 1024 * 1024
ACCEPTED = b"A"
DECLINED = b"D"


def _u32(n):
    return n.to_bytes(4, "big")


def encode(items):
    body = _u32(len(items)) + b"".join(_u32(len(i)) + i for i in items)
    return _u32(len(body)) + body


def _exactly(sock, n):
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv(sock):
    """The items of one frame, or None when the peer closed the connection first."""
    head = _exactly(sock, 4)
    if head is None:
        return None
    size = int.from_bytes(head, "big")
    if size > MAX_FRAME:
        raise ValueError("frame too large")
    body = _exactly(sock, size)
    if body is None:
        return None
    count = int.from_bytes(body[:4], "big")
    items, pos = [], 4
    for _ in range(count):
        n = int.from_bytes(body[pos:pos + 4], "big")
        items.append(body[pos + 4:pos + 4 + n])
        pos += 4 + n
    if pos != len(body):
        raise ValueError("malformed frame")
    return items
