"""The DNS server: UDP and TCP on one port, answers from the cluster records or the forwarder.

Wire format by dnspython. UDP replies larger than the client's limit (512 bytes, or its EDNS0
payload size) are truncated with TC set, and the client asks again over TCP. A datagram that
does not parse is answered FORMERR when it has a header, dropped otherwise; nothing a client
sends stops the server. Memory is bounded: caches are capped LRUs, TCP connections are capped
and time out when idle.

Every request is counted and timed into `metrics` (CoreDNS's coredns_dns_* families, see
metrics.py): a cached answer carries the series it counts into, so the hot path adds a
clock read and a bucket increment.
"""
from __future__ import annotations

import asyncio
import logging
from bisect import bisect_left
from collections import OrderedDict
from time import perf_counter
from typing import Any

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from clusterdns.forward import Forwarder
from clusterdns.metrics import BUCKETS, DNSMetrics, Series, rcode_label, type_label
from clusterdns.records import ClusterRecords

log = logging.getLogger("kubeling.dns")

OUR_PAYLOAD = 1232  # the EDNS0 UDP size DNS Flag Day 2020 settled on
MAX_TCP_CONNECTIONS = 256
TCP_IDLE_TIMEOUT = 10.0


class DNSServer:
    def __init__(self, records: ClusterRecords, forwarder: Forwarder, *, answer_cache_size: int = 4096) -> None:
        self.records = records
        self.forwarder = forwarder
        # Cluster answers as bytes, keyed by the query without its id: a repeated question skips
        # parsing and rendering. Emptied whenever the records change (generation).
        self._answers: OrderedDict[bytes, tuple[bytes, Series]] = OrderedDict()
        self._answers_gen = -1
        self.answer_cache_size = answer_cache_size
        self.tcp_connections = 0
        self.udp_transport: asyncio.DatagramTransport | None = None
        self.tcp_server: asyncio.base_events.Server | None = None
        self.stats = {"queries": 0, "formerr": 0, "dropped": 0, "forwarded": 0, "truncated": 0}
        self.metrics = DNSMetrics()

    # --- answering ----------------------------------------------------------------------------

    def _formerr(self, data: bytes) -> bytes | None:
        if len(data) < 12 or data[2] & 0x80:  # no header, or a response: drop it
            self.stats["dropped"] += 1
            return None
        self.stats["formerr"] += 1
        reply = dns.message.Message(id=int.from_bytes(data[:2], "big"))
        reply.flags = dns.flags.QR | (int.from_bytes(data[2:4], "big") & dns.flags.RD)
        reply.set_rcode(dns.rcode.FORMERR)
        return reply.to_wire()

    def _local(self, query: dns.message.Message) -> dns.message.Message | None:
        """The answer if the question is the cluster's, else None."""
        if query.opcode() != dns.opcode.QUERY:
            reply = dns.message.make_response(query, our_payload=OUR_PAYLOAD)
            reply.set_rcode(dns.rcode.NOTIMP)
            return reply
        if len(query.question) != 1:
            reply = dns.message.make_response(query, our_payload=OUR_PAYLOAD)
            reply.set_rcode(dns.rcode.FORMERR)
            return reply
        q = query.question[0]
        if query.edns > 0:  # only EDNS version 0 exists
            reply = dns.message.make_response(query, our_payload=OUR_PAYLOAD)
            reply.use_edns(0, payload=OUR_PAYLOAD)
            reply.set_rcode(dns.rcode.BADVERS)
            return reply
        if q.rdclass != dns.rdataclass.IN:
            return None
        ans = self.records.resolve(q.name, q.rdtype)
        if ans is None:
            return None
        reply = dns.message.make_response(query, recursion_available=True, our_payload=OUR_PAYLOAD)
        reply.flags |= dns.flags.AA
        reply.set_rcode(ans.rcode)
        reply.answer = ans.answer
        reply.authority = ans.authority
        return reply

    def _render(self, reply: dns.message.Message, max_size: int) -> bytes:
        wire = reply.to_wire(max_size=max_size, prefer_truncation=True)
        if reply.flags & dns.flags.TC or (len(wire) > 3 and wire[2] & 0x02):
            self.stats["truncated"] += 1
        return wire

    @staticmethod
    def _udp_limit(query: dns.message.Message) -> int:
        return max(512, min(query.payload, 65535)) if query.edns >= 0 else 512

    def answer_now(self, data: bytes, udp: bool) -> tuple[bytes | None, dns.message.Message | None]:
        """(reply bytes or None to drop, None) for what is answered at once; (None, query) for a
        query that must be forwarded (see forward())."""
        wire, query, _ = self._answer_now(data, udp)
        return wire, query

    def _answer_now(self, data: bytes, udp: bool
                    ) -> tuple[bytes | None, dns.message.Message | None, Series | None]:
        """answer_now, and the metrics series of an answer given at once (None when forwarded)."""
        self.stats["queries"] += 1
        if self._answers_gen != self.records.generation:
            self._answers.clear()
            self._answers_gen = self.records.generation
        key = (b"U" if udp else b"T") + data[2:]
        cached = self._answers.get(key)
        if cached is not None:
            return data[:2] + cached[0], None, cached[1]
        proto = "udp" if udp else "tcp"
        try:
            query = dns.message.from_wire(data)
        except (dns.exception.DNSException, ValueError, IndexError, UnicodeError):
            wire = self._formerr(data)
            return wire, None, self.metrics.series(proto, "other", "FORMERR" if wire is not None else None)
        if query.flags & dns.flags.QR:
            self.stats["dropped"] += 1
            return None, None, self.metrics.series(proto, "other", None)
        reply = self._local(query)
        if reply is None or self._cname_to_chase(query, reply) is not None:
            return None, query, None
        wire = self._render(reply, self._udp_limit(query) if udp else 65535)
        series = self.metrics.series(proto, self._type(query), rcode_label(reply.rcode()))
        if len(data) <= 512:  # a few KB per entry at most: the cache's memory stays bounded
            if len(self._answers) >= self.answer_cache_size:
                self._answers.popitem(last=False)
            self._answers[key] = (wire[2:], series)
        return wire, None, series

    @staticmethod
    def _type(query: dns.message.Message) -> str:
        return type_label(query.question[0].rdtype) if len(query.question) == 1 else "other"

    def forwarded_series(self, query: dns.message.Message, wire: bytes | None, udp: bool) -> Series:
        """The series of a forwarded query's reply (`wire` None: none was sent)."""
        rcode = rcode_label(wire[3] & 0x0F) if wire is not None and len(wire) > 3 else None
        return self.metrics.series("udp" if udp else "tcp", self._type(query), rcode)

    @staticmethod
    def _cname_to_chase(query: dns.message.Message, reply: dns.message.Message) -> dns.name.Name | None:
        """An ExternalName's CNAME asked for another type: its target, which a recursive server
        resolves too (stub resolvers do not follow a bare CNAME)."""
        q = query.question[0]
        if q.rdtype in (dns.rdatatype.CNAME, dns.rdatatype.ANY) or len(reply.answer) != 1:
            return None
        rrset = reply.answer[-1]
        return rrset[0].target if rrset.rdtype == dns.rdatatype.CNAME else None  # type: ignore[no-any-return]

    async def forward(self, query: dns.message.Message, udp: bool) -> bytes:
        reply = self._local(query)
        if reply is not None:  # a CNAME to chase: the target's answer follows it (at most 8 hops)
            target = self._cname_to_chase(query, reply)
            q = query.question[0]
            for _ in range(8):
                if target is None:
                    break
                sub = dns.message.make_query(target, q.rdtype)
                local = self._local(sub)
                answer = local if local is not None else await self._upstream(sub)
                reply.answer += answer.answer
                reply.set_rcode(answer.rcode())
                target = self._cname_to_chase(sub, answer) if local is not None else None
            return self._render(reply, self._udp_limit(query) if udp else 65535)
        upstream = await self._upstream(query)
        reply = dns.message.make_response(query, recursion_available=True, our_payload=OUR_PAYLOAD)
        reply.set_rcode(upstream.rcode())
        reply.flags |= upstream.flags & dns.flags.AD
        reply.answer, reply.authority = upstream.answer, upstream.authority
        return self._render(reply, self._udp_limit(query) if udp else 65535)

    async def _upstream(self, query: dns.message.Message) -> dns.message.Message:
        self.stats["forwarded"] += 1
        return await self.forwarder.resolve(query)

    async def handle(self, data: bytes, udp: bool) -> bytes | None:
        """The reply's bytes for one query message (None: drop it)."""
        start = perf_counter()
        wire, query, series = self._answer_now(data, udp)
        if query is not None:
            wire = None
            try:
                wire = await self.forward(query, udp)
            finally:
                series = self.forwarded_series(query, wire, udp)
        if series is not None:
            series.observe(perf_counter() - start)
        return wire

    # --- transports ---------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (UDP and TCP); port 0 picks one free for both. Returns the port."""
        self.metrics.family = "2" if ":" in host else "1"
        loop = asyncio.get_running_loop()
        for _ in range(20):
            udp, _p = await loop.create_datagram_endpoint(lambda: _UDP(self), local_addr=(host, port))
            bound = udp.get_extra_info("sockname")[1]
            try:
                self.tcp_server = await asyncio.start_server(self._tcp_client, host, bound,
                                                             reuse_address=True, limit=70000)
            except OSError:
                udp.close()
                if port:
                    raise
                continue
            self.udp_transport = udp
            self.metrics.server = f"dns://{'' if host in ('0.0.0.0', '::') else host}:{bound}"
            return bound
        raise OSError("no port free for both UDP and TCP")

    async def stop(self) -> None:
        if self.udp_transport:
            self.udp_transport.close()
        if self.tcp_server:
            self.tcp_server.close()
            await self.tcp_server.wait_closed()

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.tcp_connections >= MAX_TCP_CONNECTIONS:
            writer.close()
            return
        self.tcp_connections += 1
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                data = await asyncio.wait_for(reader.readexactly(int.from_bytes(head, "big")), TCP_IDLE_TIMEOUT)
                wire = await self.handle(data, udp=False)
                if wire is None:
                    break
                writer.write(len(wire).to_bytes(2, "big") + wire)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        except Exception:  # a bug for one client must not take the server down
            log.exception("TCP client failed")
        finally:
            self.tcp_connections -= 1
            writer.close()


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: set[asyncio.Task[Any]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        start = perf_counter()
        try:
            wire, query, series = self.server._answer_now(data, udp=True)
        except Exception:  # a bug for one query must not take the server down
            log.exception("UDP query failed")
            return
        if query is None:
            if wire is not None and self.transport is not None:
                self.transport.sendto(wire, addr)
            if series is not None:  # Series.observe inlined: this is the path of every cached answer
                elapsed = perf_counter() - start
                series.buckets[bisect_left(BUCKETS, elapsed)] += 1
                series.sum += elapsed
            return
        if len(self.pending) >= 1024:  # bounded: a flood of forwarded names is shed, not queued
            self.server.stats["dropped"] += 1
            self.server.forwarded_series(query, None, True).observe(perf_counter() - start)
            return
        task = asyncio.ensure_future(self._forward(query, addr, start))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _forward(self, query: dns.message.Message, addr: Any, start: float) -> None:
        wire = None
        try:
            wire = await self.server.forward(query, udp=True)
        except Exception:
            log.exception("forwarding failed")
        if wire is not None and self.transport is not None:
            self.transport.sendto(wire, addr)
        self.server.forwarded_series(query, wire, True).observe(perf_counter() - start)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)
