"""DnsConfig + a ClusterCache -> one QueryHandler per listening port. Pure wiring, no sockets."""

from __future__ import annotations

from collections.abc import Callable

from knet.dns.answer import KubernetesZones
from knet.dns.cache import ClusterCache
from knet.dns.corefile import DnsConfig, ServerBlock, upstream_addresses
from knet.dns.forward import Forwarder
from knet.dns.handler import Block, QueryHandler
from knet.dns.lookup import KubernetesBackend
from knet.dns.metrics import Metrics
from knet.dns.wirecache import WireCache


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def build_block(b: ServerBlock, cache: ClusterCache, metrics: Metrics, *, local_ips: tuple[str, ...] = (),
                read_file: Callable[[str], str] = _read, forward_timeout: float | None = None) -> Block:
    kubernetes = None
    if b.kubernetes is not None:
        k = b.kubernetes
        backend = KubernetesBackend(cache, k.zones, ttl=k.ttl, pod_mode=k.pods, namespaces=k.namespaces,
                                    endpoint_pod_names=k.endpoint_pod_names, local_ips=local_ips)
        kubernetes = KubernetesZones(backend, k.fallthrough)
    forwarder = None
    forward_from = "."
    if b.forward is not None:
        timeout = forward_timeout if forward_timeout is not None else b.forward.expire_timeout
        forwarder = Forwarder(upstream_addresses(b.forward.to, read_file), timeout=timeout,
                              max_concurrent=b.forward.max_concurrent, metrics=metrics)
        forward_from = b.forward.from_zone
    return Block(zones=b.zones, kubernetes=kubernetes, forwarder=forwarder, forward_from=forward_from,
                 cache=b.cache, loadbalance=b.loadbalance)


def build_handlers(config: DnsConfig, cache: ClusterCache, *, local_ips: tuple[str, ...] = (),
                   read_file: Callable[[str], str] = _read, forward_timeout: float | None = None,
                   ) -> dict[int, QueryHandler]:
    handlers: dict[int, QueryHandler] = {}
    for b in config.blocks:
        handler = handlers.get(b.port)
        if handler is None:
            server = f"dns://:{b.port}"
            handler = handlers[b.port] = QueryHandler([], Metrics(server=server), WireCache())
            cache.on_change(handler.wire_cache.forget_cluster)
        handler.blocks.append(build_block(b, cache, handler.metrics, local_ips=local_ips, read_file=read_file,
                                          forward_timeout=forward_timeout))
    return handlers
