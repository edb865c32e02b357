"""The `knet kube-proxy` process: KubeProxyConfiguration + API watches -> a Proxier, plus the
metrics and healthz HTTP endpoints. It programs the network namespace it runs in (the kubelet
starts it, hostNetwork, inside the node's namespace).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from knet.client import Api, ApiClient, Informer, load_config
from knet.proxy.conntrack import ConntrackCli
from knet.proxy.healthcheck import HealthCheckServers, desired_health_checks
from knet.proxy.metrics import Metrics
from knet.proxy.model import Obj
from knet.proxy.netfilter import RealNetfilter
from knet.proxy.options import KubeProxyConfig, RenderOptions, parse_kube_proxy_config
from knet.proxy.proxier import Proxier

log = logging.getLogger("knet.proxy")

# Services carrying this label are handled by another proxy (upstream ignores them too).
SERVICE_PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
HEADLESS_LABEL = "service.kubernetes.io/headless"


@dataclass
class Overrides:
    hostname: str = ""
    mode: str = ""
    kubeconfig: str = ""
    cluster_cidr: str = ""
    metrics_bind_address: str = ""
    healthz_bind_address: str = ""


def load(config_path: str | None, overrides: Overrides) -> KubeProxyConfig:
    cfg = parse_kube_proxy_config(Path(config_path).read_text()) if config_path else KubeProxyConfig()
    for name in ("mode", "kubeconfig", "cluster_cidr", "metrics_bind_address", "healthz_bind_address"):
        value = getattr(overrides, name)
        if value:
            cfg = replace(cfg, **{name: value})
    if overrides.hostname:
        cfg = replace(cfg, hostname_override=overrides.hostname)
    return cfg


def local_ipv4_addresses() -> list[str]:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=False).stdout
    return [line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3]


def _ignored(obj: Obj) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return SERVICE_PROXY_NAME_LABEL in labels or HEADLESS_LABEL in labels


def _write_sysctl(name: str, value: str) -> None:
    try:
        Path("/proc/sys", name.replace(".", "/")).write_text(value)
    except OSError as exc:
        log.warning("cannot set sysctl %s=%s: %s", name, value, exc)


def apply_sysctls(cfg: KubeProxyConfig, opts: RenderOptions) -> None:
    if cfg.mode == "iptables" and opts.effective_localhost_node_ports:
        # upstream: route_localnet=1 so NodePorts answer on 127.0.0.1 (see issues.k8s.io/90259)
        _write_sysctl("net.ipv4.conf.all.route_localnet", "1")
    if cfg.conntrack_tcp_be_liberal:
        _write_sysctl("net.netfilter.nf_conntrack_tcp_be_liberal", "1")
    if cfg.conntrack_udp_timeout:
        _write_sysctl("net.netfilter.nf_conntrack_udp_timeout", str(int(cfg.conntrack_udp_timeout)))
    if cfg.conntrack_udp_stream_timeout:
        _write_sysctl("net.netfilter.nf_conntrack_udp_timeout_stream", str(int(cfg.conntrack_udp_stream_timeout)))


def healthz_body(proxier: Proxier, now: float | None = None) -> tuple[int, dict[str, object]]:
    """upstream ProxierHealthServer: unhealthy while a change waits more than 2 x syncPeriod, or
    before the first sync."""
    now = time.time() if now is None else now
    healthy = proxier.last_sync_ok > 0 and (
        not proxier.queued_since or now - proxier.queued_since < 2 * proxier.sync_period)

    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z") if t else ""
    body = {"lastUpdated": iso(proxier.last_sync_ok), "currentTime": iso(now), "nodeEligible": True}
    return (200 if healthy else 503), body


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


async def start_http(proxier: Proxier, cfg: KubeProxyConfig) -> list[web.AppRunner]:
    async def healthz(_: web.Request) -> web.Response:
        status, body = healthz_body(proxier)
        return web.Response(status=status, text=json.dumps(body), content_type="application/json")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=proxier.metrics.text(), content_type="text/plain")

    async def proxy_mode(_: web.Request) -> web.Response:
        return web.Response(text=proxier.mode)

    runners = []
    health_app = web.Application()
    health_app.router.add_get("/healthz", healthz)
    health_app.router.add_get("/livez", healthz)
    metrics_app = web.Application()
    metrics_app.router.add_get("/metrics", metrics)
    metrics_app.router.add_get("/proxyMode", proxy_mode)
    metrics_app.router.add_get("/healthz", healthz)
    for app, addr in ((health_app, cfg.healthz_bind_address), (metrics_app, cfg.metrics_bind_address)):
        if not addr or addr.endswith(":0"):
            continue
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        host, port = _split(addr)
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            log.error("cannot serve on %s: %s", addr, exc)
            await runner.cleanup()
            continue
        runners.append(runner)
    return runners


async def node_address(api: Api, hostname: str, attempts: int = 60) -> str:
    """This node's InternalIP (waiting up to a minute for the apiserver and the Node)."""
    node: Obj = {}
    for _ in range(attempts):
        try:
            node = await api.get("v1", "nodes", hostname)
            break
        except Exception as exc:  # noqa: BLE001 -- the apiserver may still be starting
            log.warning("waiting for node %s: %s", hostname, exc)
            await asyncio.sleep(1)
    return next((a.get("address", "") for a in (node.get("status") or {}).get("addresses") or []
                 if a.get("type") == "InternalIP"), "")


