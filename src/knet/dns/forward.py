"""The forward plugin: send a query to the upstream resolvers over UDP, with a deadline.

On these machines the upstream answers nothing, so the deadline matters most: when it passes
the caller answers SERVFAIL. Queries go out with a fresh random ID (the client's ID is patched
back by the caller), and at most `max_concurrent` are in flight (beyond that: REFUSED, as
CoreDNS's max_concurrent does).
"""

from __future__ import annotations

import asyncio
import random
import secrets

from knet.dns.metrics import Metrics


class _OneAnswer(asyncio.DatagramProtocol):
    def __init__(self, query_id: bytes, done: asyncio.Future[bytes]) -> None:
        self.query_id = query_id
        self.done = done

    def datagram_received(self, data: bytes, addr: object) -> None:
        if len(data) >= 12 and data[:2] == self.query_id and data[2] & 0x80 and not self.done.done():
            self.done.set_result(data)

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable: try the next upstream
        if not self.done.done():
            self.done.set_exception(exc)


class Forwarder:
    def __init__(self, upstreams: list[tuple[str, int]], *, timeout: float = 2.0, max_concurrent: int = 1000,
                 metrics: Metrics | None = None) -> None:
        self.upstreams = upstreams
        self.timeout = timeout
        self.max_concurrent = max_concurrent
        self.in_flight = 0
        self.metrics = metrics

    @property
    def saturated(self) -> bool:
        return self.in_flight >= self.max_concurrent

    async def query(self, wire: bytes) -> bytes | None:
        """The upstream's answer (with WIRE's ID), or None when none answered in time."""
        if not self.upstreams or len(wire) < 12:
            return None
        self.in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.timeout
            order = random.sample(self.upstreams, len(self.upstreams))
            for i, (host, port) in enumerate(order):
                left = deadline - loop.time()
                if left <= 0:
                    break
                # Split what is left between the upstreams not tried yet.
                budget = left / (len(order) - i)
                answer = await self._ask(host, port, wire, budget)
                if answer is not None:
                    return wire[:2] + answer[2:]
            return None
        finally:
            self.in_flight -= 1

    async def _ask(self, host: str, port: int, wire: bytes, budget: float) -> bytes | None:
        if self.metrics is not None:
            self.metrics.forward_requests[f"{host}:{port}"] += 1
        loop = asyncio.get_running_loop()
        query_id = secrets.token_bytes(2)
        done: asyncio.Future[bytes] = loop.create_future()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _OneAnswer(query_id, done), remote_addr=(host, port))
        except OSError:
            return None
        try:
            transport.sendto(query_id + wire[2:])
            return await asyncio.wait_for(done, budget)
        except (TimeoutError, OSError):
            return None
        finally:
            transport.close()
