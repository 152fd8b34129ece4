"""Forwarding what is not the cluster's to the node's upstream resolvers, with a bounded cache."""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

log = logging.getLogger("kubeling.dns.forward")

Upstream = tuple[str, int]
MAX_CACHE_TTL = 30  # seconds: an upstream answer is reused at most this long
NEGATIVE_TTL = 5


def upstreams_from_resolv_conf(path: str = "/etc/resolv.conf") -> list[Upstream]:
    out: list[Upstream] = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    out.append((parts[1], 53))
    except OSError:
        pass
    return out


def parse_upstream(text: str) -> Upstream:
    """`1.2.3.4`, `1.2.3.4:5353`, `[::1]:53`."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return host, int(port or 53)
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, 53


class _OneShot(asyncio.DatagramProtocol):
    def __init__(self, fut: asyncio.Future[bytes], qid: int) -> None:
        self.fut, self.qid = fut, qid

    def datagram_received(self, data: bytes, addr: object) -> None:
        # Only the reply to our id (a stray or spoofed datagram is ignored).
        if len(data) >= 2 and int.from_bytes(data[:2], "big") == self.qid and not self.fut.done():
            self.fut.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.fut.done():
            self.fut.set_exception(exc)


class Forwarder:
    def __init__(self, upstreams: list[Upstream], *, cache_size: int = 10000, timeout: float = 2.0,
                 max_inflight: int = 512) -> None:
        self.upstreams = upstreams
        self.timeout = timeout
        self.cache_size = cache_size
        self.cache: OrderedDict[tuple[str, int, int, bool], tuple[float, dns.message.Message]] = OrderedDict()
        self.inflight = 0
        self.max_inflight = max_inflight
        self.hits = self.misses = 0

    async def _udp(self, wire: bytes, qid: int, up: Upstream) -> bytes:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bytes] = loop.create_future()
        transport, _ = await loop.create_datagram_endpoint(lambda: _OneShot(fut, qid), remote_addr=up)
        try:
            transport.sendto(wire)
            return await asyncio.wait_for(fut, self.timeout)
        finally:
            transport.close()

    async def _tcp(self, wire: bytes, up: Upstream) -> bytes:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*up), self.timeout)
        try:
            writer.write(len(wire).to_bytes(2, "big") + wire)
            await writer.drain()
            size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), self.timeout), "big")
            return await asyncio.wait_for(reader.readexactly(size), self.timeout)
        finally:
            writer.close()

    def _key(self, q: dns.message.Message) -> tuple[str, int, int, bool]:
        question = q.question[0]
        return (question.name.to_text().lower(), question.rdtype, question.rdclass,
                bool(q.ednsflags & dns.flags.DO))

    def _cached(self, key: tuple[str, int, int, bool]) -> dns.message.Message | None:
        hit = self.cache.get(key)
        if hit is None:
            return None
        expires, msg = hit
        if expires < time.monotonic():
            del self.cache[key]
            return None
        self.cache.move_to_end(key)
        return msg

    def _store(self, key: tuple[str, int, int, bool], msg: dns.message.Message) -> None:
        if msg.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN) or msg.flags & dns.flags.TC:
            return
        ttls = [rr.ttl for section in (msg.answer, msg.authority) for rr in section]
        ttl = min([MAX_CACHE_TTL, *ttls]) if msg.answer else min([NEGATIVE_TTL, *ttls])
        if ttl <= 0:
            return
        self.cache[key] = (time.monotonic() + ttl, msg)
        self.cache.move_to_end(key)
        while len(self.cache) > self.cache_size:  # memory stays bounded however many names
            self.cache.popitem(last=False)

    async def resolve(self, query: dns.message.Message) -> dns.message.Message:
        """The upstream's answer to `query` (its id and question), SERVFAIL if none answers."""
        key = self._key(query)
        cached = self._cached(key)
        if cached is not None:
            self.hits += 1
            reply = dns.message.make_response(query, recursion_available=True)
            reply.set_rcode(cached.rcode())
            reply.flags |= cached.flags & dns.flags.AD
            reply.answer = list(cached.answer)
            reply.authority = list(cached.authority)
            return reply
        self.misses += 1
        if self.inflight >= self.max_inflight or not self.upstreams:
            return self._servfail(query)
        self.inflight += 1
        try:
            wire = query.to_wire()
            for up in self.upstreams:
                try:
                    data = await self._udp(wire, query.id, up)
                    reply = dns.message.from_wire(data)
                    if reply.flags & dns.flags.TC:  # too big for UDP: ask again over TCP
                        reply = dns.message.from_wire(await self._tcp(wire, up))
                except (OSError, asyncio.TimeoutError, dns.exception.DNSException, EOFError) as exc:
                    log.debug("upstream %s:%s failed: %s", *up, exc)
                    continue
                self._store(key, reply)
                return reply
        finally:
            self.inflight -= 1
        return self._servfail(query)

    @staticmethod
    def _servfail(query: dns.message.Message) -> dns.message.Message:
        reply = dns.message.make_response(query, recursion_available=True)
        reply.set_rcode(dns.rcode.SERVFAIL)
        return reply
