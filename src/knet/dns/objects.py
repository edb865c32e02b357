"""Stripped projections of the API objects DNS needs, made once at ingest.

Like CoreDNS's plugin/kubernetes/object: the lookup never sees a wire dict, only these small
frozen records. Purely computational: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
CLUSTER_IP_NONE = "None"


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str
    protocol: str
    port: int  # -1: the Service declares no ports (CoreDNS's sentinel)


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    namespace: str
    type: str
    cluster_ips: tuple[str, ...]
    external_name: str
    external_ips: tuple[str, ...]
    ports: tuple[ServicePort, ...]

    @property
    def key(self) -> str:
        return service_key(self.name, self.namespace)

    @property
    def headless(self) -> bool:
        return CLUSTER_IP_NONE in self.cluster_ips


@dataclass(frozen=True, slots=True)
class EndpointAddress:
    ip: str
    hostname: str
    target_ref_name: str


@dataclass(frozen=True, slots=True)
class EndpointPort:
    name: str
    protocol: str
    port: int  # -1 when the slice port has no number


@dataclass(frozen=True, slots=True)
class Endpoints:
    """One EndpointSlice, reduced to its ready addresses (CoreDNS's object.Endpoints)."""

    name: str  # the slice's own name
    namespace: str
    index: str  # service_key() of the Service it belongs to
    addresses: tuple[EndpointAddress, ...]
    ports: tuple[EndpointPort, ...]


@dataclass(frozen=True, slots=True)
class Pod:
    name: str
    namespace: str
    ips: tuple[str, ...]


def service_key(name: str, namespace: str) -> str:
    """The index key CoreDNS uses for Services and their endpoints: NAME.NAMESPACE."""
    return f"{name}.{namespace}"


def to_service(obj: Obj) -> Service:
    meta, spec = obj.get("metadata", {}), obj.get("spec", {})
    cluster_ips = tuple(spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []))
    raw_ports = spec.get("ports") or []
    if raw_ports:
        ports = tuple(
            ServicePort(p.get("name", ""), p.get("protocol", "TCP"), int(p.get("port", -1))) for p in raw_ports
        )
    else:
        ports = (ServicePort("", "", -1),)
    return Service(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", "default"),
        type=spec.get("type", "ClusterIP"),
        cluster_ips=cluster_ips,
        external_name=spec.get("externalName", "") or "",
        external_ips=tuple(spec.get("externalIPs") or ()),
        ports=ports,
    )


def _ready(conditions: dict[str, Any] | None) -> bool:
    # EndpointSlice semantics: a nil `ready` means ready (discovery/v1 API docs).
    if not conditions:
        return True
    ready = conditions.get("ready")
    return ready is None or bool(ready)


def to_endpoints(obj: Obj) -> Endpoints:
    """An EndpointSlice as CoreDNS's EndpointSliceToEndpoints sees it: ready addresses only."""
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace", "default")
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL, "")
    addresses: list[EndpointAddress] = []
    for ep in obj.get("endpoints") or []:
        if not _ready(ep.get("conditions")):
            continue
        target = ep.get("targetRef") or {}
        for ip in ep.get("addresses") or []:
            addresses.append(EndpointAddress(ip, ep.get("hostname") or "", target.get("name", "") or ""))
    ports = tuple(
        EndpointPort(p.get("name") or "", p.get("protocol") or "TCP", int(p["port"]) if p.get("port") is not None else -1)
        for p in obj.get("ports") or []
    )
    if not ports:
        ports = (EndpointPort("", "", -1),)
    return Endpoints(meta.get("name", ""), namespace, service_key(service, namespace), tuple(addresses), ports)


def to_pod(obj: Obj) -> Pod:
    meta, status = obj.get("metadata", {}), obj.get("status", {})
    ips = [p["ip"] for p in status.get("podIPs") or [] if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return Pod(meta.get("name", ""), meta.get("namespace", "default"), tuple(ips))
