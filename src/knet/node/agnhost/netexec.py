"""`agnhost netexec`: HTTP(S), UDP and (optionally) SCTP servers with upstream's endpoints.

HTTP: / (NOW: time), /clientip, /header, /dial, /echo, /exit, /healthz, /readyz, /hostname,
/hostName, /redirect, /shell, /shutdown, /upload; --http-override serves every request as that
path. UDP and SCTP answer `hostname`, `echo MSG` and `clientip`. /healthz and /readyz are 200 once
the UDP (or SCTP) server is up, 412 before (so with --udp-port=-1 and no SCTP they stay 412, as
upstream's); after SIGTERM /readyz is 503 "shutting down" while the process stays up
--delay-shutdown seconds, then exits 0. Answers and status codes follow upstream's code
(test/images/agnhost/netexec/netexec.go), including where it differs from its help text (/dial
and /shell answer 200 whatever happened to the requests they made).
"""

from __future__ import annotations

import email.parser
import errno
import http.client
import os
import posixpath
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from knet.node.agnhost import flags as fl
from knet.node.agnhost.golang import errno_words, go_json, go_now, host_port, log, parse_duration, remote_addr
from knet.node.agnhost.gonet import lookup_addrs, lookup_port
from knet.node.agnhost.httpserve import (
    Request,
    Response,
    bind_stream,
    bind_udp,
    listen_http,
    serve_in_thread,
    tls_context,
)
from knet.node.agnhost.webpages import INDEX_PAGES, INDEX_PATHS

FLAGS = [
    fl.Flag("http-port", fl.INT, 8080, "HTTP Listen Port"),
    fl.Flag("tls-cert-file", fl.STRING, "", "File containing an x509 certificate for HTTPS."),
    fl.Flag("tls-private-key-file", fl.STRING, "", "File containing an x509 private key matching --tls-cert-file"),
    fl.Flag("udp-port", fl.INT, 8081, "UDP Listen Port"),
    fl.Flag("sctp-port", fl.INT, -1, "SCTP Listen Port"),
    fl.Flag("http-override", fl.STRING, "",
            "Override the HTTP handler to always respond as if it were a GET with this path & params"),
    fl.Flag("udp-listen-addresses", fl.STRING, "", "A comma separated list of ip addresses the udp servers listen from"),
    fl.Flag("delay-shutdown", fl.INT, 0, "Number of seconds to delay shutdown when receiving SIGTERM."),
    # knet's, not upstream's: netexec standing in for a web server's image answers / with its page.
    fl.Flag("index-page", fl.STRING, "", "knet: answer / and /index.html with this server's index page (nginx, httpd)"),
]

_SIGNAL_WORDS = {signal.SIGKILL: "killed", signal.SIGTERM: "terminated", signal.SIGINT: "interrupt",
                 signal.SIGHUP: "hangup", signal.SIGSEGV: "segmentation fault", signal.SIGABRT: "aborted",
                 signal.SIGPIPE: "broken pipe", signal.SIGQUIT: "quit"}


@dataclass
class State:
    """What the handlers share: readiness, SIGTERM seen, how /exit and /shutdown leave."""
    ready: threading.Event = field(default_factory=threading.Event)
    sigterm: threading.Event = field(default_factory=threading.Event)
    upload_dir: str = "/uploads"
    shell_path: str = "/bin/sh"
    http_override: str = ""
    index_page: str = ""                       # webpages.INDEX_PAGES key: / is that server's page
    exit: Any = os._exit                       # exit(code): replaced in tests
    graceful_exit: Any = None                  # graceful_exit(code, timeout): stop listening, drain, exit


def udp_answer(text: str, client: str) -> str | None:
    """The UDP/SCTP protocol: the datagram trimmed and lowercased; None: no answer (upstream logs
    an unknown command and stays silent)."""
    received = text.strip().lower()
    if received == "hostname":
        return socket.gethostname()
    if received.startswith("echo "):
        return received.split(" ", 1)[1]
    if received == "clientip":
        return client
    return None


# -- HTTP endpoints -------------------------------------------------------------------------
def _root(state: State, r: Request) -> Response:
    log("GET /")
    return Response.text(f"NOW: {go_now()}")


