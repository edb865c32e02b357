"""The proxy's side towards backends: HTTP/1.1 over keep-alive connections kept in a pool per
(address, port, TLS), as ingress-nginx's upstream keepalive (upstream-keepalive-connections 320,
upstream-keepalive-timeout 60 s). Each connection is an asyncio Protocol whose response bytes go
through httptools (llhttp, the parser uvicorn uses) straight to a Sink, the client side, which
writes them out as they come: no per-chunk coroutine, no copy of the body into a buffer.

A request is sent once per try. A reused connection that the backend closed meanwhile (it fails
before a single response byte) is retried once on a new connection, as HTTP clients do; other
failures go back to the caller, which moves on to the next upstream."""

from __future__ import annotations

import asyncio
import ssl
from typing import Protocol

import httptools

CONNECT_TIMEOUT = 5.0       # ingress-nginx proxy-connect-timeout
READ_TIMEOUT = 60.0         # proxy-read-timeout: the longest wait between two reads
KEEPALIVE_TIMEOUT = 60.0    # upstream-keepalive-timeout
KEEPALIVE_CONNECTIONS = 320  # upstream-keepalive-connections (idle ones kept per upstream)
NO_BODY_STATUS = frozenset({204, 304})


class UpstreamError(Exception):
    """A try that failed: `timeout` (504) or not (502); `responded`: the response had begun."""

    def __init__(self, message: str, timeout: bool = False, responded: bool = False, sent: bool = True) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.responded = responded
        self.sent = sent  # False: the request never left (connecting failed), any method may go elsewhere


