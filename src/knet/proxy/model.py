"""The proxy model: service ports and endpoints stripped out of wire dicts, with change trackers.

Purely computational, no I/O (like upstream pkg/proxy's servicechangetracker.go,
endpointschangetracker.go and endpointslicecache.go). Trackers accumulate {previous, current}
per Service and drop an entry when it nets out to no change; `ServicePortMap.apply(tracker)` and
`EndpointsMap.apply(tracker)` consume them and say what changed (for partial syncs and conntrack).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_STICKY_SECONDS = 10800
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"


class NamespacedName(NamedTuple):
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class ServicePortName(NamedTuple):
    namespace: str
    name: str
    port: str  # the port's name ("" for a single unnamed port)
    protocol: str  # "TCP" | "UDP" | "SCTP"

    @property
    def service(self) -> NamespacedName:
        return NamespacedName(self.namespace, self.name)

    def __str__(self) -> str:
        # upstream ServicePortName.String(): protocol is not part of it
        return f"{self.namespace}/{self.name}:{self.port}" if self.port else f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: ServicePortName
    cluster_ip: str
    port: int
    protocol: str
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    session_affinity_client_ip: bool = False
    sticky_seconds: int = DEFAULT_STICKY_SECONDS
    external_policy_local: bool = False
    internal_policy_local: bool = False
    health_check_node_port: int = 0

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.load_balancer_ips or self.external_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        return not self.internal_policy_local or (self.externally_accessible and not self.external_policy_local)

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_policy_local or (self.externally_accessible and self.external_policy_local)


@dataclass(frozen=True, slots=True)
class Endpoint:
    ip: str
    port: int
    is_local: bool = False
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str = ""
    zone: str = ""

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


# -- ingest: wire dicts -> model --------------------------------------------------------------------

def _ipv4(text: str) -> str | None:
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    return str(addr) if addr.version == 4 else None


def _ipv4_cidr(text: str) -> str | None:
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None
    return str(net) if net.version == 4 else None


def service_ports_from_service(svc: Obj | None) -> dict[ServicePortName, ServicePort]:
    """All the ports kube-proxy programs for one Service (none for headless or ExternalName ones)."""
    if not svc:
        return {}
    meta = svc.get("metadata") or {}
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return {}
    cluster_ips = spec.get("clusterIPs") or [spec.get("clusterIP") or ""]
    cluster_ip = next((ip for ip in (_ipv4(c) for c in cluster_ips if c and c != "None") if ip), None)
    if cluster_ip is None:
        return {}
    ns, name = meta.get("namespace") or "default", meta.get("name") or ""
    svc_type = spec.get("type") or "ClusterIP"
    externally_accessible_type = svc_type in ("NodePort", "LoadBalancer") or bool(spec.get("externalIPs"))
    external_local = externally_accessible_type and spec.get("externalTrafficPolicy") == "Local"
    internal_local = spec.get("internalTrafficPolicy") == "Local"
    external_ips = tuple(ip for ip in (_ipv4(e) for e in spec.get("externalIPs") or []) if ip)
    lb_ips: list[str] = []
    if svc_type == "LoadBalancer":
        for ingress in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            # ipMode Proxy: the load balancer proxies, so traffic never arrives for the VIP itself
            if ingress.get("ipMode") == "Proxy":
                continue
            ip = _ipv4(ingress.get("ip") or "")
            if ip:
                lb_ips.append(ip)
    source_ranges = tuple(c for c in (_ipv4_cidr(r) for r in spec.get("loadBalancerSourceRanges") or []) if c)
    client_ip = spec.get("sessionAffinity") == "ClientIP"
    sticky = DEFAULT_STICKY_SECONDS
    if client_ip:
        cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        sticky = int(cfg.get("timeoutSeconds") or DEFAULT_STICKY_SECONDS)
    hc_port = int(spec.get("healthCheckNodePort") or 0) if external_local and svc_type == "LoadBalancer" else 0
    out: dict[ServicePortName, ServicePort] = {}
    for p in spec.get("ports") or []:
        protocol = p.get("protocol") or "TCP"
        spn = ServicePortName(ns, name, p.get("name") or "", protocol)
        out[spn] = ServicePort(
            name=spn, cluster_ip=cluster_ip, port=int(p.get("port") or 0), protocol=protocol,
            node_port=int(p.get("nodePort") or 0) if svc_type in ("NodePort", "LoadBalancer") else 0,
            external_ips=external_ips, load_balancer_ips=tuple(lb_ips),
            load_balancer_source_ranges=source_ranges if lb_ips else (),
            session_affinity_client_ip=client_ip, sticky_seconds=sticky,
            external_policy_local=external_local, internal_policy_local=internal_local,
            health_check_node_port=hc_port,
        )
    return out


class SliceInfo(NamedTuple):
    """An EndpointSlice stripped to what kube-proxy uses."""
    service: NamespacedName
    ports: tuple[tuple[str, str, int], ...]  # (name, protocol, port)
    endpoints: tuple[tuple[str, bool, bool, bool, str, str], ...]  # ip, ready, serving, terminating, node, zone


def slice_info(eps: Obj) -> SliceInfo | None:
    meta = eps.get("metadata") or {}
    svc_name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not svc_name or eps.get("addressType", "IPv4") != "IPv4":
        return None
    ports = tuple(
        (p.get("name") or "", p.get("protocol") or "TCP", int(p["port"]))
        for p in eps.get("ports") or [] if p.get("port") is not None
    )
    endpoints = []
    for ep in eps.get("endpoints") or []:
        addrs = ep.get("addresses") or []
        if not addrs:
            continue
        cond = ep.get("conditions") or {}
        ready = cond.get("ready")
        ready = True if ready is None else bool(ready)  # nil means "unknown": treated as ready
        serving = cond.get("serving")
        serving = ready if serving is None else bool(serving)
        terminating = bool(cond.get("terminating") or False)
        endpoints.append((addrs[0], ready, serving, terminating, ep.get("nodeName") or "", ep.get("zone") or ""))
    return SliceInfo(NamespacedName(meta.get("namespace") or "default", svc_name), ports, tuple(endpoints))


# -- services -----------------------------------------------------------------------------------------

@dataclass
class ServiceChangeTracker:
    """{previous, current} port maps per Service since the last sync; equal pairs are dropped."""
    items: dict[NamespacedName, tuple[dict[ServicePortName, ServicePort], dict[ServicePortName, ServicePort]]] = \
        field(default_factory=dict)

    def update(self, previous: Obj | None, current: Obj | None) -> bool:
        obj = current or previous
        if obj is None:
            return len(self.items) > 0
        meta = obj.get("metadata") or {}
        key = NamespacedName(meta.get("namespace") or "default", meta.get("name") or "")
        new = service_ports_from_service(current)
        if key in self.items:
            prev_map = self.items[key][0]
        else:
            prev_map = service_ports_from_service(previous)
        if prev_map == new:
            self.items.pop(key, None)
        else:
            self.items[key] = (prev_map, new)
        return len(self.items) > 0

    def pending(self) -> set[NamespacedName]:
        return set(self.items)


@dataclass
class ServiceUpdateResult:
    updated_services: set[NamespacedName]
    deleted_udp_ports: list[ServicePort]  # for conntrack cleanup of their stale flows


class ServicePortMap(dict[ServicePortName, ServicePort]):
    def apply(self, tracker: ServiceChangeTracker) -> ServiceUpdateResult:
        updated = set(tracker.items)
        deleted: list[ServicePort] = []
        for prev_map, cur_map in tracker.items.values():
            for spn, sp in prev_map.items():
                self.pop(spn, None)
                if spn not in cur_map and sp.protocol == "UDP":
                    deleted.append(sp)
            self.update(cur_map)
        tracker.items.clear()
        return ServiceUpdateResult(updated, deleted)


# -- endpoints --------------------------------------------------------------------------------------

def endpoints_from_slices(slices: Iterable[SliceInfo], hostname: str) -> dict[ServicePortName, list[Endpoint]]:
    """Merge one Service's slices into endpoints per service port, sorted as upstream sorts them."""
    out: dict[ServicePortName, dict[str, Endpoint]] = {}
    for s in slices:
        for port_name, protocol, port in s.ports:
            spn = ServicePortName(s.service.namespace, s.service.name, port_name, protocol)
            bucket = out.setdefault(spn, {})
            for ip, ready, serving, terminating, node, zone in s.endpoints:
                ep = Endpoint(ip, port, is_local=bool(hostname) and node == hostname, ready=ready,
                              serving=serving, terminating=terminating, node_name=node, zone=zone)
                key = str(ep)
                # the same endpoint in two slices (a slice being replaced): keep the first, as upstream
                bucket.setdefault(key, ep)
    return {spn: [b[k] for k in sorted(b)] for spn, b in out.items() if b}


