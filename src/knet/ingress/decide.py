"""What the proxy does with one request, decided from the current Snapshot alone: answer it
itself (a page or a redirect), or forward it to a backend with a path and header edits. Pure: no
I/O, no clock; the transport (proxy.py, upstream.py) carries out the Decision.

The Ingress rules (routing.RouteTable, ingress-nginx's semantics) decide here; other route
sources (Gateway API HTTPRoutes) plug in by returning the same Decision, whose header edits and
redirects are what their filters need."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import quote

from knet.ingress import gateway
from knet.ingress.routing import Backend, Location, RouteTable, normalize_host, normalize_path

Header = tuple[bytes, bytes]
# A request's own path characters that nginx passes on unescaped (RFC 3986 pchar and "/").
PATH_SAFE = "/:@!$&'()*+,;=-._~"


@dataclass(frozen=True, slots=True)
class Decision:
    """status != 0: the proxy answers itself (nginx's page for the status, with `location` for a
    redirect). Otherwise forward to `backend` with request target `target` (path and query),
    over TLS when `upstream_tls`, after applying the header edits."""
    status: int = 0
    location: str = ""
    backend: Backend | None = None
    upstream_name: str = "-"       # ingress-nginx's $proxy_upstream_name, for the access log
    target: str = ""
    upstream_tls: bool = False
    # request header edits (HTTPRoute RequestHeaderModifier: set replaces, add appends, remove drops)
    set_headers: tuple[Header, ...] = ()
    add_headers: tuple[Header, ...] = ()
    remove_headers: frozenset[bytes] = frozenset()   # lower-case names
    # response header edits (ResponseHeaderModifier), applied to the backend's answer
    set_response_headers: tuple[Header, ...] = ()
    add_response_headers: tuple[Header, ...] = ()
    remove_response_headers: frozenset[bytes] = frozenset()   # lower-case names

    @property
    def edits_response(self) -> bool:
        return bool(self.set_response_headers or self.add_response_headers or self.remove_response_headers)


@dataclass(frozen=True, slots=True)
class RequestLine:
    """What a route decision may look at: scheme of the listener, method, Host, the raw target."""
    scheme: str
    method: str
    host: str
    target: str
    headers: tuple[Header, ...] = ()   # the request's headers as received (names as sent)


# nginx's reason phrases where they differ from RFC 9110's
NGINX_REASONS = {302: "Moved Temporarily", 413: "Request Entity Too Large", 414: "Request-URI Too Large",
                 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}


def reason(status: int) -> str:
    return NGINX_REASONS.get(status) or HTTPStatus(status).phrase


def page(status: int, reason_phrase: str | None = None) -> str:
    """nginx's own error page, as ingress-nginx's default backend and errors show it."""
    reason_phrase = reason_phrase or reason(status)
    return (f"<html>\r\n<head><title>{status} {reason_phrase}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status} {reason_phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


def split_target(target: str) -> tuple[str, str]:
    path, q, query = target.partition("?")
    return path, (q + query)


def matched_path(raw_path: str) -> str | None:
    """The path routes match (normalize_path), without its work for the usual plain path."""
    if raw_path.startswith("/") and "%" not in raw_path and "/." not in raw_path and "//" not in raw_path:
        return raw_path
    return normalize_path(raw_path)


def decide_ingress(table: RouteTable, req: RequestLine) -> Decision:
    """ingress-nginx's choice for a request: 400 for a path climbing above /, 308 to HTTPS for a
    TLS host's location (ssl-redirect / force-ssl-redirect), 404 from the default backend when
    nothing matches, else the location's backend with the rewrite-target applied."""
    raw_path, query = split_target(req.target)
    path = matched_path(raw_path)
    if path is None:
        return Decision(status=400)
    server, loc = table.route(req.host, path)
    backend = loc.backend if loc is not None else (server.default_backend or table.default_backend)
    if req.scheme == "http" and loc is not None and server.tls_secret is not None and (
            loc.ssl_redirect or loc.force_ssl_redirect):
        return Decision(status=308, location=f"https://{normalize_host(req.host)}{req.target}")
    if backend is None:
        return Decision(status=404, upstream_name="upstream-default-backend")
    return Decision(backend=backend, upstream_name=backend.upstream_name, target=upstream_target(loc, raw_path, path,
                                                                                                  query),
                    upstream_tls=loc is not None and loc.backend_protocol == "HTTPS")