class Sink(Protocol):
    """Where a response goes (the client connection's side of one request)."""

    def response_head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]],
                      content_length: int | None, no_body: bool) -> None: ...
    def response_body(self, chunk: bytes) -> None: ...
    def response_end(self) -> None: ...
    def flush(self) -> None: ...
    def attach(self, upstream: UpstreamConnection | None) -> None:
        """The connection now (or, None, no longer) answering: the client side pauses its
        reading while the client reads slower than the backend answers."""


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, pool: Pool, key: tuple[str, int, bool]) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._sink: Sink | None = None
        self._done: asyncio.Future | None = None
        self._head_request = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._reason = b""
        self._length: int | None = None
        self._until_eof = False
        self._got_bytes = False
        self._headers_done = False
        self._skip_message = False
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._sink is None:  # bytes nobody asked for: this connection cannot be trusted again
            self._close()
            return
        self._got_bytes = True
        self._last_read = self.pool.loop.time()
        sink = self._sink
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"invalid response: {exc}", responded=self._headers_done))
            self._close()
            return
        sink.flush()

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self._sink is None:
            return
        if self._headers_done and self._until_eof:  # a response delimited by the connection's close
            sink = self._sink
            sink.response_end()
            self._finish(keep=False)
            sink.flush()
            return
        self._fail(UpstreamError(f"upstream closed the connection: {exc or 'EOF'}", responded=self._headers_done))

    # -- one exchange -----------------------------------------------------------------------------
    def send(self, data: bytes, sink: Sink, head_request: bool) -> asyncio.Future:
        """Write a whole request (head and body); the future is done when its response has been
        passed to the sink (or fails with UpstreamError)."""
        assert self.transport is not None and self._sink is None
        self._sink, self._head_request = sink, head_request
        self._headers, self._length, self._until_eof = [], None, False
        self._got_bytes = self._headers_done = self._skip_message = False
        self._done = self.pool.loop.create_future()
        self._last_read = self.pool.loop.time()
        self._timer = self.pool.loop.call_later(READ_TIMEOUT, self._check_timeout)
        sink.attach(self)
        self.transport.write(data)
        return self._done

    def pause(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()
            self._paused = True

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self.transport.resume_reading()
        self._paused = False

    def abort(self) -> None:
        """The client went away: this response goes nowhere, and the connection cannot be reused."""
        self._fail(UpstreamError("client closed the connection", responded=self._headers_done))
        self._close()

    def _check_timeout(self) -> None:
        self._timer = None
        if self._sink is None:
            return
        waited = self.pool.loop.time() - self._last_read
        if waited < READ_TIMEOUT:
            self._timer = self.pool.loop.call_later(READ_TIMEOUT - waited, self._check_timeout)
            return
        self._fail(UpstreamError("upstream timed out", timeout=True, responded=self._headers_done))
        self._close()

    def _detach(self) -> asyncio.Future | None:
        if self._sink is not None:
            self._sink.attach(None)
        done, self._sink = self._done, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return done

    def _fail(self, exc: UpstreamError) -> None:
        done = self._detach()
        if done is not None and not done.done():
            done.set_exception(exc)

    def _finish(self, keep: bool) -> None:
        done = self._detach()
        if done is not None and not done.done():
            done.set_result(None)
        self.resume()
        if keep and not self.closed:
            self.pool.release(self)
        else:
            self._close()

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # -- httptools callbacks ----------------------------------------------------------------------
    def on_status(self, reason: bytes) -> None:
        self._reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._sink is None:
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # 100 Continue, 103 Early Hints: the final response follows
            self._skip_message = True
            self._headers = []
            return
        chunked = False
        for name, value in self._headers:
            lname = name.lower()
            if lname == b"content-length":
                try:
                    self._length = int(value)
                except ValueError:
                    raise UpstreamError("invalid Content-Length from upstream") from None
            elif lname == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        no_body = self._head_request or status in NO_BODY_STATUS
        if chunked:
            self._length = None
        self._until_eof = not no_body and not chunked and self._length is None
        self._headers_done = True
        self._sink.response_head(status, self._reason, self._headers, self._length, no_body)
        if self._head_request:  # llhttp would wait for the announced body: the message ends here
            keep = self._parser.should_keep_alive()
            self._parser = httptools.HttpResponseParser(self)
            self._finish(keep)

    def on_body(self, body: bytes) -> None:
        if self._sink is not None:
            self._sink.response_body(body)

    def on_message_complete(self) -> None:
        if self._skip_message:
            self._skip_message = False
            return
        if self._sink is None:
            return
        self._sink.response_end()
        self._finish(self._parser.should_keep_alive())


class Pool:
    """Idle keep-alive connections per (address, port, TLS), newest reused first."""

    def __init__(self, tls_context: ssl.SSLContext | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.tls_context = tls_context
        self._idle: dict[tuple[str, int, bool], list[UpstreamConnection]] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    async def connect(self, key: tuple[str, int, bool]) -> UpstreamConnection:
        addr, port, tls = key
        try:
            _, conn = await asyncio.wait_for(self.loop.create_connection(
                lambda: UpstreamConnection(self, key), addr, port, ssl=self.tls_context if tls else None),
                CONNECT_TIMEOUT)
        except TimeoutError:
            raise UpstreamError(f"connect to {addr}:{port} timed out", timeout=True, sent=False) from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamError(f"connect to {addr}:{port}: {exc}", sent=False) from None
        return conn

    def take(self, key: tuple[str, int, bool]) -> UpstreamConnection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    def release(self, conn: UpstreamConnection) -> None:
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= KEEPALIVE_CONNECTIONS:
            conn._close()
            return
        conn.idle_since = self.loop.time()
        idle.append(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(KEEPALIVE_TIMEOUT / 4, self._sweep)

    def forget(self, conn: UpstreamConnection) -> None:
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    def _sweep(self) -> None:
        self._sweeper = None
        limit = self.loop.time() - KEEPALIVE_TIMEOUT
        for key, idle in list(self._idle.items()):
            for conn in [c for c in idle if c.idle_since < limit]:
                conn._close()
            idle[:] = [c for c in idle if not c.closed]
            if not idle:
                del self._idle[key]
        if self._idle:
            self._sweeper = self.loop.call_later(KEEPALIVE_TIMEOUT / 4, self._sweep)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for conn in idle:
                conn._close()
        self._idle.clear()

    async def exchange(self, addr: str, port: int, tls: bool, data: bytes, sink: Sink, head_request: bool) -> None:
        """One try against one upstream: send the request, pass the response to the sink."""
        key = (addr, port, tls)
        conn = self.take(key)
        if conn is not None:
            try:
                await conn.send(data, sink, head_request)
                return
            except UpstreamError as exc:
                if exc.responded or exc.timeout or conn._got_bytes:
                    raise
                # the backend had closed this idle connection: once more on a new one
        conn = await self.connect(key)
        await conn.send(data, sink, head_request)
