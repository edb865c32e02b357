"""The reverse proxy: HTTP/1.1 on the HTTP and HTTPS ports, each request decided from the
current Snapshot (decide.py: a RouteTable, the endpoints of its backends, the certificates) and
forwarded to a backend pod over a pooled keep-alive connection (upstream.py), as ingress-nginx
does. A new Snapshot replaces the old one in one assignment: requests in flight finish with the
one they started with, and no listener closes (ingress-nginx's reload without dropped
connections, without a process to reload). Each request is logged to stdout in ingress-nginx's
`upstreaminfo` log format (`kubectl logs` shows it).

The transport is asyncio Protocols with httptools (llhttp) parsing both sides: a request costs
one read and one write on each of the two connections, and the response goes to the client as
the backend's bytes arrive. Limits are nginx's defaults: 1 MiB request bodies
(client_max_body_size, else 413), header lines up to 8 KiB (large_client_header_buffers, else
400; request lines 414), 75 s idle keep-alive (keepalive_timeout)."""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus

import httptools

from knet.ingress import gateway, upstream
from knet.ingress.decide import (
    Decision,
    RequestLine,
    RoundRobin,
    decide_gateway,
    decide_ingress,
    edit_response_headers,
    forwarded_headers,
    page,
    reason,
)
from knet.ingress.routing import Backend, RouteTable, normalize_host

log = logging.getLogger("knet.ingress")
TRIES = 3                    # proxy-next-upstream-tries
MAX_BODY = 1 << 20           # client_max_body_size 1m
MAX_LINE = 8190              # one header line / the request target (large_client_header_buffers 4 8k)
MAX_HEAD = 4 * 8192          # all header lines
KEEPALIVE_TIMEOUT = 75.0     # keepalive_timeout
MAX_PIPELINED = 16           # requests read ahead on one connection before reading pauses
OUT_BUFFER = 1 << 16         # response bytes gathered before a write
# Not passed on either way: hop-by-hop (RFC 9110 7.6.1) and the framing, which each side sets.
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
                        b"trailer", b"trailers", b"transfer-encoding", b"upgrade", b"content-length",
                        b"proxy-connection"})
# Set by the proxy towards the backend (nginx's proxy_set_header replaces what a client sent), and
# Expect, which the proxy answers itself.
REQUEST_DROP = HOP_BY_HOP | {b"x-request-id", b"x-real-ip", b"x-forwarded-for", b"x-forwarded-host",
                             b"x-forwarded-port", b"x-forwarded-proto", b"x-scheme", b"expect"}
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


def nginx_page(status: int, reason: str) -> str:
    """nginx's own error page (kept for callers of the former module)."""
    return page(status, reason)


@dataclass
class Snapshot:
    table: RouteTable = field(default_factory=RouteTable)
    endpoints: dict[Backend, list[tuple[str, int]]] = field(default_factory=dict)
    certificates: dict[str, ssl.SSLContext] = field(default_factory=dict)  # server host -> its context
    default_certificate: ssl.SSLContext | None = None  # --default-ssl-certificate (else the fake one)
    gateways: dict[int, gateway.PortTable] = field(default_factory=dict)  # Gateway pod port -> its routes
    gateway_certificates: dict[int, dict[str, ssl.SSLContext]] = field(default_factory=dict)  # HTTPS pod ports


class _Request:
    __slots__ = ("method", "target", "version", "headers", "host", "body", "keep_alive", "length", "referer",
                 "agent", "forwarded_for", "start")

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.length = 0
        self.host = self.referer = self.agent = ""
        self.forwarded_for: str | None = None
        self.method = self.target = ""
        self.version = "1.1"
        self.keep_alive = True
        self.start = 0.0