@dataclass
class EndpointsChangeTracker:
    """Keeps every EndpointSlice (stripped) by Service; remembers which Services changed."""
    hostname: str
    slices: dict[NamespacedName, dict[str, SliceInfo]] = field(default_factory=dict)
    changed: set[NamespacedName] = field(default_factory=set)
    # endpoints.kubernetes.io/last-change-trigger-time of pending changes (network programming latency)
    trigger_times: list[str] = field(default_factory=list)

    def update(self, previous: Obj | None, current: Obj | None) -> bool:
        if previous is not None:
            self._remove(previous)
        if current is not None:
            info = slice_info(current)
            trigger = ((current.get("metadata") or {}).get("annotations") or {}).get(TRIGGER_TIME_ANNOTATION)
            if trigger and (previous is None or trigger != ((previous.get("metadata") or {}).get(
                    "annotations") or {}).get(TRIGGER_TIME_ANNOTATION)):
                self.trigger_times.append(trigger)
            if info is not None:
                name = (current.get("metadata") or {}).get("name") or ""
                by_name = self.slices.setdefault(info.service, {})
                if by_name.get(name) != info:
                    by_name[name] = info
                    self.changed.add(info.service)
        return bool(self.changed)

    def _remove(self, obj: Obj) -> None:
        info = slice_info(obj)
        if info is None:
            return
        name = (obj.get("metadata") or {}).get("name") or ""
        by_name = self.slices.get(info.service) or {}
        if name in by_name:
            del by_name[name]
            self.changed.add(info.service)
            if not by_name:
                self.slices.pop(info.service, None)

    def endpoints_of(self, service: NamespacedName) -> dict[ServicePortName, list[Endpoint]]:
        by_name = self.slices.get(service) or {}
        return endpoints_from_slices((by_name[k] for k in sorted(by_name)), self.hostname)

    def pending(self) -> set[NamespacedName]:
        return set(self.changed)


