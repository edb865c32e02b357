"""The reverse proxy: an aiohttp server on the HTTP and HTTPS ports that routes each request
through the current Snapshot (a RouteTable, the endpoints of its backends and the certificates)
to a backend pod, as ingress-nginx does. A new Snapshot replaces the old one in one assignment:
requests in flight finish with the one they started with, and no listener closes (ingress-nginx's
reload without dropped connections, without a process to reload). Each request is logged to
stdout in ingress-nginx's `upstreaminfo` log format (`kubectl logs` shows it)."""

from __future__ import annotations

import itertools
import logging
import random
import ssl
import sys
import time
import uuid
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from knet.ingress import gateway
from knet.ingress.routing import Backend, Location, RouteTable, normalize_host, normalize_path

log = logging.getLogger("knet.ingress")
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "trailers", "transfer-encoding", "upgrade", "content-length"})
CONNECT_TIMEOUT = 5.0   # ingress-nginx proxy-connect-timeout
READ_TIMEOUT = 60.0     # proxy-read-timeout
TRIES = 3               # proxy-next-upstream-tries
BUFFER_LIMIT = 1 << 20  # responses up to this size (with a Content-Length) are read whole, others streamed


def nginx_page(status: int, reason: str) -> str:
    """nginx's own error page, as ingress-nginx's default backend and errors show it."""
    return (f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


@dataclass
class Snapshot:
    table: RouteTable = field(default_factory=RouteTable)
    endpoints: dict[Backend, list[tuple[str, int]]] = field(default_factory=dict)
    certificates: dict[str, ssl.SSLContext] = field(default_factory=dict)  # server host -> its context
    default_certificate: ssl.SSLContext | None = None  # --default-ssl-certificate (else the fake one)
    gateways: dict[int, gateway.PortTable] = field(default_factory=dict)  # Gateway pod port -> its routes
    gateway_certificates: dict[int, dict[str, ssl.SSLContext]] = field(default_factory=dict)  # HTTPS pod ports


class Proxy:
    def __init__(self, default_context: ssl.SSLContext | None = None, access_log=None) -> None:
        self.snapshot = Snapshot()
        self.default_context = default_context
        self.access_log = access_log or sys.stdout
        self._rr: dict[Backend, itertools.count] = {}
        self._session: aiohttp.ClientSession | None = None
        self._insecure = ssl.create_default_context()
        self._insecure.check_hostname = False
        self._insecure.verify_mode = ssl.CERT_NONE
        self.requests = 0

    def swap(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=None),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT),
            auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

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

    # -- requests ---------------------------------------------------------------------------------
    async def handle_http(self, request: web.BaseRequest) -> web.StreamResponse:
        return await self._handle(request, "http")

    async def handle_https(self, request: web.BaseRequest) -> web.StreamResponse:
        return await self._handle(request, "https")

    async def _handle(self, request: web.BaseRequest, scheme: str) -> web.StreamResponse:
        start = time.monotonic()
        snap = self.snapshot  # this request's view, whatever swaps happen meanwhile
        self.requests += 1
        info = {"upstream": "-", "addr": "-", "status_up": "-", "rtime": "-"}
        host = request.headers.get("Host", "")
        path = normalize_path(request.raw_path)
        if path is None:
            resp = self._page(400, "Bad Request")
        else:
            server, loc = snap.table.route(host, path)
            backend = loc.backend if loc is not None else (server.default_backend or snap.table.default_backend)
            if scheme == "http" and loc is not None and server.tls_secret is not None and (
                    loc.ssl_redirect or loc.force_ssl_redirect):
                target = f"https://{normalize_host(host)}{request.raw_path}"
                resp = web.Response(status=308, text=nginx_page(308, "Permanent Redirect"), content_type="text/html",
                                    headers={"Location": target})
            elif backend is None:
                info["upstream"] = "upstream-default-backend"
                resp = self._page(404, "Not Found")
            else:
                resp = await self._forward(request, scheme, snap, backend, loc, path, info)
        self._log(request, resp, start, info)
        return resp

    async def handle_gateway(self, request: web.BaseRequest, pod_port: int) -> web.StreamResponse:
        """A request on a Gateway's pod port: gateway.decide() says where it goes (or what to answer)."""
        start = time.monotonic()
        snap = self.snapshot
        self.requests += 1
        info = {"upstream": "-", "addr": "-", "status_up": "-", "rtime": "-"}
        table = snap.gateways.get(pod_port)
        d = gateway.decide(table, request.method, request.raw_path, request.headers.items(), self._gateway_pick)
        if d.location is not None:
            resp: web.StreamResponse = web.Response(status=d.status, headers={"Location": d.location})
        elif d.status:
            resp = self._page(d.status, {400: "Bad Request", 404: "Not Found"}.get(d.status, "Internal Server Error"))
        else:
            assert d.backend is not None
            resp = await self._forward(request, table.scheme if table else "http", snap, d.backend, None, d.path,
                                       info, d)
        if d.response_headers is not None and not resp.prepared:
            edited = d.response_headers.apply(resp.headers.items())
            resp.headers.clear()
            resp.headers.extend(edited)
        self._log(request, resp, start, info)
        return resp

    @staticmethod
    def _gateway_pick(n: int) -> int:
        return random.randrange(n)

    def _page(self, status: int, reason: str) -> web.Response:
        return web.Response(status=status, text=nginx_page(status, reason), content_type="text/html")

    def _pick(self, snap: Snapshot, backend: Backend) -> list[tuple[str, int]]:
        eps = snap.endpoints.get(backend) or []
        if not eps:
            return []
        n = next(self._rr.setdefault(backend, itertools.count()))
        return [eps[(n + i) % len(eps)] for i in range(min(TRIES, len(eps)))]

    async def _forward(self, request: web.BaseRequest, scheme: str, snap: Snapshot, backend: Backend,
                       loc: Location | None, path: str, info: dict,
                       plan: gateway.Decision | None = None) -> web.StreamResponse:
        info["upstream"] = backend.upstream_name
        targets = self._pick(snap, backend)
        if not targets:
            return self._page(503, "Service Temporarily Unavailable")
        upstream_path = loc.rewrite(path) if loc is not None and loc.rewrite_target is not None else path
        if request.query_string and plan is None:  # a Gateway's plan has the query string in its path
            upstream_path += "?" + request.query_string
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        if plan is not None:
            headers = gateway.apply_plan_headers(plan, headers)
        peer = request.remote or ""
        forwarded_for = request.headers.get("X-Forwarded-For")
        headers += [("X-Request-ID", uuid.uuid4().hex), ("X-Real-IP", peer),
                    ("X-Forwarded-For", f"{forwarded_for}, {peer}" if forwarded_for else peer),
                    ("X-Forwarded-Host", normalize_host(request.headers.get("Host", ""))),
                    ("X-Forwarded-Proto", scheme), ("X-Scheme", scheme),
                    ("X-Forwarded-Port", "443" if scheme == "https" else "80")]
        body = await request.read() if request.body_exists else None
        https = loc is not None and loc.backend_protocol == "HTTPS"
        assert self._session is not None
        last = (502, "Bad Gateway")
        tried = []
        for addr, port in targets:
            url = f"{'https' if https else 'http'}://{addr if ':' not in addr else f'[{addr}]'}:{port}{upstream_path}"
            tried.append(f"{addr}:{port}")
            t0 = time.monotonic()
            try:
                async with self._session.request(request.method, url, headers=headers, data=body,
                                                 allow_redirects=False, ssl=self._insecure if https else None) as up:
                    info.update(addr=", ".join(tried), status_up=str(up.status), rtime=f"{time.monotonic() - t0:.3f}")
                    out_headers = [(k, v) for k, v in up.headers.items() if k.lower() not in HOP_BY_HOP]
                    if up.content_length is not None and up.content_length <= BUFFER_LIMIT:
                        data = await up.read()
                        resp = web.Response(status=up.status, reason=up.reason, body=data)
                        resp.headers.extend(out_headers)
                        return resp
                    stream = web.StreamResponse(status=up.status, reason=up.reason)
                    stream.headers.extend(out_headers)
                    if up.content_length is not None:
                        stream.content_length = up.content_length
                    await stream.prepare(request)
                    async for chunk in up.content.iter_chunked(1 << 16):
                        await stream.write(chunk)
                    await stream.write_eof()
                    return stream
            except TimeoutError:  # before ClientConnectionError: aiohttp's ServerTimeoutError is both
                last = (504, "Gateway Time-out")
            except (aiohttp.ClientConnectionError, OSError) as exc:
                log.warning("upstream %s (%s) failed: %s", url, backend.upstream_name, exc)
                last = (502, "Bad Gateway")
        info.update(addr=", ".join(tried), status_up=str(last[0]))
        return self._page(*last)

    def _log(self, request: web.BaseRequest, resp: web.StreamResponse, start: float, info: dict) -> None:
        """ingress-nginx's log-format-upstream (upstreaminfo)."""
        now = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
        size = len(resp.body or b"") if isinstance(resp, web.Response) else resp.body_length
        line = (f'{request.remote or "-"} - - [{now}] "{request.method} {request.raw_path[:2048]} '
                f'HTTP/{request.version.major}.{request.version.minor}" {resp.status} {size} '
                f'"{request.headers.get("Referer", "-")}" "{request.headers.get("User-Agent", "-")}" '
                f'{request.content_length or 0} {time.monotonic() - start:.3f} [{info["upstream"]}] [] '
                f'{info["addr"]} {size} {info["rtime"]} {info["status_up"]} -\n')
        try:
            self.access_log.write(line)
            self.access_log.flush()
        except (OSError, ValueError):
            pass


async def serve(proxy: Proxy, host: str, http_port: int, https_port: int,
                reuse_port: bool = False) -> list[web.BaseRunner]:
    """Listen on the HTTP port, and on the HTTPS port when the proxy has a default certificate
    (`reuse_port`: worker processes share the ports, the kernel spreading connections)."""
    runners: list[web.BaseRunner] = []
    http = web.ServerRunner(web.Server(proxy.handle_http), access_log=None)
    await http.setup()
    await web.TCPSite(http, host, http_port, reuse_address=True, reuse_port=reuse_port or None).start()
    runners.append(http)
    if proxy.default_context is not None and https_port:
        https = web.ServerRunner(web.Server(proxy.handle_https), access_log=None)
        await https.setup()
        await web.TCPSite(https, host, https_port, ssl_context=proxy.server_context(), reuse_address=True,
                          reuse_port=reuse_port or None).start()
        runners.append(https)
    return runners
