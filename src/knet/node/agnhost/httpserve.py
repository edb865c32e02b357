"""The HTTP plumbing agnhost's servers share: Go net/http's listener (dual-stack `:PORT`), its
response shape (no Server header, text/plain sniffing, http.Error's body) and keep-alive."""

from __future__ import annotations

import contextlib
import errno
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from knet.node.agnhost.golang import remote_addr

TEXT = "text/plain; charset=utf-8"


@dataclass
class Request:
    method: str
    target: str                      # the request-target as sent: /echo?msg=hi
    path: str
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    body: bytes
    client: str                      # Go's RemoteAddr: 10.244.1.5:43120

    def form_value(self, key: str) -> str:
        """r.FormValue: a urlencoded POST/PUT/PATCH body first, then the query; first value."""
        ctype = self.header("Content-Type").split(";", 1)[0].strip().lower()
        if self.method in ("POST", "PUT", "PATCH") and ctype == "application/x-www-form-urlencoded":
            for k, v in parse_qsl(self.body.decode(errors="replace"), keep_blank_values=True):
                if k == key:
                    return v
        for k, v in self.query:
            if k == key:
                return v
        return ""

    def header(self, name: str) -> str:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return ""


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode(), [("Content-Type", TEXT)] if text else [])

    @classmethod
    def error(cls, message: str, status: int) -> Response:
        """http.Error: the message and a newline, nosniff."""
        return cls(status, (message + "\n").encode(),
                   [("Content-Type", TEXT), ("X-Content-Type-Options", "nosniff")])


def parse_request(method: str, target: str, headers: list[tuple[str, str]], body: bytes, client: str) -> Request:
    parts = urlsplit(target)
    return Request(method, target, parts.path or "/", parse_qsl(parts.query, keep_blank_values=True),
                   headers, body, client)


Handler = Callable[[Request], Response]


class _DualStackServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def _handler_class(handle: Handler, close: bool, on_request: Callable[[int], None] | None) -> type:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 -- the handlers log as agnhost
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            peer = self.client_address
            request = parse_request(self.command, self.path, list(self.headers.items()), body,
                                    remote_addr(peer[0], peer[1]) if isinstance(peer, tuple) else "")
            if on_request:
                on_request(+1)
            try:
                response = handle(request)
            except ConnectionAbortedError:  # the handler hangs up without answering (Go's Hijack + Close)
                self.close_connection = True
                return
            finally:
                if on_request:
                    on_request(-1)
            self.send_response_only(response.status)
            self.send_header("Date", self.date_time_string())
            for name, value in response.headers:
                self.send_header(name, value)
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    return _Handler


def listen_http(port: int, handle: Handler, *, host: str = "", tls: ssl.SSLContext | None = None,
                close: bool = False, on_request: Callable[[int], None] | None = None) -> ThreadingHTTPServer:
    """Bind like Go's `:PORT` (all addresses, IPv4 and IPv6); raises OSError as ListenAndServe fails."""
    handler = _handler_class(handle, close, on_request)
    server: ThreadingHTTPServer
    if host:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server = type("_Server", (_DualStackServer,), {"address_family": family})((host, port), handler)
    else:
        try:
            server = type("_Server", (_DualStackServer,), {"address_family": socket.AF_INET6})(("::", port), handler)
        except OSError as exc:
            if exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                raise
            server = type("_Server", (_DualStackServer,), {"address_family": socket.AF_INET})(("", port), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    return thread


def bind_udp(port: int, host: str = "") -> socket.socket:
    """A UDP socket on Go's `:PORT` (dual-stack) or on one address."""
    if host:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, port))
        return sock
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", port))
        return sock
    except OSError as exc:
        if exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
            raise
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("", port))
    return sock


def bind_stream(port: int, proto: int = 0) -> socket.socket:
    """A listening TCP (or SCTP, proto=IPPROTO_SCTP) socket on `:PORT`."""
    for family, addr in ((socket.AF_INET6, "::"), (socket.AF_INET, "")):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM, proto)
        except OSError as exc:
            if family == socket.AF_INET6 and exc.errno == errno.EAFNOSUPPORT:
                continue
            raise
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        try:
            sock.bind((addr, port))
        except OSError as exc:
            sock.close()
            if family == socket.AF_INET6 and exc.errno == errno.EADDRNOTAVAIL:
                continue
            raise
        sock.listen(128)
        return sock
    raise OSError(errno.EAFNOSUPPORT, "no address family available")


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file or None)
    return ctx
