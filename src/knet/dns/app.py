"""`knet dns`: read the Corefile, sync the cluster cache, serve DNS and the HTTP endpoints, and
reload when the Corefile changes (polled like CoreDNS's reload plugin)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.rdatatype

from knet.dns.build import build_handlers
from knet.dns.cache import ClusterCache
from knet.dns.corefile import DnsConfig, parse_corefile
from knet.dns.handler import QueryHandler
from knet.dns.http import HttpEndpoints, metrics_body
from knet.dns.localaddrs import local_ipv4_addresses

log = logging.getLogger("knet.dns")

SYNC_WAIT = 5.0  # CoreDNS waits this long for the API before serving unsynced


@dataclass
class Options:
    corefile: Path
    kubeconfig: str | None = None
    host: str = ""  # listen address for DNS ("" = all)
    port: int | None = None  # overrides every server block's port (CoreDNS's -dns.port)
    forward_timeout: float | None = None


@dataclass
class Running:
    handlers: dict[int, QueryHandler]
    transports: list = field(default_factory=list)
    http: HttpEndpoints = field(default_factory=HttpEndpoints)

    async def stop(self) -> None:
        for t in self.transports:
            t.close()
        await self.http.stop()


def describe(config: DnsConfig) -> list[str]:
    lines = []
    for b in config.blocks:
        lines.append(f"server block {','.join(b.zones)} port {b.port}")
    for what in config.ignored():
        lines.append(f"ignored (not implemented by knet): {what}")
    return lines


class DnsApp:
    def __init__(self, options: Options, api: object | None = None) -> None:
        self.options = options
        self.api = api  # an already-open API client; None: open one from the kubeconfig
        self.cache = ClusterCache()
        self.running: Running | None = None
        self.sync_task: asyncio.Task | None = None
        self.digest = ""
        self.loop_detected = asyncio.Event()

    def read_config(self) -> tuple[DnsConfig, str]:
        text = self.options.corefile.read_text()
        config = parse_corefile(text)
        if self.options.port is not None:
            for b in config.blocks:
                b.port = self.options.port
        return config, hashlib.sha512(text.encode()).hexdigest()

    async def start_sync(self, config: DnsConfig) -> None:
        k = next((b.kubernetes for b in config.blocks if b.kubernetes), None)
        if k is None:
            self.cache.mark_synced("no-kubernetes-plugin")
            return
        from knet.client import ApiClient, load_config
        from knet.dns.sync import run_sync

        watch_pods = k.pods == "verified"
        if self.api is not None:
            given = self.api

            async def sync() -> None:
                await run_sync(given, self.cache, watch_pods=watch_pods)
        else:
            api = ApiClient(load_config(self.options.kubeconfig or k.kubeconfig, k.kubeconfig_context),
                            user_agent="knet-dns")

            async def sync() -> None:
                async with api:
                    await run_sync(api, self.cache, watch_pods=watch_pods)

        self.sync_task = asyncio.create_task(sync())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SYNC_WAIT
        while not self.cache.has_synced() and loop.time() < deadline and not self.sync_task.done():
            await asyncio.sleep(0.05)
        if self.sync_task.done() and self.sync_task.exception():
            raise self.sync_task.exception()  # type: ignore[misc]
        if not self.cache.has_synced():
            log.warning("starting server with unsynced Kubernetes API")

    async def serve(self, config: DnsConfig) -> Running:
        from knet.dns.server import start_dns

        handlers = build_handlers(config, self.cache, local_ips=local_ipv4_addresses(),
                                  forward_timeout=self.options.forward_timeout)
        running = Running(handlers)
        for port, handler in handlers.items():
            udp, tcp = await start_dns(handler, self.options.host, port)
            running.transports += [udp, tcp]
            log.info("listening on %s:%d udp+tcp", self.options.host or "0.0.0.0", port)
        all_metrics = [h.metrics for h in handlers.values()]
        for b in config.blocks:
            if b.health:
                running.http.add(b.health, 8080, "/health", lambda: (200, "OK"))
            if b.ready:
                running.http.add(b.ready, 8181, "/ready",
                                 lambda: (200, "OK") if self.cache.has_synced() else (503, "kubernetes"))
            if b.prometheus:
                running.http.add(b.prometheus, 9153, "/metrics", lambda: metrics_body(all_metrics))
        await running.http.start()
        return running

    async def replace(self, config: DnsConfig) -> None:
        old = self.running
        if old is not None:
            for handler in old.handlers.values():
                self.cache.off_change(handler.wire_cache.forget_cluster)
            await old.stop()
        self.running = await self.serve(config)
        await self.probe_loops(config, self.running)

    async def start(self) -> DnsConfig:
        config, self.digest = self.read_config()
        for line in describe(config):
            log.info("%s", line)
        await self.start_sync(config)
        await self.replace(config)
        return config

    async def stop(self) -> None:
        if self.running is not None:
            await self.running.stop()
            self.running = None
        if self.sync_task is not None:
            self.sync_task.cancel()
            with contextlib.suppress(BaseException):
                await self.sync_task

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT (then lameduck) or a detected forwarding loop (exit 1)."""
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stopping.set)
        try:
            config = await self.start()
            waits = [asyncio.create_task(self.reload_loop(config)), asyncio.create_task(stopping.wait()),
                     asyncio.create_task(self.loop_detected.wait())]
            done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()
            for t in done:
                t.result()
            if self.loop_detected.is_set():
                raise SystemExit(1)
            lameduck = max((b.lameduck for b in config.blocks), default=0.0)
            if lameduck:
                log.info("lameduck: serving %.1fs more before shutdown", lameduck)
                await asyncio.sleep(lameduck)
        finally:
            await self.stop()

    def _loop_found(self, name: str) -> None:
        log.error("Loop detected: the upstream sent our probe %s back to us; exiting (CoreDNS loop plugin)", name)
        self.loop_detected.set()

    async def probe_loops(self, config: DnsConfig, running: Running) -> None:
        """The loop plugin: send ourselves a random HINFO query per forwarding block."""
        for b in config.blocks:
            if not (b.loop and b.forward):
                continue
            handler = running.handlers[b.port]
            handler.on_loop = self._loop_found
            zone = b.zones[0]
            name = f"{random.randrange(1 << 62)}.{random.randrange(1 << 62)}.{'' if zone == '.' else zone}"
            handler.loop_probes[name] = 0
            port = running.transports[0].get_extra_info("sockname")[1] if b.port == 0 else b.port
            wire = dns.message.make_query(name, dns.rdatatype.HINFO).to_wire()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.setblocking(False)
                with contextlib.suppress(OSError):
                    s.sendto(wire, (self.options.host or "127.0.0.1", port))

    async def reload_loop(self, config: DnsConfig) -> None:
        while True:
            if config.reload is None:
                await asyncio.Event().wait()  # no reload plugin: serve this config forever
            interval, jitter = config.reload  # type: ignore[misc]
            await asyncio.sleep(max(0.5, interval + random.uniform(-jitter, jitter) / 2))
            config = await self.reload_once(config)

    async def reload_once(self, config: DnsConfig) -> DnsConfig:
        """Re-read the Corefile; restart the servers if it changed. Returns the config in force."""
        try:
            new, digest = self.read_config()
        except Exception as exc:  # noqa: BLE001 - a broken Corefile keeps the old one running
            log.error("reload: keeping the running Corefile: %s", exc)
            return config
        if digest == self.digest:
            return config
        log.info("reload: Corefile changed, restarting servers")
        for line in describe(new):
            log.info("%s", line)
        try:
            await self.replace(new)
        except OSError as exc:
            log.error("reload failed (%s); restoring the previous Corefile", exc)
            await self.replace(config)
            return config
        self.digest = digest
        return new
