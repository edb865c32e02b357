"""Probe handlers against real sockets on loopback."""

import asyncio

import pytest

from knet.node.probes import http_get, resolve_port, tcp_socket

CONTAINER = {"ports": [{"name": "http", "containerPort": 0}]}


async def _http_server(status: int) -> tuple[asyncio.AbstractServer, int]:
    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("status,ok", [(200, True), (302, True), (404, False), (500, False)])
async def test_http_get_success_is_2xx_3xx(status, ok):
    server, port = await _http_server(status)
    async with server:
        result, message = await http_get("127.0.0.1", {"httpGet": {"path": "/healthz", "port": port}}, {}, 1.0)
    assert result is ok
    if not ok:
        assert message == f"HTTP probe failed with statuscode: {status}"


async def test_http_get_refused_reads_like_kubelet():
    server, port = await _http_server(200)
    server.close()
    await server.wait_closed()
    ok, message = await http_get("127.0.0.1", {"httpGet": {"path": "/ready", "port": port}}, {}, 1.0)
    assert not ok
    assert message == f'Get "http://127.0.0.1:{port}/ready": dial tcp 127.0.0.1:{port}: connect: connection refused'


async def test_tcp_socket_and_named_ports():
    server, port = await _http_server(200)
    container = {"ports": [{"name": "http", "containerPort": port}]}
    async with server:
        assert (await tcp_socket("127.0.0.1", {"tcpSocket": {"port": "http"}}, container, 1.0))[0]
    assert resolve_port("http", container) == port and resolve_port(8080, container) == 8080
    with pytest.raises(ValueError):
        resolve_port("nope", container)
