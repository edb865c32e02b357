"""The ingress proxy (knet.ingress.proxy) serving real HTTP and HTTPS on loopback in front of real
aiohttp backends: routing, the default 404, rewrite, ssl-redirect, SNI certificates, a swap
during a request, oversized and climbing requests, access logs; and its transport: request
bodies (chunked, Expect, the 1 MiB limit), streamed and HEAD responses, HTTP/1.0, pipelining,
forwarded headers a client cannot forge, retries to the next upstream, stale pooled connections,
read timeouts, HTTPS backends."""

from __future__ import annotations

import asyncio
import io
import socket
import ssl

import aiohttp
import pytest
from aiohttp import web
from tests.unit.ingress.tls_helpers import self_signed

from knet.ingress import certs
from knet.ingress.proxy import Proxy, Snapshot, serve
from knet.ingress.routing import Backend, build_table


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def backend(name: str, delay: float = 0.0) -> tuple[web.AppRunner, int]:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.json_response({"backend": name, "path": request.path_qs, "host": request.headers.get("Host"),
                                  "xff": request.headers.get("X-Forwarded-For"),
                                  "proto": request.headers.get("X-Forwarded-Proto")})
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


def ing(rules, annotations=None, tls=None, namespace="default"):
    spec = {"rules": rules}
    if tls:
        spec["tls"] = tls
    return {"metadata": {"name": "i", "namespace": namespace, "annotations": annotations or {},
                         "creationTimestamp": "2026-01-01"}, "spec": spec}


def path(p, svc, ptype="Prefix"):
    return {"path": p, "pathType": ptype, "backend": {"service": {"name": svc, "port": {"number": 80}}}}


@pytest.fixture
async def setup():
    wear, wear_port = await backend("wear")
    watch, watch_port = await backend("watch", delay=0.3)
    log = io.StringIO()
    fake_cert, fake_key = certs.fake_certificate()
    proxy = Proxy(certs.context_from_pem(fake_cert, fake_key), access_log=log)
    await proxy.start()
    http_port, https_port = free_port(), free_port()
    runners = await serve(proxy, "127.0.0.1", http_port, https_port)
    endpoints = {Backend("default", "wear", 80): [("127.0.0.1", wear_port)],
                 Backend("default", "watch", 80): [("127.0.0.1", watch_port)]}
    yield proxy, endpoints, http_port, https_port, log
    for r in [*runners, wear, watch]:
        await r.cleanup()
    await proxy.close()


async def get(url, **kw):
    async with aiohttp.ClientSession() as s, s.get(url, allow_redirects=False, **kw) as r:
        return r.status, await r.text(), r.headers


async def test_paths_the_default_404_and_access_logs(setup):
    proxy, endpoints, http_port, _, log = setup
    proxy.swap(Snapshot(build_table([ing([{"http": {"paths": [path("/wear", "wear"), path("/watch", "watch")]}}])]),
                        endpoints))
    status, body, _ = await get(f"http://127.0.0.1:{http_port}/wear/x?a=1")
    assert status == 200 and '"backend": "wear"' in body and '"path": "/wear/x?a=1"' in body
    assert '"xff": "127.0.0.1"' in body and '"proto": "http"' in body
    status, body, _ = await get(f"http://127.0.0.1:{http_port}/nothing")
    assert status == 404 and "<center><h1>404 Not Found</h1></center>" in body and "nginx" in body
    lines = log.getvalue().splitlines()
    assert '"GET /wear/x?a=1 HTTP/1.1" 200' in lines[0] and "[default-wear-80]" in lines[0]
    assert '"GET /nothing HTTP/1.1" 404' in lines[1] and "[upstream-default-backend]" in lines[1]


async def test_no_endpoints_is_503(setup):
    proxy, _, http_port, _, _ = setup
    proxy.swap(Snapshot(build_table([ing([{"http": {"paths": [path("/", "wear")]}}])]), {}))
    status, body, _ = await get(f"http://127.0.0.1:{http_port}/")
    assert status == 503 and "Service Temporarily Unavailable" in body


