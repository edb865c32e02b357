"""A whole query, wire in -> wire out: validation, server blocks, the kubernetes zones, forwarding,
EDNS0, truncation, and the wire-answer cache.

`handle()` answers at once (bytes), drops (None), or returns a coroutine when the answer needs
the upstream (forwarding, ExternalName targets). Every response we compose is rendered in one
place, `_finish` (with `wire.render`); forwarded answers pass through with the client's ID.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from knet.dns.answer import RR, KubernetesZones, Reply, dependency, serve
from knet.dns.corefile import CacheConfig
from knet.dns.forward import Forwarder
from knet.dns.metrics import Metrics, rcode_label, type_label
from knet.dns.wire import Query, from_message, parse_query, render
from knet.dns.wirecache import WireCache, WireEntry

TCP_MAX = 65535
UDP_MIN = 512
MAX_ROTATIONS = 8
META_TYPES = {dns.rdatatype.OPT, dns.rdatatype.TSIG, dns.rdatatype.TKEY}
INF = float("inf")
LOOP_LIMIT = 2  # the loop plugin: a probe seen more than twice came back through the upstream

Outcome = bytes | None | Coroutine[Any, Any, bytes | None]


@dataclass
class Block:
    """What one Corefile server block does with a query."""

    zones: list[str]
    kubernetes: KubernetesZones | None = None
    forwarder: Forwarder | None = None
    forward_from: str = "."
    cache: CacheConfig | None = None
    loadbalance: bool = False

    def forwards(self, name: str) -> bool:
        f = self.forward_from
        return self.forwarder is not None and (f == "." or name == f or name.endswith("." + f))


@dataclass
class QueryHandler:
    blocks: list[Block]
    metrics: Metrics = field(default_factory=Metrics)
    wire_cache: WireCache = field(default_factory=WireCache)
    # The loop plugin's probe names -> times seen; past LOOP_LIMIT, on_loop(name) is called.
    loop_probes: dict[str, int] = field(default_factory=dict)
    on_loop: Any = None

    def block_for(self, name: str) -> Block | None:
        best, best_len = None, -1
        for block in self.blocks:
            for zone in block.zones:
                if (zone == "." or name == zone or name.endswith("." + zone)) and len(zone) > best_len:
                    best, best_len = block, len(zone)
        return best

    # ------------------------------------------------------------------ entry
    def handle(self, wire: bytes, proto: str = "udp", family: str = "1") -> Outcome:
        t0 = time.perf_counter()
        if len(wire) < 12 or wire[2] & 0x80:  # too short for a header, or a response: drop
            self.metrics.dropped += 1
            return None
        query = parse_query(wire)
        if query is None:  # not a plain query: the full parser decides what it is
            try:
                msg = dns.message.from_wire(wire)
            except dns.message.ShortHeader:
                self.metrics.dropped += 1
                return None
            except Exception:  # noqa: BLE001 - any undecodable message is a format error
                return self._bare(wire, dns.rcode.FORMERR, proto, family, t0)
            if msg.opcode() != dns.opcode.QUERY:
                return self._bare(wire, dns.rcode.NOTIMP, proto, family, t0)
            if len(msg.question) != 1:
                return self._bare(wire, dns.rcode.FORMERR, proto, family, t0)
            query = from_message(msg)
        if query.opcode != dns.opcode.QUERY:
            return self._bare(wire, dns.rcode.NOTIMP, proto, family, t0)
        if query.edns > 0:
            return self._finish(query, dns.rcode.BADVERS, Reply(), proto, family, t0, cacheable=False)
        if query.qclass != dns.rdataclass.IN:
            return self._finish(query, dns.rcode.NOTIMP, Reply(), proto, family, t0, cacheable=False)
        if query.qtype in META_TYPES:
            return self._finish(query, dns.rcode.FORMERR, Reply(), proto, family, t0, cacheable=False)
        if query.qtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            return self._finish(query, dns.rcode.REFUSED, Reply(), proto, family, t0, cacheable=False)

        qname = query.qname
        name = qname.lower()
        if self.loop_probes and name in self.loop_probes:
            self.loop_probes[name] += 1
            if self.loop_probes[name] > LOOP_LIMIT and self.on_loop is not None:
                self.on_loop(name)
        block = self.block_for(name)
        if block is None:
            return self._finish(query, dns.rcode.REFUSED, Reply(), proto, family, t0, cacheable=False)
        reply = serve(block.kubernetes, qname, query.qtype) if block.kubernetes else None
        if reply is not None and not reply.fallthrough:
            if reply.chase:
                return self._chase(block, query, reply, proto, family, t0)
            cacheable = proto == "udp" and reply.rcode != dns.rcode.SERVFAIL
            dep = dependency(block.kubernetes, qname, query.qtype, reply) if cacheable else "*"  # type: ignore[arg-type]
            return self._finish(query, reply.rcode, reply, proto, family, t0, cacheable=cacheable,
                                authoritative=True, key=wire[2:], loadbalance=block.loadbalance, dep=dep)
        if block.forwards(name):
            assert block.forwarder is not None
            if block.forwarder.saturated:
                return self._finish(query, dns.rcode.REFUSED, Reply(), proto, family, t0, cacheable=False)
            return self._forward(block, query, wire, proto, family, t0)
        return self._finish(query, dns.rcode.SERVFAIL, Reply(), proto, family, t0, cacheable=False)

    # ------------------------------------------------------------------ upstream
    async def _forward(self, block: Block, query: Query, wire: bytes, proto: str,
                       family: str, t0: float) -> bytes | None:
        assert block.forwarder is not None
        answer = await block.forwarder.query(wire)
        if answer is None:
            rendered = self._finish(query, dns.rcode.SERVFAIL, Reply(), proto, family, t0, cacheable=False)
            if block.cache is not None and proto == "udp" and rendered is not None:
                self._remember_forwarded(wire, rendered, block.cache.servfail_ttl, query, dns.rcode.SERVFAIL)
            return rendered
        max_size = self._max_size(query, proto)
        if len(answer) > max_size:
            # Too big for the client's buffer: tell it to come back over TCP.
            return self._finish(query, dns.rcode.NOERROR, Reply(), proto, family, t0, cacheable=False,
                                truncated=True)
        rcode = (answer[3] & 0x0F)
        if block.cache is not None and proto == "udp" and rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            ttl = self._answer_ttl(answer, block.cache)
            if ttl > 0:
                self._remember_forwarded(wire, answer, ttl, query, rcode)
        self._observe(proto, family, query.qtype, rcode, t0)
        return answer

    def _remember_forwarded(self, wire: bytes, answer: bytes, ttl: float, query: Query,
                            rcode: int) -> None:
        denial = rcode != dns.rcode.NOERROR or answer[6:8] == b"\x00\x00"
        entry = WireEntry((answer[2:],), time.perf_counter() + ttl, type_label(query.qtype), rcode_label(rcode), denial)
        self.wire_cache.put_forwarded(wire[2:], entry)

    @staticmethod
    def _answer_ttl(answer: bytes, cache: CacheConfig) -> int:
        try:
            msg = dns.message.from_wire(answer)
        except Exception:  # noqa: BLE001 - do not cache what we cannot read
            return 0
        if msg.answer:
            return min(min(r.ttl for r in msg.answer), cache.ttl)
        soa = [r for r in msg.authority if r.rdtype == dns.rdatatype.SOA]
        if soa:
            return min(soa[0].ttl, soa[0][0].minimum, cache.denial_ttl)
        return 0

    async def _chase(self, block: Block, query: Query, reply: Reply, proto: str, family: str,
                     t0: float) -> bytes | None:
        """ExternalName targets outside the zone: CNAME plus what the upstream says about them."""
        qtype = query.qtype
        if block.forwarder is not None:
            for target in reply.chase:
                ask = dns.message.make_query(target, qtype)
                answer = await block.forwarder.query(ask.to_wire())
                if answer is None:
                    continue
                try:
                    msg = dns.message.from_wire(answer)
                except Exception:  # noqa: BLE001 - an unreadable upstream answer adds nothing
                    continue
                for rrset in msg.answer:
                    reply.answer.extend((rrset.name.to_text(), rrset.ttl, rdata) for rdata in rrset)
        return self._finish(query, reply.rcode, reply, proto, family, t0, cacheable=False, authoritative=True)

    # ------------------------------------------------------------------ rendering
    @staticmethod
    def _max_size(query: Query, proto: str) -> int:
        if proto == "tcp":
            return TCP_MAX
        if query.edns >= 0:
            return max(UDP_MIN, min(query.payload, TCP_MAX))
        return UDP_MIN

    def _finish(self, query: Query, rcode: int, reply: Reply, proto: str, family: str, t0: float,
                *, cacheable: bool, authoritative: bool = False, key: bytes | None = None,
                loadbalance: bool = False, truncated: bool = False, dep: str = "*") -> bytes:
        max_size = self._max_size(query, proto)
        variants = _rotations(reply.answer) if loadbalance else [reply.answer]
        tails = []
        for answer in variants:
            wire = render(query, rcode, answer, reply.authority, reply.additional, max_size,
                          authoritative=authoritative, truncated=truncated)
            tails.append(wire[2:])
        qtype = query.qtype
        if cacheable and key is not None:
            denial = rcode != dns.rcode.NOERROR or not reply.answer
            entry = WireEntry(tuple(tails), INF, type_label(qtype), rcode_label(rcode), denial)
            self.wire_cache.put_cluster(key, entry, dep)
            self.metrics.cache_misses += 1
        self._observe(proto, family, qtype, rcode, t0)
        return query.id.to_bytes(2, "big") + tails[0]

    def _bare(self, wire: bytes, rcode: int, proto: str, family: str, t0: float) -> bytes:
        """An answer to a query we cannot parse: its header with QR and RCODE set, nothing else."""
        flags = int.from_bytes(wire[2:4], "big")
        opcode_bits = flags & 0x7800
        rd = flags & 0x0100
        header = wire[:2] + (0x8000 | opcode_bits | rd | rcode).to_bytes(2, "big") + b"\x00" * 8
        self._observe(proto, family, -1, rcode, t0)
        return header

    def _observe(self, proto: str, family: str, qtype: int, rcode: int, t0: float) -> None:
        self.metrics.observe(proto, family, type_label(qtype), rcode_label(rcode), time.perf_counter() - t0)


def _rotations(answer: list[RR]) -> list[list[RR]]:
    """The loadbalance plugin's shuffling, precomputed: rotations of the address records."""
    addr = [i for i, (_, _, r) in enumerate(answer) if r.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)]
    if len(addr) < 2:
        return [answer]
    out = []
    for shift in range(min(len(addr), MAX_ROTATIONS)):
        rotated = list(answer)
        for j, i in enumerate(addr):
            rotated[i] = answer[addr[(j + shift) % len(addr)]]
        out.append(rotated)
    return out
