"""pods/proxy and services/proxy: the apiserver forwards an HTTP request to a pod (its IP and a
port), or to a ready endpoint of a Service's port, as kube-apiserver's proxy subresources do
(`kubectl get --raw /api/v1/namespaces/NS/services/web:80/proxy/`, `kubectl proxy`).

Pure: which address a proxy path names (`target_of_pod`, `target_of_service`); the forwarding
itself is `forward`. The apiserver dials pod IPs from where it runs (the controlplane node), so
NetworkPolicies that isolate a pod apply to the proxy too, as on a kubeadm cluster."""

from __future__ import annotations

import random
import ssl as ssl_module

import aiohttp
from aiohttp import web
from yarl import URL

from knet.api import errors
from knet.api.errors import ApiError

# Hop-by-hop headers (RFC 7230 6.1) and the caller's credentials never go to the pod.
_DROPPED_REQUEST_HEADERS = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                                      "trailer", "transfer-encoding", "upgrade", "authorization", "host",
                                      "impersonate-user", "impersonate-group", "impersonate-uid"})
_DROPPED_RESPONSE_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


def split_name(name: str) -> tuple[str, str, str]:
    """`[scheme:]name[:port]` -> (scheme, name, port), as upstream's SplitSchemeNamePort."""
    parts = name.split(":")
    if len(parts) == 1:
        scheme, host, port = "", parts[0], ""
    elif len(parts) == 2:
        scheme, host, port = "", parts[0], parts[1]
    elif len(parts) == 3:
        scheme, host, port = parts
    else:
        scheme = host = port = ""
    if not host or scheme not in ("http", "https", ""):
        raise errors.bad_request(f"invalid service request {name}")
    return scheme, host, port


def target_of_pod(pod: dict, port: str) -> tuple[str, int]:
    """(podIP, port): the port given, else the first container port (upstream's pod
    ResourceLocation), else 80."""
    ip = (pod.get("status") or {}).get("podIP")
    name = pod["metadata"]["name"]
    if not ip:
        raise ApiError(503, "ServiceUnavailable", f'address not allowed: pod "{name}" has no IP yet')
    if port:
        if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise errors.bad_request(f"invalid port {port!r}")
        return ip, int(port)
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("containerPort"):
                return ip, int(p["containerPort"])
    return ip, 80


def target_of_service(svc: dict, slices: list[dict], port: str, pick=random.choice) -> tuple[str, int]:
    """A ready endpoint (address, port) of the Service port named or numbered PORT (its only port
    when PORT is empty), from its EndpointSlices, as upstream's service ResourceLocation."""
    name = svc["metadata"]["name"]
    ports = (svc.get("spec") or {}).get("ports") or []
    if port:
        chosen = [p for p in ports if p.get("name") == port or str(p.get("port")) == port]
    else:
        chosen = ports if len(ports) == 1 else []
    if not chosen:
        raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
    port_name = chosen[0].get("name") or ""
    candidates = []
    for s in slices:
        numbers = [p.get("port") for p in s.get("ports") or [] if (p.get("name") or "") == port_name]
        if not numbers or numbers[0] is None:
            continue
        for ep in s.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            candidates += [(address, int(numbers[0])) for address in ep.get("addresses") or []]
    if not candidates:
        raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
    return pick(candidates)


def clean_path(path: str) -> str:
    """Go's path.Clean: no empty, `.` or `..` segments (`..` stops at the root)."""
    rooted = path.startswith("/")
    out: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(segment)
    joined = ("/" if rooted else "") + "/".join(out)
    return joined or "."


def join_preserving_trailing_slash(base: str, subpath: str) -> str:
    """net.JoinPreservingTrailingSlash(base, subpath), as the proxy subresources join the
    target's path and the request's subpath: cleaned (`/../../secrets` is `/secrets`, never above
    the target's root), keeping a trailing slash."""
    elems = [e for e in (base, subpath) if e]
    if not elems:
        return ""
    result = clean_path("/".join(elems))
    if elems[-1].endswith("/") and not result.endswith("/"):
        result += "/"
    return result


async def forward(session: aiohttp.ClientSession, request: web.Request, scheme: str, host: str, port: int,
                  path: str, ssl: ssl_module.SSLContext | bool = False) -> web.StreamResponse:
    """Send REQUEST on to SCHEME://HOST:PORT/PATH (PATH is the request's subpath, joined as
    upstream joins it; its query, method, body and end-to-end headers) and stream the answer
    back; a target that cannot be reached is a 503. SSL: the client TLS context (False: the
    proxy transport's, which does not verify)."""
    # Built, not formatted: a `?` or `#` decoded from the request's path stays in the path.
    url = URL.build(scheme=scheme or "http", host=host, port=port,
                    path=join_preserving_trailing_slash("", path) or "/")
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROPPED_REQUEST_HEADERS}
    body = await request.read() if request.can_read_body else None
    try:
        upstream = await session.request(request.method, url.with_query(request.query), headers=headers, data=body,
                                         allow_redirects=False, ssl=ssl, auto_decompress=False)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ApiError(503, "ServiceUnavailable", f"error trying to reach service: {exc}") from None
    async with upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers={
            k: v for k, v in upstream.headers.items() if k.lower() not in _DROPPED_RESPONSE_HEADERS})
        await response.prepare(request)
        async for chunk in upstream.content.iter_chunked(65536):
            await response.write(chunk)
        await response.write_eof()
        return response
