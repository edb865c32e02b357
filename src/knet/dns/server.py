"""The DNS listeners: UDP (with the wire-cache fast path) and TCP (length-prefixed), on asyncio.

A hit in the wire cache is answered inside `datagram_received` with one dict lookup and one
`sendto`. Everything else goes to `QueryHandler.handle`. A client sending more cache misses than
`miss_rate` per second has the excess dropped, so a flood of junk from one address cannot take
the server from everyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time

from knet.dns.handler import QueryHandler

log = logging.getLogger("knet.dns")

TCP_IDLE_TIMEOUT = 10.0
MAX_TCP_CONNECTIONS = 256
MAX_TCP_PER_CLIENT = 16


class _Bucket:
    __slots__ = ("tokens", "stamp")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class UdpServer(asyncio.DatagramProtocol):
    def __init__(self, handler: QueryHandler, *, miss_rate: float = 5000.0, miss_burst: float = 10000.0) -> None:
        self.handler = handler
        self.transport: asyncio.DatagramTransport | None = None
        self.miss_rate = miss_rate
        self.miss_burst = miss_burst
        self.buckets: dict[str, _Bucket] = {}
        self.family = "1"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family == socket.AF_INET6:
            self.family = "2"

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        t0 = time.perf_counter()
        handler = self.handler
        entry = handler.wire_cache.get(data[2:], t0)
        if entry is not None:
            self.transport.sendto(data[:2] + entry.next_tail(), addr)  # type: ignore[union-attr]
            metrics = handler.metrics
            metrics.cache_hits["denial" if entry.denial else "success"] += 1
            metrics.observe("udp", self.family, entry.qtype, entry.rcode, time.perf_counter() - t0)
            return
        if not self._allow_miss(addr[0], t0):
            handler.metrics.dropped += 1
            return
        try:
            outcome = handler.handle(data, "udp", self.family)
        except Exception:  # noqa: BLE001 - one bad query must not stop the server
            log.exception("query from %s failed", addr)
            handler.metrics.panics += 1
            return
        if outcome is None:
            return
        if isinstance(outcome, bytes):
            self.transport.sendto(outcome, addr)  # type: ignore[union-attr]
            return
        asyncio.ensure_future(self._later(outcome, addr))

    async def _later(self, pending, addr: tuple) -> None:
        try:
            answer = await pending
        except Exception:  # noqa: BLE001
            log.exception("query from %s failed", addr)
            return
        if answer is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(answer, addr)

    def _allow_miss(self, host: str, now: float) -> bool:
        bucket = self.buckets.get(host)
        if bucket is None:
            if len(self.buckets) > 10_000:  # many sources: forget the idle ones
                self.buckets.clear()
            bucket = self.buckets[host] = _Bucket(self.miss_burst, now)
        bucket.tokens = min(self.miss_burst, bucket.tokens + (now - bucket.stamp) * self.miss_rate)
        bucket.stamp = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def error_received(self, exc: Exception) -> None:
        log.debug("udp error: %s", exc)


class TcpServer:
    def __init__(self, handler: QueryHandler) -> None:
        self.handler = handler
        self.connections = 0
        self.per_client: dict[str, int] = {}

    async def serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = (writer.get_extra_info("peername") or ("?",))[0]
        if self.connections >= MAX_TCP_CONNECTIONS or self.per_client.get(peer, 0) >= MAX_TCP_PER_CLIENT:
            writer.close()  # one client cannot hold every connection slot
            return
        self.connections += 1
        self.per_client[peer] = self.per_client.get(peer, 0) + 1
        sock = writer.get_extra_info("socket")
        family = "2" if sock is not None and sock.family == socket.AF_INET6 else "1"
        try:
            while True:
                try:
                    prefix = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                    size = int.from_bytes(prefix, "big")
                    wire = await asyncio.wait_for(reader.readexactly(size), TCP_IDLE_TIMEOUT)
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                outcome = self.handler.handle(wire, "tcp", family)
                if outcome is not None and not isinstance(outcome, bytes):
                    outcome = await outcome
                if outcome is None:
                    return  # a message we drop ends the connection
                writer.write(len(outcome).to_bytes(2, "big") + outcome)
                await writer.drain()
        except Exception:  # noqa: BLE001
            log.exception("tcp connection failed")
        finally:
            self.connections -= 1
            self.per_client[peer] -= 1
            if not self.per_client[peer]:
                del self.per_client[peer]
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


async def start_dns(handler: QueryHandler, host: str, port: int, *, reuse_port: bool = False,
                    miss_rate: float = 5000.0, miss_burst: float = 10000.0,
                    ) -> tuple[asyncio.DatagramTransport, asyncio.Server]:
    """Listen on HOST:PORT, UDP and TCP. HOST "" means every IPv4 address.

    PORT 0 picks a free UDP port and serves TCP on the same number; should another program hold
    that number for TCP, another port is tried.
    """
    loop = asyncio.get_running_loop()
    bind = host or "0.0.0.0"
    attempts = 8 if port == 0 else 1
    for attempt in range(attempts):
        sock = socket.socket(_family(bind), socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((bind, port))
        udp, _ = await loop.create_datagram_endpoint(
            lambda: UdpServer(handler, miss_rate=miss_rate, miss_burst=miss_burst), sock=sock)
        actual_port = sock.getsockname()[1]
        try:
            tcp = await asyncio.start_server(TcpServer(handler).serve_connection, bind, actual_port,
                                             reuse_address=True, reuse_port=reuse_port or None)
        except OSError as exc:
            udp.close()
            if exc.errno != errno.EADDRINUSE or attempt == attempts - 1:
                raise
            continue
        return udp, tcp
    raise AssertionError("unreachable")