async def test_rewrite_target(setup):
    proxy, endpoints, http_port, _, _ = setup
    proxy.swap(Snapshot(build_table([ing([{"http": {"paths": [path("/shop(/|$)(.*)", "wear",
                                                                    "ImplementationSpecific")]}}],
                                         {"nginx.ingress.kubernetes.io/rewrite-target": "/$2"})]), endpoints))
    status, body, _ = await get(f"http://127.0.0.1:{http_port}/shop/shirts?size=m")
    assert status == 200 and '"path": "/shirts?size=m"' in body


async def test_a_swap_does_not_drop_a_request_in_flight(setup):
    proxy, endpoints, http_port, _, _ = setup
    proxy.swap(Snapshot(build_table([ing([{"http": {"paths": [path("/", "watch")]}}])]), endpoints))
    slow = asyncio.create_task(get(f"http://127.0.0.1:{http_port}/slow"))
    await asyncio.sleep(0.1)
    proxy.swap(Snapshot(build_table([ing([{"http": {"paths": [path("/", "wear")]}}])]), endpoints))
    assert (await get(f"http://127.0.0.1:{http_port}/now"))[1].count('"backend": "wear"') == 1
    status, body, _ = await slow
    assert status == 200 and '"backend": "watch"' in body


async def test_tls_by_sni_and_the_ssl_redirect(setup, tmp_path):
    proxy, endpoints, http_port, https_port, _ = setup
    cert, key = self_signed("secure.example")
    rules = [{"host": "secure.example", "http": {"paths": [path("/", "wear")]}},
             {"host": "plain.example", "http": {"paths": [path("/", "wear")]}}]
    table = build_table([ing(rules, tls=[{"hosts": ["secure.example"], "secretName": "s"}])])
    proxy.swap(Snapshot(table, endpoints, {"secure.example": certs.context_from_pem(cert, key)}))
    status, _, headers = await get(f"http://127.0.0.1:{http_port}/a?b=1", headers={"Host": "secure.example"})
    assert status == 308 and headers["Location"] == "https://secure.example/a?b=1"
    assert (await get(f"http://127.0.0.1:{http_port}/", headers={"Host": "plain.example"}))[0] == 200
    ca = tmp_path / "ca.crt"
    ca.write_bytes(cert)
    ctx = ssl.create_default_context(cafile=str(ca))
    conn = aiohttp.TCPConnector(ssl=ctx, resolver=_Loopback())
    async with aiohttp.ClientSession(connector=conn) as s, s.get(f"https://secure.example:{https_port}/x") as r:
        assert r.status == 200 and '"proto": "https"' in await r.text()
    # another name gets the fake certificate, which the CA does not sign
    conn = aiohttp.TCPConnector(ssl=ctx, resolver=_Loopback())
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        async with aiohttp.ClientSession(connector=conn) as s, s.get(f"https://plain.example:{https_port}/"):
            pass


async def test_ssl_redirect_false(setup):
    proxy, endpoints, http_port, _, _ = setup
    table = build_table([ing([{"host": "s.example", "http": {"paths": [path("/", "wear")]}}],
                             {"nginx.ingress.kubernetes.io/ssl-redirect": "false"},
                             tls=[{"hosts": ["s.example"], "secretName": "s"}])])
    proxy.swap(Snapshot(table, endpoints))
    assert (await get(f"http://127.0.0.1:{http_port}/", headers={"Host": "s.example"}))[0] == 200