class _Clock:
    """The Date header and the log's time, formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self.date = b""
        self.log = ""

    def tick(self) -> None:
        now = int(time.time())
        if now != self._second:
            self._second = now
            t = time.gmtime(now)
            self.date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", t).encode()
            self.log = time.strftime("%d/%b/%Y:%H:%M:%S +0000", t)


class ClientConnection(asyncio.Protocol):
    """One client connection: parses requests, hands them one at a time to the Proxy, and is
    the upstream.Sink its responses are written through."""

    def __init__(self, proxy: Proxy, scheme: str, gateway_port: int | None = None) -> None:
        self.proxy = proxy
        self.scheme = scheme
        self.gateway_port = gateway_port  # a Gateway's pod port: its HTTPRoutes decide, not the Ingresses
        self.loop = proxy.loop
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.closed = False
        self._parser = httptools.HttpRequestParser(self)
        self._req = _Request()
        self._url: list[bytes] = []
        self._head_size = 0
        self._in_head = False
        self._refused = 0               # a status the request was refused with while parsing
        self._queue: deque[_Request] = deque()
        self._busy = False
        self._read_paused = False
        self._last_active = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        # the response being written
        self._out: list[bytes] = []
        self._out_size = 0
        self._chunked = False
        self._close_after = False
        self.started = False
        self.status = 0
        self.sent = 0
        self._response_edits: Decision | None = None
        self._version = "1.1"
        self._keep = True
        self._upstream: upstream.UpstreamConnection | None = None
        self._write_paused = False

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else ""
        self.proxy.connections.add(self)
        self._last_active = self.loop.time()
        self._idle_timer = self.loop.call_later(KEEPALIVE_TIMEOUT, self._check_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.proxy.connections.discard(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._queue.clear()
        if self._upstream is not None:
            self._upstream.abort()

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():  # refused: whatever else comes is not read
            return
        self._last_active = self.loop.time()
        if self._in_head or not self._busy:
            self._head_size += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close_after = True  # no protocol switches: the request is served, then the connection closes
        except httptools.HttpParserError:
            self._refuse(self._refused or 400)
            return
        if self._in_head and self._head_size > MAX_HEAD + MAX_LINE:
            self._refuse(400)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._upstream is not None:
            self._upstream.pause()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._upstream is not None:
            self._upstream.resume()

    def _check_idle(self) -> None:
        self._idle_timer = None
        if self.closed:
            return
        idle = self.loop.time() - self._last_active
        if not self._busy and idle >= KEEPALIVE_TIMEOUT:
            self.transport.close()
            return
        self._idle_timer = self.loop.call_later(max(KEEPALIVE_TIMEOUT - idle, 1.0), self._check_idle)

    def _refuse(self, status: int) -> None:
        """A request the parser or the limits refused: nginx's page, then the connection closes."""
        if self._busy:  # answers still owed on this connection: it cannot be kept in step
            self.transport.close()
            return
        self._keep = False
        self._version = "1.1"
        self.write_page(status)
        self.proxy.log_refused(self, status)
        self.transport.close()

    # -- httptools callbacks (the request) --------------------------------------------------------
    def on_message_begin(self) -> None:
        self._req = _Request()
        self._url = []
        self._in_head = True
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        if sum(map(len, self._url)) > MAX_LINE:
            self._refused = 414
            raise ValueError("request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) > MAX_LINE:
            self._refused = 400
            raise ValueError("header line too long")
        self._req.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        req = self._req
        p = self._parser
        req.start = time.monotonic()
        req.method = p.get_method().decode()
        req.version = p.get_http_version()
        req.keep_alive = p.should_keep_alive()
        req.target = b"".join(self._url).decode("latin-1")
        expect = False
        for name, value in req.headers:
            n = name.lower()
            if n == b"host":
                req.host = value.decode("latin-1")
            elif n == b"user-agent":
                req.agent = value.decode("latin-1")
            elif n == b"referer":
                req.referer = value.decode("latin-1")
            elif n == b"x-forwarded-for":
                req.forwarded_for = value.decode("latin-1")
            elif n == b"content-length":
                try:
                    req.length = int(value)
                except ValueError:
                    req.length = 0
                if req.length > MAX_BODY:
                    self._refused = 413
                    raise ValueError("request body too large")
            elif n == b"expect" and value.lower() == b"100-continue":
                expect = True
        if expect and req.version == "1.1":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        req = self._req
        req.body.append(body)
        if sum(map(len, req.body)) > MAX_BODY:
            self._refused = 413
            raise ValueError("request body too large")

    def on_message_complete(self) -> None:
        self._queue.append(self._req)
        if len(self._queue) > MAX_PIPELINED and not self._read_paused:
            self._read_paused = True
            self.transport.pause_reading()
        if not self._busy:
            self._busy = True
            self.loop.create_task(self._serve())

    async def _serve(self) -> None:
        try:
            while self._queue and not self.closed:
                req = self._queue.popleft()
                if self._read_paused and len(self._queue) <= MAX_PIPELINED // 2:
                    self._read_paused = False
                    self.transport.resume_reading()
                await self.proxy.handle(self, req)
                if not self._keep or self._close_after:
                    self._queue.clear()
                    self.transport.close()
                    break
        finally:
            self._busy = False
            self._last_active = self.loop.time()

    # -- writing responses (upstream.Sink) --------------------------------------------------------
    def begin(self, req: _Request, decision: Decision | None) -> None:
        self._out, self._out_size = [], 0
        self.started, self._chunked, self.status, self.sent = False, False, 0, 0
        self._version = req.version
        self._keep = req.keep_alive and not self._close_after
        self._response_edits = decision if decision is not None and decision.edits_response else None

    def _connection_header(self) -> bytes:
        return b"Connection: keep-alive\r\n" if self._keep else b"Connection: close\r\n"

    def write_page(self, status: int, location: str = "") -> None:
        body = page(status).encode()
        self.started, self.status, self.sent = True, status, len(body)
        if self.closed:
            return
        head = [b"HTTP/1.1 %d %s\r\nServer: nginx\r\nDate: %s\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
                % (status, reason(status).encode(), self.proxy.clock.date, len(body))]
        if location:
            head.append(b"Location: " + location.encode("latin-1") + b"\r\n")
        head.append(self._connection_header())
        self.transport.write(b"".join(head) + b"\r\n" + body)

    def response_head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]],
                      content_length: int | None, no_body: bool) -> None:
        self.status = status
        out = [b"HTTP/1.1 %d %s\r\n" % (status, reason or HTTPStatus(status).phrase.encode())]
        if self._response_edits is not None:
            headers = edit_response_headers(headers, self._response_edits)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP:
                out.append(b"%s: %s\r\n" % (name, value))
        if content_length is not None:
            out.append(b"Content-Length: %d\r\n" % content_length)
        elif not no_body:
            if self._version == "1.1":
                self._chunked = True
                out.append(b"Transfer-Encoding: chunked\r\n")
            else:  # an HTTP/1.0 client: the body ends with the connection
                self._keep = False
        out.append(self._connection_header())
        out.append(b"\r\n")
        head = b"".join(out)
        self._out.append(head)
        self._out_size += len(head)
        self.started = True

    def response_body(self, chunk: bytes) -> None:
        if self._chunked:
            self._out.append(b"%x\r\n" % len(chunk))
            self._out.append(chunk)
            self._out.append(b"\r\n")
        else:
            self._out.append(chunk)
        self.sent += len(chunk)
        self._out_size += len(chunk)
        if self._out_size >= OUT_BUFFER:
            self.flush()

    def response_end(self) -> None:
        if self._chunked:
            self._out.append(b"0\r\n\r\n")

    def flush(self) -> None:
        if self._out:
            data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
            self._out, self._out_size = [], 0
            if not self.closed:
                self.transport.write(data)

    def attach(self, conn: upstream.UpstreamConnection | None) -> None:
        self._upstream = conn
        if conn is not None and self._write_paused:
            conn.pause()

    def abort(self) -> None:
        """A response broke off after it had begun: the client sees the connection close."""
        self.flush()
        self._keep = False


