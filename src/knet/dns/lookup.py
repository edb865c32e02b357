"""The kubernetes backend: record requests -> found services, read only from a `ClusterCache`.

Mirrors CoreDNS plugin/kubernetes kubernetes.go (Records, findServices, findPods), reverse.go
and ns.go. A name error (NXDOMAIN) is raised as `NameError_`; an empty list is NODATA.
Pure: no I/O, the cache is the only input.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from dataclasses import dataclass

from knet.dns.cache import ClusterCache
from knet.dns.objects import EndpointAddress, service_key
from knet.dns.request import (
    POD,
    SVC,
    InvalidRequest,
    RecordRequest,
    address_from_reverse,
    is_reverse,
    parse_request,
)

DNS_SCHEMA_VERSION = "1.1.0"
DEFAULT_TTL = 5
POD_MODES = ("disabled", "verified", "insecure")


class NameError_(Exception):  # noqa: N801 - a DNS name error, not Python's NameError
    """No such name: NXDOMAIN (errNoItems, errNsNotExposed, errInvalidRequest in CoreDNS)."""


@dataclass(slots=True)
class Found:
    """One thing a name maps to (CoreDNS's msg.Service)."""

    host: str  # an IP address, or a domain name (an ExternalName: a CNAME)
    name: str  # the owner name this entry stands for (msg.Domain(key)), fully qualified
    port: int = 0
    ttl: int = DEFAULT_TTL
    text: str = ""  # TXT only

    @property
    def kind(self) -> str:
        """"A", "AAAA" or "CNAME", from the host (msg.Service.HostType)."""
        return host_kind(self.host)


@functools.lru_cache(maxsize=65536)
def host_kind(host: str) -> str:
    """"A" for an IPv4 address, "AAAA" for IPv6, else "CNAME" (a name)."""
    for family, kind in ((socket.AF_INET, "A"), (socket.AF_INET6, "AAAA")):
        try:
            socket.inet_pton(family, host)
            return kind
        except OSError:
            continue
    return "CNAME"


def fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


class KubernetesBackend:
    def __init__(self, cache: ClusterCache, zones: list[str], *, ttl: int = DEFAULT_TTL,
                 pod_mode: str = "disabled", namespaces: frozenset[str] = frozenset(),
                 endpoint_pod_names: bool = False, local_ips: tuple[str, ...] = ()) -> None:
        self.cache = cache
        self.zones = [fqdn(z.lower()) for z in zones]
        self.ttl = ttl
        self.pod_mode = pod_mode
        self.namespaces = namespaces
        self.endpoint_pod_names = endpoint_pod_names
        self.local_ips = local_ips
        forward_zones = [z for z in self.zones if not is_reverse(z)]
        self.primary_zone = forward_zones[0] if forward_zones else self.zones[0]

    def match_zone(self, name: str) -> str | None:
        """The longest zone of ours NAME is in (plugin.Zones.Matches)."""
        best = None
        for zone in self.zones:
            if (zone == "." or name == zone or name.endswith("." + zone)) and (best is None or len(zone) > len(best)):
                best = zone
        return best

    # ---- namespaces ----
    def namespace_exposed(self, namespace: str) -> bool:
        configured = not self.namespaces or namespace in self.namespaces
        return configured and self.cache.namespace_exists(namespace)

    # ---- Services(): the entry for every forward qtype ----
    def services(self, name: str, zone: str, qtype: str) -> list[Found]:
        if qtype == "TXT":
            base = name[: -len(zone)].rstrip(".") if name != zone else ""
            if base == "dns-version":
                return [Found(host="", name=name, ttl=28800, text=DNS_SCHEMA_VERSION)]
            return []
        if qtype == "NS":
            return [Found(host=ip, name=owner, ttl=self.ttl) for owner, ip in self.ns_addrs(zone)]
        if name == "ns.dns." + zone:
            wanted = "A" if qtype == "A" else "AAAA" if qtype == "AAAA" else None
            return [Found(host=ip, name=name, ttl=self.ttl)
                    for _, ip in self.ns_addrs(zone) if host_kind(ip) == wanted]
        found = self.records(name, zone)
        if qtype == "SRV":  # SRV for ExternalName Services is not answered (CoreDNS)
            found = [f for f in found if f.kind != "CNAME"]
        return found

    def records(self, name: str, zone: str) -> list[Found]:
        try:
            r = parse_request(name, zone)
        except InvalidRequest as exc:
            raise NameError_(name) from exc
        if not r.pod_or_svc:
            return []
        if is_reverse(name):
            raise NameError_(name)
        if not self.namespace_exposed(r.namespace):
            raise NameError_(name)
        if r.pod_or_svc == POD:
            return self.find_pods(r, zone)
        return self.find_services(r, zone)

    def find_pods(self, r: RecordRequest, zone: str) -> list[Found]:
        if self.pod_mode == "disabled":
            raise NameError_(r.service)
        podname = r.service
        if not podname:
            return []  # NODATA for NS.pod.zone
        if podname.count("-") == 3 and "--" not in podname:
            ip = podname.replace("-", ".")
        else:
            ip = podname.replace("-", ":")
        owner = f"{podname}.{r.namespace}.{POD}.{zone}"
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError as exc:
            raise NameError_(owner) from exc
        if self.pod_mode == "insecure":
            return [Found(host=ip, name=owner, ttl=self.ttl)]
        found = [Found(host=ip, name=owner, ttl=self.ttl)
                 for p in self.cache.pod_index(ip) if p.namespace == r.namespace]
        if not found:
            raise NameError_(owner)
        return found[:1]

    def find_services(self, r: RecordRequest, zone: str) -> list[Found]:
        if not r.service:
            return []  # NODATA for NS.svc.zone
        found: list[Found] = []
        matched = False
        key = service_key(r.service, r.namespace)
        svc_domain = f"{r.service}.{r.namespace}.{SVC}.{zone}"
        for svc in self.cache.svc_index(key):
            if svc.type == "ExternalName":
                if r.endpoint:  # ExternalName Services have no endpoints
                    continue
                if host_kind(svc.external_name) == "CNAME" and svc.external_name:
                    found.append(Found(host=fqdn(svc.external_name.lower()), name=svc_domain, ttl=self.ttl))
                    matched = True
                continue
            if svc.headless or r.endpoint:
                for eps in self.cache.ep_index(key):
                    for addr in eps.addresses:
                        hostname = self.endpoint_hostname(addr)
                        if r.endpoint and r.endpoint != hostname.lower():
                            continue
                        for p in eps.ports:
                            if not _match_port(r, p.name, p.protocol):
                                continue
                            found.append(Found(host=addr.ip, name=f"{hostname}.{svc_domain}", port=p.port, ttl=self.ttl))
                            matched = True
                continue
            for p in svc.ports:
                if not _match_port(r, p.name, p.protocol):
                    continue
                matched = True
                for ip in svc.cluster_ips:
                    found.append(Found(host=ip, name=svc_domain, port=p.port, ttl=self.ttl))
        if not matched:
            raise NameError_(svc_domain)
        return found

    def endpoint_hostname(self, addr: EndpointAddress) -> str:
        if addr.hostname:
            return addr.hostname
        if self.endpoint_pod_names and addr.target_ref_name:
            return addr.target_ref_name
        if "." in addr.ip:
            return addr.ip.replace(".", "-")
        return addr.ip.replace(":", "-")

    # ---- reverse ----
    def reverse(self, name: str, zone: str) -> list[Found]:
        ip = address_from_reverse(name)
        if not ip:
            self.records(name, zone)  # raises the name error the forward lookup gives
            return []
        for svc in self.cache.svc_index_reverse(ip):
            if self.namespaces and not self.namespace_exposed(svc.namespace):
                continue
            return [Found(host=f"{svc.name}.{svc.namespace}.{SVC}.{self.primary_zone}", name=name, ttl=self.ttl)]
        found = []
        for eps in self.cache.ep_index_reverse(ip):
            if self.namespaces and not self.namespace_exposed(eps.namespace):
                continue
            for addr in eps.addresses:
                if addr.ip != ip:
                    continue
                target = f"{self.endpoint_hostname(addr)}.{eps.index}.{SVC}.{self.primary_zone}"
                found.append(Found(host=target, name=name, ttl=self.ttl))
        if not found:
            raise NameError_(name)
        return found

    # ---- the DNS service's own addresses (ns.go) ----
    def ns_addrs(self, zone: str) -> list[tuple[str, str]]:
        owners: list[tuple[str, str]] = []
        for local_ip in self.local_ips:
            for eps in self.cache.ep_index_reverse(local_ip):
                for svc in self.cache.svc_index(eps.index):
                    svc_name = f"{svc.name}.{svc.namespace}.{SVC}.{zone}"
                    if svc.headless:
                        owners.extend((f"{self.endpoint_hostname(a)}.{svc_name}", a.ip) for a in eps.addresses)
                    else:
                        owners.extend((svc_name, ip) for ip in svc.cluster_ips[:1])
        if not owners:
            owners = [("ns.dns." + zone, ip) for ip in self.local_ips]
        return owners


def _match_port(r: RecordRequest, name: str, protocol: str) -> bool:
    return (not r.port or r.port == name.lower()) and (not r.protocol or r.protocol == protocol.lower())