def service_informers(api: Api, proxier: Proxier) -> tuple[Informer, Informer]:
    """The watches that feed the proxier: Services and EndpointSlices (all that
    system:node-proxier lets kube-proxy read, besides Nodes)."""
    services = Informer(api, "v1", "services")
    slices = Informer(api, "discovery.k8s.io/v1", "endpointslices")
    services.add_handler(
        on_add=lambda o: None if _ignored(o) else proxier.on_service(None, o),
        on_update=lambda a, b: proxier.on_service(None if _ignored(a) else a, None if _ignored(b) else b),
        on_delete=lambda o: None if _ignored(o) else proxier.on_service(o, None))
    slices.add_handler(
        on_add=lambda o: proxier.on_endpoint_slice(None, o),
        on_update=lambda a, b: proxier.on_endpoint_slice(a, b),
        on_delete=lambda o: proxier.on_endpoint_slice(o, None))
    return services, slices


async def run(cfg: KubeProxyConfig) -> None:
    hostname = cfg.hostname_override or socket.gethostname()
    client_config = load_config(cfg.kubeconfig or None)
    async with ApiClient(client_config, user_agent="kube-proxy") as api:
        node_ip = await node_address(api, hostname)
        npa = tuple(f"{node_ip}/32" if c == "primary" else c for c in cfg.node_port_addresses if c)
        opts = RenderOptions(
            node_name=hostname, node_ip=node_ip, cluster_cidr=cfg.cluster_cidr,
            masquerade_all=cfg.masquerade_all, masquerade_bit=cfg.masquerade_bit,
            localhost_node_ports=cfg.localhost_node_ports, node_port_addresses=npa,
            node_ips=tuple(local_ipv4_addresses()), tcp_be_liberal=cfg.conntrack_tcp_be_liberal,
            # the version this kube-proxy is (its image's tag, from `knet as-binary --image`):
            # which upstream release's nftables rules to write (knet.proxy.nftables.Shape)
            kubernetes_version=os.environ.get("KNET_KUBERNETES_VERSION", ""))
        nf = RealNetfilter(libnftables=True)  # one long-lived nft context: knet.proxy.libnft
        proxier = Proxier(cfg.mode, opts, nf, hostname=hostname, sync_period=cfg.sync_period,
                          min_sync_period=cfg.min_sync_period, metrics=Metrics(), conntrack=ConntrackCli())
        log.info("kube-proxy on node %s (%s), mode %s", hostname, node_ip, cfg.mode)
        # upstream's klog line (cmd/kube-proxy/app/server_linux.go), which operators grep for
        log.info('"Using %s Proxier"', "nftables" if cfg.mode == "nftables" else "iptables")
        apply_sysctls(cfg, opts)
        try:
            proxier.cleanup_other_mode()
        except Exception as exc:  # noqa: BLE001 -- leftovers must not stop the proxy
            log.warning("cleaning up the other mode's rules: %s", exc)
        runners = await start_http(proxier, cfg)

        services, slices = service_informers(api, proxier)
        health_checks = HealthCheckServers()

        async def serve_health_checks() -> None:
            while True:
                with proxier._lock:
                    wanted = desired_health_checks(proxier.services, proxier.endpoints)
                await health_checks.update(wanted)
                await asyncio.sleep(1.0)

        tasks = [asyncio.create_task(services.run()), asyncio.create_task(slices.run())]
        try:
            await services.wait_synced()
            await slices.wait_synced()
            proxier.services_synced = proxier.endpoints_synced = True
            proxier._wake.set()
            tasks.append(asyncio.create_task(serve_health_checks()))
            await proxier.run()
        finally:
            for t in tasks:
                t.cancel()
            await health_checks.close()
            for r in runners:
                await r.cleanup()