class Proxy:
    def __init__(self, default_context: ssl.SSLContext | None = None, access_log=None) -> None:
        self.snapshot = Snapshot()
        self.default_context = default_context
        self.access_log = access_log or sys.stdout
        self.requests = 0
        self.connections: set[ClientConnection] = set()
        self.clock = _Clock()
        self.balancer = RoundRobin(TRIES)
        self._weighted = random.Random()  # weighted backendRefs' choice (its own: unaffected by random.seed)
        self._insecure = ssl.create_default_context()
        self._insecure.check_hostname = False
        self._insecure.verify_mode = ssl.CERT_NONE
        self.pool: upstream.Pool | None = None
        self._log_lines: list[str] = []
        self._log_scheduled = False

    def swap(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.pool = upstream.Pool(self._insecure)
        self.clock.tick()

    async def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        self._flush_log()

    # -- TLS: the certificate chosen by SNI --------------------------------------------------------
    def server_context(self) -> ssl.SSLContext:
        assert self.default_context is not None
        self.default_context.sni_callback = self._sni
        return self.default_context

    def _sni(self, sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        certs = self.snapshot.certificates
        name = normalize_host(server_name or "")
        ctx = certs.get(name)
        if ctx is None and "." in name:
            ctx = certs.get("*." + name.split(".", 1)[1])
        ctx = ctx or self.snapshot.default_certificate
        if ctx is not None:
            sslobj.context = ctx

    # -- requests: decide, then forward -------------------------------------------------------------
    def decide(self, snap: Snapshot, line: RequestLine, gateway_port: int | None = None) -> Decision:
        """The decision for one request (pure but for the weighted pick): a Gateway's pod port by its
        HTTPRoutes, the HTTP(S) ports by the Ingresses."""
        if gateway_port is not None:
            return decide_gateway(snap.gateways.get(gateway_port), line, self._weighted.randrange)
        return decide_ingress(snap.table, line)

    async def handle(self, conn: ClientConnection, req: _Request) -> None:
        snap = self.snapshot  # this request's view, whatever swaps happen meanwhile
        self.requests += 1
        self.clock.tick()
        decision = self.decide(snap, RequestLine(conn.scheme, req.method, req.host, req.target, tuple(req.headers)),
                               conn.gateway_port)
        conn.begin(req, decision)
        info = ("-", "-", "-")
        if decision.status:
            conn.write_page(decision.status, decision.location)
        else:
            info = await self._forward(conn, req, snap, decision)
        self._log(conn, req, decision.upstream_name, info)

    async def _forward(self, conn: ClientConnection, req: _Request, snap: Snapshot,
                       decision: Decision) -> tuple[str, str, str]:
        """Tries the backend's upstreams in turn; (upstream addresses, status, response time) for the log."""
        assert decision.backend is not None and self.pool is not None
        targets = self.balancer.pick(snap.endpoints.get(decision.backend) or [], decision.backend)
        if not targets:
            conn.write_page(503)
            return "-", "-", "-"
        data = self._upstream_request(conn, req, decision)
        head_request = req.method == "HEAD"
        tried: list[str] = []
        status = 502
        for addr, port in targets:
            tried.append(f"{addr}:{port}")
            t0 = time.monotonic()
            try:
                await self.pool.exchange(addr, port, decision.upstream_tls, data, conn, head_request)
                return ", ".join(tried), str(conn.status), f"{time.monotonic() - t0:.3f}"
            except upstream.UpstreamError as exc:
                if conn.closed:
                    conn.status = 499  # nginx's "client closed request"
                    return ", ".join(tried), "-", f"{time.monotonic() - t0:.3f}"
                if exc.responded or conn.started:
                    conn.abort()
                    return ", ".join(tried), str(conn.status), f"{time.monotonic() - t0:.3f}"
                log.warning("upstream %s:%s (%s) failed: %s", addr, port, decision.upstream_name, exc)
                status = 504 if exc.timeout else 502
                if exc.sent and req.method not in IDEMPOTENT:
                    break  # nginx passes a non-idempotent request on only when it was never sent
        conn.write_page(status)
        return ", ".join(tried), str(status), "-"

    def _upstream_request(self, conn: ClientConnection, req: _Request, decision: Decision) -> bytes:
        parts = [b"%s %s HTTP/1.1\r\n" % (req.method.encode(), decision.target.encode("latin-1"))]
        drop = REQUEST_DROP | decision.remove_headers if decision.remove_headers else REQUEST_DROP
        if decision.set_headers:
            drop = drop | {n.lower() for n, _ in decision.set_headers}
        has_host = False
        for name, value in req.headers:
            n = name.lower()
            if n not in drop:
                has_host = has_host or n == b"host"
                parts.append(b"%s: %s\r\n" % (name, value))
        if not has_host and b"host" not in decision.remove_headers:  # (a URLRewrite hostname is in set_headers)
            parts.append(b"Host: %s\r\n" % normalize_host(req.host or "localhost").encode("latin-1"))
        for name, value in forwarded_headers(conn.scheme, req.host, conn.peer, req.forwarded_for,
                                             f"{random.getrandbits(128):032x}"):
            parts.append(b"%s: %s\r\n" % (name, value))
        for name, value in (*decision.set_headers, *decision.add_headers):
            parts.append(b"%s: %s\r\n" % (name, value))
        body = b"".join(req.body)
        if body or req.length or req.method in ("POST", "PUT", "PATCH"):
            parts.append(b"Content-Length: %d\r\n" % len(body))
        parts.append(b"\r\n")
        parts.append(body)
        return b"".join(parts)

    # -- the access log ---------------------------------------------------------------------------
    def _log(self, conn: ClientConnection, req: _Request, upstream_name: str, info: tuple[str, str, str]) -> None:
        """ingress-nginx's log-format-upstream (upstreaminfo)."""
        addr, status_up, rtime = info
        size = conn.sent
        self._log_lines.append(
            f'{conn.peer or "-"} - - [{self.clock.log}] "{req.method} {req.target[:2048]} HTTP/{req.version}" '
            f'{conn.status} {size} "{req.referer or "-"}" "{req.agent or "-"}" {req.length} '
            f'{time.monotonic() - req.start:.3f} [{upstream_name}] [] {addr} {size if addr != "-" else "-"} '
            f'{rtime} {status_up} -\n')
        if not self._log_scheduled:
            self._log_scheduled = True
            self.loop.call_soon(self._flush_log)

    def log_refused(self, conn: ClientConnection, status: int) -> None:
        self.clock.tick()
        self._log_lines.append(f'{conn.peer or "-"} - - [{self.clock.log}] "-" {status} {conn.sent} "-" "-" 0 0.000 '
                               f'[] [] - - - - -\n')
        if not self._log_scheduled:
            self._log_scheduled = True
            self.loop.call_soon(self._flush_log)

    def _flush_log(self) -> None:
        """The lines of one loop iteration in writes of at most PIPE_BUF bytes, each whole lines, so
        worker processes sharing stdout never interleave inside a line."""
        self._log_scheduled = False
        lines, self._log_lines = self._log_lines, []
        batch: list[str] = []
        size = 0
        try:
            for line in lines:
                if batch and size + len(line) > 4000:
                    self.access_log.write("".join(batch))
                    self.access_log.flush()
                    batch, size = [], 0
                batch.append(line)
                size += len(line)
            if batch:
                self.access_log.write("".join(batch))
                self.access_log.flush()
        except (OSError, ValueError):
            pass


class Listener:
    """A listening port (what serve() returns; cleanup() closes it and its connections)."""

    def __init__(self, proxy: Proxy, server: asyncio.AbstractServer, scheme: str,
                 gateway_port: int | None = None) -> None:
        self.proxy, self.server, self.scheme, self.gateway_port = proxy, server, scheme, gateway_port

    async def cleanup(self) -> None:
        self.server.close()
        for conn in [c for c in self.proxy.connections
                     if c.scheme == self.scheme and c.gateway_port == self.gateway_port]:
            if conn.transport is not None:
                conn.transport.close()
        await self.server.wait_closed()


async def serve(proxy: Proxy, host: str, http_port: int, https_port: int,
                reuse_port: bool = False) -> list[Listener]:
    """Listen on the HTTP port, and on the HTTPS port when the proxy has a default certificate
    (`reuse_port`: worker processes share the ports, the kernel spreading connections)."""
    loop = asyncio.get_running_loop()
    listeners = []
    server = await loop.create_server(lambda: ClientConnection(proxy, "http"), host, http_port, reuse_address=True,
                                      reuse_port=reuse_port or None, backlog=1024)
    listeners.append(Listener(proxy, server, "http"))
    if proxy.default_context is not None and https_port:
        server = await loop.create_server(lambda: ClientConnection(proxy, "https"), host, https_port,
                                          ssl=proxy.server_context(), reuse_address=True,
                                          reuse_port=reuse_port or None, backlog=1024)
        listeners.append(Listener(proxy, server, "https"))
    return listeners


async def serve_gateway_port(proxy: Proxy, host: str, port: int, scheme: str,
                             context: ssl.SSLContext | None = None) -> Listener:
    """Listen on one Gateway pod port (shared by the worker processes): its requests are decided
    by that Gateway's HTTPRoutes."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: ClientConnection(proxy, scheme, gateway_port=port), host, port,
                                      ssl=context if scheme == "https" else None, reuse_address=True,
                                      reuse_port=True, backlog=1024)
    return Listener(proxy, server, scheme, gateway_port=port)
