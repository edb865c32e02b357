"""`agnhost liveness`: HTTP on 8080 that is healthy for 10 seconds, then answers /healthz with
500 (upstream's probe tests restart it on that), plus /started, /redirect?loc= and the
slow/disconnecting endpoints upstream's probe tests use (test/images/agnhost/liveness/server.go)."""

from __future__ import annotations

import os
import signal
import time
from urllib.parse import unquote

from knet.node.agnhost import flags as fl
from knet.node.agnhost.golang import errno_words, fatal
from knet.node.agnhost.httpserve import Request, Response, listen_http, serve_in_thread
from knet.node.agnhost.netexec import redirect

FLAGS: list[fl.Flag] = []


class Disconnect(Exception):
    """Close the connection without an answer (Go's Hijack + Close)."""


def _int_param(r: Request, name: str, default: int) -> int:
    value = next((v for k, v in r.query if k == name), "")
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"parameter '{name}' is invalid: strconv.Atoi: parsing \"{value}\": invalid syntax") from None


def _body(size_kb: int) -> bytes:
    return b"".join(f"{int.from_bytes(os.urandom(8), 'big'):16x}".encode() for _ in range(size_kb * 64))


def answer(r: Request, started: float, now: float) -> Response:
    """The answer at time `now` for a server started at `started`. Pure but for /sleep-*."""
    age = now - started
    if r.path == "/started":
        return Response(200, f"{age:.9f}s".encode(), [("Content-Type", "text/plain; charset=utf-8")])
    if r.path == "/healthz":
        if age > 10:
            return Response.text(f"error: {age}", 500)
        return Response.text("ok")
    if r.path == "/redirect":
        loc = next((v for k, v in r.query if k == "loc"), "")
        return redirect(r, unquote(loc), 302)
    if r.path in ("/sleep-headers", "/sleep-body", "/slow-response", "/disconnect-body"):
        try:
            code, sleep = _int_param(r, "code", 500), _int_param(r, "time", 0)
            size = _int_param(r, "size", 0)
        except ValueError as exc:
            return Response.error(str(exc), 400)
        if sleep > 0:
            time.sleep(sleep)
        if r.path == "/disconnect-body":
            raise Disconnect
        text = f"Slept for {sleep} secs\n".encode() if r.path != "/slow-response" else b""
        return Response(code, text + _body(size), [("Content-Type", "text/plain; charset=utf-8")])
    if r.path == "/disconnect-headers":
        raise Disconnect
    return Response.error("404 page not found", 404)


def run(argv: list[str]) -> int:
    fl.parse(FLAGS, argv)
    started = time.monotonic()

    def handle(r: Request) -> Response:
        try:
            return answer(r, started, time.monotonic())
        except Disconnect:
            raise ConnectionAbortedError from None
    try:
        server = listen_http(8080, handle)
    except OSError as exc:
        fatal(f"listen tcp :8080: bind: {errno_words(exc)}")
    serve_in_thread(server)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while True:
        signal.pause()
