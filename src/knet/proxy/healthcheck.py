"""Service health check node ports (upstream pkg/proxy/healthcheck/service_health.go).

For a LoadBalancer Service with externalTrafficPolicy: Local, kube-proxy answers HTTP on the
Service's healthCheckNodePort: 200 when this node has local endpoints, 503 when it has none, so
the load balancer sends traffic only to nodes that can serve it without a second hop.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from aiohttp import web

from knet.proxy.model import Endpoint, ServicePort, ServicePortName

log = logging.getLogger("knet.proxy")


def desired_health_checks(services: Mapping[ServicePortName, ServicePort],
                          endpoints: Mapping[ServicePortName, list[Endpoint]]) -> dict[int, tuple[str, str, int]]:
    """healthCheckNodePort -> (namespace, name, local ready endpoints). Pure."""
    out: dict[int, tuple[str, str, int]] = {}
    for spn, sp in services.items():
        if not sp.health_check_node_port:
            continue
        local = sum(1 for e in endpoints.get(spn, ()) if e.is_local and e.ready)
        prev = out.get(sp.health_check_node_port)
        out[sp.health_check_node_port] = (spn.namespace, spn.name, local + (prev[2] if prev else 0))
    return out


def health_response(namespace: str, name: str, local: int) -> tuple[int, str]:
    body = {"service": {"namespace": namespace, "name": name}, "localEndpoints": local,
            "serviceProxyHealthy": True}
    return (200 if local > 0 else 503), json.dumps(body)


class HealthCheckServers:
    """One HTTP listener per healthCheckNodePort, kept in line with desired_health_checks()."""

    def __init__(self, bind: str = "0.0.0.0") -> None:
        self.bind = bind
        self.state: dict[int, tuple[str, str, int]] = {}
        self._runners: dict[int, web.AppRunner] = {}

    async def update(self, wanted: dict[int, tuple[str, str, int]]) -> None:
        self.state = wanted
        for port in [p for p in self._runners if p not in wanted]:
            await self._runners.pop(port).cleanup()
        for port in wanted:
            if port in self._runners:
                continue
            app = web.Application()

            async def handle(_: web.Request, port: int = port) -> web.Response:
                ns, name, local = self.state.get(port, ("", "", 0))
                status, text = health_response(ns, name, local)
                return web.Response(status=status, text=text, content_type="application/json")
            app.router.add_get("/{tail:.*}", handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            try:
                await web.TCPSite(runner, self.bind, port).start()
            except OSError as exc:
                log.error("cannot serve health check node port %d: %s", port, exc)
                await runner.cleanup()
                continue
            self._runners[port] = runner

    async def close(self) -> None:
        await self.update({})