async def test_attacks_stay_in_their_route(setup):
    proxy, endpoints, http_port, _, _ = setup
    proxy.swap(Snapshot(build_table([ing([{"host": "a.example", "http": {"paths": [path("/wear", "wear")]}}])]),
                        endpoints))
    # a path climbing out of /wear is matched (and sent) as what it resolves to: not /wear's backend
    status, _, _ = await get(f"http://127.0.0.1:{http_port}/wear/../watch", headers={"Host": "a.example"})
    assert status == 404
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    writer.write(b"GET /wear/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
    assert (await reader.read())[:12] == b"HTTP/1.1 400"
    writer.close()
    # a huge Host header is refused before routing
    status, _, _ = await get(f"http://127.0.0.1:{http_port}/wear", headers={"Host": "a" * 20000 + ".example"})
    assert status in (400, 431)


class _Loopback(aiohttp.abc.AbstractResolver):
    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET, "proto": 0,
                 "flags": socket.AI_NUMERICHOST}]

    async def close(self):
        pass


# ---- the transport: what nginx's proxy does with bodies, framing, connections and upstream failures ----

async def raw(port: int, data: bytes) -> bytes:
    """Bytes sent as they are on one connection; everything read until the proxy closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    out = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return out


@pytest.fixture
async def echo():
    """A backend answering with what it got (method, target, headers, body), a streamed body of
    ?stream=N bytes without Content-Length, or closing each connection with ?close=1."""
    async def handler(request: web.Request) -> web.StreamResponse:
        if "stream" in request.query:
            resp = web.StreamResponse()
            await resp.prepare(request)
            left = int(request.query["stream"])
            while left:
                n = min(left, 100_000)
                await resp.write(b"x" * n)
                left -= n
            await resp.write_eof()
            return resp
        body = await request.read()
        out = web.json_response({"method": request.method, "target": request.path_qs, "body": body.decode(),
                                 "headers": [[k, v] for k, v in request.headers.items()]})
        if "close" in request.query:
            out.force_close()
        return out
    app = web.Application(client_max_size=4 << 20)
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port
    await runner.cleanup()


def one_route(endpoints, annotations=None):
    return Snapshot(build_table([ing([{"http": {"paths": [path("/", "echo")]}}], annotations)]),
                    {Backend("default", "echo", 80): endpoints})


async def test_bodies_reach_the_backend_and_large_ones_are_refused(setup, echo):
    proxy, _, http_port, _, _ = setup
    proxy.swap(one_route([("127.0.0.1", echo)]))
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{http_port}/p?q=1", data=b"hello") as r:
            got = await r.json()
            assert r.status == 200 and got["method"] == "POST" and got["body"] == "hello" and got["target"] == "/p?q=1"

        async def chunks():
            yield b"one,"
            yield b"two"
        async with s.put(f"http://127.0.0.1:{http_port}/c", data=chunks()) as r:  # chunked request body
            assert (await r.json())["body"] == "one,two"
        async with s.post(f"http://127.0.0.1:{http_port}/big", data=b"x" * ((1 << 20) + 1)) as r:
            assert r.status == 413  # nginx's client_max_body_size 1m
    # Expect: 100-continue is answered by the proxy before the body comes
    out = await raw(http_port, b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n"
                                b"Connection: close\r\n\r\nok")
    assert out.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ") and b'"body": "ok"' in out


async def test_streamed_responses_head_and_http10(setup, echo):
    proxy, _, http_port, _, _ = setup
    proxy.swap(one_route([("127.0.0.1", echo)]))
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{http_port}/s?stream=3000000") as r:
            assert r.status == 200 and r.headers.get("Transfer-Encoding") == "chunked"
            assert await r.read() == b"x" * 3_000_000
        async with s.head(f"http://127.0.0.1:{http_port}/h") as r:
            assert r.status == 200 and int(r.headers["Content-Length"]) > 0
        async with s.get(f"http://127.0.0.1:{http_port}/after-head") as r:  # the pooled connection still works
            assert (await r.json())["target"] == "/after-head"
    # an HTTP/1.0 client without keep-alive gets the body delimited by the connection's close
    out = await raw(http_port, b"GET /s?stream=10 HTTP/1.0\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in out and out.endswith(b"\r\n\r\nxxxxxxxxxx")


async def test_pipelined_requests_answer_in_order(setup, echo):
    proxy, _, http_port, _, _ = setup
    proxy.swap(one_route([("127.0.0.1", echo)]))
    out = await raw(http_port, b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
                                b"GET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 200 ") == 3
    assert out.index(b'"target": "/1"') < out.index(b'"target": "/2"') < out.index(b'"target": "/3"')


async def test_forwarded_headers_replace_what_a_client_claims(setup, echo):
    proxy, _, http_port, _, _ = setup
    proxy.swap(one_route([("127.0.0.1", echo)]))
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{http_port}/", headers={
            "Host": "app.example:8080", "X-Forwarded-For": "10.9.9.9", "X-Forwarded-Proto": "https",
            "X-Real-IP": "10.9.9.9", "Connection": "keep-alive, Upgrade", "Upgrade": "websocket"}) as r:
        headers = (await r.json())["headers"]
    names = [k.lower() for k, _ in headers]
    got = dict((k.lower(), v) for k, v in headers)
    assert got["x-forwarded-proto"] == "http" and names.count("x-forwarded-proto") == 1
    assert got["x-real-ip"] == "127.0.0.1" and got["x-forwarded-for"] == "10.9.9.9, 127.0.0.1"
    assert got["host"] == "app.example:8080" and got["x-forwarded-host"] == "app.example"
    assert "upgrade" not in names and len(got["x-request-id"]) == 32


async def test_retries_go_to_the_next_upstream_and_stale_connections_are_replaced(setup, echo):
    proxy, _, http_port, _, log = setup
    dead = free_port()  # nothing listens: connection refused
    proxy.swap(one_route([("127.0.0.1", dead), ("127.0.0.1", echo)]))
    for _ in range(4):
        status, body, _ = await get(f"http://127.0.0.1:{http_port}/r")
        assert status == 200 and '"target": "/r"' in body
    assert f"127.0.0.1:{dead}, 127.0.0.1:{echo} " in log.getvalue()
    # the backend closes every connection after its answer: each next request still gets through
    proxy.swap(one_route([("127.0.0.1", echo)]))
    for _ in range(3):
        assert (await get(f"http://127.0.0.1:{http_port}/?close=1"))[0] == 200
    # every upstream down: 502 from the proxy, all tries in the log
    proxy.swap(one_route([("127.0.0.1", dead)]))
    status, body, _ = await get(f"http://127.0.0.1:{http_port}/down")
    assert status == 502 and "<h1>502 Bad Gateway</h1>" in body
    assert '"GET /down HTTP/1.1" 502' in log.getvalue().splitlines()[-1]


async def test_a_backend_that_stops_answering_is_a_504(setup, monkeypatch):
    proxy, endpoints, http_port, _, _ = setup
    from knet.ingress import upstream
    monkeypatch.setattr(upstream, "READ_TIMEOUT", 0.1)
    proxy.swap(Snapshot(build_table([ing([{"http": {"paths": [path("/", "watch")]}}])]), endpoints))  # 0.3 s
    status, body, _ = await get(f"http://127.0.0.1:{http_port}/slow")
    assert status == 504 and "Gateway Time-out" in body


async def test_backend_protocol_https(setup, tmp_path):
    proxy, _, http_port, _, _ = setup
    cert, key = self_signed("backend.local")
    (tmp_path / "c").write_bytes(cert)
    (tmp_path / "k").write_bytes(key)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp_path / "c", tmp_path / "k")

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"tls {request.secure}")
    runner = web.ServerRunner(web.Server(hello), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ctx).start()
    try:
        proxy.swap(one_route([("127.0.0.1", port)], {"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"}))
        status, body, _ = await get(f"http://127.0.0.1:{http_port}/")
        assert (status, body) == (200, "tls True")
    finally:
        await runner.cleanup()