@dataclass
class EndpointsUpdateResult:
    updated_services: set[NamespacedName]
    deleted_endpoints: list[tuple[ServicePortName, Endpoint]]  # gone (or no longer serving)
    newly_active: set[ServicePortName]  # service ports that went from 0 to >0 endpoints


class EndpointsMap(dict[ServicePortName, list[Endpoint]]):
    def __init__(self) -> None:
        super().__init__()
        self._by_service: dict[NamespacedName, set[ServicePortName]] = {}

    def apply(self, tracker: EndpointsChangeTracker) -> EndpointsUpdateResult:
        updated = set(tracker.changed)
        deleted: list[tuple[ServicePortName, Endpoint]] = []
        newly: set[ServicePortName] = set()
        for svc in updated:
            old = {spn: self[spn] for spn in self._by_service.pop(svc, ())}
            new = tracker.endpoints_of(svc)
            for spn, eps in old.items():
                keep = {str(e) for e in new.get(spn, ()) if e.serving}
                deleted.extend((spn, e) for e in eps if e.serving and str(e) not in keep)
                del self[spn]
            for spn, eps in new.items():
                if not any(e.serving for e in old.get(spn, ())) and any(e.serving for e in eps):
                    newly.add(spn)
                self[spn] = eps
            if new:
                self._by_service[svc] = set(new)
        tracker.changed.clear()
        return EndpointsUpdateResult(updated, deleted, newly)


@dataclass
class ProxyState:
    """What the renderers read: every service port and its endpoints (already merged)."""
    services: dict[ServicePortName, ServicePort] = field(default_factory=dict)
    endpoints: dict[ServicePortName, list[Endpoint]] = field(default_factory=dict)

    def total_endpoints(self) -> int:
        return sum(len(self.endpoints.get(spn, ())) for spn in self.services)


def state_from_objects(objects: Iterable[Obj], hostname: str) -> ProxyState:
    """Build the state from wire dicts (Services and EndpointSlices), as the trackers would."""
    svc_tracker = ServiceChangeTracker()
    ep_tracker = EndpointsChangeTracker(hostname)
    for obj in objects:
        if obj.get("kind") == "Service":
            svc_tracker.update(None, obj)
        elif obj.get("kind") == "EndpointSlice":
            ep_tracker.update(None, obj)
    services, endpoints = ServicePortMap(), EndpointsMap()
    services.apply(svc_tracker)
    endpoints.apply(ep_tracker)
    return ProxyState(dict(services), dict(endpoints))