def _clientip(state: State, r: Request) -> Response:
    log("GET /clientip")
    return Response.text(r.client)


def _canonical(name: str) -> str:
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _header(state: State, r: Request) -> Response:
    key = r.form_value("key")
    if key:
        log(f"GET /header?key={key}")
        return Response.text(r.header(key))
    log("GET /header")
    merged: dict[str, list[str]] = {}
    for name, value in r.headers:
        if name.lower() != "host":  # Go moves Host out of r.Header
            merged.setdefault(_canonical(name), []).append(value)
    return Response.text(go_json(merged))


def _echo(state: State, r: Request) -> Response:
    msg, code = r.form_value("msg"), r.form_value("code")
    log(f"GET /echo?msg={msg}&code={code}")
    if code:
        try:
            status = int(code)
        except ValueError:
            return Response.text(f"argument 'code' must be an integer or empty, got {go_quote(code)}\n")
        return Response(status, msg.encode(), [("Content-Type", "text/plain; charset=utf-8")] if msg else [])
    return Response.text(msg)


def go_quote(text: str) -> str:
    """%q of a string (ASCII-printable text as Go prints it)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _exit(state: State, r: Request) -> Response:
    wait_s, timeout_s, code_s = r.form_value("wait"), r.form_value("timeout"), r.form_value("code")
    log(f"GET /exit?code={code_s}&timeout={timeout_s}&wait={wait_s}")
    try:
        timeout = parse_duration(timeout_s) if timeout_s else 0.0
    except ValueError:
        return Response.text(f"argument 'timeout' must be a valid golang duration or empty, got {go_quote(timeout_s)}\n")
    try:
        wait = parse_duration(wait_s) if wait_s else 0.0
    except ValueError:
        return Response.text(f"argument 'wait' must be a valid golang duration or empty, got {go_quote(wait_s)}\n")
    try:
        code = int(code_s) if code_s else 0
    except ValueError:
        return Response.text(f"argument 'code' must be an integer [0-127] or empty, got {go_quote(code_s)}\n")
    log(f"Will begin shutdown in {wait}s, allowing {timeout}s for connections to close, then will exit with {code}")
    time.sleep(max(wait, 0))
    if timeout <= 0 or state.graceful_exit is None:
        state.exit(code)
        return Response()
    state.graceful_exit(code, timeout)
    return Response()


def _hostname(state: State, r: Request) -> Response:
    log(f"GET {r.path}")
    return Response.text(socket.gethostname())


def _healthz(state: State, r: Request) -> Response:
    log("GET /healthz")
    return Response(200) if state.ready.is_set() else Response(412)


def _readyz(state: State, r: Request) -> Response:
    log("GET /readyz")
    if state.sigterm.is_set():
        return Response.text("shutting down", 503)
    return Response.text("ok") if state.ready.is_set() else Response(412)


def _shutdown(state: State, r: Request) -> Response:
    log("GET /shutdown")
    state.exit(0)
    return Response()


def _redirect(state: State, r: Request) -> Response:
    location, code_s = r.form_value("location"), r.form_value("code")
    log(f"{r.method} /redirect?msg={location}&code={code_s}")
    code = 302
    if code_s:
        try:
            code = int(code_s)
        except ValueError:
            return Response.text(f"argument 'code' must be an integer or empty, got {go_quote(code_s)}\n")
    return redirect(r, location, code)


def redirect(r: Request, location: str, code: int) -> Response:
    """http.Redirect: a path without a scheme is made absolute against the request's path."""
    if "://" not in location and not location.startswith("//"):
        path, q, query = location.partition("?")
        if not path.startswith("/"):
            base = r.path.rsplit("/", 1)[0] + "/"
            path = base + path
        trailing = path.endswith("/") and len(path) > 1
        path = posixpath.normpath(path) + ("/" if trailing else "")
        path = "/" + path.lstrip("/")
        location = path + (q + query if q else "")
    headers = [("Location", location)]
    body = b""
    if r.method in ("GET", "HEAD"):
        headers.append(("Content-Type", "text/html; charset=utf-8"))
        from http import HTTPStatus
        body = f'<a href="{_html_escape(location)}">{HTTPStatus(code).phrase}</a>.\n\n'.encode() \
            if code in HTTPStatus._value2member_map_ else b""
    return Response(code, body, headers)


