"""`knet workload netexec`: the built-in echo server of test images (in the spirit of agnhost
netexec): HTTP /, /hostname, /clientip, /echo?msg=, /healthz, /readyz, /shutdown-free; and a UDP
responder answering `hostname`, `echo MSG` and `clientip`."""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web


def udp_answer(message: str, client_ip: str, client_port: int) -> str:
    """agnhost's UDP protocol: `hostname`, `echo TEXT`, `clientip`; anything else is echoed. Pure."""
    text = message.strip()
    if text == "hostname":
        return socket.gethostname()
    if text == "clientip":
        return f"{client_ip}:{client_port}"
    if text.startswith("echo "):
        return text[5:]
    return text


class _Udp(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = udp_answer(data.decode(errors="replace"), addr[0], addr[1])
        self.transport.sendto(reply.encode(), addr)  # type: ignore[attr-defined]


def _client(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return f"{peer[0]}:{peer[1]}" if peer else ""


async def _hostname(request: web.Request) -> web.Response:
    return web.Response(text=socket.gethostname())


async def _clientip(request: web.Request) -> web.Response:
    return web.Response(text=_client(request))


async def _echo(request: web.Request) -> web.Response:
    return web.Response(text=request.query.get("msg", ""))


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _root(request: web.Request) -> web.Response:
    return web.Response(text=f"NOW: {asyncio.get_running_loop().time():.0f}\nhostname: {socket.gethostname()}\n"
                             f"client: {_client(request)}\n")


async def serve(http_port: int, udp_port: int | None) -> None:
    app = web.Application()
    app.router.add_get("/", _root)
    app.router.add_get("/hostname", _hostname)
    app.router.add_get("/clientip", _clientip)
    app.router.add_get("/echo", _echo)
    app.router.add_get("/healthz", _ok)
    app.router.add_get("/readyz", _ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", http_port, reuse_address=True).start()
    print(f"Started HTTP server on port {http_port}", flush=True)
    if udp_port:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(_Udp, local_addr=("0.0.0.0", udp_port))
        print(f"Started UDP server on port {udp_port}", flush=True)
    await asyncio.Event().wait()
