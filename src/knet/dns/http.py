"""The HTTP side of the DNS server: /health (health plugin), /ready (ready plugin: 200 once the
kubernetes plugin has synced) and /metrics (prometheus plugin), each on its Corefile address."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from knet.dns.metrics import Metrics


def split_address(addr: str, default_port: int) -> tuple[str, int]:
    """":8080" -> ("0.0.0.0", 8080); "localhost:9153" -> ("localhost", 9153)."""
    host, _, port = addr.rpartition(":")
    if not _:
        return addr or "0.0.0.0", default_port
    return (host.strip("[]") or "0.0.0.0"), int(port or default_port)


class HttpEndpoints:
    """One aiohttp server per distinct address; several paths may share an address."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, int], list[web.RouteDef]] = {}
        self.runners: list[web.AppRunner] = []
        self.bound: dict[tuple[str, int], int] = {}

    def add(self, addr: str, default_port: int, path: str, fn: Callable[[], tuple[int, str]]) -> None:
        ctype = "text/plain; version=0.0.4; charset=utf-8" if path == "/metrics" else "text/plain; charset=utf-8"

        async def handle(_request: web.Request) -> web.Response:
            status, body = fn()
            return web.Response(status=status, body=body.encode(), headers={"Content-Type": ctype})

        key = split_address(addr, default_port)
        if key[1] == 0:  # port 0 (tests): a server of its own, whatever port it gets
            key = (key[0], -len(self.routes) - 1)
        self.routes.setdefault(key, []).append(web.get(path, handle))

    async def start(self) -> None:
        for (host, port), routes in self.routes.items():
            app = web.Application()
            app.add_routes(routes)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, host, max(port, 0), reuse_address=True)
            await site.start()
            self.runners.append(runner)
            sockets = site._server.sockets if site._server else []  # noqa: SLF001 - the bound port for :0
            self.bound[(host, port)] = sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        self.runners.clear()


def metrics_body(all_metrics: list[Metrics]) -> tuple[int, str]:
    return 200, "".join(m.render() for m in all_metrics)
