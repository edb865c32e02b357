"""`agnhost porter`: every env var SERVE_PORT_N / SERVE_TCP_PORT_N (HTTP), SERVE_UDP_PORT_N,
SERVE_TLS_PORT_N (HTTPS) and SERVE_SCTP_PORT_N makes a server on port N answering the var's value
(test/images/agnhost/porter/porter.go). TLS uses CERT_FILE/KEY_FILE, else the image's
localhost.crt/localhost.key; knet has no image files, so a missing pair is made once per
container with openssl (a self-signed cert for 127.0.0.1 and ::1, as the image's)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading

from knet.node.agnhost import flags as fl
from knet.node.agnhost.golang import go_json, log
from knet.node.agnhost.httpserve import (
    Request,
    Response,
    bind_stream,
    bind_udp,
    listen_http,
    serve_in_thread,
    tls_context,
)

FLAGS = [fl.Flag("json-response", fl.BOOL, False,
                 "Responds to requests with a json response that includes the default value with the http.Request Method")]
PREFIXES = (("SERVE_PORT_", "tcp"), ("SERVE_TCP_PORT_", "tcp"), ("SERVE_UDP_PORT_", "udp"),
            ("SERVE_SCTP_PORT_", "sctp"), ("SERVE_TLS_PORT_", "tls"))


def servers(environ: dict[str, str]) -> list[tuple[str, str, str]]:
    """(kind, port, value) for each SERVE_* variable, in the environment's order. Pure."""
    found = []
    for key, value in environ.items():
        for prefix, kind in PREFIXES:
            if key.startswith(prefix):
                found.append((kind, key[len(prefix):], value))
                break
    return found


def answer(value: str, json_response: bool, r: Request) -> Response:
    if json_response:
        return Response(200, go_json({"Body": value, "Method": r.method}).encode(),
                        [("Content-Type", "application/json")])
    return Response.text(value)


def _self_signed() -> tuple[str, str]:
    if shutil.which("openssl") is None:
        raise OSError("open localhost.crt: no such file or directory")
    tmp = tempfile.mkdtemp(prefix="porter-")
    crt, key = os.path.join(tmp, "localhost.crt"), os.path.join(tmp, "localhost.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj",
                    "/O=Acme Co", "-addext", "subjectAltName=IP:127.0.0.1,IP:::1", "-keyout", key, "-out", crt],
                   check=True, capture_output=True)
    return crt, key


def _serve(kind: str, port: str, value: str, json_response: bool) -> None:
    try:
        if not port.isdigit():
            raise OSError(f"listen tcp: lookup tcp/{port}: unknown port")
        if kind in ("tcp", "tls"):
            tls = None
            if kind == "tls":
                crt, key = os.environ.get("CERT_FILE") or "localhost.crt", os.environ.get("KEY_FILE") or "localhost.key"
                if not (os.path.exists(crt) and os.path.exists(key)) and not os.environ.get("CERT_FILE"):
                    crt, key = _self_signed()
                tls = tls_context(crt, key)
            server = listen_http(int(port), lambda r: answer(value, json_response, r), host="0.0.0.0", tls=tls)
            serve_in_thread(server)
        elif kind == "udp":
            sock = bind_udp(int(port), "0.0.0.0")
            log(f"Started UDP server on port {port}")

            def udp() -> None:
                while True:
                    _, addr = sock.recvfrom(16)
                    sock.sendto(value.encode(), addr)
            threading.Thread(target=udp, daemon=True).start()
        elif kind == "sctp":
            listener = bind_stream(int(port), socket.IPPROTO_SCTP)
            log("Started SCTP server")

            def sctp() -> None:
                while True:
                    conn, _ = listener.accept()
                    with conn:
                        conn.send(value.encode())
            threading.Thread(target=sctp, daemon=True).start()
    except (OSError, subprocess.CalledProcessError) as exc:
        log(f"server on port {port!r} failed: {exc}")


def run(argv: list[str]) -> int:
    values, _ = fl.parse(FLAGS, argv)
    found = servers(dict(os.environ))
    if not found:  # Go's `select {}` with no other goroutine
        sys.stderr.write("fatal error: all goroutines are asleep - deadlock!\n\ngoroutine 1 [select (no cases)]:\n")
        return 2
    for kind, port, value in found:
        _serve(kind, port, value, values["json-response"])
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while True:
        signal.pause()