def _html_escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;")
            .replace("'", "&#39;"))


def shell_error(returncode: int) -> str:
    """The error Go's exec.Cmd reports: `exit status 3`, `signal: killed`."""
    if returncode < 0:
        return "signal: " + _SIGNAL_WORDS.get(-returncode, f"signal {-returncode}")
    return f"exit status {returncode}"


def _shell(state: State, r: Request) -> Response:
    cmd = r.form_value("shellCommand") or r.form_value("cmd")
    log(f"GET /shell?cmd={cmd}")
    output: dict[str, str] = {}
    try:
        done = subprocess.run([state.shell_path, "-c", cmd], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
        if done.stdout:
            output["output"] = done.stdout.decode(errors="replace")
        if done.returncode != 0:
            output["error"] = shell_error(done.returncode)
    except OSError as exc:
        output["error"] = f"fork/exec {state.shell_path}: {os.strerror(exc.errno or 0).lower()}"
    log(f"Output: {output}")
    return Response.text(go_json(output))


def _upload(state: State, r: Request) -> Response:
    log("GET /upload")
    data = multipart_file(r.header("Content-Type"), r.body, "file")
    if data is None:
        return Response.text(go_json({"error": "Unable to upload file."}))
    try:
        fd, name = tempfile.mkstemp(prefix="upload", dir=state.upload_dir)
    except OSError as exc:
        log(f"Unable to open file for write: {exc}")
        return Response.text(go_json({"error": "Unable to open file for write"}))
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(name, 0o700)
    log(f"Wrote upload to {name}")
    return Response(201, go_json({"output": name}).encode(), [("Content-Type", "text/plain; charset=utf-8")])


def multipart_file(content_type: str, body: bytes, field_name: str) -> bytes | None:
    """The contents of a multipart/form-data file field (r.FormFile), None when absent."""
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    message = email.parser.BytesParser().parsebytes(
        f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body)
    if not message.is_multipart():
        return None
    for part in message.get_payload():
        if part.get_param("name", header="content-disposition") == field_name and part.get_filename() is not None:
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else b""
    return None


# -- /dial ----------------------------------------------------------------------------------
def _resolve(host: str, port: str, kind: int) -> tuple[str, int]:
    """net.ResolveTCPAddr/ResolveUDPAddr: (ip, port), IPv4 preferred; ValueError worded as Go."""
    port_num = lookup_port(port, kind)
    if port_num is None:
        raise ValueError(f"address {host_port(host, port)}: unknown port")
    if not host:
        return "127.0.0.1", port_num
    try:
        return lookup_addrs(host, port_num, kind)[0][1][0], port_num
    except LookupError as exc:
        raise ValueError(str(exc)) from None


def _connect_words(exc: OSError) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "i/o timeout"
    return errno_words(exc)


def dial_http(request: str, ip: str, port: int, timeout: float = 5.0) -> str:
    url = f"http://{host_port(ip, port)}/{request}"
    conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        try:
            conn.connect()
        except OSError as exc:
            if isinstance(exc, TimeoutError | socket.timeout):
                raise RuntimeError(f'Get "{url}": context deadline exceeded '
                                   "(Client.Timeout exceeded while awaiting headers)") from None
            raise RuntimeError(f'Get "{url}": dial tcp {host_port(ip, port)}: connect: {_connect_words(exc)}') \
                from None
        try:
            conn.request("GET", "/" + request, headers={"User-Agent": "Go-http-client/1.1",
                                                        "Accept-Encoding": "gzip"})
            return conn.getresponse().read().decode(errors="replace")
        except TimeoutError:
            raise RuntimeError(f'Get "{url}": context deadline exceeded '
                               "(Client.Timeout exceeded while awaiting headers)") from None
        except (OSError, http.client.HTTPException) as exc:
            raise RuntimeError(f'Get "{url}": {exc}') from None
    finally:
        conn.close()


def dial_udp(request: str, ip: str, port: int, timeout: float = 5.0) -> str:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((ip, port))
        except OSError as exc:
            raise RuntimeError(f"udp dial failed. err:dial udp {host_port(ip, port)}: {_connect_words(exc)}") \
                from None
        local = host_port(*sock.getsockname()[:2])
        where = f"read udp {local}->{host_port(ip, port)}"
        try:
            sock.send(request.encode())
        except OSError as exc:
            raise RuntimeError(f"udp connection write failed. err:write udp {local}->{host_port(ip, port)}: "
                               f"{_connect_words(exc)}") from None
        sock.settimeout(timeout)
        try:
            data = sock.recv(2048)
        except OSError as exc:
            words = "i/o timeout" if isinstance(exc, TimeoutError | socket.timeout) else \
                f"read: {_connect_words(exc)}"
            raise RuntimeError(f"reading from udp connection failed. err:'{where}: {words}'") from None
        if not data:
            raise RuntimeError("reading from udp connection failed. err:'<nil>'")
        return data.decode(errors="replace")


def dial_sctp(request: str, ip: str, port: int, timeout: float = 5.0) -> str:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
    except OSError as exc:
        raise RuntimeError(f"sctp dial failed. err:{_connect_words(exc)}") from None
    with sock:
        sock.settimeout(timeout)
        try:
            sock.connect((ip, port))
        except OSError as exc:
            raise RuntimeError(f"sctp dial failed. err:{_connect_words(exc)}") from None
        sock.send(request.encode())
        try:
            data = sock.recv(1024)
        except OSError as exc:
            raise RuntimeError(f"reading from sctp connection failed. err:'{_connect_words(exc)}'") from None
        if not data:
            raise RuntimeError("reading from sctp connection failed. err:'EOF'")
        return data.decode(errors="replace")


DIALERS = {"": (dial_http, socket.SOCK_STREAM), "http": (dial_http, socket.SOCK_STREAM),
           "udp": (dial_udp, socket.SOCK_DGRAM), "sctp": (dial_sctp, socket.SOCK_STREAM)}


def _dial(state: State, r: Request) -> Response:
    q = dict(reversed(r.query))  # Values.Get: the first value of each key
    host, port, request = q.get("host", ""), q.get("port", ""), q.get("request", "")
    protocol, tries_s = q.get("protocol", ""), q.get("tries", "")
    log(f"GET /dial?host={host}&protocol={protocol}&port={port}&request={request}&tries={tries_s}")
    tries = 1
    if tries_s:
        try:
            tries = int(tries_s)
        except ValueError:
            return Response.error(f'tries parameter is invalid. strconv.Atoi: parsing {go_quote(tries_s)}: '
                                  "invalid syntax", 400)
    if not request:
        return Response.error("request parameter not specified. <nil>", 400)
    if protocol.lower() not in DIALERS:
        return Response.error(f"unsupported protocol. {protocol}", 400)
    dialer, kind = DIALERS[protocol.lower()]
    try:
        ip, port_num = _resolve(host, port, kind)
    except ValueError as exc:
        return Response.error(f"host and/or port param are invalid. {exc}", 400)
    responses: list[str] = []
    errors: list[str] = []
    response = ""
    for _ in range(tries):
        try:
            response = dialer(request, ip, port_num)
            responses.append(response)
        except RuntimeError as exc:
            response = ""
            errors.append(str(exc))
    output: dict[str, list[str]] = {}
    if response:  # upstream keys "responses" on the last try's answer
        output["responses"] = responses
    if errors:
        output["errors"] = errors
    return Response.text(go_json(output))


ROUTES = {"/": _root, "/clientip": _clientip, "/header": _header, "/dial": _dial, "/echo": _echo,
          "/exit": _exit, "/healthz": _healthz, "/readyz": _readyz, "/hostname": _hostname,
          "/redirect": _redirect, "/shell": _shell, "/upload": _upload, "/hostName": _hostname,
          "/shutdown": _shutdown}


def handle(state: State, r: Request) -> Response:
    """ServeMux: an exact path, else "/" (which answers everything else)."""
    if state.http_override:
        from knet.node.agnhost.httpserve import parse_request
        r = parse_request("GET", state.http_override, r.headers, b"", r.client)
    if state.index_page in INDEX_PAGES and r.path in INDEX_PATHS and r.method in ("GET", "HEAD"):
        return Response(200, INDEX_PAGES[state.index_page].encode(), [("Content-Type", "text/html")])
    return ROUTES.get(r.path, _root)(state, r)


# -- the servers ----------------------------------------------------------------------------
def _udp_loop(sock: socket.socket, state: State) -> None:
    state.ready.set()
    while True:
        data, addr = sock.recvfrom(2048)
        answer = udp_answer(data.decode(errors="replace"), remote_addr(addr[0], addr[1]))
        if answer is None:
            if data.strip():
                log(f"Unknown UDP command received from {remote_addr(addr[0], addr[1])}: "
                    f"{data.decode(errors='replace').strip().lower()}")
            continue
        sock.sendto(answer.encode(), addr)


def _sctp_loop(sock: socket.socket, state: State) -> None:
    state.ready.set()
    while True:
        conn, addr = sock.accept()
        with conn:
            data = conn.recv(1024)
            answer = udp_answer(data.decode(errors="replace"), remote_addr(addr[0], addr[1]))
            if answer is not None:
                conn.send(answer.encode())


def _fatal_thread(target: Any, *args: Any) -> None:
    def run() -> None:
        try:
            target(*args)
        except OSError as exc:  # upstream's assertNoError: log.Fatalf ends the whole process
            log(f"Error occurred: {exc}")
            os._exit(1)
    threading.Thread(target=run, daemon=True).start()


def run(argv: list[str]) -> int:
    values, _ = fl.parse(FLAGS, argv)
    state = State(http_override=values["http-override"], index_page=values["index-page"])
    delay = int(values["delay-shutdown"])

    def on_sigterm(signum: int, frame: object) -> None:
        state.sigterm.set()

        def leave() -> None:
            if delay > 0:
                log(f"Sleeping {delay} seconds before terminating...")
                time.sleep(delay)
            os._exit(0)
        threading.Thread(target=leave, daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_DFL)

    if values["udp-port"] != -1:
        addresses = [a for a in values["udp-listen-addresses"].split(",") if a] or [""]
        for address in sorted(set(addresses)):
            try:
                if address:
                    socket.inet_pton(socket.AF_INET6 if ":" in address else socket.AF_INET, address)
            except OSError:
                log(f"parseAddress: invalid address {address}")
                return 1
            try:
                sock = bind_udp(values["udp-port"], address)
            except OSError as exc:
                log(f"Error occurred: failed to create listener for UDP address "
                    f"{host_port(address, values['udp-port'])}:{exc}")
                return 1
            log(f"Started UDP server on port {address} {values['udp-port']}")
            _fatal_thread(_udp_loop, sock, state)
    if values["sctp-port"] != -1:
        try:
            sctp = bind_stream(values["sctp-port"], socket.IPPROTO_SCTP)
        except OSError as exc:
            log(f"Error occurred: failed to create listener for SCTP address :{values['sctp-port']}:{exc}")
            return 1
        log("Started SCTP server")
        _fatal_thread(_sctp_loop, sctp, state)

    active = [0]
    lock = threading.Condition()

    def count(delta: int) -> None:
        with lock:
            active[0] += delta
            lock.notify_all()

    tls = None
    if values["tls-cert-file"]:
        tls = tls_context(values["tls-cert-file"], values["tls-private-key-file"])
    try:
        server = listen_http(values["http-port"], lambda r: handle(state, r), tls=tls, on_request=count)
    except OSError as exc:
        log(f"listen tcp :{values['http-port']}: bind: {os.strerror(exc.errno or errno.EINVAL).lower()}")
        return 1

    def graceful_exit(code: int, timeout: float) -> None:
        def drain() -> None:
            server.shutdown()
            server.server_close()
            deadline = time.monotonic() + timeout
            with lock:
                while active[0] > 1 and time.monotonic() < deadline:  # >1: the /exit request itself
                    lock.wait(deadline - time.monotonic())
            time.sleep(0.05)  # let the /exit answer reach its client
            log(f"Graceful shutdown completed with: {'<nil>' if active[0] <= 1 else 'context deadline exceeded'}")
            os._exit(code)
        threading.Thread(target=drain, daemon=True).start()

    state.graceful_exit = graceful_exit
    log(f"Started HTTP server on port {values['http-port']}")
    serve_in_thread(server)
    while True:
        signal.pause()


if __name__ == "__main__":  # pragma: no cover -- run through main.py
    sys.exit(run(sys.argv[1:]))
