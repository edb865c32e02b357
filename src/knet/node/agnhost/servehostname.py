"""`agnhost serve-hostname`: the hostname (the pod's name) over HTTP (default, port 9376), or raw
over TCP and/or UDP; after SIGTERM it keeps serving and waits 60 s for the pod's deletion, as
upstream's (test/images/agnhost/serve-hostname/serve_hostname.go)."""

from __future__ import annotations

import signal
import socket
import threading
import time

from knet.node.agnhost import flags as fl
from knet.node.agnhost.golang import errno_words, fatal, log, remote_addr
from knet.node.agnhost.httpserve import Request, Response, bind_stream, bind_udp, listen_http, serve_in_thread

FLAGS = [
    fl.Flag("tcp", fl.BOOL, False, "Serve raw over TCP."),
    fl.Flag("udp", fl.BOOL, False, "Serve raw over UDP."),
    fl.Flag("http", fl.BOOL, True, "Serve HTTP."),
    fl.Flag("close", fl.BOOL, False, "Close connection per each HTTP request."),
    fl.Flag("port", fl.INT, 9376, "Port number."),
]


def _tcp_loop(listener: socket.socket, hostname: str) -> None:
    while True:
        conn, addr = listener.accept()
        log(f"TCP request from {remote_addr(addr[0], addr[1])}")
        with conn:
            conn.sendall(hostname.encode())


def _udp_loop(sock: socket.socket, hostname: str) -> None:
    while True:
        _, addr = sock.recvfrom(16)
        log(f"UDP request from {remote_addr(addr[0], addr[1])}")
        sock.sendto(hostname.encode(), addr)


def run(argv: list[str]) -> int:
    values, _ = fl.parse(FLAGS, argv)
    if values["http"] and (values["tcp"] or values["udp"]):
        fatal("Can't server TCP/UDP mode and HTTP mode at the same time")
    hostname = socket.gethostname()
    port = values["port"]
    terminated = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: terminated.set())
    if values["tcp"]:
        try:
            listener = bind_stream(port)
        except OSError as exc:
            fatal(f"Error from net.Listen(): listen tcp :{port}: bind: {errno_words(exc)}")
        threading.Thread(target=_tcp_loop, args=(listener, hostname), daemon=True).start()
    if values["udp"]:
        try:
            sock = bind_udp(port)
        except OSError as exc:
            fatal(f"Error from ListenUDP(): listen udp :{port}: bind: {errno_words(exc)}")
        threading.Thread(target=_udp_loop, args=(sock, hostname), daemon=True).start()
    if values["http"]:
        def answer(r: Request) -> Response:
            log(f"HTTP request from {r.client}")
            return Response.text(hostname)
        try:
            server = listen_http(port, answer, close=values["close"])
        except OSError as exc:
            fatal(f"listen tcp :{port}: bind: {errno_words(exc)}")
        serve_in_thread(server)
    log(f"Serving on port {port}.")
    while not terminated.is_set():
        signal.pause()
    log("Shutting down after receiving signal: terminated.")
    log("Awaiting pod deletion.")
    time.sleep(60)
    return 0