def upstream_target(loc: Location | None, raw_path: str, path: str, query: str) -> str:
    """The request target the backend gets: the rewritten path when the location rewrites, else
    the path as matched (the raw one when it needed no normalizing), the query kept."""
    if loc is not None and loc.rewrite_target is not None:
        return loc.rewrite(path) + query
    if path is raw_path:
        return raw_path + query
    return quote(path, safe=PATH_SAFE) + query


def forwarded_headers(scheme: str, host: str, peer: str, forwarded_for: str | None, request_id: str) -> list[Header]:
    """The headers ingress-nginx's proxy sets towards the backend (X-Request-ID, X-Real-IP,
    X-Forwarded-*)."""
    xff = f"{forwarded_for}, {peer}" if forwarded_for else peer
    s = scheme.encode()
    return [(b"X-Request-ID", request_id.encode()), (b"X-Real-IP", peer.encode()),
            (b"X-Forwarded-For", xff.encode("latin-1")),
            (b"X-Forwarded-Host", normalize_host(host).encode("latin-1")),
            (b"X-Forwarded-Port", b"443" if scheme == "https" else b"80"), (b"X-Forwarded-Proto", s), (b"X-Scheme", s)]


class RoundRobin:
    """The next upstream per backend (ingress-nginx's default round-robin balancer), and the
    ones after it for retries (proxy-next-upstream-tries)."""

    def __init__(self, tries: int) -> None:
        self.tries = tries
        self._next: dict[Backend, itertools.count] = {}

    def pick(self, endpoints: list[tuple[str, int]], backend: Backend) -> list[tuple[str, int]]:
        if not endpoints:
            return []
        counter = self._next.get(backend)
        if counter is None:
            counter = self._next[backend] = itertools.count()
        n = next(counter)
        k = len(endpoints)
        return [endpoints[(n + i) % k] for i in range(min(self.tries, k))]


def edit_response_headers(headers: list[Header], d: Decision) -> list[Header]:
    """A ResponseHeaderModifier on the backend's headers: set replaces, remove drops, add appends
    to a present header's value comma-joined (else adds the header), as gateway.HeaderEdit does."""
    drop = d.remove_response_headers | {n.lower() for n, _ in d.set_response_headers}
    out = [(n, v) for n, v in headers if n.lower() not in drop]
    out += d.set_response_headers
    for name, value in d.add_response_headers:
        i = next((i for i, (k, _) in enumerate(out) if k.lower() == name.lower()), None)
        if i is None:
            out.append((name, value))
        else:
            out[i] = (out[i][0], out[i][1] + b"," + value)
    return out


def _encoded(headers: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> tuple[Header, ...]:
    return tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers)


def decide_gateway(table: gateway.PortTable | None, req: RequestLine, pick: Callable[[int], int]) -> Decision:
    """A request on a Gateway's pod port: its HTTPRoutes decide (gateway.decide), and the
    decision is carried out by the same transport as an Ingress's. The request header filters
    are resolved here against the request's own headers, so the transport only sets and drops."""
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in req.headers]
    d = gateway.decide(table, req.method, req.target, headers, pick)
    resp: dict = {}
    if d.response_headers is not None:
        r = d.response_headers
        resp = {"set_response_headers": _encoded(r.set), "add_response_headers": _encoded(r.add),
                "remove_response_headers": frozenset(n.lower().encode("latin-1") for n in r.remove)}
    if d.status:
        return Decision(status=d.status, location=d.location or "", upstream_name=d.route, **resp)
    assert d.backend is not None
    touched: set[str] = set()
    if d.request_headers is not None:
        e = d.request_headers
        touched = {n.lower() for n, _ in (*e.set, *e.add)} | {n.lower() for n in e.remove}
    if d.host:
        touched.add("host")
    edited = [(k, v) for k, v in gateway.apply_plan_headers(d, headers) if k.lower() in touched]
    return Decision(backend=d.backend, upstream_name=d.backend.upstream_name, target=d.path,
                    set_headers=_encoded(edited), remove_headers=frozenset(n.encode("latin-1") for n in touched),
                    **resp)
